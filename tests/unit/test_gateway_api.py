"""The Gateway API controller's pure core: hostname intersection, match
precedence, listener judgement, route attachment and status reasons
(agent/controllers/gateway/)."""
import pytest

from agent.controllers.gateway import hostnames as hn
from agent.controllers.gateway import plan, precedence
from agent.controllers.gateway.conditions import CONTROLLER_NAME, stamp

# ---- hostnames ------------------------------------------------------------------


@pytest.mark.parametrize("pattern, host, ok", [
    ("*.example.com", "a.example.com", True),
    ("*.example.com", "a.b.example.com", True),          # a suffix match: any depth
    ("*.example.com", "example.com", False),
    ("*.example.com", "a.example.net", False),
    ("*.example.com", "*.a.example.com", True),
    ("*.example.com", "*.example.com", False),           # equality is intersect's job
    ("a.example.com", "A.Example.com", True),
])
def test_wildcard_matches(pattern, host, ok):
    assert hn.wildcard_matches(pattern, host) is ok


@pytest.mark.parametrize("listener, route, want", [
    (None, "web.example.com", "web.example.com"),
    ("web.example.com", "web.example.com", "web.example.com"),
    ("web.example.com", "*.example.com", "web.example.com"),
    ("*.example.com", "web.example.com", "web.example.com"),
    ("*.example.com", "*.example.com", "*.example.com"),
    ("*.example.com", "*.foo.example.com", "*.foo.example.com"),
    ("*.foo.example.com", "*.example.com", "*.foo.example.com"),
    ("web.example.com", "api.example.com", None),
    ("*.example.com", "example.com", None),
    ("*.example.com", "test.example.net", None),
])
def test_intersect(listener, route, want):
    assert hn.intersect(listener, route) == want


def test_route_hostnames():
    # the spec's example: listener *.example.com, route test.example.com and test.example.net
    assert hn.route_hostnames("*.example.com", ["test.example.com", "test.example.net"]) == ["test.example.com"]
    assert hn.route_hostnames("*.example.com", None) == ["*.example.com"]
    assert hn.route_hostnames(None, None) == [hn.ANY]
    assert hn.route_hostnames("a.example.com", ["b.example.com"]) == []


def test_hostname_specificity():
    hosts = ["*.example.com", "", "a.example.com", "*.a.example.com", "ab.example.com"]
    assert sorted(hosts, key=hn.specificity) == ["ab.example.com", "a.example.com", "*.a.example.com",
                                                 "*.example.com", ""]


# ---- precedence -------------------------------------------------------------------

def ref(match, name="r", created="2026-01-01T00:00:00Z", rule=0, index=0, ns="default"):
    return precedence.MatchRef(ns, name, created, rule, index, precedence.default_match(match))


def test_precedence_as_the_spec_lists():
    exact = ref({"path": {"type": "Exact", "value": "/a"}}, rule=9)
    long_prefix = ref({"path": {"type": "PathPrefix", "value": "/a/b/"}}, rule=8)
    prefix = ref({"path": {"type": "PathPrefix", "value": "/a"}}, rule=7)
    method = ref({"path": {"type": "PathPrefix", "value": "/a"}, "method": "POST"}, rule=6)
    two_headers = ref({"path": {"type": "PathPrefix", "value": "/a"},
                       "headers": [{"name": "x", "value": "1"}, {"name": "y", "value": "2"}]}, rule=5)
    one_header = ref({"path": {"type": "PathPrefix", "value": "/a"}, "headers": [{"name": "x", "value": "1"}]},
                     rule=4)
    query = ref({"path": {"type": "PathPrefix", "value": "/a"}, "queryParams": [{"name": "q", "value": "1"}]},
                rule=3)
    regex = ref({"path": {"type": "RegularExpression", "value": "/a/.*"}}, rule=1)
    root = ref({}, rule=0)
    got = precedence.ordered([root, regex, query, one_header, two_headers, method, prefix, long_prefix, exact])
    assert got == [exact, regex, long_prefix, method, two_headers, one_header, query, prefix, root]


