"""StatefulSet on a real cluster with real kubectl: ordered pod creation
(db-0, then db-1 once db-0 is ready, then db-2), the headless Service's DNS
answering each pod's stable name (`db-0.db`) and following a replaced pod to
its new IP, which finds its claim's data again, the SRV records, a rolling update to a new template with
ControllerRevisions, `kubectl rollout status|history|undo`, scale down from
the highest ordinal, the Table kubectl prints and a refused invalid spec."""
import pytest

from tests.integration.cluster import ThrowawayCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DB = """\
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: web, port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 3
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: nginx
        image: nginx
        ports: [{containerPort: 80, name: web}]
        volumeMounts: [{name: data, mountPath: /data}]
        readinessProbe: {httpGet: {path: /, port: 80}, periodSeconds: 1}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Mi}}}
"""


def ready_time(pod: dict) -> str:
    return next(c["lastTransitionTime"] for c in pod["status"]["conditions"] if c["type"] == "Ready")


def pod_ip(c, name: str) -> str:
    return c.get("pod", name)["status"].get("podIP", "")


def lookup(c, name: str) -> list[str]:
    r = c.exec("tmp", "nslookup", "-timeout=2", name)
    return [line.split()[-1] for line in r.stdout.splitlines() if line.startswith("Address:") and "#" not in line]


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("cluster"))) as tc:
        tc.nsplane("run", "tmp", "--image=curlimages/curl", "--", "sleep", "3600")
        tc.kubectl("apply", "-f", "-", input=DB)
        tc.wait_ready("app=db", 3, timeout=90)
        tc.wait_ready("run=tmp", 1, timeout=30)
        yield tc


def test_pods_come_up_in_order_with_stable_names(c):
    pods = {p["metadata"]["name"]: p for p in c.get("pods", "-l", "app=db")["items"]}
    assert sorted(pods) == ["db-0", "db-1", "db-2"]
    for prev, nxt in (("db-0", "db-1"), ("db-1", "db-2")):
        # OrderedReady: the next pod is created only once the previous one is Ready.
        assert pods[nxt]["metadata"]["creationTimestamp"] >= ready_time(pods[prev])
    for name, pod in pods.items():
        assert pod["spec"]["hostname"] == name and pod["spec"]["subdomain"] == "db"
        labels = pod["metadata"]["labels"]
        assert labels["statefulset.kubernetes.io/pod-name"] == name
        assert labels["apps.kubernetes.io/pod-index"] == name[-1]
        assert labels["controller-revision-hash"].startswith("db-")
        assert {"name": "data", "persistentVolumeClaim": {"claimName": f"data-{name}"}} in pod["spec"]["volumes"]
    sts = c.get("statefulset", "db")
    st = sts["status"]
    assert (st["replicas"], st["readyReplicas"], st["currentReplicas"], st["updatedReplicas"]) == (3, 3, 3, 3)
    assert st["currentRevision"] == st["updateRevision"] == pods["db-0"]["metadata"]["labels"]["controller-revision-hash"]
    out = c.kubectl("get", "statefulset", "db").stdout.splitlines()
    assert out[0].split() == ["NAME", "READY", "AGE"] and out[1].split()[:2] == ["db", "3/3"]
    events = c.kubectl("get", "events", "--field-selector", "involvedObject.name=db").stdout
    assert "create Pod db-0 in StatefulSet db successful" in events


