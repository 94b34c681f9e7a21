"""Real kubectl reading a real nsplane cluster: discovery, server-side
Tables (`get`, `-o wide`, `--show-labels`, several kinds at once), field
selectors and chunked lists, and strict field validation on `apply`.

Runs the kubectl on PATH (1.32 here); set NSPLANE_OLD_KUBECTL to another
binary (e.g. Debian's 1.20) to run the version-sensitive checks with it too.
One cluster serves the module."""
import os
import re
import shutil
import subprocess

import pytest

from dataplane import netns
from tests.integration.cluster import ThrowawayCluster
from tests.integration.manifests import demo, documents

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH")]

WEB = demo("web.yaml")
WEB_SVC = demo("web-svc.yaml")
BAD_SVC = """apiVersion: v1
kind: Service
metadata:
  name: bad
spec:
  selector: {app: web}
  foo: 1
  ports:
  - port: 80
    bar: x
"""
STRICT = 'strict decoding error: unknown field "spec.foo", unknown field "spec.ports[0].bar"'


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("cluster"))) as tc:
        tc.cache = str(tmp_path_factory.mktemp("kubectl-cache"))
        kubectl(tc, "apply", "-f", "-", input=documents(WEB, WEB_SVC))
        tc.wait_ready("app=web", 3, timeout=60)
        tc.wait(lambda: len(tc.get("endpoints", "web")["subsets"][0]["addresses"]) == 3, 30, "3 endpoints")
        yield tc


def kubectl(c, *args, check=True, input=None, binary="kubectl"):
    """kubectl in the cluster's host namespace, with its own kubeconfig and a
    private discovery cache (never ~/.kube)."""
    argv = [binary, f"--cache-dir={c.cache}-{os.path.basename(binary)}", *args]
    if c.cfg.host_netns:
        argv = ["nsenter", f"--net={netns.path(c.cfg.host_netns)}", "--", *argv]
    env = dict(os.environ, KUBECONFIG=c.kubeconfig())
    r = subprocess.run(argv, capture_output=True, text=True, env=env, input=input, timeout=60, check=False)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def cols(line):
    """Split a kubectl table line on its column gaps (2+ spaces)."""
    return re.split(r"\s{2,}", line.strip())


def test_get_svc_all_namespaces(c):
    out = kubectl(c, "get", "svc", "-A").stdout.splitlines()
    assert cols(out[0]) == ["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    rows = {tuple(cols(ln)[:6]) for ln in out[1:]}
    assert ("default", "kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP") in rows
    assert ("kube-system", "kube-dns", "ClusterIP", "10.96.0.10", "<none>", "53/UDP,53/TCP,9153/TCP") in rows
    # the columns are aligned as kubectl's tabwriter does it: each header starts where its cells start
    starts = [out[0].index(h) for h in ("NAME ", "TYPE", "CLUSTER-IP", "PORT(S)")]
    for ln in out[1:]:
        assert all(ln[s - 1] == " " and ln[s] != " " for s in starts)


def test_get_svc_wide_matches_nsplane_get(c):
    out = kubectl(c, "get", "svc", "web", "-o", "wide").stdout.splitlines()
    assert cols(out[0]) == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]
    ip = c.get("svc", "web")["spec"]["clusterIP"]
    assert cols(out[1])[:5] == ["web", "ClusterIP", ip, "<none>", "80/TCP"] and cols(out[1])[6] == "app=web"
    ours = c.nsplane("get", "svc", "web", "-o", "wide").stdout.splitlines()
    assert ours[0] == out[0]


def test_get_endpoints_and_slices(c):
    pods = sorted(p["status"]["podIP"] for p in c.ready_pods("app=web"))
    out = kubectl(c, "get", "endpoints", "web").stdout.splitlines()
    assert cols(out[0]) == ["NAME", "ENDPOINTS", "AGE"]
    assert sorted(cols(out[1])[1].split(",")) == sorted(f"{ip}:80" for ip in pods)
    out = kubectl(c, "get", "endpointslices", "-l", "kubernetes.io/service-name=web").stdout.splitlines()
    assert cols(out[0]) == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    name, atype, ports, eps = cols(out[1])[:4]
    assert name.startswith("web-") and (atype, ports) == ("IPv4", "80") and sorted(eps.split(",")) == pods


def test_get_pods_show_labels_and_field_selectors(c):
    out = kubectl(c, "get", "pods", "--show-labels").stdout.splitlines()
    assert cols(out[0]) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "LABELS"]
    web = [cols(ln) for ln in out[1:] if ln.startswith("web-")]
    assert len(web) == 3
    assert all(r[1:4] == ["1/1", "Running", "0"] and re.fullmatch(r"app=web,pod-template-hash=\w+", r[5])
               for r in web)
    node = c.cfg.node_name(1)
    by_node = kubectl(c, "get", "pods", "--field-selector", f"spec.nodeName={node},status.phase=Running",
                      "-o", "name").stdout.split()
    assert len([p for p in by_node if p.startswith("pod/web-")]) == 3
    assert kubectl(c, "get", "pods", "--field-selector", "spec.nodeName=nowhere", "-o", "name").stdout == ""
    bad = kubectl(c, "get", "svc", "--field-selector", "spec.nodeName=x", check=False)
    assert bad.returncode != 0 and "field label not supported: spec.nodeName" in bad.stderr