def test_precedence_ties_oldest_route_then_name_then_list_order():
    m = {"path": {"type": "PathPrefix", "value": "/"}}
    old = ref(m, name="zz", created="2026-01-01T00:00:00Z")
    new_a = ref(m, name="aa", created="2026-01-02T00:00:00Z")
    new_b = ref(m, name="bb", created="2026-01-02T00:00:00Z")
    first, second = ref(m, name="bb", created="2026-01-02T00:00:00Z", rule=1), \
        ref(m, name="bb", created="2026-01-02T00:00:00Z", rule=2)
    assert precedence.ordered([second, first, new_b, new_a, old]) == [old, new_a, new_b, first, second]


def test_trailing_slash_does_not_count():
    assert precedence.prefix_length("/foo/") == precedence.prefix_length("/foo") == 4


# ---- listeners, attachment and status -----------------------------------------------

G = "gateway.networking.k8s.io"


def obj(kind, name, ns="default", spec=None, **extra):
    md = {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"}
    if ns:
        md["namespace"] = ns
    return {"kind": kind, "metadata": {**md, **extra.pop("metadata", {})}, "spec": spec or {}, **extra}


CLASSES = [obj("GatewayClass", "nsplane", ns=None, spec={"controllerName": CONTROLLER_NAME}),
           obj("GatewayClass", "other", ns=None, spec={"controllerName": "example.com/other"})]
TLS = obj("Secret", "tls", type="kubernetes.io/tls", data={"tls.crt": "x", "tls.key": "y"})
SVC = obj("Service", "web", spec={"clusterIP": "10.96.0.20", "ports": [{"port": 80}]})
NAMESPACES = [obj("Namespace", n, ns=None, metadata={"labels": {"team": t}})
              for n, t in (("default", "a"), ("apps", "b"))]


def gateway(listeners, name="gw", cls="nsplane"):
    return obj("Gateway", name, spec={"gatewayClassName": cls, "listeners": listeners})


def route(name="r", ns="default", parents=({"name": "gw"},), hostnames=None, rules=None):
    spec = {"parentRefs": list(parents), "rules": rules if rules is not None else
            [{"backendRefs": [{"name": "web", "port": 80}]}]}
    if hostnames:
        spec["hostnames"] = hostnames
    return obj("HTTPRoute", name, ns=ns, spec=spec)


def build(gateways, routes=(), secrets=(TLS,), services=(SVC,), grants=(), address="172.28.0.200"):
    snap = plan.Snapshot(CLASSES, list(gateways), list(routes), list(services), list(secrets), list(grants),
                         NAMESPACES)
    return plan.build(snap, lambda s: None, lambda k: address)


def conds(entries):
    return {c["type"]: (c["status"], c["reason"]) for c in entries}


HTTP = {"name": "http", "protocol": "HTTP", "port": 80}
HTTPS = {"name": "https", "protocol": "HTTPS", "port": 443, "tls": {"certificateRefs": [{"name": "tls"}]}}


def test_only_our_class_is_accepted_and_its_gateways_served():
    res = build([gateway([HTTP]), gateway([HTTP], name="theirs", cls="other")])
    assert list(res.class_conditions) == ["nsplane"]
    assert conds(res.class_conditions["nsplane"]) == {"Accepted": ("True", "Accepted")}
    assert list(res.gateway_status) == [("default", "gw")]
    st = res.gateway_status[("default", "gw")]
    assert st["addresses"] == [{"type": "IPAddress", "value": "172.28.0.200"}]
    assert conds(st["conditions"]) == {"Accepted": ("True", "Accepted"), "Programmed": ("True", "Programmed")}
    assert conds(st["listeners"][0]["conditions"]) == {
        "Accepted": ("True", "Accepted"), "Conflicted": ("False", "NoConflicts"),
        "ResolvedRefs": ("True", "ResolvedRefs"), "Programmed": ("True", "Programmed")}
    assert st["listeners"][0]["supportedKinds"] == [{"group": G, "kind": "HTTPRoute"}]


def test_no_address_yet():
    st = build([gateway([HTTP])], address=None).gateway_status[("default", "gw")]
    assert conds(st["conditions"])["Programmed"] == ("False", "AddressNotAssigned")
    assert conds(st["listeners"][0]["conditions"])["Programmed"] == ("False", "Pending")


@pytest.mark.parametrize("listener, secrets, grants, want", [
    (HTTPS, [TLS], [], ("True", "ResolvedRefs")),
    (HTTPS, [], [], ("False", "InvalidCertificateRef")),
    (HTTPS, [{**TLS, "type": "Opaque"}], [], ("False", "InvalidCertificateRef")),
    ({**HTTPS, "tls": {"certificateRefs": [{"name": "tls", "namespace": "certs"}]}},
     [obj("Secret", "tls", ns="certs", type="kubernetes.io/tls")], [], ("False", "RefNotPermitted")),
    ({**HTTPS, "tls": {"certificateRefs": [{"name": "tls", "namespace": "certs"}]}},
     [obj("Secret", "tls", ns="certs", type="kubernetes.io/tls")],
     [obj("ReferenceGrant", "g", ns="certs", spec={"from": [{"group": G, "kind": "Gateway", "namespace": "default"}],
                                                   "to": [{"group": "", "kind": "Secret"}]})],
     ("True", "ResolvedRefs")),
    ({**HTTP, "allowedRoutes": {"kinds": [{"kind": "TCPRoute"}]}}, [], [], ("False", "InvalidRouteKinds")),
])
def test_listener_references(listener, secrets, grants, want):
    st = build([gateway([listener])], secrets=secrets, grants=grants).gateway_status[("default", "gw")]
    c = conds(st["listeners"][0]["conditions"])
    assert c["ResolvedRefs"] == want
    assert c["Programmed"] == (("True", "Programmed") if want[0] == "True" else ("False", "Invalid"))


def test_listener_conflicts_and_unsupported_protocol():
    st = build([gateway([HTTP, {**HTTP, "name": "again"}, {"name": "tls", "protocol": "HTTPS", "port": 80},
                         {"name": "tcp", "protocol": "TCP", "port": 9000}, {**HTTP, "name": "alt", "port": 8080}])]
               ).gateway_status[("default", "gw")]
    by = {x["name"]: conds(x["conditions"]) for x in st["listeners"]}
    assert by["http"]["Conflicted"] == ("True", "ProtocolConflict")
    assert by["tls"]["Conflicted"] == ("True", "ProtocolConflict")
    assert by["tcp"]["Accepted"] == ("False", "UnsupportedProtocol")
    assert by["alt"]["Accepted"] == ("True", "Accepted")
    assert conds(st["conditions"])["Accepted"] == ("True", "ListenersNotValid")
    st = build([gateway([HTTP, {**HTTP, "name": "again"}])]).gateway_status[("default", "gw")]
    assert {x["name"]: conds(x["conditions"])["Conflicted"] for x in st["listeners"]} == {
        "http": ("True", "HostnameConflict"), "again": ("True", "HostnameConflict")}
    assert conds(st["conditions"])["Accepted"] == ("False", "ListenersNotValid")


APPS_ROUTE = route(ns="apps", parents=[{"name": "gw", "namespace": "default"}])


def parent(res, name="r", ns="default"):
    [p] = res.route_parents[(ns, name)]
    assert p["controllerName"] == CONTROLLER_NAME
    return conds(p["conditions"])


def test_route_accepted_and_attached():
    res = build([gateway([HTTP])], [route()])
    assert parent(res) == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}
    assert res.gateway_status[("default", "gw")]["listeners"][0]["attachedRoutes"] == 1
    [srv] = res.programs[("default", "gw")].servers
    assert (srv.port, srv.host, [b.address for b in srv.targets[0].backends]) == (80, "", ["10.96.0.20:80"])


