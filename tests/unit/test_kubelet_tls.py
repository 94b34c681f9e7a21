"""The kubelet's port on HTTPS, without root: certificates issued and read
with openssl (agent/api/certificates.py, agent/api/pki.py), the kubelet's
authenticator and authorizer (agent/node/kubeletauth.py), its TLS server
on loopback answering 401, 403 and 200 as a kubelet does, the
CertificateSigningRequest strategy, and the approving and signing
controllers that turn a node's request into its serving certificate."""
import base64
import http.client
import os
import socket
import ssl
import threading
import time

import pytest

from agent.api import certificates, pki
from agent.api.kinds import BY_RESOURCE
from agent.apiserver import csrstrategy
from agent.apiserver.authn.user import UserInfo
from agent.apiserver.registry import APIError, Registry
from agent.apiserver.store import Store
from agent.controllers.certificates import (
    CSRApprovingController,
    CSRSigningController,
    kubelet_serving_problem,
    requester_problem,
)
from agent.node import certificates as node_certs
from agent.node import kubeletauth, kubeletserver

CSRS = BY_RESOURCE["certificatesigningrequests"]


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    """A cluster's pki dir as `nsplane up` makes it."""
    d = str(tmp_path_factory.mktemp("pki"))
    pki.ensure(d, "nsplane-test", ["127.0.0.1"], "10.96.0.1", "cluster.local")
    return pki.Paths(d)


def issue(ca, tmp, name, cn, orgs, sans, usages):
    key = os.path.join(tmp, f"{name}.key")
    certificates.new_key(key)
    pem = certificates.sign(certificates.new_request(key, cn, orgs, sans), ca.ca_crt, ca.ca_key, sans, usages)
    crt = os.path.join(tmp, f"{name}.crt")
    with open(crt, "w") as f:
        f.write(pem)
    return crt, key


# ---- certificates -------------------------------------------------------------

def test_request_says_what_it_asks_for(tmp_path):
    key = str(tmp_path / "k")
    certificates.new_key(key)
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    req = certificates.new_request(key, "system:node:node-1", ["system:nodes"],
                                   certificates.node_sans("node-1", ["172.28.0.11"]))
    s = certificates.read_request(req)
    assert (s.common_name, s.organizations) == ("system:node:node-1", ("system:nodes",))
    assert (s.dns_names, s.ip_addresses) == (("node-1",), ("172.28.0.11",))
    with pytest.raises(certificates.CertificateError):
        certificates.read_request("not a request")
    with pytest.raises(certificates.CertificateError):
        certificates.new_request(key, "a/b", [], [])       # no subject injection


def test_kubelet_client_certificate_is_kubeadms(ca):
    cert = certificates.read_certificate(ca.kubelet_client_crt, ca.ca_crt)
    assert cert.issued_by_ca and cert.subject.common_name == "kube-apiserver-kubelet-client"
    assert cert.subject.organizations == ("system:masters",)
    before = os.stat(ca.kubelet_client_crt).st_mtime_ns
    pki.ensure_kubelet_client_cert(ca)                     # kept while it is good
    assert os.stat(ca.kubelet_client_crt).st_mtime_ns == before
    assert isinstance(pki.kubelet_client_context(ca.dir), ssl.SSLContext)


def test_signed_certificate_and_its_issuer(ca, tmp_path):
    crt, _ = issue(ca, str(tmp_path), "n1", "system:node:node-1", ["system:nodes"],
                   ["DNS:node-1", "IP:127.0.0.1"], ["digital signature", "server auth"])
    cert = certificates.read_certificate(crt, ca.ca_crt)
    assert cert.issued_by_ca and cert.subject.ip_addresses == ("127.0.0.1",)
    assert 360 * 86400 < cert.not_after - time.time() < 366 * 86400
    other = tmp_path / "other"
    other.mkdir()
    pki.ensure_ca(pki.Paths(str(other)), "nsplane-other")
    assert not certificates.read_certificate(crt, str(other / "ca.crt")).issued_by_ca


