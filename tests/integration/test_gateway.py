"""The Gateway API on a throwaway cluster, from the outside (the cluster's
host namespace, where the LoadBalancer address answers) and from a pod,
with real curl and agnhost netexec backends (/hostname names the pod that
answered): the upstream conformance suite's core HTTPRoute scenarios
(conformance/tests/httproute-*.go at v1.2.1) transcribed — matching across
routes by host, path and header; header, query-param and method matching
with the spec's precedence; a 90/10 weighted split over 1,000 requests;
header modifiers, redirects, rewrites and mirroring; cross-namespace
backends with and without a ReferenceGrant; HTTPS with the listener's
certificate — and the status conditions for good and bad input. One
cluster and one Gateway serve the module."""
import json
import re
import subprocess

import pytest

from dataplane import netns
from tests.integration.cluster import ThrowawayCluster
from tests.integration.manifests import (
    AGNHOST,
    deployment,
    documents,
    netexec,
    pod,
    service,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BACKENDS = ("infra-backend-v1", "infra-backend-v2", "infra-backend-v3")
ECHO = ("echo", "mirror-target")         # netexec: /header echoes the request headers, its log lists requests


def backend(name, args=("serve-hostname", "--port=8080")):
    """serve-hostname answers its pod's name on every path (as the conformance
    suite's echo server names its pod), so any path shows who answered."""
    return [deployment(name, image=AGNHOST, args=list(args), ports=[("http", 8080)],
                       readiness=("/healthz", "http")),
            service(name, selector={"app": name}, ports=[{"port": 8080, "targetPort": 8080}])]


GATEWAY = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: nsplane
  listeners:
  - {name: http, protocol: HTTP, port: 80, allowedRoutes: {namespaces: {from: All}}}
  - name: https
    protocol: HTTPS
    port: 443
    hostname: secure.example.test
    tls: {certificateRefs: [{name: secure-cert}]}
  - {name: same-only, protocol: HTTP, port: 8080, allowedRoutes: {namespaces: {from: Same}}}
"""

# conformance/tests/httproute-matching-across-routes.yaml
ACROSS_ROUTES = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: matching-part1}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [example.com, example.net]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}, {headers: [{name: version, value: one}]}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: matching-part2}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v2}}, {headers: [{name: version, value: two}]}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
"""

# conformance/tests/httproute-matching.yaml, -header-matching, -query-param-matching, -method-matching
MATCHING = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: matching}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [match.example.test]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{path: {type: Exact, value: /exact}}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /v2}, headers: [{name: version, value: two}]}]
    backendRefs: [{name: infra-backend-v3, port: 8080}]
  - matches: [{queryParams: [{name: animal, value: whale}]}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
  - matches: [{method: POST}]
    backendRefs: [{name: infra-backend-v3, port: 8080}]
  - matches: [{path: {type: RegularExpression, value: "/re/[0-9]+/.*"}}]
    backendRefs: [{name: infra-backend-v3, port: 8080}]
"""

# conformance/tests/httproute-hostname-intersection.yaml, in short: a wildcard and an exact name
HOSTNAMES = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: wildcard}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: ["*.wild.example.test"]
  rules:
  - backendRefs: [{name: infra-backend-v3, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: exact-in-wildcard}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [a.wild.example.test]
  rules:
  - backendRefs: [{name: infra-backend-v2, port: 8080}]
"""

WEIGHTS = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: weighted}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [weights.example.test]
  rules:
  - backendRefs:
    - {name: infra-backend-v1, port: 8080, weight: 90}
    - {name: infra-backend-v2, port: 8080, weight: 10}
"""

# conformance/tests/httproute-request-header-modifier.yaml, -response-header-modifier, -redirect-*, -rewrite-path,
# -request-mirror
FILTERS = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: filters}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [filters.example.test]
  rules:
  - matches: [{path: {type: PathPrefix, value: /header}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Header-Set, value: set-overwrites-values}]
        add: [{name: X-Header-Add, value: add-appends-values}]
        remove: [X-Header-Remove]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        add: [{name: X-Header-Add-Response, value: header-val-1}]
    backendRefs: [{name: echo, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /redirect}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, hostname: example.org, statusCode: 301,
                        path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
  - matches: [{path: {type: PathPrefix, value: /prefix/one}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
    backendRefs: [{name: echo, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /shell}}]
    timeouts: {request: 1s}
    backendRefs: [{name: echo, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /mirror}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /hostname}}
    - type: RequestMirror
      requestMirror: {backendRef: {name: mirror-target, port: 8080}}
    backendRefs: [{name: echo, port: 8080}]
"""