@pytest.mark.parametrize("listener, r, want", [
    (HTTP, APPS_ROUTE, ("False", "NotAllowedByListeners")),
    ({**HTTP, "allowedRoutes": {"namespaces": {"from": "All"}}}, APPS_ROUTE, ("True", "Accepted")),
    ({**HTTP, "allowedRoutes": {"namespaces": {"from": "Selector", "selector": {"matchLabels": {"team": "b"}}}}},
     APPS_ROUTE, ("True", "Accepted")),
    ({**HTTP, "allowedRoutes": {"namespaces": {"from": "Selector", "selector": {"matchLabels": {"team": "c"}}}}},
     APPS_ROUTE, ("False", "NotAllowedByListeners")),
    (HTTP, route(parents=[{"name": "gw", "sectionName": "nope"}]), ("False", "NoMatchingParent")),
    (HTTP, route(parents=[{"name": "gw", "port": 8080}]), ("False", "NoMatchingParent")),
    (HTTP, route(parents=[{"name": "gw", "sectionName": "http", "port": 80}]), ("True", "Accepted")),
    ({**HTTP, "hostname": "web.example.com"}, route(hostnames=["api.example.com"]),
     ("False", "NoMatchingListenerHostname")),
    ({**HTTP, "hostname": "*.example.com"}, route(hostnames=["api.example.com"]), ("True", "Accepted")),
])
def test_route_attachment_reasons(listener, r, want):
    res = build([gateway([listener])], [r])
    ns = r["metadata"]["namespace"]
    assert parent(res, ns=ns)["Accepted"] == want
    attached = res.gateway_status[("default", "gw")]["listeners"][0]["attachedRoutes"]
    assert attached == (1 if want[0] == "True" else 0)


