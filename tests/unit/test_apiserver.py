"""The API server, store and controllers together, over real HTTP on
loopback (no root, no kernel): REST semantics, Status errors, watch,
allocation, and Deployment -> ReplicaSet -> Pods -> EndpointSlices."""
import threading
import time

import pytest

from agent.api.client import APIStatusError, Client, Informer
from agent.apiserver.registry import Registry
from agent.apiserver.serving import APIServer
from agent.apiserver.store import Store
from agent.controllers import bootstrap
from agent.controllers.deployment import DeploymentController
from agent.controllers.endpointslice import EndpointSliceController
from agent.controllers.gc import GarbageCollector
from agent.controllers.replicaset import ReplicaSetController
from agent.controllers.scheduler import Scheduler


@pytest.fixture
def api(tmp_path):
    store = Store(str(tmp_path / "store.db"))
    registry = Registry(store)
    bootstrap.bootstrap(registry, "172.28.0.1", 6443)
    server = APIServer(registry, [("127.0.0.1", 0)], str(tmp_path / "api.sock"))
    server.start()
    stop = threading.Event()
    for c in (ReplicaSetController, DeploymentController, EndpointSliceController, GarbageCollector):
        c(store, registry).start(stop)
    host, port = server.servers[0].server_address
    yield Client(f"http://{host}:{port}"), Client(f"unix://{tmp_path / 'api.sock'}"), store
    stop.set()
    server.stop()
    store.close()


def until(fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


SVC = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
       "spec": {"type": "ClusterIP", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80}]}}


def test_bootstrap_objects(api):
    tcp, unix, _ = api
    svc = unix.get("services", "kubernetes", "default")
    assert svc["spec"]["clusterIP"] == "10.96.0.1"
    assert [n["metadata"]["name"] for n in tcp.list("namespaces")["items"]] == \
        ["default", "kube-node-lease", "kube-public", "kube-system"]


def test_service_allocation_and_errors(api):
    tcp, _, _ = api
    svc = tcp.create("services", SVC, "default")
    ip = svc["spec"]["clusterIP"]
    assert ip.startswith("10.") and svc["spec"]["ports"][0]["protocol"] == "TCP"
    with pytest.raises(APIStatusError) as e:
        tcp.create("services", SVC, "default")
    assert e.value.code == 409 and e.value.status["message"] == 'services "web" already exists'
    clash = {**SVC, "metadata": {"name": "web2"}, "spec": {**SVC["spec"], "clusterIP": ip}}
    with pytest.raises(APIStatusError) as e:
        tcp.create("services", clash, "default")
    assert e.value.code == 422 and "provided IP is already allocated" in str(e.value)
    changed = tcp.get("services", "web", "default")
    changed["spec"]["clusterIP"] = "10.96.0.77"
    changed["spec"]["clusterIPs"] = ["10.96.0.77"]
    with pytest.raises(APIStatusError) as e:
        tcp.update("services", changed)
    assert e.value.code == 422 and "may not change once set" in str(e.value)
    assert tcp.get("services", "web", "default")["spec"]["clusterIP"] == ip   # nothing changed
    with pytest.raises(APIStatusError) as e:
        tcp.get("services", "nope", "default")
    assert e.value.code == 404 and e.value.status["message"] == 'services "nope" not found'


def test_stale_update_conflicts(api):
    tcp, _, _ = api
    svc = tcp.create("services", SVC, "default")
    svc["metadata"]["labels"] = {"a": "b"}
    tcp.update("services", dict(svc))
    with pytest.raises(APIStatusError) as e:
        tcp.update("services", svc)
    assert e.value.code == 409


def test_watch_from_resource_version(api):
    tcp, _, _ = api
    rv = tcp.list("services", "default")["metadata"]["resourceVersion"]
    seen = []
    stop = threading.Event()

    def watch():
        for ev in tcp.watch("services", "default", rv, timeout=5, stop=stop):
            seen.append((ev["type"], ev["object"]["metadata"]["name"]))
            if len(seen) == 2:
                return
    t = threading.Thread(target=watch)
    t.start()
    tcp.create("services", SVC, "default")
    tcp.delete("services", "web", "default")
    t.join(10)
    stop.set()
    assert seen == [("ADDED", "web"), ("DELETED", "web")]