SECURE = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: secure}
spec:
  parentRefs: [{name: gw, sectionName: https}]
  rules:
  - backendRefs: [{name: infra-backend-v3, port: 8080}]
"""

# conformance/tests/httproute-reference-grant.yaml, -invalid-cross-namespace-backend-ref
CROSS_NS = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: cross-ns, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [cross.example.test]
  rules:
  - backendRefs: [{name: apps-backend, namespace: apps, port: 8080}]
"""
GRANT = """
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: allow-default-routes, namespace: apps}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
  to: [{group: "", kind: Service, name: apps-backend}]
"""

BAD = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad-regex}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [bad.example.test]
  rules:
  - matches: [{path: {type: RegularExpression, value: "/(unclosed"}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: other-namespace, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: default, sectionName: same-only}]
  rules:
  - backendRefs: [{name: apps-backend, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: missing-backend}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [missing.example.test]
  rules:
  - backendRefs: [{name: does-not-exist, port: 8080}]
"""


def gateway_address(c):
    st = json.loads(c.kubectl("get", "gateway", "gw", "-o", "json").stdout).get("status") or {}
    return next((a["value"] for a in st.get("addresses") or () if a.get("value")), None)


def tls_secret(c, tmp):
    key, crt = f"{tmp}/tls.key", f"{tmp}/tls.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=secure.example.test",
                    "-addext", "subjectAltName=DNS:secure.example.test"], check=True, capture_output=True)
    c.kubectl("create", "secret", "tls", "secure-cert", f"--cert={crt}", f"--key={key}")


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gateway")
    with ThrowawayCluster(str(tmp / "cluster"), dns=False) as tc:
        tc.kubectl("create", "namespace", "apps")
        docs = [d for b in BACKENDS for d in backend(b)] + [d for b in ECHO for d in backend(b, netexec(8080))]
        docs.append(pod("client", command=["sleep", "3600"]))
        tc.apply(documents(*docs))
        tc.kubectl("apply", "-n", "apps", "-f", "-", input=documents(*backend("apps-backend")))
        tls_secret(tc, tmp)
        tc.kubectl("apply", "-f", "-", input=GATEWAY)
        tc.kubectl("apply", "-f", "-",
                   input=documents(ACROSS_ROUTES, MATCHING, HOSTNAMES, WEIGHTS, FILTERS, SECURE, CROSS_NS, BAD))
        for b in BACKENDS + ECHO:
            tc.wait_ready(f"app={b}", 1, timeout=90)
        tc.wait(lambda: gateway_address(tc), timeout=60, what="the Gateway's address")
        tc.wait(lambda: tc.kubectl("wait", "--for=condition=Programmed", "gateway/gw", "--timeout=1s",
                                   check=False).returncode == 0, timeout=60, what="Gateway Programmed")
        ip = gateway_address(tc)
        tc.wait(lambda: who(curl(tc, ip, "/", host="example.com")[1]) == "infra-backend-v1",
                timeout=90, what="the proxy routing")
        yield tc


def who(body: str) -> str:
    """The Deployment whose pod answered /hostname (pod name minus its suffixes)."""
    return re.sub(r"-[a-z0-9]{6,10}-[a-z0-9]{5}$", "", body.strip())


def curl(c, ip, path, *, host, method="GET", headers=(), where=None, port=80, scheme="http", extra=()):
    """(status, answering Deployment or body, response headers) of one request,
    from the outside (the cluster's host namespace) or from pod `where`."""
    ns = c.pod_netns(where) if where else c.cfg.host_netns
    url = f"{scheme}://{host}:{port}{path}"
    argv = ["curl", "-sS", "-m", "5", "-X", method, "-D", "-", "--resolve", f"{host}:{port}:{ip}", url, *extra]
    for h in headers:
        argv += ["-H", h]
    r = netns.run(ns, argv, timeout=15)
    head, _, body = r.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.splitlines()
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, body, hdrs


def test_fresh_cluster_serves_the_gateway_api_kinds(c):
    assert "HTTPRoute" in c.kubectl("explain", "httproute").stdout
    gc = json.loads(c.kubectl("get", "gatewayclass", "nsplane", "-o", "json").stdout)
    assert gc["spec"]["controllerName"] == "nsplane.io/gateway-controller"
    assert {x["type"]: x["status"] for x in gc["status"]["conditions"]} == {"Accepted": "True"}


def test_gateway_status(c):
    gw = json.loads(c.kubectl("get", "gateway", "gw", "-o", "json").stdout)
    st = gw["status"]
    conds = {x["type"]: (x["status"], x["reason"]) for x in st["conditions"]}
    assert conds == {"Accepted": ("True", "Accepted"), "Programmed": ("True", "Programmed")}
    assert all(x["observedGeneration"] == gw["metadata"]["generation"] for x in st["conditions"])
    listeners = {x["name"]: x for x in st["listeners"]}
    for name in ("http", "https", "same-only"):
        lc = {x["type"]: (x["status"], x["reason"]) for x in listeners[name]["conditions"]}
        assert lc["Programmed"] == ("True", "Programmed") and lc["ResolvedRefs"] == ("True", "ResolvedRefs"), lc
        assert lc["Conflicted"] == ("False", "NoConflicts")
    assert listeners["http"]["attachedRoutes"] == 10             # attachment counts routes with bad rules too
    assert listeners["https"]["attachedRoutes"] == 1
    out = c.kubectl("get", "gateway", "gw").stdout
    assert re.search(r"gw\s+nsplane\s+" + re.escape(gateway_address(c)) + r"\s+True", out), out


def route_parent(c, name, ns="default"):
    r = json.loads(c.kubectl("get", "httproute", name, "-n", ns, "-o", "json").stdout)
    [p] = r["status"]["parents"]
    assert p["controllerName"] == "nsplane.io/gateway-controller"
    return {x["type"]: (x["status"], x["reason"]) for x in p["conditions"]}, p


# conformance/tests/httproute-matching-across-routes.go: the cases in its order
@pytest.mark.parametrize("host, path, headers, want", [
    ("example.com", "/", (), "infra-backend-v1"),
    ("example.com", "/example", (), "infra-backend-v1"),
    ("example.net", "/example", (), "infra-backend-v1"),
    ("example.com", "/example", ("version: one",), "infra-backend-v1"),
    ("example.com", "/v2", (), "infra-backend-v2"),
    ("example.net", "/v2", (), "infra-backend-v1"),             # v2 matches are limited to example.com
    ("example.com", "/v2/example", (), "infra-backend-v2"),
    ("example.com", "/", ("version: two",), "infra-backend-v2"),
])
def test_matching_across_routes(c, host, path, headers, want):
    status, body, _ = curl(c, gateway_address(c), path, host=host, headers=headers)
    assert (status, who(body)) == (200, want)


@pytest.mark.parametrize("path, method, headers, want", [
    ("/", "GET", (), "infra-backend-v1"),
    ("/exact", "GET", (), "infra-backend-v2"),                   # Exact before the longer-matching PathPrefix /
    ("/exact/more", "GET", (), "infra-backend-v1"),
    ("/v2", "GET", ("version: two",), "infra-backend-v3"),
    ("/v2/x", "GET", ("version: one",), "infra-backend-v1"),
    ("/v2", "GET", (), "infra-backend-v1"),
    ("/?animal=whale", "GET", (), "infra-backend-v2"),
    ("/?animal=dolphin", "GET", (), "infra-backend-v1"),
    ("/?color=blue&animal=whale", "GET", (), "infra-backend-v2"),
    ("/", "POST", (), "infra-backend-v3"),
    ("/exact", "POST", (), "infra-backend-v2"),                  # a path match outranks a method match
    ("/re/12/x", "GET", (), "infra-backend-v3"),
    ("/re/x/x", "GET", (), "infra-backend-v1"),
])
def test_header_query_method_matching_and_precedence(c, path, method, headers, want):
    status, body, _ = curl(c, gateway_address(c), path, host="match.example.test", method=method, headers=headers)
    assert (status, who(body)) == (200, want)


@pytest.mark.parametrize("host, want", [
    ("a.wild.example.test", (200, "infra-backend-v2")),            # the exact name wins over the wildcard
    ("b.wild.example.test", (200, "infra-backend-v3")),
    ("x.y.wild.example.test", (200, "infra-backend-v3")),          # a wildcard is a suffix match, any depth
    ("wild.example.test", (404, "")),
])
def test_wildcard_and_exact_hostnames(c, host, want):
    status, body, _ = curl(c, gateway_address(c), "/", host=host)
    assert (status, who(body) if status == 200 else "") == want


def test_weighted_split_90_10_over_1000_requests(c):
    ip = gateway_address(c)
    r = netns.run(c.cfg.host_netns, ["curl", "-s", "-m", "60", "-w", "\\n", "--resolve",
                                     f"weights.example.test:80:{ip}",
                                     "http://weights.example.test/?n=[1-1000]"], timeout=90)
    answers = [who(line) for line in r.stdout.splitlines() if line.strip()]
    assert len(answers) == 1000, r.stderr
    v1, v2 = answers.count("infra-backend-v1"), answers.count("infra-backend-v2")
    assert v1 + v2 == 1000
    assert abs(v1 / 1000 - 0.9) <= 0.05 and abs(v2 / 1000 - 0.1) <= 0.05, (v1, v2)


def test_request_and_response_header_modifiers(c):
    status, body, hdrs = curl(c, gateway_address(c), "/header", host="filters.example.test",
                              headers=("X-Header-Set: some-other-value", "X-Header-Add: some-other-value",
                                       "X-Header-Remove: gone"))
    assert status == 200
    seen = {k.lower(): v for k, v in json.loads(body).items()}
    assert seen["x-header-set"] == ["set-overwrites-values"]
    assert seen["x-header-add"] == ["some-other-value,add-appends-values"]
    assert "x-header-remove" not in seen
    assert seen["host"] == ["filters.example.test"] if "host" in seen else True
    assert hdrs["x-header-add-response"] == "header-val-1"


def test_redirect(c):
    status, _, hdrs = curl(c, gateway_address(c), "/redirect/a?q=1", host="filters.example.test")
    assert status == 301 and hdrs["location"] == "https://example.org/new/a?q=1"


def test_rewrite_prefix(c):
    # rewritten to /hostname netexec answers its name; unrewritten it would show its NOW page
    status, body, _ = curl(c, gateway_address(c), "/prefix/one/hostname", host="filters.example.test")
    assert (status, who(body)) == (200, "echo")


def test_request_timeout_is_504(c):
    # conformance/tests/httproute-timeout-request.go: a backend slower than timeouts.request gets 504
    ip = gateway_address(c)
    assert curl(c, ip, "/shell?cmd=echo%20fast", host="filters.example.test")[0] == 200
    assert curl(c, ip, "/shell?cmd=sleep%203", host="filters.example.test")[0] == 504


def test_request_mirror(c):
    pods = json.loads(c.kubectl("get", "pods", "-l", "app=mirror-target", "-o", "json").stdout)["items"]
    name = pods[0]["metadata"]["name"]

    def mirrored():
        return sum(1 for line in c.kubectl("logs", name).stdout.splitlines() if line.endswith("GET /"))
    before = mirrored()
    for _ in range(3):
        status, body, _ = curl(c, gateway_address(c), "/mirror", host="filters.example.test")
        assert (status, who(body)) == (200, "echo")
    c.wait(lambda: mirrored() >= before + 3, timeout=10, what="the mirrored requests in mirror-target's log")


def test_from_a_pod(c):
    c.wait(lambda: c.get("pod", "client")["status"].get("phase") == "Running", timeout=60, what="client pod")
    status, body, _ = curl(c, gateway_address(c), "/v2/x", host="example.com", where="client")
    assert (status, who(body)) == (200, "infra-backend-v2")


def test_https_with_the_listeners_certificate(c):
    ip = gateway_address(c)
    status, body, _ = curl(c, ip, "/", host="secure.example.test", port=443, scheme="https", extra=("-k",))
    assert (status, who(body)) == (200, "infra-backend-v3")
    r = netns.run(c.cfg.host_netns, ["openssl", "s_client", "-connect", f"{ip}:443", "-servername",
                                     "secure.example.test"], timeout=15)
    assert "CN = secure.example.test" in r.stdout or "CN=secure.example.test" in r.stdout, r.stdout[-500:]


def test_cross_namespace_backend_needs_a_reference_grant(c):
    conds, _ = route_parent(c, "cross-ns")
    assert conds["ResolvedRefs"] == ("False", "RefNotPermitted")
    assert conds["Accepted"] == ("True", "Accepted")
    ip = gateway_address(c)
    assert curl(c, ip, "/", host="cross.example.test")[0] == 500
    c.kubectl("apply", "-f", "-", input=GRANT)
    try:
        c.wait(lambda: route_parent(c, "cross-ns")[0]["ResolvedRefs"] == ("True", "ResolvedRefs"), timeout=20,
               what="ResolvedRefs after the ReferenceGrant")
        c.wait(lambda: who(curl(c, ip, "/", host="cross.example.test")[1]) == "apps-backend",
               timeout=20, what="routing to apps/apps-backend")
    finally:
        c.kubectl("delete", "-f", "-", input=GRANT)


@pytest.mark.parametrize("route, ns, want", [
    ("bad-regex", "default", ("False", "UnsupportedValue")),
    ("other-namespace", "apps", ("False", "NotAllowedByListeners")),
])
def test_bad_input_in_route_status(c, route, ns, want):
    conds, p = route_parent(c, route, ns)
    assert conds["Accepted"] == want
    assert all(x["message"] for x in p["conditions"])


def test_missing_backend_is_500_and_backend_not_found(c):
    conds, _ = route_parent(c, "missing-backend")
    assert conds == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("False", "BackendNotFound")}
    assert curl(c, gateway_address(c), "/", host="missing.example.test")[0] == 500


def test_unknown_host_is_404(c):
    assert curl(c, gateway_address(c), "/", host="nobody.example.test")[0] == 404


def test_listener_with_a_missing_certificate(c):
    gw = GATEWAY.replace("name: gw", "name: gw-bad-cert").replace("secure-cert", "no-such-secret")
    c.kubectl("apply", "-f", "-", input=gw)
    try:
        def listener():
            st = json.loads(c.kubectl("get", "gateway", "gw-bad-cert", "-o", "json").stdout).get("status") or {}
            x = {lst["name"]: lst for lst in st.get("listeners") or ()}.get("https")
            return x and {y["type"]: (y["status"], y["reason"]) for y in x["conditions"]}
        lc = c.wait(listener, timeout=30, what="the https listener's status")
        assert lc["ResolvedRefs"] == ("False", "InvalidCertificateRef")
        assert lc["Programmed"] == ("False", "Invalid")
        # nothing else breaks: the good Gateway still routes
        assert who(curl(c, gateway_address(c), "/", host="example.com")[1]) == "infra-backend-v1"
    finally:
        c.kubectl("delete", "gateway", "gw-bad-cert")
    # its proxy goes with it
    c.wait(lambda: "nsplane-gw-default-gw-bad-cert" not in c.kubectl("get", "deploy,svc", "-n", "nsplane-ingress",
                                                                     "-o", "name").stdout,
           timeout=30, what="the deleted Gateway's proxy removed")
    assert "nsplane-gw-default-gw" in c.kubectl("get", "deploy", "-n", "nsplane-ingress", "-o", "name").stdout


def test_kubectl_get_gateway_httproute(c):
    out = c.kubectl("get", "gateway,httproute").stdout
    assert "gateway.gateway.networking.k8s.io/gw" in out and "httproute.gateway.networking.k8s.io/matching" in out


def test_requested_address_and_an_unsupported_one(c):
    ip = gateway_address(c)
    wanted = ip.rsplit(".", 1)[0] + ".240"                         # in the pool (.200-.250), free
    fixed = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw-fixed}}