def test_route_to_someone_elses_gateway_gets_no_status_from_us():
    res = build([gateway([HTTP], name="theirs", cls="other")], [route(parents=[{"name": "theirs"}])])
    assert res.route_parents[("default", "r")] == []


@pytest.mark.parametrize("ref, grants, want", [
    ({"name": "web", "port": 80}, [], ("True", "ResolvedRefs")),
    ({"name": "missing", "port": 80}, [], ("False", "BackendNotFound")),
    ({"name": "web", "port": 81}, [], ("False", "BackendNotFound")),
    ({"name": "web", "port": 80, "group": "example.com", "kind": "Bucket"}, [], ("False", "InvalidKind")),
    ({"name": "web", "port": 80, "namespace": "apps"}, [], ("False", "RefNotPermitted")),
    ({"name": "web", "port": 80, "namespace": "apps"},
     [obj("ReferenceGrant", "g", ns="apps", spec={"from": [{"group": G, "kind": "HTTPRoute", "namespace": "default"}],
                                                  "to": [{"group": "", "kind": "Service", "name": "web"}]})],
     ("True", "ResolvedRefs")),
    ({"name": "web", "port": 80, "namespace": "apps"},
     [obj("ReferenceGrant", "g", ns="apps", spec={"from": [{"group": G, "kind": "HTTPRoute", "namespace": "default"}],
                                                  "to": [{"group": "", "kind": "Service", "name": "other"}]})],
     ("False", "RefNotPermitted")),
])
def test_backend_refs(ref, grants, want):
    services = [SVC, obj("Service", "web", ns="apps", spec={"clusterIP": "10.96.0.30", "ports": [{"port": 80}]})]
    res = build([gateway([HTTP])], [route(rules=[{"backendRefs": [ref]}])], services=services, grants=grants)
    c = parent(res)
    assert c["ResolvedRefs"] == want
    assert c["Accepted"] == ("True", "Accepted")        # an unresolved backend answers 500; the route stays
    [b] = res.programs[("default", "gw")].servers[0].targets[0].backends
    assert (b.address is not None) == (want[0] == "True")


def test_invalid_regex_drops_the_rule_or_the_route():
    bad = {"matches": [{"path": {"type": "RegularExpression", "value": "/(unclosed"}}],
           "backendRefs": [{"name": "web", "port": 80}]}
    good = {"backendRefs": [{"name": "web", "port": 80}]}
    res = build([gateway([HTTP])], [route(rules=[bad])])
    c = parent(res)
    assert c["Accepted"] == ("False", "UnsupportedValue")
    assert res.programs[("default", "gw")].servers == []
    res = build([gateway([HTTP])], [route(rules=[good, bad])])
    [p] = res.route_parents[("default", "r")]
    pi = next(x for x in p["conditions"] if x["type"] == "PartiallyInvalid")
    assert pi["status"] == "True" and pi["message"].startswith("Dropped Rule")
    assert conds(p["conditions"])["Accepted"] == ("True", "Accepted")
    assert len(res.programs[("default", "gw")].servers[0].targets) == 1


