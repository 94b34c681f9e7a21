"""Ingresses -> proxy configuration (agent/controllers/ingress/routes.py), and
that configuration rendered for nginx: precedence, wildcards, TLS, backends."""
from agent.controllers.ingress import routes
from agent.controllers.proxy.model import Action
from agent.controllers.proxy.nginx import render


def svc(name, ip, *ports, ns="default", **spec):
    return (ns, name), {"metadata": {"name": name, "namespace": ns},
                        "spec": {"clusterIP": ip, "ports": [dict(p) for p in ports], **spec}}


SERVICES = dict([svc("web", "10.96.0.20", {"name": "http", "port": 80}),
                 svc("api", "10.96.0.21", {"port": 8081}),
                 svc("headless", "None", {"port": 80})])


def backend(name, port):
    return {"service": {"name": name, "port": {"name": port} if isinstance(port, str) else {"number": port}}}


def ing(name, rules=(), tls=(), default=None, created="2026-01-01T00:00:00Z", annotations=None):
    spec = {"rules": [{"host": h, "http": {"paths": [{"path": p, "pathType": t, "backend": b} for p, t, b in paths]}}
                      if h is not None else {"http": {"paths": [{"path": p, "pathType": t, "backend": b}
                                                                for p, t, b in paths]}} for h, paths in rules]}
    if tls:
        spec["tls"] = [{"hosts": list(hosts), "secretName": s} for hosts, s in tls]
    if default:
        spec["defaultBackend"] = default
    return {"metadata": {"name": name, "namespace": "default", "uid": name, "creationTimestamp": created,
                         "annotations": annotations or {}}, "spec": spec}


def servers(config, port):
    return {s.hostnames: s for s in config.servers if s.port == port}


def test_backends_are_cluster_ip_and_port_by_number_or_name():
    config, problems = routes.build([ing("a", [("web.test", [("/", "Prefix", backend("web", "http")),
                                                             ("/api", "Prefix", backend("api", 8081))])])],
                                    SERVICES, {})
    assert not problems
    ups = {u.name: u.servers for u in config.upstreams}
    assert ups == {"default_web_80": (("10.96.0.20:80", 1),), "default_api_8081": (("10.96.0.21:8081", 1),)}


def test_exact_before_prefix_and_longest_prefix_first():
    config, _ = routes.build([ing("a", [("h.test", [("/foo", "Prefix", backend("web", 80)),
                                                    ("/foo/bar", "Prefix", backend("api", 8081)),
                                                    ("/foo", "Exact", backend("api", 8081))])])], SERVICES, {})
    https = servers(config, 443)[("h.test",)]
    assert [(r.match, r.path) for r in https.routes] == [("exact", "/foo"), ("prefix", "/foo/bar"),
                                                         ("prefix", "/foo")]
    conf = render(config, "/c")
    block = conf[conf.index('server_name "h.test";'):]
    block = block[:block.index("    }\n\n")]
    assert 'location = "/foo" {\n            proxy_pass http://default_api_8081;' in block   # Exact won = /foo
    assert 'location "/foo/bar/" {\n            proxy_pass http://default_api_8081;' in block
    assert 'location "/foo/" {\n            proxy_pass http://default_web_80;' in block


def test_same_path_in_two_ingresses_oldest_wins_and_hosts_merge():
    old = ing("old", [("h.test", [("/x", "Prefix", backend("web", 80))])], created="2026-01-01T00:00:00Z")
    new = ing("new", [("h.test", [("/x", "Prefix", backend("api", 8081)), ("/y", "Exact", backend("api", 8081))])],
              created="2026-01-02T00:00:00Z")
    config, problems = routes.build([new, old], SERVICES, {})
    https = servers(config, 443)[("h.test",)]
    conf = render(config, "/c")
    assert 'location "/x/" {\n            proxy_pass http://default_web_80;' in conf
    assert [r.path for r in https.routes] == ["/y", "/x"]
    assert [(p.name, p.reason, p.message) for p in problems] == [
        ("new", "Conflict", 'Prefix path "/x" of host "h.test" is already defined by Ingress default/old '
                            "(the oldest wins); this one is ignored")]