spec:
  gatewayClassName: nsplane
  addresses: [{{type: IPAddress, value: "{wanted}"}}]
  listeners: [{{name: http, protocol: HTTP, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw-hostname}}
spec:
  gatewayClassName: nsplane
  addresses: [{{type: Hostname, value: gw.example.test}}]
  listeners: [{{name: http, protocol: HTTP, port: 80}}]
"""
    c.kubectl("apply", "-f", "-", input=fixed)
    try:
        def status(name):
            st = json.loads(c.kubectl("get", "gateway", name, "-o", "json").stdout).get("status") or {}
            return st, {x["type"]: (x["status"], x["reason"]) for x in st.get("conditions") or ()}
        st, conds = c.wait(lambda: (s := status("gw-fixed"))[1].get("Programmed") == ("True", "Programmed") and s,
                           timeout=30, what="gw-fixed Programmed")
        assert st["addresses"] == [{"type": "IPAddress", "value": wanted}]
        _, conds = c.wait(lambda: (s := status("gw-hostname"))[1].get("Accepted", ("", ""))[1] == "UnsupportedAddress"
                          and s, timeout=30, what="gw-hostname refused")
        assert conds["Accepted"] == ("False", "UnsupportedAddress")
        assert conds["Programmed"] == ("False", "Invalid")
    finally:
        c.kubectl("delete", "gateway", "gw-fixed", "gw-hostname")


def gateway_conditions(c, name="gw"):
    st = json.loads(c.kubectl("get", "gateway", name, "-o", "json").stdout).get("status") or {}
    return {x["type"]: x for x in st.get("conditions") or ()}


def test_a_configuration_nginx_refuses_is_programmed_false_and_the_old_one_serves(c):
    # PCRE2 takes at most 65535 in a {} quantifier; Python's re (the route's validation) takes it
    route = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: pcre-limit}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [limit.example.test]
  rules:
  - matches: [{path: {type: RegularExpression, value: "/a{70000}"}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
"""
    c.kubectl("apply", "-f", "-", input=route)
    try:
        prog = c.wait(lambda: (p := gateway_conditions(c).get("Programmed")) and p["status"] == "False" and p,
                      timeout=30, what="Programmed False")
        assert prog["reason"] == "Invalid"
        assert "nginx -t refused" in prog["message"] and "number too big in {} quantifier" in prog["message"] \
            and "/etc/nsplane-proxy/nginx.conf:" in prog["message"], prog
        st = json.loads(c.kubectl("get", "gateway", "gw", "-o", "json").stdout)["status"]
        http = {x["name"]: x for x in st["listeners"]}["http"]
        assert {x["type"]: (x["status"], x["reason"]) for x in http["conditions"]}["Programmed"] == ("False", "Invalid")
        # the proxy keeps serving the previous configuration
        assert who(curl(c, gateway_address(c), "/", host="example.com")[1]) == "infra-backend-v1"
        assert curl(c, gateway_address(c), "/a", host="limit.example.test")[0] == 404
    finally:
        c.kubectl("delete", "httproute", "pcre-limit")
    c.wait(lambda: gateway_conditions(c)["Programmed"]["status"] == "True", timeout=30, what="Programmed again")


def test_routes_on_a_gateway_that_is_not_accepted_are_not_accepted(c):
    doc = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw-refused}
spec:
  gatewayClassName: nsplane
  addresses: [{type: Hostname, value: gw.example.test}]
  listeners: [{name: http, protocol: HTTP, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: on-refused}
spec:
  parentRefs: [{name: gw-refused}]
  rules:
  - backendRefs: [{name: infra-backend-v1, port: 8080}]
"""
    c.kubectl("apply", "-f", "-", input=doc)
    try:
        conds, parent = c.wait(lambda: (r := route_parent(c, "on-refused"))[0].get("Accepted", ("",))[0] == "False"
                               and r, timeout=30, what="the route's Accepted")
        assert conds["Accepted"] == ("False", "NotAllowedByListeners")
        msg = {x["type"]: x["message"] for x in parent["conditions"]}["Accepted"]
        assert "Gateway default/gw-refused is not accepted (UnsupportedAddress" in msg, msg
        assert gateway_conditions(c, "gw-refused")["Accepted"]["status"] == "False"
    finally:
        c.kubectl("delete", "httproute", "on-refused")
        c.kubectl("delete", "gateway", "gw-refused")
