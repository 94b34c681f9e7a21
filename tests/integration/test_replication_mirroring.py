"""ReplicationControllers and hand-written Endpoints on a real cluster, with
the real kubectl: an RC's two agnhost pods behind a Service answer over its
ClusterIP; `kubectl get rc` / `describe rc` / `scale rc` read and change it;
its pods go with it. A Service without a selector plus an Endpoints object
gets a mirrored EndpointSlice (managed-by the mirroring controller) that the
proxier routes; a Service that selects no pods has one placeholder slice
with no endpoints and no ports."""
import json
import re
import shutil

import pytest

from tests.integration.cluster import ThrowawayCluster
from tests.integration.manifests import AGNHOST, documents, netexec, service

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed on this machine")]

RC = """apiVersion: v1
kind: ReplicationController
metadata:
  name: echo
spec:
  replicas: 2
  template:
    metadata:
      labels: {app: echo}
    spec:
      containers:
      - name: echo
        image: %s
        args: %s
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 1
""" % (AGNHOST, json.dumps(netexec(8080)))
ECHO_SVC = service("echo", selector={"app": "echo"}, ports=[{"name": "http", "port": 80, "targetPort": "http"}])


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("rc")), dns=False) as tc:
        tc.kubectl("apply", "-f", "-", input=documents(RC, ECHO_SVC))
        tc.nsplane("run", "tmp", "--image=curlimages/curl", "--", "sleep", "3600")
        tc.wait_ready("app=echo", 2, timeout=60)
        tc.wait_ready("run=tmp", 1)
        yield tc


def jget(c, *args) -> dict:
    return json.loads(c.kubectl("get", *args, "-o", "json").stdout)


def hostnames(c, url: str, tries: int = 30) -> set[str]:
    seen = set()
    for _ in range(tries):
        r = c.exec("tmp", "curl", "-sS", "--max-time", "2", url)
        if r.returncode == 0:
            seen.add(r.stdout.strip())
    return seen


def echo_pod_names(c) -> set[str]:
    return {p["metadata"]["name"] for p in c.ready_pods("app=echo")}


def test_rc_pods_are_owned_and_answer_over_the_cluster_ip(c):
    rc = jget(c, "rc", "echo")
    assert rc["spec"]["selector"] == {"app": "echo"} and rc["metadata"]["labels"] == {"app": "echo"}
    pods = c.ready_pods("app=echo")
    for p in pods:
        ref = p["metadata"]["ownerReferences"][0]
        assert (ref["apiVersion"], ref["kind"], ref["name"], ref["uid"], ref["controller"]) == \
            ("v1", "ReplicationController", "echo", rc["metadata"]["uid"], True)
        assert re.fullmatch(r"echo-[bcdfghjklmnpqrstvwxz2456789]{5}", p["metadata"]["name"])
    ip = jget(c, "svc", "echo")["spec"]["clusterIP"]
    c.wait(lambda: c.exec("tmp", "curl", "-sS", "--max-time", "2", f"http://{ip}/hostname").returncode == 0,
           15, "echo answers")
    assert hostnames(c, f"http://{ip}/hostname") == echo_pod_names(c)