def test_wildcard_host_and_rules_without_host_go_to_the_default_server():
    config, _ = routes.build([ing("a", [("*.apps.test", [("/", "Prefix", backend("web", 80))]),
                                        (None, [("/any", "ImplementationSpecific", backend("api", 8081))])])],
                             SERVICES, {})
    conf = render(config, "/c")
    assert 'server_name "~^[^.]+\\\\.apps\\\\.test$";' in conf
    default = servers(config, 80)[()]
    assert [(r.match, r.path) for r in default.routes] == [("string", "/any")]


def test_default_backend_catches_unmatched_paths_and_hosts():
    config, _ = routes.build([ing("a", [("h.test", [("/x", "Exact", backend("web", 80))])],
                                  default=backend("api", 8081))], SERVICES, {})
    assert servers(config, 80)[("h.test",)].fallback == Action(upstream="default_api_8081")
    assert servers(config, 80)[()].fallback == Action(upstream="default_api_8081")
    config, _ = routes.build([ing("a", [("h.test", [("/x", "Exact", backend("web", 80))])])], SERVICES, {})
    assert servers(config, 443)[()].fallback == Action(status=404)


def test_missing_service_port_or_cluster_ip_is_503_with_a_problem():
    config, problems = routes.build([ing("a", [("h.test", [("/a", "Prefix", backend("nosuch", 80)),
                                                           ("/b", "Prefix", backend("web", "grpc")),
                                                           ("/c", "Prefix", backend("headless", 80))])])],
                                    SERVICES, {})
    assert all(r.action == Action(status=503) for r in servers(config, 443)[("h.test",)].routes)
    assert [(p.reason, p.message) for p in problems] == [
        ("ServiceNotFound", 'Error obtaining Service "default/nosuch": no object matching key "default/nosuch" '
                            "in local store"),
        ("ServicePortNotFound", 'Service "default/web" does not have port named "grpc"; requests to it are '
                                "answered 503"),
        ("ServiceNotSupported", 'Service "default/headless" has no cluster IP (headless or ExternalName); '
                                "requests to it are answered 503")]


def test_tls_by_host_with_redirect_and_the_default_certificate_otherwise():
    pem = "CERT+KEY"
    ings = [ing("a", [("web.test", [("/", "Prefix", backend("web", 80))]),
                      ("api.test", [("/", "Prefix", backend("api", 8081))]),
                      ("x.wild.test", [("/", "Prefix", backend("api", 8081))])],
                tls=[(["web.test"], "web-tls"), (["*.wild.test"], "wild-tls"), (["api.test"], "gone"),
                     (["bad.test"], "bad")])]
    config, problems = routes.build(ings, SERVICES, {("default", "web-tls"): pem, ("default", "wild-tls"): "W",
                                                     ("default", "bad"): None})
    https = servers(config, 443)
    assert https[("web.test",)].tls_cert == "default_web-tls"
    assert https[("x.wild.test",)].tls_cert == "default_wild-tls"      # a wildcard TLS host covers one label
    assert https[("api.test",)].tls_cert is None                        # missing Secret: the default certificate
    assert config.certs == {"default_web-tls": pem, "default_wild-tls": "W"} and config.tls_ports == (443,)
    assert [p.reason for p in problems] == ["SecretNotFound", "InvalidCertificate"]
    assert servers(config, 80)[("web.test",)].fallback == Action(status=308, location="https://$host$request_uri")
    assert servers(config, 80)[("web.test",)].routes == ()
    conf = render(config, "/c")
    assert "ssl_certificate /c/default_web-tls.pem;" in conf and "ssl_certificate /c/default.pem;" in conf


def test_ssl_redirect_false_keeps_plain_http_routing():
    config, _ = routes.build([ing("a", [("web.test", [("/", "Prefix", backend("web", 80))])],
                                  tls=[(["web.test"], "web-tls")],
                                  annotations={routes.SSL_REDIRECT: "false"})], SERVICES, {})
    assert servers(config, 80)[("web.test",)].routes[0].action == Action(upstream="default_web_80")
