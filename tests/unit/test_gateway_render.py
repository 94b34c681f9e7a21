"""A Gateway's Program rendered for the proxy (agent/controllers/gateway/
proxyconf.py): map entries in precedence order, one internal location per
match, weighted upstreams with the 500 server for unresolved backends,
wildcard hosts as any-depth regex server names — and the whole nginx.conf
accepted by `nginx -t` (Debian's nginx, when the machine has it)."""
import os
import shutil
import subprocess

import pytest

from agent.controllers.gateway import plan, proxyconf
from agent.controllers.proxy import nginx
from tests.unit.test_gateway_api import CLASSES, HTTP, HTTPS, SVC, TLS, gateway, route

RULES = [
    {"backendRefs": [{"name": "web", "port": 80}]},
    {"matches": [{"path": {"type": "Exact", "value": "/exact"}}],
     "backendRefs": [{"name": "web", "port": 80, "weight": 90}, {"name": "missing", "port": 80, "weight": 10}]},
    {"matches": [{"path": {"type": "PathPrefix", "value": "/r"}, "headers": [{"name": "Version", "value": "2"}]}],
     "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "X-A", "value": "$1"}]}},
                 {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"remove": ["Server"]}},
                 {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "web", "port": 80}}}],
     "backendRefs": [{"name": "web", "port": 80}], "timeouts": {"request": "5s"}},
    {"matches": [{"path": {"type": "PathPrefix", "value": "/old"}}],
     "filters": [{"type": "RequestRedirect", "requestRedirect": {"statusCode": 301, "scheme": "https"}}]},
    {"matches": [{"path": {"type": "RegularExpression", "value": "/v[0-9]+/.*"}}],
     "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/"}}}],
     "backendRefs": [{"name": "web", "port": 80}]},
]


def program(listeners=(HTTP,), hostnames=("web.example.test",)):
    routes = [route("r", hostnames=list(hostnames), rules=RULES), route("any", hostnames=["*.example.test"])]
    snap = plan.Snapshot(CLASSES, [gateway(list(listeners))], routes, [SVC], [TLS], [], [])
    return plan.build(snap, lambda s: None, lambda k: "172.28.0.200").programs[("default", "gw")]


def test_map_entries_follow_precedence_and_locations_exist():
    cfg = proxyconf.to_proxy(program(), lambda ns, n: None)
    web = next(s for s in cfg.servers if s.hostnames == ("web.example.test",))
    wild = next(s for s in cfg.servers if s.hostnames and s.hostnames[0].startswith("~"))
    assert wild.hostnames == ("~^.+\\.example\\.test$",)
    maps = [m for m in cfg.http_snippets if m.startswith('map "')]
    web_map = next(m for m in maps if "$http_version" in m)
    order = [line.split()[-1].rstrip(";") for line in web_map.splitlines() if line.strip().startswith('"~')]
    paths = [line for line in web_map.splitlines() if line.strip().startswith('"~')]
    assert "/exact" in paths[0] and "v\\\\[0-9\\\\]" not in paths[0]            # Exact first
    assert "(?m:(?:/v[0-9]+/.*))" in paths[1]                                  # then the regex
    assert len(order) == 5
    heads = {r.path for r in web.routes}
    assert all(f"{proxyconf.PREFIX}/{t}/" in heads for t in order)


def test_unresolved_share_goes_to_the_500_server():
    cfg = proxyconf.to_proxy(program(), lambda ns, n: None)
    split = next(u for u in cfg.upstreams if (proxyconf.ERROR_ADDRESS, 10) in u.servers)
    assert ("10.96.0.20:80", 90) in split.servers
    assert any(s.port == proxyconf.ERROR_PORT and s.fallback.status == 500 for s in cfg.servers)


def test_redirect_and_dollar_in_values():
    cfg = proxyconf.to_proxy(program(), lambda ns, n: None)
    web = next(s for s in cfg.servers if s.hostnames == ("web.example.test",))
    directives = [d for r in web.routes for d in r.directives]
    assert any(d.startswith("rewrite ") and '"https://$host' in d and d.endswith("permanent") for d in directives)
    assert any("${nsplane_dollar}1" in m for m in cfg.http_snippets)             # "$1" stays text


def test_https_listener_serves_the_secret():
    listener = {**HTTPS, "hostname": "web.example.test"}
    cfg = proxyconf.to_proxy(program((listener,)), lambda ns, n: "PEM")
    assert cfg.certs == {"default-tls": "PEM"}
    assert {s.tls_cert for s in cfg.servers if s.port == 443} == {"default-tls"}


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed on this machine")
def test_nginx_accepts_the_rendered_configuration(tmp_path):
    pem_path = tmp_path / "certs"
    pem_path.mkdir()
    key, crt = tmp_path / "k", tmp_path / "c"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "1", "-subj", "/CN=web.example.test"],
                   check=True, capture_output=True)
    pem = crt.read_text() + key.read_text()
    cfg = proxyconf.to_proxy(program((HTTP, {**HTTPS, "hostname": "web.example.test"})), lambda ns, n: pem)
    for name, text in {**cfg.certs, nginx.DEFAULT_CERT: pem}.items():
        (pem_path / f"{name}.pem").write_text(text)
    text = nginx.render(cfg, "/nsplane-certs").replace("/tmp/", f"{tmp_path}/").replace("/nsplane-certs", str(pem_path))
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    r = subprocess.run(["nginx", "-t", "-q", "-c", str(conf), "-p", str(tmp_path)], check=False, capture_output=True,
                       text=True, env=dict(os.environ))
    assert r.returncode == 0, r.stderr


def test_a_rule_without_backends_answers_500_with_nothing_before_the_return():
    r = route("gone", hostnames=["gone.example.test"], rules=[{"backendRefs": [{"name": "nope", "port": 80}]}])
    snap = plan.Snapshot(CLASSES, [gateway([HTTP])], [r], [SVC], [], [], [])
    cfg = proxyconf.to_proxy(plan.build(snap, lambda s: None, lambda k: "1.2.3.4").programs[("default", "gw")],
                             lambda ns, n: None)
    [target] = [x for x in cfg.servers[0].routes if x.path.endswith("m0/")]
    assert target.action.status == 500 and target.directives == ("internal",)