def test_kubectl_get_rc_columns_and_status(c):
    c.wait(lambda: jget(c, "rc", "echo")["status"].get("readyReplicas") == 2, 20, "2 ready")
    lines = c.kubectl("get", "rc").stdout.splitlines()
    assert lines[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert lines[1].split()[:4] == ["echo", "2", "2", "2"]
    wide = c.kubectl("get", "rc", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide[1].split()[5:] == ["echo", AGNHOST, "app=echo"]
    st = jget(c, "rc", "echo")["status"]
    assert {k: st[k] for k in ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas",
                               "observedGeneration")} == {"replicas": 2, "fullyLabeledReplicas": 2,
                                                          "readyReplicas": 2, "availableReplicas": 2,
                                                          "observedGeneration": 1}
    assert "replicationcontroller/echo" in c.kubectl("get", "all").stdout


def test_kubectl_scale_rc_up_and_down(c):
    ip = jget(c, "svc", "echo")["spec"]["clusterIP"]
    assert c.kubectl("scale", "rc", "echo", "--replicas=3").stdout.strip() == "replicationcontroller/echo scaled"
    c.wait_ready("app=echo", 3, timeout=60)
    c.wait(lambda: c.kubectl("get", "rc", "echo", "--no-headers").stdout.split()[1:4] == ["3", "3", "3"], 20,
           "rc shows 3/3/3")
    assert jget(c, "rc", "echo")["metadata"]["generation"] == 2
    c.wait(lambda: hostnames(c, f"http://{ip}/hostname", 20) == echo_pod_names(c), 30, "3 pods answer")
    c.kubectl("scale", "rc", "echo", "--replicas=2")
    c.wait(lambda: len(c.ready_pods("app=echo")) == 2, 40, "back to 2 pods")
    events = jget(c, "events", "--field-selector", "involvedObject.kind=ReplicationController")["items"]
    reasons = [(e["reason"], e["source"]["component"]) for e in events]
    assert ("SuccessfulCreate", "replication-controller") in reasons
    assert ("SuccessfulDelete", "replication-controller") in reasons


def test_kubectl_describe_rc(c):
    out = c.kubectl("describe", "rc", "echo").stdout
    assert re.search(r"^Selector:\s+app=echo$", out, re.M)
    assert re.search(r"^Replicas:\s+2 current / 2 desired$", out, re.M)
    assert re.search(r"^Pods Status:\s+2 Running / 0 Waiting / 0 Succeeded / 0 Failed$", out, re.M)
    assert re.search(r"Normal\s+SuccessfulCreate\s+.*replication-controller\s+Created pod: echo-", out)


def test_invalid_rc_is_refused_with_kube_message(c):
    bad = RC.replace("name: echo\nspec:", "name: bad\nspec:\n  selector: {app: other}", 1)
    r = c.kubectl("apply", "-f", "-", input=bad, check=False)
    assert r.returncode != 0
    assert ('ReplicationController "bad" is invalid: spec.template.metadata.labels: Invalid value: '
            'map[string]string{"app":"echo"}: `selector` does not match template `labels`') in r.stderr
    assert c.kubectl("get", "rc", "bad", check=False).returncode != 0


def test_deleted_rc_takes_its_pods(c):
    c.kubectl("apply", "-f", "-", input=RC.replace("name: echo", "name: gone", 1)
              .replace("app: echo", "app: gone").replace("replicas: 2", "replicas: 1"))
    c.wait(lambda: len(jget(c, "pods", "-l", "app=gone")["items"]) == 1, 20, "gone's pod")
    c.kubectl("delete", "rc", "gone")
    c.wait(lambda: not jget(c, "pods", "-l", "app=gone")["items"], 60, "gone's pods deleted")


# ---- EndpointSliceMirroring ------------------------------------------------------------

def test_selectorless_service_endpoints_are_mirrored_and_routed(c):
    pods = sorted(c.ready_pods("app=echo"), key=lambda p: p["metadata"]["name"])
    addresses = "".join(f"  - ip: {p['status']['podIP']}\n" for p in pods)
    endpoints = ("apiVersion: v1\nkind: Endpoints\nmetadata:\n  name: manual\n  labels: {team: a}\n"
                 f"subsets:\n- addresses:\n{addresses}  ports:\n  - name: http\n    port: 8080\n")
    c.kubectl("apply", "-f", "-", input=documents(
        service("manual", ports=[{"name": "http", "port": 80, "targetPort": 8080}]), endpoints))
    sel = "kubernetes.io/service-name=manual"
    slices = c.wait(lambda: jget(c, "endpointslices", "-l", sel)["items"], 15, "a mirrored slice")
    assert len(slices) == 1
    sl = slices[0]
    ep = jget(c, "endpoints", "manual")
    assert sl["metadata"]["labels"] == {"team": "a", "kubernetes.io/service-name": "manual",
                                        "endpointslice.kubernetes.io/managed-by":
                                            "endpointslicemirroring-controller.k8s.io"}
    assert "kubectl.kubernetes.io/last-applied-configuration" not in (sl["metadata"].get("annotations") or {})
    assert sl["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Endpoints", "name": "manual",
                                                  "uid": ep["metadata"]["uid"], "controller": True,
                                                  "blockOwnerDeletion": True}]
    assert sl["addressType"] == "IPv4" and sl["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert sorted(e["addresses"][0] for e in sl["endpoints"]) == sorted(p["status"]["podIP"] for p in pods)
    assert all(e["conditions"] == {"ready": True} for e in sl["endpoints"])
    ip = jget(c, "svc", "manual")["spec"]["clusterIP"]
    c.wait(lambda: c.exec("tmp", "curl", "-sS", "--max-time", "2", f"http://{ip}/hostname").returncode == 0,
           15, "manual answers")
    assert hostnames(c, f"http://{ip}/hostname") == {p["metadata"]["name"] for p in pods}
    # The Service gains a selector: the mirrored slice goes, the controller's own takes over.
    c.kubectl("patch", "svc", "manual", "-p", '{"spec": {"selector": {"app": "echo"}}}')
    c.wait(lambda: [s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"]
                    for s in jget(c, "endpointslices", "-l", sel)["items"]] == ["endpointslice-controller.k8s.io"],
           15, "only the controller's slice")
    c.kubectl("delete", "svc", "manual")


def test_service_selecting_nothing_has_a_placeholder_slice_without_ports(c):
    c.kubectl("apply", "-f", "-", input=service("nobody", selector={"app": "nobody"}, ports=[{"port": 80}]))
    sel = "kubernetes.io/service-name=nobody"
    slices = c.wait(lambda: jget(c, "endpointslices", "-l", sel)["items"], 15, "a placeholder slice")
    assert len(slices) == 1
    sl = slices[0]
    assert sl["addressType"] == "IPv4" and sl["ports"] is None and sl["endpoints"] is None
    assert sl["metadata"]["labels"] == {"kubernetes.io/service-name": "nobody",
                                        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    assert sl["metadata"]["generateName"] == "nobody-"
    row = c.kubectl("get", "endpointslices", "-l", sel, "--no-headers").stdout.split()
    assert row[1:4] == ["IPv4", "<unset>", "<unset>"]
