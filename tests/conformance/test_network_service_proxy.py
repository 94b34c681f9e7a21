"""Ports of test/e2e/network/proxy.go's [Conformance] specs ([sig-network]
Proxy version v1): requests through the API server's services/proxy and
pods/proxy subresources to agnhost `porter`. Same objects, checks and
timeouts as upstream. Where upstream uses a raw http.Client with the
cluster's credentials (any method, redirects not followed), this uses curl
with the kubeconfig's CA and token, run where kubectl runs.

The specs skip, naming what is missing, while the API server does not
serve those subresources (its discovery lists neither)."""
import base64
import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from tests.conformance.framework import AGNHOST, POD_START_TIMEOUT, POLL, poll

pytestmark = pytest.mark.integration

BASE_NAME = "proxy"
PREFIX = "/api/v1"
PROXY_ATTEMPTS = 20                  # proxyAttempts
PROXY_HTTP_CALL_TIMEOUT = 30.0       # proxyHTTPCallTimeout
REQUEST_RETRY_PERIOD = 0.01          # requestRetryPeriod
REQUEST_RETRY_TIMEOUT = 60.0         # requestRetryTimeout


def require_proxy_subresources(f) -> None:
    resources = {r["name"] for r in f.raw(PREFIX)["resources"]}
    missing = [r for r in ("pods/proxy", "services/proxy") if r not in resources]
    if missing:
        pytest.skip(f"needs the API server's {' and '.join(missing)} subresources: /api/v1 discovery does not "
                    "list them (they are not on main yet)")


class RawClient:
    """http.Client{Transport: the cluster's, CheckRedirect: ErrUseLastResponse}:
    curl with the kubeconfig's server, CA and bearer token, never following
    redirects, run in the namespace kubectl runs in."""

    def __init__(self, f, tmp: str):
        from dataplane import netns
        with open(f.cluster.kubeconfig()) as fh:
            cfg = yaml.safe_load(fh)
        cluster, user = cfg["clusters"][0]["cluster"], cfg["users"][0]["user"]
        self.host = cluster["server"].rstrip("/")
        self.ca = os.path.join(tmp, "ca.crt")
        with open(self.ca, "wb") as fh:
            fh.write(base64.b64decode(cluster["certificate-authority-data"]))
        self.auth = ["-H", f"Authorization: Bearer {user['token']}"] if user.get("token") else []
        if user.get("client-certificate-data"):
            cert, key = os.path.join(tmp, "client.crt"), os.path.join(tmp, "client.key")
            for path, field in ((cert, "client-certificate-data"), (key, "client-key-data")):
                with open(path, "wb") as fh:
                    fh.write(base64.b64decode(user[field]))
            self.auth += ["--cert", cert, "--key", key]
        ns = f.cluster.cfg.host_netns
        self.wrap = ["nsenter", f"--net={netns.path(ns)}", "--"] if ns else []

    def do(self, method: str, path: str, timeout: float = PROXY_HTTP_CALL_TIMEOUT) -> tuple[int, str]:
        """(status code, body); status 0 when no answer came."""
        argv = [*self.wrap, "curl", "-s", "--cacert", self.ca, *self.auth, "-m", str(int(timeout)),
                "-o", "-", "-w", "\n%{http_code}"]
        argv += ["-I"] if method == "HEAD" else ["-X", method]
        r = subprocess.run([*argv, self.host + path], capture_output=True, text=True, timeout=timeout + 10,
                           check=False)
        body, _, code = r.stdout.rpartition("\n")
        return (int(code) if code.isdigit() else 0), body


def _agnhost_porter_pod(label: dict, msg: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "agnhost", "labels": dict(label)},
            "spec": {"containers": [{"image": AGNHOST, "name": "agnhost",
                                     "command": ["/agnhost", "porter", "--json-response"],
                                     "env": [{"name": "SERVE_PORT_80", "value": msg}]}],
                     "restartPolicy": "Never"}}