def test_node_keeps_a_certificate_only_while_it_fits(ca, tmp_path):
    crt, key = issue(ca, str(tmp_path), "n1", "system:node:node-1", ["system:nodes"],
                     ["DNS:node-1", "IP:172.28.0.11"], ["digital signature", "server auth"])
    assert node_certs.still_good(crt, ca.ca_crt, "node-1", ["172.28.0.11"])
    assert not node_certs.still_good(crt, ca.ca_crt, "node-1", ["172.28.0.12"])     # the node's IP changed
    assert not node_certs.still_good(crt, ca.ca_crt, "node-2", ["172.28.0.11"])
    assert not node_certs.still_good(crt, ca.ca_crt, "node-1", ["172.28.0.11"], now=time.time() + 340 * 86400)
    assert not node_certs.still_good(str(tmp_path / "missing"), ca.ca_crt, "node-1", ["172.28.0.11"])


# ---- the kubelet's authenticator and authorizer ----------------------------------

def peer(cn, *orgs):
    return {"subject": ((("commonName", cn),), *((("organizationName", o),) for o in orgs))}


def test_authentication_and_authorization_decisions():
    assert kubeletauth.decide(None, "GET", "/containerLogs/default/web") == (401, "Unauthorized")
    assert kubeletauth.decide(peer("kube-apiserver-kubelet-client", "system:masters"), "GET", "/pods") is None
    assert kubeletauth.decide(peer("admin", "system:masters"), "POST", "/exec/a/b/c") is None
    assert kubeletauth.decide(peer("jane", "developers"), "GET", "/containerLogs/default/web") == (
        403, "Forbidden (user=jane, verb=get, resource=nodes, subresource(s)=[proxy])\n")
    assert kubeletauth.decide(peer("system:node:node-2", "system:nodes"), "POST", "/exec/default/web/web") == (
        403, "Forbidden (user=system:node:node-2, verb=create, resource=nodes, subresource(s)=[proxy])\n")


@pytest.mark.parametrize("method, path, want", [
    ("GET", "/stats/summary", ("get", "stats")), ("GET", "/stats", ("get", "stats")),
    ("GET", "/statsfoo", ("get", "proxy")), ("GET", "/metrics/cadvisor", ("get", "metrics")),
    ("GET", "/logs/syslog", ("get", "log")), ("PUT", "/pods", ("update", "proxy")),
    ("DELETE", "/x", ("delete", "proxy")), ("PATCH", "/x", ("patch", "proxy"))])
def test_request_attributes(method, path, want):
    assert kubeletauth.attributes(method, path) == want


# ---- the kubelet's port on loopback ------------------------------------------------

class _Pod:
    key = ("default", "web")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"}}


class _Kubelet:
    pods = {"uid-1": _Pod()}


@pytest.fixture(scope="module")
def kubelet(ca, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("kubelet"))
    crt, key = issue(ca, tmp, "serving", "system:node:node-1", ["system:nodes"], ["DNS:node-1", "IP:127.0.0.1"],
                     ["digital signature", "server auth"])
    pem = os.path.join(tmp, "kubelet-server-current.pem")
    with open(pem, "w") as f:
        f.write(open(crt).read() + open(key).read())
    stop = threading.Event()
    srv = kubeletserver.serve(_Kubelet(), "127.0.0.1", 0, kubeletserver.serving_context(pem, ca.ca_crt), stop)
    jane = issue(ca, tmp, "jane", "jane", ["developers"], [], ["digital signature", "client auth"])
    yield srv.server_address[1], jane
    stop.set()


def call(port, ctx, path, method="GET"):
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def client_ctx(ca, cert=None):
    ctx = ssl.create_default_context(cafile=ca.ca_crt)
    if cert:
        ctx.load_cert_chain(*cert)
    return ctx


def test_kubelet_without_a_client_certificate_is_401(ca, kubelet):
    port, _ = kubelet
    for path in ("/containerLogs/default/web", "/exec/default/web/web?command=id", "/pods", "/healthz"):
        assert call(port, client_ctx(ca), path) == (401, "Unauthorized")


