"""pods/proxy, services/proxy and nodes/proxy without root: where a request
goes (agent/apiserver/proxy.py, as kube-apiserver's ResourceLocation
functions decide it), how proxy paths parse, and the API server forwarding
to a backend on loopback: method, path, query, body and end-to-end headers
through, hop-by-hop headers and the caller's Authorization not, the answer
streamed back, the Status errors kube-apiserver answers; nodes/proxy to a
kubelet over TLS with the API server's kubelet client certificate; who may
go through (ServiceAccounts read, nodes/proxy is system:masters'), and a
CertificateSigningRequest's requester taken from authentication."""
import http.client
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.api import pki
from agent.api.kinds import BY_RESOURCE
from agent.apiserver import proxy
from agent.apiserver.authn.user import UserInfo
from agent.apiserver.connect import forwarded_headers
from agent.apiserver.paths import parse_path, subresource_path
from agent.apiserver.rbac import reconcile
from agent.apiserver.registry import APIError, Registry
from agent.apiserver.serving import APIServer
from agent.apiserver.store import Store
from agent.node import kubeletserver
from tests.unit.test_kubelet_tls import _Kubelet, issue, node_csr

# ---- where requests go --------------------------------------------------------------

@pytest.mark.parametrize("ident, want", [
    ("web", ("http", "web", "")), ("web:80", ("http", "web", "80")), ("web:http", ("http", "web", "http")),
    ("https:web:443", ("https", "web", "443")), ("https:web:", ("https", "web", ""))])
def test_split_scheme_name_port(ident, want):
    assert proxy.split_scheme_name_port("service", ident) == want


@pytest.mark.parametrize("ident", ["ftp:web:80", "web:80:1:2", ":80", "web:0", "web:70000", "web:Bad_Name",
                                   "web:-http"])
def test_malformed_names_and_ports_are_400(ident):
    with pytest.raises(APIError) as e:
        proxy.split_scheme_name_port("service", ident)
    assert e.value.code == 400 and f'invalid service request "{ident}"' in e.value.message


POD = {"metadata": {"name": "web"}, "status": {"podIP": "10.244.1.5"},
       "spec": {"containers": [{"name": "a"}, {"name": "b", "ports": [{"containerPort": 8080}, {"containerPort": 9}]}]}}


def test_pod_location():
    assert proxy.pod_location(POD, "http", "") == proxy.Location("http", "10.244.1.5", 8080)   # first container port
    assert proxy.pod_location(POD, "https", "9443").netloc == "10.244.1.5:9443"
    assert proxy.pod_location(POD, "http", "http").port == 80            # a service name, as Go dials it
    with pytest.raises(APIError) as e:
        proxy.pod_location(POD, "http", "nosuchservice")
    assert e.value.code == 503 and "lookup tcp/nosuchservice: unknown port" in e.value.message
    for ip in ("", "127.0.0.1", "169.254.1.1"):
        with pytest.raises(APIError, match="address not allowed"):
            proxy.pod_location({**POD, "status": {"podIP": ip}}, "http", "80")


SVC = {"metadata": {"name": "web"}, "spec": {"ports": [{"name": "http", "port": 80}, {"name": "admin", "port": 81}]}}
EPS = {"subsets": [{"addresses": [{"ip": "10.244.0.2"}, {"ip": "10.244.1.2"}],
                    "ports": [{"name": "http", "port": 8080}, {"name": "admin", "port": 9090}]}]}


def test_service_location_by_number_and_name():
    rng = random.Random(1)
    got = {proxy.service_location(SVC, EPS, "http", "80", "web:80", rng).netloc for _ in range(20)}
    assert got == {"10.244.0.2:8080", "10.244.1.2:8080"}                 # a random ready address
    assert proxy.service_location(SVC, EPS, "http", "admin", "web:admin").port == 9090


@pytest.mark.parametrize("port, endpoints, message", [
    ("82", EPS, 'no service port 82 found for service "web"'),
    ("http", {"subsets": []}, 'no endpoints available for service "web"'),
    ("http", None, 'no endpoints available for service "web"'),
    ("", EPS, 'no endpoints available for service "web"'),               # no unnamed port
    ("nope", EPS, 'no endpoints available for service "web:nope"'),
    ("http", {"subsets": [{"notReadyAddresses": [{"ip": "10.244.0.2"}], "ports": [{"name": "http", "port": 1}]}]},
     'no endpoints available for service "web:http"')])