def _service(name: str, labels: dict, selector: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": dict(labels)},
            "spec": {"ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}], "selector": dict(selector)}}


def _wait_running(f, name: str) -> None:
    """e2epod.WaitForPodRunningInNamespace (PodStartTimeout)."""
    poll(POLL, POD_START_TIMEOUT, lambda: (f.get("pod", name).get("status") or {}).get("phase") == "Running",
         what=f"pod {f.ns}/{name} to be running")


def validate_proxy_verb_request(client: RawClient, path: str, verb: str, msg: str):
    """validateProxyVerbRequest: 200, and (but for HEAD) porter's JSON with
    the message and the method it received."""
    def check() -> bool:
        status, body = client.do(verb, path)
        if verb == "HEAD":
            return status == 200
        try:
            jr = json.loads(body)
        except ValueError:
            return False
        return status == 200 and jr.get("Body") == msg and jr.get("Method") == verb
    return check


def validate_redirect_request(client: RawClient, verb: str, path: str) -> None:
    status, _ = client.do(verb, path)
    assert status == 301, f"The resp.StatusCode returned: {status}"


def test_a_set_of_valid_responses_are_returned_for_both_pod_and_service_proxywithpath(framework, tmp_path):
    """[sig-network] Proxy version v1 A set of valid responses are returned for
    both pod and service ProxyWithPath [Conformance]"""
    f = framework
    require_proxy_subresources(f)
    ns, msg, test_svc_name = f.ns, "foo", "test-service"
    f.create(_agnhost_porter_pod({"test": "response"}, msg))
    _wait_running(f, "agnhost")
    f.create(_service(test_svc_name, {"test": "response"}, {"test": "response"}))
    client = RawClient(f, str(tmp_path))

    # All methods for Pod ProxyWithPath return 200; but for HEAD the body is
    # 'foo' with the received method.
    # (Upstream checks the poll's outcome with the wrong error variable, so a
    # failed poll never fails it; the port checks the poll.)
    verbs = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]
    for kind, name in (("pods", "agnhost"), ("services", test_svc_name)):
        for verb in verbs:
            path = f"{PREFIX}/namespaces/{ns}/{kind}/{name}/proxy/some/path/with/{verb}"
            poll(REQUEST_RETRY_PERIOD, REQUEST_RETRY_TIMEOUT, validate_proxy_verb_request(client, path, verb, msg),
                 what=f"{verb} {path} to answer 200 with {msg!r}")


def test_a_set_of_valid_responses_are_returned_for_both_pod_and_service_proxy(framework, tmp_path):
    """[sig-network] Proxy version v1 A set of valid responses are returned for
    both pod and service Proxy [Conformance]"""
    f = framework
    require_proxy_subresources(f)
    ns, msg, test_svc_name = f.ns, "foo", "e2e-proxy-test-service"
    labels = {"e2e-test": "proxy-endpoints"}
    f.create(_agnhost_porter_pod(labels, msg))
    _wait_running(f, "agnhost")
    f.create(_service(test_svc_name, labels, labels))
    client = RawClient(f, str(tmp_path))

    verbs = ["DELETE", "OPTIONS", "PATCH", "POST", "PUT"]
    for kind, name, what in (("pods", "agnhost", "Pod"), ("services", test_svc_name, "Service")):
        for verb in verbs:
            path = f"{PREFIX}/namespaces/{ns}/{kind}/{name}/proxy?method={verb}"
            try:
                poll(REQUEST_RETRY_PERIOD, REQUEST_RETRY_TIMEOUT, validate_proxy_verb_request(client, path, verb, msg))
            except AssertionError:
                raise AssertionError(f"{what} didn't start within time out period ({verb} {path})") from None

    # Test that each method returns 301 for both pod and service endpoints
    for verb in ("GET", "HEAD"):
        validate_redirect_request(client, verb, f"{PREFIX}/namespaces/{ns}/pods/agnhost/proxy?method={verb}")
        validate_redirect_request(client, verb, f"{PREFIX}/namespaces/{ns}/services/{test_svc_name}/proxy"
                                                f"?method={verb}")


def _join_scheme_name_port(scheme: str, name: str, port: str) -> str:
    """net.JoinSchemeNamePort."""
    if scheme:
        return f"{scheme}:{name}:{port}"
    return f"{name}:{port}" if port else name


def test_should_proxy_through_a_service_and_a_pod(framework, tmp_path):
    """[sig-network] Proxy version v1 should proxy through a service and a pod [Conformance]"""
    f = framework
    require_proxy_subresources(f)
    start = time.monotonic()
    labels = {"proxy-service-target": "true"}
    service = f.create({"apiVersion": "v1", "kind": "Service", "metadata": {"generateName": "proxy-service-"},
                        "spec": {"selector": dict(labels), "ports": [
                            {"name": "portname1", "port": 80, "targetPort": "dest1"},
                            {"name": "portname2", "port": 81, "targetPort": 162},
                            {"name": "tlsportname1", "port": 443, "targetPort": "tlsdest1"},
                            {"name": "tlsportname2", "port": 444, "targetPort": 462}]}})
    name = service["metadata"]["name"]

    # By("starting an echo server on multiple ports")   e2edeployment.NewDeployment, Recreate
    env = {"SERVE_PORT_80": '<a href="/rewriteme">test</a>', "SERVE_PORT_1080": '<a href="/rewriteme">test</a>',
           "SERVE_PORT_160": "foo", "SERVE_PORT_162": "bar", "SERVE_TLS_PORT_443": '<a href="/tlsrewriteme">test</a>',
           "SERVE_TLS_PORT_460": "tls baz", "SERVE_TLS_PORT_462": "tls qux"}
    container = {"name": name, "image": AGNHOST, "command": ["/agnhost", "porter"],
                 "env": [{"name": k, "value": v} for k, v in env.items()],
                 "ports": [{"containerPort": 80}, {"name": "dest1", "containerPort": 160},
                           {"name": "dest2", "containerPort": 162}, {"name": "tlsdest1", "containerPort": 460},
                           {"name": "tlsdest2", "containerPort": 462}],
                 "readinessProbe": {"httpGet": {"port": 80}, "initialDelaySeconds": 1, "timeoutSeconds": 5,
                                    "periodSeconds": 10},
                 "securityContext": {}}
    f.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": dict(labels)},
              "spec": {"replicas": 1, "selector": {"matchLabels": dict(labels)}, "strategy": {"type": "Recreate"},
                       "template": {"metadata": {"labels": dict(labels)},
                                    "spec": {"containers": [container], "terminationGracePeriodSeconds": 0}}}})
    try:
        f.kubectl("rollout", "status", f"deployment/{name}", "--timeout=300s", timeout=320)
        pods = [p for p in f.list("pods", "proxy-service-target=true") if not p["metadata"].get("deletionTimestamp")]
        pod = pods[0]["metadata"]["name"]

        def endpoint_ready() -> bool:       # waitForEndpoint: a minute, every framework.Poll
            r = f.kubectl("get", "endpoints", name, "-o", "json", check=False)
            subsets = json.loads(r.stdout).get("subsets") if r.returncode == 0 else None
            return bool(subsets and subsets[0].get("addresses"))
        poll(POLL, 60, endpoint_ready, what=f"endpoints for {f.ns}/{name}")

        def svc_url(scheme, port):
            return f"{PREFIX}/namespaces/{f.ns}/services/{_join_scheme_name_port(scheme, name, port)}/proxy"

        def pod_url(scheme, port):
            return f"{PREFIX}/namespaces/{f.ns}/pods/{_join_scheme_name_port(scheme, pod, port)}/proxy"
        expectations = {
            svc_url("", "portname1") + "/": "foo",
            svc_url("http", "portname1") + "/": "foo",
            svc_url("", "portname2") + "/": "bar",
            svc_url("http", "portname2") + "/": "bar",
            svc_url("https", "tlsportname1") + "/": "tls baz",
            svc_url("https", "tlsportname2") + "/": "tls qux",
            pod_url("", "") + "/": f'<a href="{pod_url("", "")}/rewriteme">test</a>',
            pod_url("", "1080") + "/": f'<a href="{pod_url("", "1080")}/rewriteme">test</a>',
            pod_url("http", "1080") + "/": f'<a href="{pod_url("http", "1080")}/rewriteme">test</a>',
            pod_url("", "160") + "/": "foo",
            pod_url("http", "160") + "/": "foo",
            pod_url("", "162") + "/": "bar",
            pod_url("http", "162") + "/": "bar",
            pod_url("https", "443") + "/": f'<a href="{pod_url("https", "443")}/tlsrewriteme">test</a>',
            pod_url("https", "460") + "/": "tls baz",
            pod_url("https", "462") + "/": "tls qux",
        }
        client = RawClient(f, str(tmp_path))
        errs: list[str] = []
        print(f"setup took {time.monotonic() - start:.1f}s, starting test cases")

        def case(i, path, val):
            t0 = time.monotonic()
            status, body = client.do("GET", path)       # RESTClient().Get().AbsPath(path)
            d = time.monotonic() - t0
            if status == 0:
                errs.append(f"{i}: path {path} gave error: no answer")
                return
            if status != 200:
                errs.append(f"{i}: path {path} gave status: {status} ({body[:200]})")
            elif body != val:
                errs.append(f"{i}: path {path}: wanted {val}, got {body}")
            if d > PROXY_HTTP_CALL_TIMEOUT:
                errs.append(f"{i}: path {path} took {d:.1f}s > {PROXY_HTTP_CALL_TIMEOUT:g}s")
        with ThreadPoolExecutor(max_workers=len(expectations)) as pool:
            for i in range(PROXY_ATTEMPTS):
                list(pool.map(lambda kv, i=i: case(i, *kv), expectations.items()))
        assert not errs, "\n".join(errs[:40])
    finally:
        f.kubectl("delete", "deployment", name, "--wait=false", check=False)
