"""The API server's proxy subresources on a real 2-node cluster, with real
kubectl: `kubectl get --raw .../pods/<pod>:8080/proxy/hostname`,
services/proxy by port number and by port name (an agnhost netexec
Deployment behind two Services), nodes/proxy to each kubelet's /healthz
and /pods, 503 for a Service without endpoints, and `kubectl proxy` (run in
the background for at most a minute, stopped by its PID) with curl through
it. The API server runs in the cluster's host namespace, which routes every
node's pod CIDR to that node: checked first, since every pods/ and
services/proxy request rides on it."""
import ipaddress
import json
import re
import shutil
import subprocess
import time

import pytest

from tests.integration.cluster import REPO, ThrowawayCluster
from tests.integration.manifests import AGNHOST, deployment, documents, netexec, service

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed on this machine")]

WORKLOADS = documents(
    deployment("echo", image=AGNHOST, replicas=2, args=netexec(8080), ports=[("http", 8080)],
               readiness=("/healthz", "http")),
    service("echo", selector={"app": "echo"}, ports=[{"name": "http", "port": 80, "targetPort": "http"}]),
    service("web", selector={"app": "echo"}, ports=[{"port": 8000, "targetPort": 8080}]),
    service("empty", selector={"app": "nothing"}, ports=[{"port": 80}]))


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("proxy")), nodes=2, dns=False) as tc:
        tc.apply(WORKLOADS)
        yield tc


@pytest.fixture(scope="module")
def pods(c):
    """{pod name: node name} of the two echo pods, once ready (one per node)."""
    ready = c.wait_ready("app=echo", 2, timeout=60)
    return {p["metadata"]["name"]: p["spec"]["nodeName"] for p in ready}


def raw(c, path, check=True):
    return c.kubectl("get", "--raw", path, check=check)


def host(c, *argv, timeout=20):
    return subprocess.run(["ip", "netns", "exec", c.cfg.host_netns, *argv], capture_output=True, text=True,
                          timeout=timeout)


def test_the_api_servers_namespace_routes_every_pod_cidr(c, pods):
    routes = host(c, "ip", "-4", "route").stdout
    for node in c.get("nodes")["items"]:
        cidr = node["spec"]["podCIDR"]
        ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
        assert re.search(rf"^{re.escape(cidr)} via {re.escape(ip)} ", routes, re.M), routes
    assert set(pods.values()) == {"node-1", "node-2"}       # so the next tests reach both nodes' pods


def test_pods_proxy_reaches_pods_on_every_node(c, pods):
    for name in pods:
        assert raw(c, f"/api/v1/namespaces/default/pods/{name}:8080/proxy/hostname").stdout == name
        assert raw(c, f"/api/v1/namespaces/default/pods/{name}/proxy/hostname").stdout == name  # first port
        assert raw(c, f"/api/v1/namespaces/default/pods/http:{name}:8080/proxy/echo?msg=hi").stdout == "hi"


def test_services_proxy_by_port_number_and_by_port_name(c, pods):
    for ident in ("web:8000", "echo:http", "echo:80", "http:echo:http"):
        seen = {raw(c, f"/api/v1/namespaces/default/services/{ident}/proxy/hostname").stdout for _ in range(8)}
        assert seen <= set(pods) and seen, ident


def test_services_proxy_errors(c, pods):
    r = raw(c, "/api/v1/namespaces/default/services/empty/proxy/", check=False)
    assert 'Error from server (ServiceUnavailable): no endpoints available for service "empty"' in r.stderr
    r = raw(c, "/api/v1/namespaces/default/services/echo:81/proxy/", check=False)
    assert 'no service port 81 found for service "echo"' in r.stderr
    r = raw(c, "/api/v1/namespaces/default/services/ftp:echo:80/proxy/", check=False)
    assert 'Error from server (BadRequest): invalid service request "ftp:echo:80"' in r.stderr
    r = raw(c, "/api/v1/namespaces/default/pods/nosuch/proxy/", check=False)
    assert 'Error from server (NotFound): pods "nosuch" not found' in r.stderr
    r = raw(c, "/api/v1/namespaces/default/pods/echo/nosuch", check=False)
    assert "NotFound" in r.stderr


def test_nodes_proxy_reaches_each_kubelet(c, pods):
    for node in ("node-1", "node-2"):
        assert raw(c, f"/api/v1/nodes/{node}/proxy/healthz").stdout == "ok"
        listed = json.loads(raw(c, f"/api/v1/nodes/{node}:{c.cfg.kubelet_port}/proxy/pods").stdout)
        assert [p["metadata"]["name"] for p in listed["items"]] == [n for n, on in pods.items() if on == node]
    assert raw(c, "/api/v1/nodes/node-2:10256/proxy/healthz").stdout.startswith("{")    # kube-proxy's, plain http


def test_discovery_lists_the_proxy_subresources(c):
    names = {r["name"] for r in json.loads(raw(c, "/api/v1").stdout)["resources"]}
    assert {"pods/proxy", "services/proxy", "nodes/proxy"} <= names


@pytest.fixture
def kubectl_proxy(c):
    """`kubectl proxy` on a free port in the host namespace, for at most a
    minute; stopped by its PID. Yields its base URL."""
    argv = ["ip", "netns", "exec", c.cfg.host_netns, "timeout", "60", "kubectl", "--kubeconfig", c.kubeconfig(),
            "proxy", "--port=0"]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    try:
        line = p.stdout.readline()
        m = re.search(r"Starting to serve on 127\.0\.0\.1:(\d+)", line)
        assert m, line
        yield f"http://127.0.0.1:{m.group(1)}"
    finally:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


def test_kubectl_proxy_and_curl(c, pods, kubectl_proxy):
    base = kubectl_proxy + "/api/v1/namespaces/default/services"
    deadline = time.monotonic() + 10
    while (r := host(c, "curl", "-sS", f"{base}/echo:http/proxy/hostname")).returncode and time.monotonic() < deadline:
        time.sleep(0.2)
    assert r.stdout in pods, r.stderr
    r = host(c, "curl", "-sS", "-X", "POST", "--data", "payload", f"{base}/web:8000/proxy/echo?msg=posted")
    assert r.stdout == "posted"
    r = host(c, "curl", "-sS", "-H", "X-Probe: 42", f"{base}/web:8000/proxy/header?key=X-Probe")
    assert r.stdout == "42"
    r = host(c, "curl", "-sS", f"{base}/web:8000/proxy/clientip")     # the API server's address, as seen by the pod
    assert ipaddress.ip_address(r.stdout.rsplit(":", 1)[0]) == ipaddress.ip_address(c.cfg.host_ip)
    r = host(c, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", f"{base}/empty/proxy/")
    assert r.stdout == "503"