def test_get_deploy_rs_pods_wide(c):
    out = kubectl(c, "get", "deploy,rs,pods", "-o", "wide").stdout
    blocks = [b.splitlines() for b in out.strip().split("\n\n")]
    assert cols(blocks[0][0]) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES",
                                  "SELECTOR"]
    d = cols(blocks[0][1])
    assert d[:4] == ["deployment.apps/web", "3/3", "3", "3"] and d[5:] == ["web", "nginx", "app=web"]
    assert cols(blocks[1][0]) == ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES",
                                  "SELECTOR"]
    rs = cols(blocks[1][1])
    assert rs[0].startswith("replicaset.apps/web-") and rs[1:4] == ["3", "3", "3"]
    assert cols(blocks[2][0]) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE",
                                  "READINESS GATES"]
    pods = [cols(ln) for ln in blocks[2][1:] if ln.startswith("pod/web-")]
    assert len(pods) == 3 and all(p[6] == c.cfg.node_name(1) and p[7:] == ["<none>", "<none>"] for p in pods)


def test_get_nodes_wide(c):
    out = kubectl(c, "get", "nodes", "-o", "wide").stdout.splitlines()
    assert cols(out[0]) == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE",
                            "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    row = cols(out[1])
    assert row[:3] == [c.cfg.node_name(1), "Ready", "<none>"] and row[5] == c.cfg.node_ip(1)


def test_chunked_list_and_output_formats(c):
    chunked = kubectl(c, "get", "pods", "-A", "--chunk-size=1", "-o", "name").stdout.split()
    assert chunked == kubectl(c, "get", "pods", "-A", "-o", "name").stdout.split() and len(chunked) >= 4
    names = kubectl(c, "get", "svc", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
    assert names == ["kubernetes", "web"]
    cc = kubectl(c, "get", "svc", "web", "-o", "custom-columns=NAME:.metadata.name,RV:.metadata.resourceVersion")
    assert re.fullmatch(r"NAME\s+RV\nweb\s+\d+\n", cc.stdout)
    y = kubectl(c, "get", "deploy,svc", "-o", "yaml").stdout
    assert y.startswith("apiVersion: v1\nitems:\n- apiVersion: apps/v1\n  kind: Deployment\n")
    assert "kind: List" in y and "\n  kind: Service\n" in y


def test_apply_unknown_field_is_rejected_and_creates_nothing(c):
    r = kubectl(c, "apply", "-f", "-", input=BAD_SVC, check=False)
    assert r.returncode != 0
    assert ('Error from server (BadRequest): error when creating "STDIN": Service in version "v1" cannot be '
            'handled as a Service: ' + STRICT) in r.stderr
    missing = kubectl(c, "get", "svc", "bad", check=False)
    assert missing.returncode != 0 and 'services "bad" not found' in missing.stderr
    # --validate=false (fieldValidation=Ignore) drops the unknown fields instead
    kubectl(c, "apply", "--validate=false", "-f", "-", input=BAD_SVC)
    assert "foo" not in c.get("svc", "bad")["spec"]
    kubectl(c, "delete", "svc", "bad")


def test_api_resources_and_get_all(c):
    out = kubectl(c, "api-resources").stdout
    assert re.search(r"^deployments\s+deploy\s+apps/v1\s+true\s+Deployment$", out, re.MULTILINE)
    assert re.search(r"^endpointslices\s+discovery\.k8s\.io/v1\s+true\s+EndpointSlice$", out, re.MULTILINE)
    kinds = re.findall(r"^(\S+)/", kubectl(c, "get", "all", "-o", "name").stdout, re.MULTILINE)
    assert set(kinds) == {"pod", "service", "deployment.apps", "replicaset.apps"}


@pytest.mark.skipif(not os.environ.get("NSPLANE_OLD_KUBECTL"), reason="set NSPLANE_OLD_KUBECTL to an old kubectl")
def test_old_kubectl_reads_and_validates_on_the_client(c):
    """kubectl before 1.27 validates against /openapi/v2 in protobuf on the client."""
    old = os.environ["NSPLANE_OLD_KUBECTL"]
    out = kubectl(c, "get", "svc", "-A", binary=old).stdout.splitlines()
    assert cols(out[0]) == ["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    r = kubectl(c, "apply", "-f", "-", input=BAD_SVC, check=False, binary=old)
    assert r.returncode != 0 and 'unknown field "foo" in io.k8s.api.core.v1.ServiceSpec' in r.stderr
    kubectl(c, "apply", "--dry-run=client", "-f", "-", input=WEB, binary=old)
