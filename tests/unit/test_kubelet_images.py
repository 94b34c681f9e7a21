"""The kubelet's image manager (agent/node/kubelet/images.py) over a fake
store and a fake registry probe: pull policy, the kubelet's Events and
waiting reasons, pull back-off, and when a stand-in runs instead."""
import threading
import time

import pytest

from agent.node.kubelet import images
from agent.node.runtime.errors import ImageNeverPull, ImagePullError, InvalidImageName, RuntimeLayerError
from agent.node.runtime.images import Image as Stored

DIGEST = "sha256:" + "ab" * 32


class FakeStore:
    def __init__(self, names=(), pull_error: str = ""):
        self.names = set(names)
        self.pull_error = pull_error
        self.pulls: list[str] = []
        self.auths: list = []

    def resolve(self, name):
        return Stored(names=[name], digest=DIGEST, size=1234) if name in self.names else None

    def unpack(self, name):
        return f"/unpacked/{name}"

    def config(self, name):
        return {"Cmd": ["sh"]}

    def pull(self, image, insecure_registries=(), auth=None, timeout=0):
        self.pulls.append(image)
        self.auths.append(auth)
        if self.pull_error:
            raise ImagePullError(f'Failed to pull image "{image}": {self.pull_error}; check the image name and tag')
        from agent.node.runtime import reference
        self.names.add(reference.parse(image).name)
        return self.resolve(reference.parse(image).name)


class Harness:
    def __init__(self, store: FakeStore, answers: bool = False, secrets: dict | None = None):
        self.events: list[tuple[str, str, str]] = []
        self.probes: list[tuple[str, int]] = []
        self.woken = threading.Event()

        def probe(host, port):
            self.probes.append((host, port))
            return answers
        self.mgr = images.ImageManager(store, lambda pod, r, m, t="Normal": self.events.append((t, r, m)),
                                       lambda pod: self.woken.set(), ["10.0.0.0/8"], probe=probe,
                                       secret=lambda ns, name: (secrets or {}).get((ns, name)))

    def ensure(self, image: str, policy: str | None = None, uid: str = "u1", pull_secrets=()):
        """ensure() until it stops saying "pending" (bounded)."""
        pod = {"metadata": {"uid": uid, "namespace": "default", "name": "p"},
               "spec": {"imagePullSecrets": [{"name": n} for n in pull_secrets]}}
        container = {"name": "c", "image": image, **({"imagePullPolicy": policy} if policy else {})}
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            got = self.mgr.ensure(pod, container)
            if got is not None:
                return got
            self.woken.wait(0.05)
            self.woken.clear()
        raise AssertionError("still pending")


def test_stored_image_with_if_not_present_runs_without_a_pull():
    store = FakeStore({"docker.io/library/app:1"})
    h = Harness(store)
    img = h.ensure("app:1")
    assert (img.standin, img.name, img.lower) == (False, "docker.io/library/app:1", "/unpacked/docker.io/library/app:1")
    assert img.image_id == f"docker.io/library/app@{DIGEST}" and img.config == {"Cmd": ["sh"]}
    assert h.events == [("Normal", "Pulled", 'Container image "app:1" already present on machine')]
    assert store.pulls == [] and h.probes == []


def test_never_without_the_image_is_err_image_never_pull():
    h = Harness(FakeStore())
    with pytest.raises(ImageNeverPull) as err:
        h.ensure("app:1", "Never")
    message = 'Container image "app:1" is not present with pull policy of Never'
    assert err.value.reason == "ErrImageNeverPull" and str(err.value) == message
    assert h.events == [("Warning", "ErrImageNeverPull", message), ("Warning", "Failed", "Error: ErrImageNeverPull")]


def test_invalid_name():
    h = Harness(FakeStore())
    with pytest.raises(InvalidImageName) as err:
        h.ensure("App:1")
    assert str(err.value).startswith('Failed to apply default image tag "App:1": couldn\'t parse image name "App:1"')
    assert [e[1] for e in h.events] == ["InspectFailed", "Failed"] and h.events[1][2] == "Error: InvalidImageName"


def test_standin_when_its_registry_does_not_answer_probed_once():
    h = Harness(FakeStore(), answers=False)
    img = h.ensure("nginx:1.27")
    assert img.standin and img.name == "docker.io/library/nginx:1.27" and img.image_id == ""
    assert h.ensure("nginx", uid="u2").standin
    assert h.probes == [("registry-1.docker.io", 443)]          # remembered for the second pod
    assert h.events[-1] == ("Normal", "Pulled", 'Container image "nginx" is not on this machine and cannot be '
                            "pulled; running nsplane's built-in stand-in for it")


def test_standin_under_never_and_after_a_failed_pull():
    h = Harness(FakeStore(), answers=True)
    assert h.ensure("busybox:1.36", "Never").standin and h.probes == []
    h2 = Harness(FakeStore(pull_error="manifest unknown"), answers=True)
    assert h2.ensure("registry.k8s.io/e2e-test-images/agnhost:2.47").standin
    assert [e[1] for e in h2.events] == ["Pulling", "Failed", "Pulled"]


def test_failed_pull_is_err_image_pull_then_back_off():
    store = FakeStore(pull_error="manifest unknown")
    h = Harness(store, answers=True)
    with pytest.raises(ImagePullError) as err:
        h.ensure("10.1.2.3:5000/app:1", "Always")
    assert err.value.reason == "ErrImagePull"
    assert str(err.value) == "manifest unknown; check the image name and tag"
    with pytest.raises(RuntimeLayerError) as err:
        h.ensure("10.1.2.3:5000/app:1", "Always")
    assert (err.value.reason, str(err.value)) == ("ImagePullBackOff", 'Back-off pulling image "10.1.2.3:5000/app:1"')
    assert h.events == [
        ("Normal", "Pulling", 'Pulling image "10.1.2.3:5000/app:1"'),
        ("Warning", "Failed", 'Failed to pull image "10.1.2.3:5000/app:1": manifest unknown; check the image '
                              "name and tag"),
        ("Warning", "Failed", "Error: ErrImagePull"),
        ("Normal", "BackOff", 'Back-off pulling image "10.1.2.3:5000/app:1"'),
        ("Warning", "Failed", "Error: ImagePullBackOff")]
    assert store.pulls == ["10.1.2.3:5000/app:1"] and h.probes == []     # no stand-in: no probe either