def test_incompatible_filters():
    rule = {"filters": [{"type": "URLRewrite", "urlRewrite": {"hostname": "x"}},
                        {"type": "RequestRedirect", "requestRedirect": {"statusCode": 301}}]}
    assert parent(build([gateway([HTTP])], [route(rules=[rule])]))["Accepted"] == ("False", "IncompatibleFilters")


def test_servers_per_host_with_targets_in_precedence_order():
    a = route("a", hostnames=["a.example.com"],
              rules=[{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                      "backendRefs": [{"name": "web", "port": 80}]},
                     {"matches": [{"path": {"type": "Exact", "value": "/x"}}],
                      "backendRefs": [{"name": "web", "port": 80}]}])
    b = route("b", hostnames=["*.example.com"])
    prog = build([gateway([HTTP])], [a, b]).programs[("default", "gw")]
    assert [s.host for s in prog.servers] == ["*.example.com", "a.example.com"]
    a_srv = prog.servers[1]
    assert [t.match["path"] for t in a_srv.targets] == [{"type": "Exact", "value": "/x"},
                                                        {"type": "PathPrefix", "value": "/"}]


def test_stamp_keeps_transition_time_while_status_holds():
    old = stamp([{"type": "Accepted", "status": "True", "reason": "Accepted", "message": ""}], None, 1, "t1")
    new = stamp([{"type": "Accepted", "status": "True", "reason": "Accepted", "message": ""}], old, 2, "t2")
    assert new[0]["lastTransitionTime"] == "t1" and new[0]["observedGeneration"] == 2
    flip = stamp([{"type": "Accepted", "status": "False", "reason": "X", "message": ""}], new, 3, "t3")
    assert flip[0]["lastTransitionTime"] == "t3"


# ---- matches as one regex over the request summary --------------------------------

def first_match(matches, method="GET", uri="/", args="", headers=None):
    """Index of the first match (in the order given) nginx's map would pick."""
    import re

    from agent.controllers.gateway import matchregex as mr
    ms = [precedence.default_match(m) for m in matches]
    names = mr.header_names(ms)
    s = mr.subject(method, uri, args, headers or {}, names)
    return next((i for i, m in enumerate(ms) if re.search(mr.pattern(m, names), s)), None)


@pytest.mark.parametrize("path, uri, ok", [
    ({"type": "Exact", "value": "/foo"}, "/foo", True),
    ({"type": "Exact", "value": "/foo"}, "/foo/", False),
    ({"type": "PathPrefix", "value": "/foo"}, "/foo", True),
    ({"type": "PathPrefix", "value": "/foo"}, "/foo/bar", True),
    ({"type": "PathPrefix", "value": "/foo"}, "/foobar", False),
    ({"type": "PathPrefix", "value": "/foo/"}, "/foo", True),
    ({"type": "PathPrefix", "value": "/"}, "/anything", True),
    ({"type": "RegularExpression", "value": "/v[0-9]+/.*"}, "/v2/x", True),
    ({"type": "RegularExpression", "value": "/v[0-9]+/.*"}, "/vx/x", False),
    ({"type": "RegularExpression", "value": "^/v[0-9]+$"}, "/v12", True),
    ({"type": "RegularExpression", "value": "/v[0-9]+"}, "/v12/more", False),      # a full match
])
def test_path_patterns(path, uri, ok):
    assert (first_match([{"path": path}], uri=uri) == 0) is ok


def test_headers_query_method_in_one_pattern():
    m = {"path": {"type": "PathPrefix", "value": "/"}, "method": "POST",
         "headers": [{"name": "Version", "value": "two"}, {"name": "X-Re", "type": "RegularExpression",
                                                           "value": "ab+c"}],
         "queryParams": [{"name": "animal", "value": "whale"}]}
    good = {"method": "POST", "uri": "/x", "args": "color=blue&animal=whale",
            "headers": {"version": "two", "x-re": "abbbc"}}
    assert first_match([m], **good) == 0
    for bad in ({"method": "GET"}, {"args": "animal=whales"}, {"args": "xanimal=whale"},
                {"headers": {"version": "Two", "x-re": "abc"}}, {"headers": {"version": "two", "x-re": "abd"}}):
        assert first_match([m], **{**good, **bad}) is None, bad


