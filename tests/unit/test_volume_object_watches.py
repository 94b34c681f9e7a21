"""The kubelet's per-object watches of ConfigMaps and Secrets
(agent/node/kubelet/volumes/objectwatch.py): one watch per object, by name
in its namespace (what the Node authorizer lets a node read), none before
start, stopped when no pod uses the object: its thread and connection
end at once, not at the server's next event."""
import socket
import threading
import time

from agent.node.kubelet.volumes.objectwatch import ObjectWatches


class FakeClient:
    def __init__(self):
        self.lists, self.lock = [], threading.Lock()

    def list(self, resource, namespace=None, label_selector=None, field_selector=None):
        with self.lock:
            self.lists.append((resource, namespace, field_selector))
        name = field_selector.split("=", 1)[1]
        return {"metadata": {"resourceVersion": "1"},
                "items": [{"metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"}}]}

    def watch(self, resource, namespace=None, resource_version=None, label_selector=None, field_selector=None,
              timeout=300, stop=None, opened=None):
        """A stream that sends nothing: the read blocks until the connection is shut down."""
        near, far = socket.socketpair()
        conn = type("Conn", (), {"sock": near})()
        try:
            if opened is not None:
                opened(conn)
            if stop is None or not stop.is_set():   # as Client.watch: stop is checked after opened()
                near.recv(1)
        finally:
            near.close()
            far.close()
        return iter(())


def _watch_threads(kind: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"watch-{kind}-") and t.is_alive()]


def _wait(fn):
    deadline = time.monotonic() + 10
    while not fn() and time.monotonic() < deadline:
        time.sleep(0.01)
    return fn()


def test_one_watch_per_object_by_name():
    client, seen = FakeClient(), []
    w = ObjectWatches(client, lambda kind, old, new: seen.append((kind, new["metadata"]["name"])))
    assert w.get("secret", "ns", "s") == (None, False) and w.watched() == set()     # not started: nothing
    stop = threading.Event()
    w.start(stop)
    try:
        w.get("secret", "ns", "s")
        w.get("secret", "ns", "s")
        w.get("configmap", "ns", "kube-root-ca.crt")
        assert _wait(lambda: w.get("secret", "ns", "s")[1])
        assert w.get("secret", "ns", "s")[0]["metadata"]["name"] == "s"
        assert _wait(lambda: len(client.lists) == 2)
        assert sorted(client.lists) == [("configmaps", "ns", "metadata.name=kube-root-ca.crt"),
                                        ("secrets", "ns", "metadata.name=s")]
        assert _wait(lambda: sorted(seen) == [("configmap", "kube-root-ca.crt"), ("secret", "s")])
        w.retain({("configmap", "ns", "kube-root-ca.crt")})
        assert w.watched() == {("configmap", "ns", "kube-root-ca.crt")}
        assert _wait(lambda: not _watch_threads("secret"))       # ended, though its stream sent nothing
        assert len(_watch_threads("configmap")) == 1
    finally:
        stop.set()
    assert _wait(lambda: w.watched() == set())
    assert _wait(lambda: not _watch_threads("configmap"))