def test_dns_follows_the_pod_across_a_restart(c):
    c.wait(lambda: lookup(c, "db-0.db") == [pod_ip(c, "db-0")], 30, "db-0.db resolving to db-0's IP")
    assert lookup(c, "db-1.db.default.svc.cluster.local") == [pod_ip(c, "db-1")]
    srv = c.exec("tmp", "dig", "+short", "+tries=2", "+time=1", "SRV", "_web._tcp.db.default.svc.cluster.local").stdout
    assert sorted(line.split()[-1] for line in srv.splitlines()) == \
        [f"db-{i}.db.default.svc.cluster.local." for i in range(3)]
    c.kubectl("exec", "db-0", "--", "sh", "-c", "echo row-1 > /data/table")
    c.kubectl("exec", "db-1", "--", "sh", "-c", "echo other > /data/table")
    old_uid = c.get("pod", "db-0")["metadata"]["uid"]
    c.kubectl("delete", "pod", "db-0", "--wait=false")
    c.wait(lambda: (p := c.get("pod", "db-0"))["metadata"]["uid"] != old_uid and p in c.ready_pods("app=db"),
           60, "a new ready db-0")
    new_ip = pod_ip(c, "db-0")
    c.wait(lambda: lookup(c, "db-0.db") == [new_ip], 30, f"db-0.db resolving to the new IP {new_ip}")
    # its claim data-db-0 is the same node-local directory: what the old db-0 wrote is there
    assert c.kubectl("exec", "db-0", "--", "cat", "/data/table").stdout == "row-1\n"


def test_rolling_update_history_and_undo(c):
    c.kubectl("set", "env", "statefulset/db", "VERSION=2")
    r = c.kubectl("rollout", "status", "statefulset/db", "--timeout=120s", timeout=130)
    # partition defaults to 0, so kubectl reports a partitioned roll out, as on a real cluster.
    assert "partitioned roll out complete: 3 new pods have been updated..." in r.stdout
    sts = c.get("statefulset", "db")
    assert sts["status"]["currentRevision"] == sts["status"]["updateRevision"]
    for p in c.get("pods", "-l", "app=db")["items"]:
        assert p["metadata"]["labels"]["controller-revision-hash"] == sts["status"]["updateRevision"]
        assert {"name": "VERSION", "value": "2"} in p["spec"]["containers"][0]["env"]
    hist = c.kubectl("rollout", "history", "statefulset/db").stdout
    assert [line.split()[0] for line in hist.splitlines()[2:] if line.strip()] == ["1", "2"]
    revs = c.kubectl("get", "controllerrevisions").stdout
    assert "statefulset.apps/db" in revs
    c.kubectl("rollout", "undo", "statefulset/db")
    c.kubectl("rollout", "status", "statefulset/db", "--timeout=120s", timeout=130)
    for p in c.get("pods", "-l", "app=db")["items"]:
        assert "env" not in p["spec"]["containers"][0]


def test_scale_down_from_the_highest_ordinal(c):
    c.kubectl("scale", "statefulset", "db", "--replicas=1")
    c.wait(lambda: sorted(p["metadata"]["name"] for p in c.get("pods", "-l", "app=db")["items"]) == ["db-0"],
           60, "only db-0 left")
    assert c.get("statefulset", "db")["status"]["replicas"] == 1


def test_invalid_statefulset_is_refused(c):
    bad = DB.split("---\n")[1].replace("serviceName: db", "serviceName: db\n  podManagementPolicy: Sometimes")
    r = c.kubectl("apply", "-f", "-", input=bad.replace("name: db}", "name: db2}", 1), check=False)
    assert r.returncode != 0
    assert 'The StatefulSet "db2" is invalid: spec.podManagementPolicy: Unsupported value: "Sometimes": ' \
           'supported values: "OrderedReady", "Parallel"' in r.stderr


def test_orphaned_pods_are_adopted_by_a_new_statefulset(c):
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in c.get("pods", "-l", "app=db")["items"]}
    c.kubectl("delete", "statefulset", "db", "--cascade=orphan")
    assert all("ownerReferences" not in p["metadata"] for p in c.get("pods", "-l", "app=db")["items"])
    c.kubectl("apply", "-f", "-", input=DB)
    c.kubectl("scale", "statefulset", "db", "--replicas=1")
    uid = c.get("statefulset", "db")["metadata"]["uid"]
    c.wait(lambda: all(p["metadata"].get("ownerReferences", [{}])[0].get("uid") == uid
                       for p in c.get("pods", "-l", "app=db")["items"]), 30, "db-0 adopted")
    assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in c.get("pods", "-l", "app=db")["items"]} == before