def test_first_in_precedence_wins():
    refs = [ref({"path": {"type": "PathPrefix", "value": "/"}}, rule=0),
            ref({"path": {"type": "PathPrefix", "value": "/"}, "headers": [{"name": "version", "value": "two"}]},
                rule=1),
            ref({"path": {"type": "Exact", "value": "/a"}}, rule=2)]
    ordered = [r.match for r in precedence.ordered(refs)]
    assert first_match(ordered, uri="/a", headers={"version": "two"}) == 0      # Exact first
    assert ordered[first_match(ordered, uri="/b", headers={"version": "two"})]["headers"]
    assert first_match(ordered, uri="/b") == 2


# ---- filters as nginx directives --------------------------------------------------

def test_user_text_never_names_a_variable():
    from agent.controllers.gateway import filters as flt
    assert flt.q('a$b"c\\') == '"a${nsplane_dollar}b\\"c\\\\"'


def test_request_header_modifier():
    from agent.controllers.gateway import filters as flt
    directives, maps = flt.request_headers([{"type": "RequestHeaderModifier", "requestHeaderModifier": {
        "set": [{"name": "X-Set", "value": "v"}], "add": [{"name": "X-Add", "value": "a"}], "remove": ["X-Gone"]}}],
        "s0m1")
    assert 'proxy_set_header X-Set "v"' in directives
    assert "proxy_set_header X-Add $nsplane_add_s0m1_0" in directives
    assert 'proxy_set_header X-Gone ""' in directives
    assert "proxy_set_header Host $http_host" in directives      # forwarded unmodified, as the spec asks
    assert maps == ['map $http_x_add $nsplane_add_s0m1_0 { "" "a"; default "$http_x_add,a"; }']


@pytest.mark.parametrize("redirect, scheme, port, want", [
    ({}, "http", 80, '"http://$host$1" redirect'),
    ({"statusCode": 301}, "http", 8080, '"http://$host:8080$1" permanent'),
    ({"scheme": "https"}, "http", 8080, '"https://$host$1" redirect'),           # the scheme's well-known port
    ({"hostname": "x.test", "port": 8443, "scheme": "https"}, "http", 80, '"https://x.test:8443$1" redirect'),
    ({"path": {"type": "ReplaceFullPath", "replaceFullPath": "/new"}}, "http", 80, '"http://$host/new" redirect'),
])
def test_redirect_location(redirect, scheme, port, want):
    from agent.controllers.gateway import filters as flt
    lines = flt.redirect({"requestRedirect": redirect}, "/_gw/m0", {"type": "PathPrefix", "value": "/"}, scheme, port)
    assert lines[-1].endswith(want), lines


def test_replace_prefix_match():
    from agent.controllers.gateway import filters as flt
    lines = flt.rewrite([{"type": "URLRewrite", "urlRewrite": {"path": {
        "type": "ReplacePrefixMatch", "replacePrefixMatch": "/one"}}}], "/_gw/m0",
        {"type": "PathPrefix", "value": "/prefix/one/"})
    assert lines == ['rewrite "^/_gw/m0/prefix/one$" "/one" break',
                     'rewrite "^/_gw/m0/prefix/one(/.*)$" "/one$1" break']


def test_durations():
    from agent.controllers.gateway import filters as flt
    assert flt.duration_ms("1m30s") == 90_000 and flt.duration_ms("250ms") == 250
    assert flt.timeouts({"request": "10s", "backendRequest": "2s"}) == ["proxy_read_timeout 2000ms",
                                                                        "proxy_send_timeout 2000ms"]