def test_kubelet_with_another_identity_is_403(ca, kubelet):
    port, jane = kubelet
    assert call(port, client_ctx(ca, jane), "/pods") == (
        403, "Forbidden (user=jane, verb=get, resource=nodes, subresource(s)=[proxy])\n")
    assert call(port, client_ctx(ca, jane), "/exec/default/web/web", "POST")[0] == 403


def test_kubelet_serves_the_api_server(ca, kubelet):
    port, _ = kubelet
    ctx = pki.kubelet_client_context(ca.dir)           # verifies the kubelet's certificate, presents ours
    assert call(port, ctx, "/healthz") == (200, "ok")
    code, body = call(port, ctx, "/pods")
    assert code == 200 and '"kind": "PodList"' in body and '"name": "web"' in body
    assert call(port, ctx, "/containerLogs/default/nope")[0] == 404
    assert call(port, ctx, "/pods", "POST") == (405, "405: Method Not Allowed")


def test_kubelet_refuses_foreign_certificates_and_plain_http(ca, kubelet, tmp_path):
    port, _ = kubelet
    other = pki.Paths(str(tmp_path))
    pki.ensure_ca(other, "nsplane-other")
    mallory = issue(other, str(tmp_path), "m", "kube-apiserver-kubelet-client", ["system:masters"], [],
                    ["digital signature", "client auth"])
    with pytest.raises((ssl.SSLError, ConnectionError)):
        call(port, client_ctx(ca, mallory), "/pods")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /pods HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(200).startswith(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS")


# ---- CertificateSigningRequests: strategy, approval, signing -----------------------

def node_csr(tmp, node="node-1", ip="172.28.0.11", orgs=("system:nodes",), usages=("digital signature", "server auth"),
             requester=None):
    key = os.path.join(tmp, "csr.key")
    certificates.new_key(key)
    req = certificates.new_request(key, f"system:node:{node}", list(orgs), certificates.node_sans(node, [ip]))
    obj = certificates.csr_object(req, certificates.KUBELET_SERVING, list(usages))
    who = requester or f"system:node:{node}"
    csrstrategy.stamp_requester(obj, UserInfo(who, who, ("system:nodes",)))
    return obj


NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "172.28.0.11"},
                                 {"type": "Hostname", "address": "node-1"}]}}


def test_approval_policy(tmp_path):
    tmp = str(tmp_path)
    assert kubelet_serving_problem(node_csr(tmp), NODE) is None
    assert "not names or addresses of node node-1" in kubelet_serving_problem(node_csr(tmp, ip="10.0.0.1"), NODE)
    assert "does not exist" in kubelet_serving_problem(node_csr(tmp), None)
    assert "subject must be" in kubelet_serving_problem(node_csr(tmp, orgs=("system:masters",)), NODE)
    assert "usages" in kubelet_serving_problem(node_csr(tmp, usages=("client auth",)), NODE)


def test_a_node_asks_only_for_itself(tmp_path):
    tmp = str(tmp_path)
    assert requester_problem(node_csr(tmp), "system:node:node-1") is None
    assert requester_problem(node_csr(tmp, requester="system:node:node-2"), "system:node:node-1") == (
        "system:node:node-2 may only request a serving certificate for itself, not for system:node:node-1")
    assert requester_problem(node_csr(tmp, requester=pki.JOIN_USER), "system:node:node-1") is None


def test_requester_comes_from_authentication_not_the_body(tmp_path):
    obj = node_csr(str(tmp_path))
    obj["spec"]["username"], obj["status"] = "kube-apiserver-kubelet-client", {"certificate": "eA=="}
    obj["spec"]["extra"] = {"claimed": ["x"]}
    csrstrategy.stamp_requester(obj, UserInfo("jane", "jane-uid", ("developers",)))
    assert obj["spec"]["username"] == "jane" and obj["spec"]["groups"] == ["developers", "system:authenticated"]
    assert obj["spec"]["uid"] == "jane-uid" and "extra" not in obj["spec"]
    assert "status" not in obj


