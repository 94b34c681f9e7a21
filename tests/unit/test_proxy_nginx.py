"""The proxy's nginx.conf render (agent/controllers/proxy/nginx.py): host
names, Kubernetes path matching as locations, default servers, TLS."""
from agent.controllers.proxy.model import Action, ProxyConfig, Route, Server, Upstream
from agent.controllers.proxy.nginx import render, server_name

UP = (Upstream("default-web-80", (("10.96.0.20:80", 1),)), Upstream("default-api-8080", (("10.96.0.21:8080", 1),)))


def _server_block(conf: str, name: str, port: int) -> str:
    for block in conf.split("    server {\n")[1:]:
        if f"listen {port}" in block and f"server_name {name};" in block:
            return block
    raise AssertionError(f"no server {name} on {port} in\n{conf}")


def test_wildcard_host_matches_exactly_one_label():
    assert server_name("*.example.test") == r'"~^[^.]+\\.example\\.test$"'
    assert server_name("web.example.test") == '"web.example.test"'


def test_prefix_is_element_wise_and_exact_wins():
    conf = render(ProxyConfig(servers=(Server(80, ("web.example.test",), routes=(
        Route("exact", "/foo", Action(upstream="default-api-8080")),
        Route("prefix", "/foo/", Action(upstream="default-web-80")),
        Route("prefix", "/", Action(upstream="default-web-80")))),), upstreams=UP), "/c")
    block = _server_block(conf, '"web.example.test"', 80)
    assert 'location = "/foo" {\n            proxy_pass http://default-api-8080;' in block
    assert 'location "/foo/" {\n            proxy_pass http://default-web-80;' in block
    assert block.count('location = "/foo"') == 1          # Prefix /foo/ gave way to Exact /foo
    assert "location / {\n            proxy_pass http://default-web-80;" in block
    assert 'location "/foo"' not in block                  # /foobar is not under /foo


def test_string_prefix_and_missing_upstream_is_503():
    conf = render(ProxyConfig(servers=(Server(80, routes=(
        Route("string", "/img", Action(upstream="default-gone-80")),)),), upstreams=UP), "/c")
    block = _server_block(conf, "_", 80)
    assert 'location "/img" {\n            return 503;' in block
    assert "listen 80 default_server;" in block
    assert "location / {\n            return 404;" in block


def test_every_port_has_a_default_server_and_tls_ports_use_the_default_cert():
    conf = render(ProxyConfig(servers=(Server(443, ("a.test",), tls_cert="ns_a-tls"),
                                       Server(443, ("b.test",)), Server(80, ("a.test",)))), "/c")
    assert "ssl_certificate /c/ns_a-tls.pem;" in _server_block(conf, '"a.test"', 443)
    assert "ssl_certificate /c/default.pem;" in _server_block(conf, '"b.test"', 443)
    default443 = _server_block(conf, "_", 443)
    assert "listen 443 ssl default_server;" in default443 and "/c/default.pem" in default443
    assert "listen 80 default_server;" in _server_block(conf, "_", 80)
    assert "ssl" not in _server_block(conf, '"a.test"', 80)


def test_redirect_and_extra_directives():
    conf = render(ProxyConfig(servers=(Server(80, ("a.test",), routes=(
        Route("exact", "/x", Action(upstream="default-web-80"), ("proxy_set_header X-A 1",)),),
        fallback=Action(status=308, location="https://$host$request_uri")),), upstreams=UP), "/c")
    block = _server_block(conf, '"a.test"', 80)
    assert "proxy_set_header X-A 1;\n            proxy_pass http://default-web-80;" in block
    assert 'location / {\n            return 308 "https://$host$request_uri";' in block


def test_weightless_upstream_servers_are_left_out():
    conf = render(ProxyConfig(upstreams=(Upstream("u", (("10.0.0.1:80", 0), ("10.0.0.2:80", 9))),)), "/c")
    assert "server 10.0.0.2:80 weight=9" in conf and "10.0.0.1" not in conf


def test_a_tls_port_without_any_certificate_of_its_own():
    conf = render(ProxyConfig(servers=(Server(443, ("a.test",)),), tls_ports=(443,)), "/c")
    assert "listen 443 ssl;" in _server_block(conf, '"a.test"', 443)
    assert "listen 443 ssl default_server;" in _server_block(conf, "_", 443)


def test_server_names_bucket_holds_the_longest_exact_host():
    short = render(ProxyConfig(servers=(Server(80, ("web.test",)),)), "/c")
    assert "server_names_hash_bucket_size 128;" in short
    long_host = ".".join(c * 63 for c in "abc") + ".test"                    # 196 characters, a valid DNS name
    conf = render(ProxyConfig(servers=(Server(80, (long_host, "*." + long_host[:240])),)), "/c")
    assert "server_names_hash_bucket_size 256;" in conf                      # 8 + 196 + 2 -> 208, + 8: 216


def test_run_dir_holds_pid_and_temp_paths():
    conf = render(ProxyConfig(), "/c", run_dir="/x/y")
    assert "pid /x/y/nginx.pid;" in conf and "proxy_temp_path /x/y/nginx-proxy;" in conf and "/tmp" not in conf
    assert "pid /tmp/nginx.pid;" in render(ProxyConfig(), "/c")