def test_proxy_config_http_snippets_render_at_http_level():
    from agent.controllers.proxy import nginx
    from agent.controllers.proxy.model import ProxyConfig
    text = nginx.render(ProxyConfig(http_snippets=("map $a $b {\n    default x;\n}",)), "/certs")
    http = text[text.index("http {"):]
    assert "    map $a $b {\n        default x;\n    }\n" in http
    assert http.index("map $a $b") < http.index("server {")


def test_printer_column_filters_as_the_gateway_crds_use_them():
    from agent.apiserver.crd.custom import jsonpath
    gw = {"status": {"conditions": [{"type": "Accepted", "status": "True"}, {"type": "Programmed", "status": "False"}],
                     "addresses": [{"value": "172.28.0.200"}]}}
    assert jsonpath(gw, '.status.conditions[?(@.type=="Programmed")].status') == ["False"]
    assert jsonpath(gw, ".status.conditions[?(@.type=='Accepted')].status") == ["True"]
    assert jsonpath(gw, '.status.conditions[?(@.type!="Accepted")].type') == ["Programmed"]
    assert jsonpath(gw, ".status.addresses[*].value") == ["172.28.0.200"]
    assert jsonpath({}, '.status.conditions[?(@.type=="Programmed")].status') == []


@pytest.mark.parametrize("addresses, want", [
    ([{"type": "Hostname", "value": "gw.example.test"}], ("False", "UnsupportedAddress")),
    ([{"value": "172.28.0.210"}, {"value": "172.28.0.211"}], ("False", "UnsupportedAddress")),
    ([{"type": "IPAddress", "value": "172.28.0.210"}], ("True", "Accepted")),
])
def test_spec_addresses(addresses, want):
    g = gateway([HTTP])
    g["spec"]["addresses"] = addresses
    snap = plan.Snapshot(CLASSES, [g], [], [SVC], [], [], NAMESPACES)
    res = plan.build(snap, lambda s: None, lambda k: None)
    st = res.gateway_status[("default", "gw")]
    assert conds(st["conditions"])["Accepted"] == want
    if want[0] == "True":
        assert res.programs[("default", "gw")].address == "172.28.0.210"
        res = plan.build(snap, lambda s: None, lambda k: None, lambda k: "address 172.28.0.210 cannot be used: taken")
        st = res.gateway_status[("default", "gw")]
        assert conds(st["conditions"])["Programmed"] == ("False", "AddressNotUsable")
    else:
        assert ("default", "gw") not in res.programs                # no proxy for it


def test_the_proxys_own_ports_are_unavailable():
    st = build([gateway([{**HTTP, "port": 10254}])]).gateway_status[("default", "gw")]
    assert conds(st["listeners"][0]["conditions"])["Accepted"] == ("False", "PortUnavailable")


@pytest.mark.parametrize("value", ["/(unclosed", "(?a)/x", "/\\N{LATIN SMALL LETTER A}", "/caf\\u00e9", "/\\U0001F600"])
def test_regexes_nginx_would_refuse_are_unsupported_values(value):
    rule = {"matches": [{"path": {"type": "RegularExpression", "value": value}}],
            "backendRefs": [{"name": "web", "port": 80}]}
    assert parent(build([gateway([HTTP])], [route(rules=[rule])]))["Accepted"] == ("False", "UnsupportedValue")


def test_programmed_waits_for_the_proxys_pods():
    snap = plan.Snapshot(CLASSES, [gateway([HTTP])], [], [SVC], [], [], NAMESPACES)
    st = plan.build(snap, lambda s: None, lambda k: "172.28.0.200", ready=lambda k: False).gateway_status[
        ("default", "gw")]
    assert conds(st["conditions"])["Programmed"] == ("False", "Pending")
    assert conds(st["listeners"][0]["conditions"])["Programmed"] == ("False", "Pending")
    assert st["addresses"] == [{"type": "IPAddress", "value": "172.28.0.200"}]


def test_header_names_nginx_cannot_set_are_unsupported_values():
    rule = {"filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "X$a",
                                                                                             "value": "v"}]}}],
            "backendRefs": [{"name": "web", "port": 80}]}
    assert parent(build([gateway([HTTP])], [route(rules=[rule])]))["Accepted"] == ("False", "UnsupportedValue")
