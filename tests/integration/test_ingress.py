"""Ingress end to end on a throwaway cluster: two agnhost netexec Deployments
behind ClusterIP Services, an Ingress with host, path and TLS rules served by
the real nginx proxy (agent/controllers/proxy) behind its LoadBalancer
address; real curl from the outside (the cluster's host namespace, the
machine's shell for `nsplane up`) and from a pod. One cluster for the module."""
import os
import subprocess
import threading
import time

import pytest

from tests.integration.cluster import ThrowawayCluster
from tests.integration.manifests import AGNHOST, deployment, documents, netexec, pod, service

pytestmark = pytest.mark.integration

APPS = documents(
    deployment("web", image=AGNHOST, args=netexec(8080), ports=[("http", 8080)], readiness=("/healthz", "http")),
    deployment("api", image=AGNHOST, args=netexec(8080), ports=[("http", 8080)], readiness=("/healthz", "http")),
    service("web", selector={"app": "web"}, ports=[{"name": "http", "port": 80, "targetPort": "http"}]),
    service("api", selector={"app": "api"}, ports=[{"port": 8081, "targetPort": 8080}]),
    pod("tmp", command=["sleep", "3600"]))


def ingress(extra_web_paths: str = "") -> str:
    """web.example.test: / -> web, /host -> api (so /hostname is web's: Prefix
    matches whole path elements), /gone -> a Service that does not exist;
    api.example.test: Exact /hostname -> api before Prefix / -> web;
    *.apps.example.test -> api; TLS for web.example.test from web-tls."""
    return f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: site
spec:
  tls:
  - hosts: [web.example.test]
    secretName: web-tls
  rules:
  - host: web.example.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{name: http}}}}}}}}
      - {{path: /host, pathType: Prefix, backend: {{service: {{name: api, port: {{number: 8081}}}}}}}}
      - {{path: /gone, pathType: Prefix, backend: {{service: {{name: nosuch, port: {{number: 80}}}}}}}}
{extra_web_paths}  - host: api.example.test
    http:
      paths:
      - {{path: /hostname, pathType: Exact, backend: {{service: {{name: api, port: {{number: 8081}}}}}}}}
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{name: http}}}}}}}}
  - host: "*.apps.example.test"
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: api, port: {{number: 8081}}}}}}}}
"""


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("cluster"))
    tc = ThrowawayCluster(tmp, nodes=1, dns=False)
    net = tc.cfg.underlay_cidr.rsplit(".", 1)[0]
    tc.cfg.lb_pool = f"{net}.200-{net}.201"
    crt, key = os.path.join(tmp, "web.crt"), os.path.join(tmp, "web.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=web.example.test",
                    "-addext", "subjectAltName=DNS:web.example.test"], check=True, capture_output=True)
    with tc:
        tc.crt = crt
        tc.kubectl("create", "secret", "tls", "web-tls", f"--cert={crt}", f"--key={key}")
        tc.apply(APPS)
        tc.kubectl("apply", "-f", "-", input=ingress())
        tc.wait_ready("app=web", 1)
        tc.wait_ready("app=api", 1)
        tc.address = tc.wait(lambda: address(tc), 30, "the Ingress's address")
        tc.wait(lambda: tc.get("pod", "tmp")["status"].get("phase") == "Running", 30, "tmp running")
        tc.wait(lambda: curl(tc, "web.example.test", "/hostname").stdout.strip() == pod_name(tc, "web"), 40,
                "the proxy routes web.example.test")
        yield tc


def address(c, name: str = "site") -> str | None:
    ing = c.get("ingress", name)
    lb = (ing.get("status") or {}).get("loadBalancer") or {}
    return (lb.get("ingress") or [{}])[0].get("ip")


def pod_name(c, app: str) -> str:
    return c.ready_pods(f"app={app}")[0]["metadata"]["name"]


def curl_argv(c, host: str, path: str, scheme: str = "https", *extra: str) -> list[str]:
    port = 443 if scheme == "https" else 80
    return ["curl", "-sS", "--max-time", "3", "--resolve", f"{host}:{port}:{c.address}", *extra,
            f"{scheme}://{host}{path}"]


def outside(c, argv: list[str], timeout: float = 15) -> subprocess.CompletedProcess:
    """A command in the cluster's host namespace: the outside world."""
    return subprocess.run(["ip", "netns", "exec", c.cfg.host_netns, *argv], capture_output=True, text=True,
                          timeout=timeout)


def curl(c, host: str, path: str, scheme: str = "https", *extra: str) -> subprocess.CompletedProcess:
    return outside(c, curl_argv(c, host, path, scheme, "-k", *extra))