def test_successful_pull_event_and_image_id():
    h = Harness(FakeStore(), answers=True)
    img = h.ensure("10.1.2.3:5000/team/app:2")
    assert img.image_id == f"10.1.2.3:5000/team/app@{DIGEST}" and not img.standin
    assert h.events[0] == ("Normal", "Pulling", 'Pulling image "10.1.2.3:5000/team/app:2"')
    kind, reason, message = h.events[1]
    assert reason == "Pulled" and message.startswith('Successfully pulled image "10.1.2.3:5000/team/app:2" in ')
    assert message.endswith("including waiting). Image size: 1234 bytes.")


def test_always_with_a_stored_image_and_no_registry_runs_it_and_says_why():
    store = FakeStore({"docker.io/library/app:latest"})
    h = Harness(store, answers=False)
    img = h.ensure("app")                                       # :latest -> Always
    assert not img.standin and store.pulls == []
    assert h.events == [("Normal", "Pulled", 'Container image "app" already present on machine; not pulled: '
                         "its registry docker.io does not answer from this node")]


def test_backoff_doubles_to_the_cap_and_expires():
    b = images.Backoff(10, 300)
    b.next("k", 0)
    assert b.in_backoff("k", 9.9) and not b.in_backoff("k", 10.1)
    for t, want in ((20, 20), (50, 40), (100, 80), (200, 160), (400, 300), (800, 300)):
        b.next("k", t)
        assert b._entries["k"][0] == want
    b.next("k", 800 + 601)                                     # quiet for > 2 x cap: starts over
    assert b._entries["k"][0] == 10


@pytest.mark.parametrize("seconds,text", [(0.5234, "523ms"), (1.2345, "1.234s"), (3.0, "3s"), (75.5, "1m15.5s"),
                                          (3725.25, "1h2m5.25s")])
def test_go_duration(seconds, text):
    assert images.go_duration(seconds) == text


@pytest.mark.parametrize("domain,insecure,endpoint", [
    ("docker.io", False, ("registry-1.docker.io", 443)),
    ("registry.k8s.io", False, ("registry.k8s.io", 443)),
    ("localhost:5000", True, ("localhost", 5000)),
    ("10.0.0.1", True, ("10.0.0.1", 80)),
    ("[::1]:5000", True, ("::1", 5000)),
])
def test_registry_endpoint(domain, insecure, endpoint):
    assert images.registry_endpoint(domain, insecure) == endpoint


def _docker_secret(auths: dict, kind: str = "kubernetes.io/dockerconfigjson") -> dict:
    import base64
    import json
    doc = {"auths": auths} if kind.endswith("json") else auths
    key = ".dockerconfigjson" if kind.endswith("json") else ".dockercfg"
    return {"type": kind, "data": {key: base64.b64encode(json.dumps(doc).encode()).decode()}}


def test_credentials_match_the_registry_most_specific_first():
    from agent.node.runtime import reference
    hub = _docker_secret({"https://index.docker.io/v1/": {"auth": "aHViOnB3"}})
    mine = _docker_secret({"10.1.2.3:5000": {"username": "alice", "password": "pw"},
                           "10.1.2.3:5000/team": {"username": "team", "password": "tpw"},
                           "*.example.com": {"auth": "d2lsZDp4"}}, "kubernetes.io/dockercfg")
    assert images.credentials([hub, mine], reference.parse("nginx:1.27")) == {"auth": "aHViOnB3"}
    assert images.credentials([hub, mine], reference.parse("10.1.2.3:5000/app:1")) == \
        {"username": "alice", "password": "pw"}
    assert images.credentials([hub, mine], reference.parse("10.1.2.3:5000/team/app:1"))["username"] == "team"
    assert images.credentials([hub, mine], reference.parse("r.example.com/app"))["auth"] == "d2lsZDp4"
    assert images.credentials([hub, mine], reference.parse("quay.io/app")) is None
    assert images.credentials([{"type": "Opaque", "data": {}}], reference.parse("nginx")) is None


def test_pull_uses_the_pods_pull_secrets_and_says_which_it_could_not_read():
    store = FakeStore()
    secret = _docker_secret({"10.1.2.3:5000": {"username": "alice", "password": "pw"}})
    h = Harness(store, secrets={("default", "regcred"): secret})
    h.ensure("10.1.2.3:5000/app:1", pull_secrets=["regcred", "gone"])
    assert store.auths == [{"username": "alice", "password": "pw"}]
    assert h.events[0] == ("Warning", "FailedToRetrieveImagePullSecret", "Unable to retrieve some image pull "
                           "secrets (gone); attempting to pull the image may not succeed.")


def test_coredns_is_always_the_clusters_own_dns():
    store = FakeStore({"registry.k8s.io/coredns/coredns:v1.11.3"})
    h = Harness(store, answers=True)
    assert h.ensure("registry.k8s.io/coredns/coredns:v1.11.3", "Always").standin
    assert store.pulls == [] and h.probes == []
    assert h.events == [("Normal", "Pulled", 'Container image "registry.k8s.io/coredns/coredns:v1.11.3" is '
                         "nsplane's cluster DNS here; running nsplane's built-in stand-in for it")]
