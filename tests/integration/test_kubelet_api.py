"""The kubelet's port answers only the API server, on a real 2-node cluster.

Each node's kubelet serves HTTPS with a certificate it got through a
CertificateSigningRequest (`kubectl get csr`: kubelet-serving, Approved,
Issued) for its name and InternalIP. From a pod (through `nsplane exec`),
curl and a WebSocket upgrade to another node's kubelet get 401
`Unauthorized`; a client certificate of the cluster CA for another user
gets 403 `Forbidden (user=..., ...)`; the API server's kubelet client
certificate is served. kubectl logs / exec / run -i (WebSocket, and SPDY
with an old kubectl) and `nsplane logs` keep working through the API
server. What else a pod reaches without credentials is what Kubernetes
leaves open: the API server's health and version, kube-proxy's healthz.
"""
import json
import os
import shutil
import subprocess

import pytest

from agent.api import certificates
from tests.integration.cluster import REPO, ThrowawayCluster
from tests.integration.manifests import AGNHOST, documents, netexec, pod

OLD_KUBECTL = os.environ.get("NSPLANE_OLD_KUBECTL", "/tmp/nsr/k120/usr/bin/kubectl")
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed on this machine")]

PODS = documents(pod("client", command=["sleep", "3600"], node_name="node-1"),
                 pod("target", image=AGNHOST, args=netexec(8080), readiness=("/healthz", 8080), node_name="node-2",
                     labels={"app": "target"}))


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("kubelet")), nodes=2, dns=False) as tc:
        tc.apply(PODS)
        tc.wait_ready("app=target", 1, timeout=60)
        tc.wait(lambda: tc.get("pod", "client")["status"].get("phase") == "Running", 30, "client running")
        yield tc


def host(c, *argv, timeout=20):
    """A command in the cluster's host namespace (where the API server runs)."""
    return subprocess.run(["ip", "netns", "exec", c.cfg.host_netns, *argv], capture_output=True, text=True,
                          timeout=timeout)


def kubelet_url(c, node: int, path: str) -> str:
    return f"https://{c.cfg.node_ip(node)}:{c.cfg.kubelet_port}{path}"


def from_pod(c, *curl_args):
    r = c.exec("client", "curl", "-sk", "--max-time", "5", "-w", " %{http_code}", *curl_args)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def jane(c, tmp_path_factory):
    """A client certificate the cluster CA issued to user jane (group developers)."""
    d = tmp_path_factory.mktemp("jane")
    key, crt = str(d / "jane.key"), str(d / "jane.crt")
    certificates.new_key(key)
    pki = c.cfg.pki_dir
    pem = certificates.sign(certificates.new_request(key, "jane", ["developers"], []), os.path.join(pki, "ca.crt"),
                            os.path.join(pki, "ca.key"), [], ["digital signature", "client auth"])
    with open(crt, "w") as f:
        f.write(pem)
    return crt, key


def test_every_kubelet_serves_a_certificate_from_its_csr(c):
    csrs = json.loads(c.kubectl("get", "csr", "-o", "json").stdout)["items"]
    assert len(csrs) == 2
    for csr in csrs:
        assert csr["spec"]["signerName"] == "kubernetes.io/kubelet-serving"
        assert certificates.condition(csr, "Approved") and csr["status"]["certificate"]
    table = c.kubectl("get", "csr").stdout.splitlines()
    assert table[0].split() == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"]
    assert all(line.split()[-1] == "Approved,Issued" for line in table[1:])
    for node in (1, 2):      # curl checks the kubelet's certificate against the CA and its InternalIP
        r = host(c, "curl", "-sS", "--cacert", c.cfg.ca_file, "-o", "/dev/null", "-w", "%{http_code}",
                 kubelet_url(c, node, "/healthz"))
        assert r.stdout == "401", r.stderr