# ---- the API -------------------------------------------------------------------------

def test_kubectl_get_ingress_and_the_default_class(c):
    net = c.cfg.underlay_cidr.rsplit(".", 1)[0]
    assert c.address == f"{net}.200"
    out = c.kubectl("get", "ingress").stdout.splitlines()
    assert out[0].split() == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    row = out[1].split(None, 5)
    assert row[:3] == ["site", "nsplane", "web.example.test,api.example.test,*.apps.example.test"]
    assert out[1].split()[3:6] == [c.address, "80,", "443"]
    classes = c.kubectl("get", "ingressclass").stdout.splitlines()
    assert classes[0].split() == ["NAME", "CONTROLLER", "PARAMETERS", "AGE"]
    assert classes[1].split()[:3] == ["nsplane", "nsplane.io/ingress-nginx", "<none>"]
    ic = c.get("ingressclass", "nsplane")
    assert ic["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"] == "true"


def test_kubectl_create_ingress_gets_the_default_class(c):
    c.kubectl("create", "ingress", "made", "--rule=made.test/*=web:http")     # protobuf on the wire
    try:
        ing = c.get("ingress", "made")
        assert ing["spec"]["ingressClassName"] == "nsplane"
        assert ing["spec"]["rules"][0]["http"]["paths"][0]["pathType"] == "Prefix"
        c.kubectl("create", "ingress", "other", "--class=someone-else", "--rule=other.test/*=web:http")
        assert c.get("ingress", "other")["spec"]["ingressClassName"] == "someone-else"
        c.wait(lambda: address(c, "made"), 10, "made's address")
        assert not (c.get("ingress", "other").get("status") or {}).get("loadBalancer")     # not ours
    finally:
        c.kubectl("delete", "ingress", "made", "other", "--ignore-not-found")


def test_bad_ingresses_are_refused_with_kube_apiserver_messages(c):
    bad = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bad}
spec:
  rules:
  - host: 10.0.0.1
    http:
      paths:
      - {path: /a, backend: {service: {name: web, port: {number: 80}}}}
      - {path: b, pathType: Prefix, backend: {service: {name: web, port: {name: http, number: 80}}}}
