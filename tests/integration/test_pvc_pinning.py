"""A claim stays with the node of its first pod, as with a local-path
provisioner (WaitForFirstConsumer), on a 3-node cluster with real kubectl:
the StatefulSet makes PersistentVolumeClaim data-web-0, the scheduler records
web-0's node on it (volume.kubernetes.io/selected-node), a recreated web-0
goes back to that node although another is emptier and reads what the old
one wrote, a second pod of the claim lands there too, a cordon of that node
leaves a new one Pending with kube-scheduler's message until uncordon, and a
pod naming a missing claim waits with `persistentvolumeclaim "..." not found`
until the claim is made."""
import os

import pytest

from tests.integration.cluster import ThrowawayCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SELECTED = "volume.kubernetes.io/selected-node"
WEB = """\
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: c, image: busybox, command: [sleep, "3600"], volumeMounts: [{name: data, mountPath: /data}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Mi}}}
"""


def claim_pod(name: str, claim: str, node: str = "") -> str:
    pin = f"\n  nodeName: {node}" if node else ""
    return f"""\
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{role: {name}}}}}
spec:{pin}
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: c, image: busybox, command: [sleep, "3600"], volumeMounts: [{{name: d, mountPath: /data}}]}}
  volumes: [{{name: d, persistentVolumeClaim: {{claimName: {claim}}}}}]
"""


def filler(node: str) -> str:
    return f"""\
apiVersion: v1
kind: Pod
metadata: {{name: filler, labels: {{role: filler}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers: [{{name: c, image: busybox, command: [sleep, "3600"]}}]
"""


def scheduling_failures(c, pod: str) -> list[str]:
    events = c.get("events", "--field-selector", f"involvedObject.name={pod}")["items"]
    return [e["message"] for e in events if e["reason"] == "FailedScheduling"]


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("cluster")), nodes=3, dns=False) as tc:
        tc.kubectl("apply", "-f", "-", input=WEB)
        tc.wait_ready("app=web", 1, timeout=60)
        yield tc


def test_statefulset_claim_is_bound_to_the_node_of_its_first_pod(c):
    node = c.get("pod", "web-0")["spec"]["nodeName"]
    pvc = c.get("pvc", "data-web-0")
    assert pvc["metadata"]["annotations"][SELECTED] == node
    assert pvc["metadata"]["labels"] == {"app": "web"}
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"] and pvc["spec"]["volumeMode"] == "Filesystem"
    out = c.kubectl("get", "pvc").stdout.splitlines()
    assert out[0].split() == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES", "STORAGECLASS",
                              "VOLUMEATTRIBUTESCLASS", "AGE"]
    assert out[1].split()[:2] == ["data-web-0", "Pending"]
    claims = os.path.join(c.cfg.dir, "nodes", "{}", "claims", "default", "data-web-0")
    assert [n for n in ("node-1", "node-2", "node-3") if os.path.isdir(claims.format(n))] == [node]


def test_recreated_pod_returns_to_its_claims_node_and_a_second_pod_joins_it(c):
    node = c.get("pod", "web-0")["spec"]["nodeName"]
    c.kubectl("exec", "web-0", "--", "sh", "-c", "echo kept > /data/file")
    # another pod on that node makes it the busiest: the spread alone would now pick another node
    c.kubectl("apply", "-f", "-", input=filler(node))
    c.wait_ready("role=filler", 1, timeout=60)
    old_uid = c.get("pod", "web-0")["metadata"]["uid"]
    c.kubectl("delete", "pod", "web-0", "--wait=false")
    c.wait(lambda: (p := c.get("pod", "web-0"))["metadata"]["uid"] != old_uid and p in c.ready_pods("app=web"),
           60, "a new ready web-0")
    assert c.get("pod", "web-0")["spec"]["nodeName"] == node
    assert c.kubectl("exec", "web-0", "--", "cat", "/data/file").stdout == "kept\n"
    c.kubectl("apply", "-f", "-", input=claim_pod("reader", "data-web-0"))
    c.wait_ready("role=reader", 1, timeout=60)
    assert c.get("pod", "reader")["spec"]["nodeName"] == node
    assert c.kubectl("exec", "reader", "--", "cat", "/data/file").stdout == "kept\n"


def test_cordoned_claim_node_leaves_the_pod_pending_until_uncordoned(c):
    node = c.get("pvc", "data-web-0")["metadata"]["annotations"][SELECTED]
    c.kubectl("cordon", node)
    try:
        c.kubectl("apply", "-f", "-", input=claim_pod("late", "data-web-0"))
        want = ("0/3 nodes are available: 1 node(s) were unschedulable, "
                "2 node(s) had volume node affinity conflict.")
        c.wait(lambda: want in scheduling_failures(c, "late"), 30, "FailedScheduling of late")
        pod = c.get("pod", "late")
        assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
    finally:
        c.kubectl("uncordon", node)
    c.wait(lambda: c.get("pod", "late")["spec"].get("nodeName") == node, 30, "late scheduled to its claim's node")


def test_pod_with_a_missing_claim_waits_for_it(c):
    c.kubectl("apply", "-f", "-", input=claim_pod("orphan", "nope"))
    want = '0/3 nodes are available: persistentvolumeclaim "nope" not found.'
    c.wait(lambda: want in scheduling_failures(c, "orphan"), 30, "FailedScheduling of orphan")
    assert c.get("pod", "orphan")["status"]["phase"] == "Pending"
    c.kubectl("create", "-f", "-", input="""\
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: nope}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Mi}}}
""")
    c.wait(lambda: c.get("pod", "orphan")["spec"].get("nodeName"), 30, "orphan scheduled once its claim exists")
    node = c.get("pod", "orphan")["spec"]["nodeName"]
    assert c.get("pvc", "nope")["metadata"]["annotations"][SELECTED] == node


def test_invalid_claim_is_refused_with_kube_apiserver_message(c):
    r = c.kubectl("create", "-f", "-", check=False, input="""\
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: bad}
spec: {resources: {requests: {storage: 1Mi}}}
""")
    assert r.returncode != 0
    assert ('The PersistentVolumeClaim "bad" is invalid: spec.accessModes: Required value: '
            'at least 1 access mode is required') in r.stderr