def test_a_pod_gets_401_from_the_kubelet(c):
    for node in (1, 2):
        assert from_pod(c, kubelet_url(c, node, "/containerLogs/default/target")) == "Unauthorized 401"
        assert from_pod(c, kubelet_url(c, node, "/pods")) == "Unauthorized 401"
    ws = ["-H", "Connection: Upgrade", "-H", "Upgrade: websocket", "-H", "Sec-WebSocket-Version: 13",
          "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "-H", "Sec-WebSocket-Protocol: v5.channel.k8s.io"]
    url = kubelet_url(c, 2, "/exec/default/target/target?command=id&stdout=1")
    assert from_pod(c, *ws, url) == "Unauthorized 401"
    assert from_pod(c, "-X", "POST", url) == "Unauthorized 401"
    plain = from_pod(c, f"http://{c.cfg.node_ip(2)}:{c.cfg.kubelet_port}/pods")
    assert plain == "Client sent an HTTP request to an HTTPS server.\n 400"


def test_another_identity_gets_403(c, jane):
    crt, key = jane
    r = host(c, "curl", "-sS", "--cacert", c.cfg.ca_file, "--cert", crt, "--key", key, "-w", " %{http_code}",
             kubelet_url(c, 2, "/containerLogs/default/target"))
    assert r.stdout == "Forbidden (user=jane, verb=get, resource=nodes, subresource(s)=[proxy])\n 403", r.stderr


def test_the_api_servers_client_certificate_is_served(c):
    pki = c.cfg.pki_dir
    r = host(c, "curl", "-sS", "--cacert", c.cfg.ca_file, "--cert", os.path.join(pki, "apiserver-kubelet-client.crt"),
             "--key", os.path.join(pki, "apiserver-kubelet-client.key"), kubelet_url(c, 2, "/pods"))
    assert [p["metadata"]["name"] for p in json.loads(r.stdout)["items"]] == ["target"], r.stderr


def test_kubectl_logs_exec_and_run_i_still_work(c):
    assert "Started HTTP server on port 8080" in c.kubectl("logs", "target").stdout
    assert c.kubectl("exec", "target", "--", "hostname").stdout == "target\n"
    assert c.kubectl("exec", "-i", "target", "--", "cat", input="through stdin\n").stdout == "through stdin\n"
    r = c.kubectl("run", "tmp", "--rm", "-i", "--image=busybox", "--restart=Never", "--overrides",
                  '{"spec": {"nodeName": "node-2"}}', "--", "sh", input="echo hi-from-$(hostname)\n", timeout=90)
    assert "hi-from-tmp" in r.stdout
    assert "Started HTTP server on port 8080" in c.nsplane("logs", "target").stdout


@pytest.mark.skipif(not os.access(OLD_KUBECTL, os.X_OK), reason=f"no old (SPDY-only) kubectl at {OLD_KUBECTL}")
def test_old_kubectl_exec_over_spdy(c):
    argv = ["nsenter", f"--net=/run/netns/{c.cfg.host_netns}", "--", OLD_KUBECTL, "exec", "-i", "target", "--",
            "sh", "-c", "hostname; cat"]
    r = subprocess.run(argv, input="spdy\n", capture_output=True, text=True, timeout=60, cwd=REPO,
                       env=dict(os.environ, KUBECONFIG=c.kubeconfig()))
    assert (r.returncode, r.stdout) == (0, "target\nspdy\n"), r.stderr


def test_what_a_pod_reaches_without_credentials(c):
    api = "https://10.96.0.1"
    for path in ("/healthz", "/livez", "/readyz", "/version"):
        assert from_pod(c, api + path).endswith(" 200"), path
    for path in ("/api", "/apis", "/api/v1/pods", "/openapi/v2", "/api/v1/nodes/node-2/proxy/pods"):
        assert from_pod(c, api + path).endswith(" 401"), path
    assert from_pod(c, f"http://{c.cfg.node_ip(2)}:10256/healthz").endswith(" 200")   # kube-proxy's, public
    for node in (1, 2):      # nothing else listens on the node: the kubelet and kube-proxy's healthz, and
        r = subprocess.run(["ip", "netns", "exec", c.node_netns(node), "ss", "-Hltn"], capture_output=True,
                           text=True, timeout=10)           # kube-proxy's metrics on loopback only
        listening = {tuple(line.split()[3].rsplit(":", 1)) for line in r.stdout.splitlines()}
        assert {port for _, port in listening} == {str(c.cfg.kubelet_port), "10256", "10249"}, r.stdout
        assert {addr for addr, port in listening if port == "10249"} == {"127.0.0.1"}, r.stdout