def test_service_location_errors_are_kubes_503s(port, endpoints, message):
    with pytest.raises(APIError) as e:
        proxy.service_location(SVC, endpoints, "http", port, f"web:{port}" if port else "web")
    assert (e.value.code, e.value.reason, e.value.message) == (503, "ServiceUnavailable", message)


def test_node_location():
    node = {"metadata": {"name": "n1"}, "status": {"addresses": [{"type": "InternalIP", "address": "172.28.0.11"}],
                                                   "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}}
    assert proxy.node_location(node, "http", "", 10250) == proxy.Location("https", "172.28.0.11", 10250, True)
    assert proxy.node_location(node, "http", "10250", 10250).kubelet
    assert proxy.node_location(node, "http", "10256", 10250) == proxy.Location("http", "172.28.0.11", 10256)


def test_proxy_paths():
    assert parse_path("/api/v1/namespaces/ns/pods/web:80/proxy/a/b/")[2:] == ("web:80", "proxy")
    assert subresource_path("/api/v1/namespaces/ns/pods/web:80/proxy/a/b/", True) == "/a/b/"
    assert subresource_path("/api/v1/namespaces/ns/services/https:web:443/proxy", True) == ""
    assert subresource_path("/api/v1/nodes/n1/proxy/pods?x", False) == "/pods?x"
    for bad in ("/api/v1/namespaces/ns/pods/web/status/extra", "/api/v1/namespaces/ns/pods/web/nosuch",
                "/api/v1/namespaces/ns/endpoints/web/proxy/x"):
        with pytest.raises(APIError) as e:
            parse_path(bad)
        assert e.value.code == 404


def test_forwarded_headers_drop_hop_by_hop_and_credentials():
    from email.message import Message
    h = Message()
    for k, v in [("Host", "127.0.0.1:8001"), ("Authorization", "Bearer secret"), ("Connection", "keep-alive, X-Drop"),
                 ("X-Drop", "1"), ("Keep-Alive", "5"), ("TE", "trailers"), ("Accept", "*/*"), ("X-Custom", "v"),
                 ("Impersonate-User", "admin"), ("X-Forwarded-For", "10.0.0.9")]:
        h[k] = v
    out = dict(forwarded_headers(h, ("172.28.0.1", 5000), "/api/v1/nodes/n1/proxy/x", "https"))
    assert out == {"Accept": "*/*", "X-Custom": "v", "X-Forwarded-For": "10.0.0.9, 172.28.0.1",
                   "X-Forwarded-Host": "127.0.0.1:8001", "X-Forwarded-Proto": "https",
                   "X-Forwarded-Uri": "/api/v1/nodes/n1/proxy/x"}


# ---- the API server forwarding, on loopback ------------------------------------------

class Backend(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _echo(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = json.dumps({"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                           "body": self.rfile.read(n).decode()}).encode()
        if self.path.startswith("/stream"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close, X-Secret")
            self.send_header("X-Secret", "hop")
            self.end_headers()
            for i in range(3):
                self.wfile.write(b"%x\r\n%s\r\n" % (2, b"c%d" % i))
                self.wfile.flush()
                time.sleep(0.2)
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Backend", "yes")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _echo


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("proxy")
    ca = pki.Paths(str(tmp / "pki"))
    pki.ensure(ca.dir, "nsplane-test", ["127.0.0.1"], "10.96.0.1", "cluster.local")
    backend = ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    backend.daemon_threads = True
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    bport = backend.server_address[1]
    crt, key = issue(ca, str(tmp), "serving", "system:node:n1", ["system:nodes"], ["DNS:n1", "IP:127.0.0.1"],
                     ["digital signature", "server auth"])
    pem = str(tmp / "kubelet.pem")
    with open(pem, "w") as f:
        f.write(open(crt).read() + open(key).read())
    stop = threading.Event()
    kport = kubeletserver.serve(_Kubelet(), "127.0.0.1", 0, kubeletserver.serving_context(pem, ca.ca_crt),
                                stop).server_address[1]
    store = Store(str(tmp / "store.db"))
    reg = Registry(store)
    reg.create(BY_RESOURCE["namespaces"], None, {"metadata": {"name": "default"}})
    for name, port in (("web", {"port": 80}), ("named", {"name": "http", "port": 8080}), ("empty", {"port": 80})):
        reg.create(BY_RESOURCE["services"], "default", {"metadata": {"name": name}, "spec": {"ports": [port]}})
    for name, port in (("web", {"port": bport}), ("named", {"name": "http", "port": bport})):
        store.create("endpoints", {"apiVersion": "v1", "kind": "Endpoints",
                                   "metadata": {"name": name, "namespace": "default"},
                                   "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [port]}]})
    store.create("endpoints", {"apiVersion": "v1", "kind": "Endpoints",
                               "metadata": {"name": "empty", "namespace": "default"}})
    store.create("nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                           "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                                      "daemonEndpoints": {"kubeletEndpoint": {"Port": kport}}}})
    api = APIServer(reg, [("127.0.0.1", 0)], None, kubelet_tls=pki.kubelet_client_context(ca.dir))
    api.start()
    yield api.servers[0].server_address[1], bport
    api.stop()
    stop.set()
    backend.shutdown()
    store.close()


def req(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


SVC_PROXY = "/api/v1/namespaces/default/services/{}/proxy"


def test_request_goes_through_and_the_answer_comes_back(cluster):
    port, _ = cluster
    code, headers, body = req(port, "POST", SVC_PROXY.format("web:80") + "/a%2Fb/c/?x=1&y=2", b'{"k": 1}',
                              {"Content-Type": "application/json", "Authorization": "Bearer secret",
                               "X-Custom": "v", "Connection": "X-Custom"})
    got = json.loads(body)
    assert code == 201 and headers["X-Backend"] == "yes"
    assert (got["method"], got["path"], got["body"]) == ("POST", "/a%2Fb/c/?x=1&y=2", '{"k": 1}')
    assert "Authorization" not in got["headers"] and "X-Custom" not in got["headers"]
    assert got["headers"]["X-Forwarded-Uri"] == "/api/v1/namespaces/default/services/web:80/proxy/a%2Fb/c/"
    for method in ("PUT", "PATCH", "DELETE", "OPTIONS"):
        assert json.loads(req(port, method, SVC_PROXY.format("named:http") + "/m")[2])["method"] == method
    code, headers, body = req(port, "HEAD", SVC_PROXY.format("named:8080") + "/h")
    assert code == 200 and body == b"" and int(headers["Content-Length"]) > 0


def test_answer_is_streamed(cluster):
    port, _ = cluster
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", SVC_PROXY.format("web") + "/stream")
    r = conn.getresponse()
    start = time.monotonic()
    first = r.read1(100)
    assert first == b"c0" and time.monotonic() - start < 0.35            # before the backend is done
    assert r.read() == b"c1c2" and "X-Secret" not in r.headers
    conn.close()


def test_empty_path_redirects_to_the_slash(cluster):
    port, _ = cluster
    code, headers, _ = req(port, "GET", SVC_PROXY.format("web") + "?q=1")
    assert code == 301 and headers["Location"] == SVC_PROXY.format("web") + "/?q=1"


@pytest.mark.parametrize("path, code, message", [
    (SVC_PROXY.format("empty") + "/", 503, 'no endpoints available for service "empty"'),
    (SVC_PROXY.format("web:81") + "/", 503, 'no service port 81 found for service "web"'),
    (SVC_PROXY.format("nosuch") + "/", 404, 'services "nosuch" not found'),
    (SVC_PROXY.format("ftp:web:80") + "/", 400, 'invalid service request "ftp:web:80"'),
    ("/api/v1/namespaces/default/pods/nosuch/proxy/", 404, 'pods "nosuch" not found'),
    ("/api/v1/nodes/nosuch/proxy/", 404, 'nodes "nosuch" not found'),
    ("/api/v1/nodes/n1:1/proxy/", 503, "error trying to reach service: dial tcp 127.0.0.1:1: connect: connection "
                                       "refused")])
def test_errors_are_status_objects(cluster, path, code, message):
    port, _ = cluster
    got, _, body = req(port, "GET", path)
    status = json.loads(body)
    assert (got, status["kind"], status["code"], status["message"]) == (code, "Status", code, message)


def test_nodes_proxy_reaches_the_kubelet_with_the_client_certificate(cluster):
    port, bport = cluster
    assert req(port, "GET", "/api/v1/nodes/n1/proxy/healthz")[::2] == (200, b"ok")
    assert json.loads(req(port, "GET", "/api/v1/nodes/n1/proxy/pods")[2])["kind"] == "PodList"
    assert json.loads(req(port, "GET", f"/api/v1/nodes/http:n1:{bport}/proxy/x")[2])["path"] == "/x"


def test_head_and_options_elsewhere_are_405(cluster):
    port, _ = cluster
    assert req(port, "OPTIONS", "/api/v1/namespaces/default/services")[0] == 405
    assert req(port, "HEAD", "/healthz")[::2] == (200, b"")


# ---- who may go through: the API server's authentication and authorization ----------

ADMIN = UserInfo("kubernetes-admin", "kubernetes-admin", ("system:masters", "system:authenticated"))
NODE = UserInfo("system:node:nsplane", "system:node:nsplane", ("system:nodes", "system:authenticated"))
SA = UserInfo("system:serviceaccount:default:default", "sa-uid",
              ("system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"))


class _Tokens:
    """Stands in for agent.apiserver.authn.Authenticator: a bearer token names the user."""
    users = {"Bearer admin": ADMIN, "Bearer node": NODE, "Bearer sa": SA}

    def authenticate(self, authorization):
        return self.users.get(authorization)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("guarded")
    store = Store(str(tmp / "store.db"))
    reg = Registry(store)
    reg.create(BY_RESOURCE["namespaces"], None, {"metadata": {"name": "default"}})
    reg.create(BY_RESOURCE["pods"], "default", {"metadata": {"name": "p"},
                                                "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    reconcile.ensure_bootstrap_policy(reg)
    reg.create(BY_RESOURCE["roles"], "default", {"metadata": {"name": "reader"}, "rules": [   # what edit reads
        {"verbs": ["get"], "apiGroups": [""], "resources": ["pods/proxy", "services/proxy", "pods/log"]}]})
    reg.create(BY_RESOURCE["rolebindings"], "default", {
        "metadata": {"name": "reader"}, "roleRef": {"kind": "Role", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}]})
    api = APIServer(reg, [("127.0.0.1", 0)], None, authenticator=_Tokens())
    api.start()
    yield api.servers[0].server_address[1], tmp
    api.stop()
    store.close()


@pytest.mark.parametrize("who, method, path, code", [
    ("sa", "GET", "/api/v1/namespaces/default/pods/p/proxy/", 400),          # through authz: the pod has no IP
    ("sa", "POST", "/api/v1/namespaces/default/pods/p/proxy/x", 403),
    ("sa", "GET", "/api/v1/namespaces/default/services/nosuch/proxy/", 404),
    ("sa", "DELETE", "/api/v1/namespaces/default/services/nosuch/proxy/", 403),
    ("sa", "GET", "/api/v1/namespaces/default/pods/p/log", 400),               # not scheduled yet
    ("sa", "POST", "/api/v1/namespaces/default/pods/p/exec?command=sh", 403),
    ("sa", "GET", "/api/v1/nodes/nosuch/proxy/healthz", 403),
    ("node", "GET", "/api/v1/nodes/nosuch/proxy/healthz", 403),
    ("admin", "GET", "/api/v1/nodes/nosuch/proxy/healthz", 404),
    ("admin", "POST", "/api/v1/namespaces/default/pods/p/proxy/x", 400),
    (None, "GET", "/api/v1/namespaces/default/pods/p/proxy/", 401),
])
def test_proxy_and_connect_are_authorized_as_kube_classifies_them(guarded, who, method, path, code):
    port, _ = guarded
    got, _, body = req(port, method, path, headers={"Authorization": f"Bearer {who}"} if who else {})
    assert got == code, body
    if code == 403:
        assert b"is forbidden: User" in body


def test_csr_requester_is_the_authenticated_user(guarded):
    port, tmp = guarded
    csr = node_csr(str(tmp))
    csr["metadata"] = {"name": "claimed"}
    csr["spec"].update(username="kubernetes-admin", groups=["system:masters"])
    got, _, body = req(port, "POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests",
                       json.dumps(csr).encode(), {"Authorization": "Bearer node", "Content-Type": "application/json"})
    spec = json.loads(body)["spec"]
    assert got == 201, body
    assert (spec["username"], spec["uid"], spec["groups"]) == ("system:node:nsplane", "system:node:nsplane",
                                                               ["system:nodes", "system:authenticated"])
    assert req(port, "POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", json.dumps(csr).encode(),
               {"Authorization": "Bearer sa", "Content-Type": "application/json"})[0] == 403