"""
    r = c.kubectl("apply", "-f", "-", input=bad, check=False)
    assert r.returncode != 0
    assert r.stderr.startswith('The Ingress "bad" is invalid: \n')             # kubectl's rendering of the causes
    assert '* spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address' in r.stderr
    assert "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified" in r.stderr
    assert 'spec.rules[0].http.paths[1].path: Invalid value: "b": must be an absolute path' in r.stderr
    assert 'spec.rules[0].http.paths[1].backend: Invalid value: "": cannot set both port name & port number' \
        in r.stderr
    assert c.kubectl("get", "ingress", "bad", check=False).returncode != 0


# ---- routing ---------------------------------------------------------------------------

def test_host_and_path_routing_from_outside(c):
    web, api = pod_name(c, "web"), pod_name(c, "api")
    assert curl(c, "web.example.test", "/hostname").stdout.strip() == web      # /host does not take /hostname
    assert curl(c, "api.example.test", "/hostname").stdout.strip() == api      # Exact before Prefix /
    assert curl(c, "x.apps.example.test", "/hostname").stdout.strip() == api   # wildcard: one label
    r = curl(c, "x.y.apps.example.test", "/hostname", "https", "-o", "/dev/null", "-w", "%{http_code}")
    assert r.stdout == "404"                                                   # ...not two
    r = curl(c, "web.example.test", "/gone/x", "https", "-o", "/dev/null", "-w", "%{http_code}")
    assert r.stdout == "503"                                                   # missing Service


def test_tls_by_sni_and_the_default_certificate(c):
    r = outside(c, curl_argv(c, "web.example.test", "/hostname", "https", "--cacert", c.crt))
    assert r.returncode == 0 and r.stdout.strip() == pod_name(c, "web"), r.stderr     # verified: its own cert
    r = curl(c, "api.example.test", "/hostname", "https", "-v")
    assert "CN=Kubernetes Ingress Controller Fake Certificate" in r.stderr
    r = curl(c, "web.example.test", "/hostname?a=1", "http", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}")
    assert r.stdout == "308 https://web.example.test/hostname?a=1"
    r = curl(c, "api.example.test", "/hostname", "http")                     # no TLS entry: plain HTTP served
    assert r.stdout.strip() == pod_name(c, "api")


def test_routing_from_a_pod(c):
    r = c.exec("tmp", *curl_argv(c, "web.example.test", "/hostname", "https", "-k", "-v"))
    assert r.returncode == 0 and r.stdout.strip() == pod_name(c, "web"), r.stderr
    assert "subject: CN=web.example.test" in r.stderr                      # its certificate, by SNI
    r = c.exec("tmp", *curl_argv(c, "api.example.test", "/hostname", "http"))
    assert r.returncode == 0 and r.stdout.strip() == pod_name(c, "api"), r.stderr


def test_events_name_the_missing_service_and_secret(c):
    def reasons():
        return {(e["reason"], e["message"]) for e in c.get("events")["items"]
                if e["involvedObject"].get("kind") == "Ingress" and e["involvedObject"]["name"] == "site"}
    assert ("Sync", "Scheduled for sync") in reasons()
    assert ("ServiceNotFound", 'Error obtaining Service "default/nosuch": no object matching key "default/nosuch" '
            "in local store") in reasons()
    doc = ingress().replace("secretName: web-tls", "secretName: web-tls-gone")
    c.kubectl("apply", "-f", "-", input=doc)
    c.wait(lambda: ("SecretNotFound", 'Error getting SSL certificate "default/web-tls-gone": local SSL certificate '
                    "default/web-tls-gone was not found. Using default certificate") in reasons(), 10,
           "the SecretNotFound event")
    c.wait(lambda: "Fake Certificate" in curl(c, "web.example.test", "/hostname", "https", "-v").stderr, 10,
           "the default certificate for web.example.test")
    c.kubectl("apply", "-f", "-", input=ingress())
    c.wait(lambda: outside(c, curl_argv(c, "web.example.test", "/hostname", "https", "--cacert", c.crt))
           .returncode == 0, 10, "web-tls served again")


# ---- changes -----------------------------------------------------------------------------

NEW_HOST = """  - host: new.example.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: api, port: {number: 8081}}}}
"""


def with_new_host() -> str:
    return ingress() + NEW_HOST


def test_a_change_is_routed_within_about_a_second(c):
    api = pod_name(c, "api")
    assert curl(c, "new.example.test", "/hostname", "https", "-o", "/dev/null", "-w", "%{http_code}").stdout == "404"
    c.kubectl("apply", "-f", "-", input=with_new_host())
    start = time.monotonic()
    c.wait(lambda: curl(c, "new.example.test", "/hostname").stdout.strip() == api, 10, "new.example.test routed")
    print(f"\nIngress change -> routed by the proxy in {time.monotonic() - start:.2f}s")
    c.kubectl("apply", "-f", "-", input=ingress())
    c.wait(lambda: curl(c, "new.example.test", "/hostname", "https", "-o", "/dev/null", "-w",
                        "%{http_code}").stdout == "404", 10, "new.example.test gone")


@pytest.mark.slow
def test_no_failed_request_across_configuration_changes_under_load(c):
    """Requests without pause (new connections, and keep-alive ones: 10 per
    curl) while the Ingress changes 4 times: every one answered by web."""
    web, stop, results = pod_name(c, "web"), threading.Event(), []
    url_args = curl_argv(c, "web.example.test", "/hostname", "https", "-k")
    keepalive = [*url_args[:-1], *([url_args[-1], "-w", "\n"] * 10)]

    def load():
        deadline = time.monotonic() + 40
        for i in range(400):                       # bounded in count and in time
            if stop.is_set() or time.monotonic() > deadline:
                return
            r = outside(c, keepalive if i % 2 else url_args)
            answers = r.stdout.split()
            results.extend(answers if r.returncode == 0 else answers + [f"curl exit {r.returncode}: {r.stderr}"])
            if r.returncode == 0 and len(answers) != (10 if i % 2 else 1):
                results.append(f"short answer: {r.stdout!r}")
    before = reloads(c)
    t = threading.Thread(target=load)
    t.start()
    try:
        for doc in (with_new_host(), ingress(), with_new_host(), ingress()):
            time.sleep(1.0)
            c.kubectl("apply", "-f", "-", input=doc)
        time.sleep(1.5)
    finally:
        stop.set()
        t.join(60)
    during = reloads(c) - before
    bad = [x for x in results if x != web]
    print(f"\n{len(results)} requests across {during} reloads, {len(bad)} failed")
    assert len(results) > 50 and not bad, bad[:5]
    assert during >= 4


def reloads(c) -> int:
    """How many times the proxy pod's supervisor has reloaded nginx."""
    return c.kubectl("logs", "-n", "nsplane-ingress", "deploy/nsplane-ingress-nginx").stdout.count(
        "configuration changed, reloading nginx")