def test_conditions_and_certificate_only_through_their_subresources(tmp_path):
    old = {"metadata": {"name": "c"}, "spec": {"signerName": "x/y"}, "status": {}}
    approved = csrstrategy.merge_update(old, {"status": {"conditions": [{"type": "Approved"}]}}, "approval")
    assert approved["status"]["conditions"][0]["status"] == "True"
    assert approved["status"]["conditions"][0]["lastTransitionTime"]
    same = csrstrategy.merge_update(approved, {"spec": {"signerName": "a/b"}, "status": {}}, None)
    assert same["spec"] == old["spec"] and same["status"] == approved["status"]
    signed = csrstrategy.merge_update(approved, {"status": {"certificate": "eA==", "conditions": []}}, "status")
    assert signed["status"]["certificate"] == "eA==" and signed["status"]["conditions"][0]["type"] == "Approved"
    kept = csrstrategy.merge_update(approved, {"status": {"conditions": []}}, "approval")
    assert kept["status"]["conditions"][0]["type"] == "Approved"       # once approved, stays approved
    assert csrstrategy.merge_update(old, {"status": {"certificate": "eA=="}}, "approval").get("status") == {}


def test_controllers_approve_and_sign_a_nodes_request(ca, tmp_path):
    store = Store(str(tmp_path / "store.db"))
    reg = Registry(store)
    reg.create(BY_RESOURCE["nodes"], None, NODE)
    stop = threading.Event()
    CSRApprovingController(store, reg).start(stop)
    CSRSigningController(store, reg, ca.ca_crt, ca.ca_key).start(stop)
    try:
        good = reg.create(CSRS, None, node_csr(str(tmp_path)))["metadata"]["name"]
        bad = reg.create(CSRS, None, node_csr(str(tmp_path), ip="10.9.9.9"))["metadata"]["name"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (store.get(CSRS.resource, "", good).get("status", {})
                                                   .get("certificate")):
            time.sleep(0.05)
        csr = store.get(CSRS.resource, "", good)
        pem = base64.b64decode(csr["status"]["certificate"]).decode()
        (tmp_path / "issued.crt").write_text(pem)
        cert = certificates.read_certificate(str(tmp_path / "issued.crt"), ca.ca_crt)
        assert cert.issued_by_ca and cert.subject.ip_addresses == ("172.28.0.11",)
        assert certificates.condition(csr, "Approved")["reason"] == "AutoApproved"
        denied = store.get(CSRS.resource, "", bad)
        assert "10.9.9.9" in certificates.condition(denied, "Denied")["message"]
        assert not denied.get("status", {}).get("certificate")
    finally:
        stop.set()
        store.close()


def test_validation_refuses_what_is_not_a_request(tmp_path):
    store = Store(str(tmp_path / "store.db"))
    reg = Registry(store)
    try:
        obj = node_csr(str(tmp_path))
        obj["spec"]["request"] = base64.b64encode(b"garbage").decode()
        with pytest.raises(APIError) as e:
            reg.create(CSRS, None, obj)
        assert e.value.code == 422 and "spec.request" in e.value.message
        obj = node_csr(str(tmp_path))
        obj["spec"]["signerName"] = "kubelet-serving"
        with pytest.raises(APIError) as e:
            reg.create(CSRS, None, obj)
        assert "example.com/signer-name" in e.value.message
    finally:
        store.close()


def test_decided_requests_are_cleaned_up_after_an_hour(ca, tmp_path):
    store = Store(str(tmp_path / "store.db"))
    reg = Registry(store)
    signer = CSRSigningController(store, reg, ca.ca_crt, ca.ca_key)
    try:
        for name, when in (("old", "2020-01-01T00:00:00Z"), ("recent", None)):
            obj = node_csr(str(tmp_path))
            obj["metadata"] = {"name": name}
            reg.create(CSRS, None, obj)
            cond = {"type": "Denied", "status": "True", "reason": "Test", "message": "no"}
            if when:
                cond["lastUpdateTime"] = when
            reg.guaranteed_update(CSRS, None, name, lambda cur, c=cond: {**cur, "status": {"conditions": [c]}},
                                  subresource="approval")
        assert signer.sync(("", "old")) is None
        with pytest.raises(APIError):
            reg.get(CSRS, None, "old")
        assert 3500 < signer.sync(("", "recent")) <= 3601
    finally:
        store.close()