def test_deployment_to_pods_to_endpoints(api):
    tcp, _, store = api
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
              "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"metadata": {"labels": {"app": "web"}},
                                    "spec": {"containers": [{"name": "nginx", "image": "nginx",
                                                             "ports": [{"containerPort": 80, "name": "http"}]}]}}}}
    tcp.create("deployments", deploy, "default")
    tcp.create("services", {**SVC, "spec": {**SVC["spec"], "ports": [{"port": 80, "targetPort": "http"}]}}, "default")
    pods = until(lambda: (p := tcp.list("pods", "default", "app=web")["items"]) and len(p) == 3 and p)
    rs = tcp.list("replicasets", "default")["items"]
    assert len(rs) == 1 and pods[0]["metadata"]["name"].startswith(rs[0]["metadata"]["name"] + "-")
    assert rs[0]["metadata"]["labels"]["pod-template-hash"] in rs[0]["metadata"]["name"]
    # Act as the kubelet: give the pods IPs and make them ready.
    for i, p in enumerate(pods):
        p["status"] = {"phase": "Running", "podIP": f"10.244.0.{5 + i}",
                       "conditions": [{"type": "Ready", "status": "True"}]}
        tcp.update("pods", p, subresource="status")
    ep = until(lambda: (e := tcp.get("endpoints", "web", "default")).get("subsets") and
               len(e["subsets"][0]["addresses"]) == 3 and e)
    assert sorted(a["ip"] for a in ep["subsets"][0]["addresses"]) == ["10.244.0.5", "10.244.0.6", "10.244.0.7"]
    assert ep["subsets"][0]["ports"] == [{"port": 80, "protocol": "TCP"}]
    slices = tcp.list("endpointslices", "default", "kubernetes.io/service-name=web")["items"]
    assert len(slices) == 1 and slices[0]["ports"][0]["port"] == 80   # named targetPort resolved
    assert slices[0]["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
    # A selector typo empties the endpoints.
    svc = tcp.get("services", "web", "default")
    tcp.patch("services", "web", {"spec": {"selector": {"app": "webb"}}}, "default")
    until(lambda: not tcp.get("endpoints", "web", "default").get("subsets"))
    assert svc["spec"]["clusterIP"] == tcp.get("services", "web", "default")["spec"]["clusterIP"]
    # Scale down: pods are deleted (unscheduled pods go at once).
    tcp.patch("deployments", "web", {"spec": {"replicas": 1}}, "default")
    until(lambda: len(tcp.list("pods", "default", "app=web")["items"]) == 1)
    # The Deployment controller's scale is a spec update like any client's (a new
    # generation), and the ReplicaSet controller's status write observes it.
    until(lambda: (r := tcp.list("replicasets", "default")["items"][0])["metadata"]["generation"] == 2
          and r["status"].get("observedGeneration") == 2)
    # Deleting the Deployment garbage-collects its ReplicaSet and pods.
    tcp.delete("deployments", "web", "default")
    until(lambda: not tcp.list("replicasets", "default")["items"] and not tcp.list("pods", "default")["items"])


def test_informer_sees_changes(api):
    tcp, _, _ = api
    inf = Informer(tcp, "services")
    events = []
    inf.add_handler(lambda old, new: events.append((old is None, new is None)))
    stop = threading.Event()
    inf.start(stop)
    assert inf.synced.wait(5)
    tcp.create("services", SVC, "default")
    until(lambda: inf.get("default", "web"))
    tcp.delete("services", "web", "default")
    until(lambda: inf.get("default", "web") is None)
    stop.set()
    assert (True, False) in events and (False, True) in events


def test_store_survives_restart(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    reg = Registry(store)
    bootstrap.bootstrap(reg, "172.28.0.1", 6443)
    from agent.api.kinds import BY_RESOURCE
    ip = reg.create(BY_RESOURCE["services"], "default", SVC)["spec"]["clusterIP"]
    rv = store.resource_version
    store.close()
    again = Store(str(tmp_path / "s.db"))
    assert again.get("services", "default", "web")["spec"]["clusterIP"] == ip
    assert again.resource_version == rv


def test_watch_from_a_resource_version_that_is_no_number_is_a_400(api):
    tcp, _, _ = api
    with pytest.raises(APIStatusError) as e:
        tcp.request("GET", "/api/v1/services", query={"watch": "true", "resourceVersion": "abc"})
    assert e.value.code == 400 and "invalid resource version" in str(e.value)


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
       "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
BINDING = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
           "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}}


def test_a_pod_is_bound_through_its_binding_subresource_only(api):
    tcp, _, _ = api
    pod = tcp.create("pods", POD, "default")
    pod["spec"]["nodeName"] = "node-1"
    with pytest.raises(APIStatusError) as e:
        tcp.update("pods", pod)
    assert e.value.code == 422 and "spec: Forbidden: pod updates may not change fields" in str(e.value)
    path = "/api/v1/namespaces/default/pods/p/binding"
    assert tcp.request("POST", path, BINDING) == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                                  "status": "Success", "code": 201}
    bound = tcp.get("pods", "p", "default")
    assert bound["spec"]["nodeName"] == "node-1"
    assert {"type": "PodScheduled", "status": "True"} in bound["status"]["conditions"]
    with pytest.raises(APIStatusError) as e:
        tcp.request("POST", path, {**BINDING, "target": {"kind": "Node", "name": "node-2"}})
    assert e.value.code == 409 and e.value.status["message"] == \
        'Operation cannot be fulfilled on pods/binding "p": pod p is already assigned to node "node-1"'
    with pytest.raises(APIStatusError) as e:
        tcp.request("POST", path, {**BINDING, "metadata": {"name": "q"}})
    assert e.value.code == 400
    with pytest.raises(APIStatusError) as e:
        tcp.request("POST", path, {**BINDING, "target": {"kind": "Pod"}})
    assert e.value.code == 422 and e.value.status["message"] == (
        'Binding "p" is invalid: [target.kind: Unsupported value: "Pod": supported values: "Node", "<empty>", '
        "target.name: Required value]")
    assert tcp.get("pods", "p", "default")["spec"]["nodeName"] == "node-1"


def test_scheduler_binds_a_pending_pod_once(tmp_path):
    from agent.api.kinds import BY_RESOURCE
    store = Store(str(tmp_path / "s.db"))
    reg = Registry(store)
    bootstrap.bootstrap(reg, "172.28.0.1", 6443)
    reg.create(BY_RESOURCE["nodes"], None, {"metadata": {"name": "node-1"}})
    reg.guaranteed_update(BY_RESOURCE["nodes"], None, "node-1", lambda n: {
        **n, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}, subresource="status")
    reg.create(BY_RESOURCE["pods"], "default", POD)
    sched = Scheduler(store, reg)
    assert sched.sync(("default", "p")) is None
    assert store.get("pods", "default", "p")["spec"]["nodeName"] == "node-1"
    stale = store.get("pods", "default", "p")   # as a scheduler whose cache has not caught up sees it
    del stale["spec"]["nodeName"]
    sched.live = lambda *_: stale
    assert sched.sync(("default", "p")) is None   # pods/binding refuses (409): nothing more to do
    assert [e["reason"] for e in store.list("events", "default")[0]] == ["Scheduled"]
    store.close()
