"""A Gateway's `Program` (plan.py) as the proxy's neutral model
(agent/controllers/proxy/model.py), which the proxy machinery renders to
nginx.conf and runs.

Per server (a port and host name) one http-level `map` turns the request
summary (matchregex.py) into the id of the first match in precedence
order; `location /` jumps to that match's internal location
(`/_nsplane_gw/<id>/<original path>`; the map is read into a variable
first, as its regexes reset the captures), which applies the filters
(filters.py) and proxies to the match's upstream: the resolved backends
with their weights (nginx's smooth weighted round robin gives exact
splits), an unresolved backend's share going to a local server that
answers 500. No match: 404. A rule with no usable backend: 500.

Host names: exact names as they are; a `*.example.com` wildcard as a regex
server_name matching any depth (the Gateway API's suffix match), most
specific first.

Pure: PEM text comes from `pem_of(namespace, name)`."""
from __future__ import annotations

import re
from collections.abc import Callable

from agent.controllers.gateway import filters as flt
from agent.controllers.gateway import hostnames as hn
from agent.controllers.gateway import matchregex as mr
from agent.controllers.gateway.listeners import ERROR_PORT
from agent.controllers.gateway.plan import Program, Target
from agent.controllers.gateway.plan import Server as PlanServer
from agent.controllers.proxy.model import Action, ProxyConfig, Route, Server, Upstream

PREFIX = "/_nsplane_gw"
ERROR_ADDRESS = f"127.0.0.1:{ERROR_PORT}"


def cert_name(ns: str, name: str) -> str:
    return f"{ns}-{name}"


def server_host(host: str) -> tuple[str, ...]:
    if host == hn.ANY:
        return ()
    if host.startswith("*."):
        return ("~^.+" + re.escape(host[1:]) + "$",)
    return (host,)


def _target_routes(t: Target, tid: str, srv: PlanServer, maps: list[str], upstreams: list[Upstream]) -> list[Route]:
    base = f"{PREFIX}/{tid}"
    directives = ["internal"]
    redirect = next((f for f in t.filters if f.get("type") == "RequestRedirect"), None)
    scheme = "https" if srv.protocol == "HTTPS" else "http"
    if redirect:
        directives += flt.redirect(redirect, base, t.match["path"], scheme, srv.port)
        return [Route("string", base + "/", Action(status=500), tuple(directives))]
    live = [(b.address or ERROR_ADDRESS, b.weight) for b in t.backends if b.weight > 0]
    if not live or all(addr == ERROR_ADDRESS for addr, _ in live):
        # no backend to send to: 500 (a `rewrite ... break` first would skip the return)
        return [Route("string", base + "/", Action(status=500), ("internal",))]
    directives += flt.rewrite(t.filters, base, t.match["path"])
    req, snippets = flt.request_headers(t.filters, tid)
    maps.extend(snippets)
    directives += req + flt.response_headers(t.filters) + flt.timeouts(t.timeouts)
    routes = []
    for i, m in enumerate(t.mirrors):
        if m.address is None:
            continue
        name = f"gw_{tid}_mirror{i}"
        upstreams.append(Upstream(name, ((m.address, 1),)))
        path = f"{PREFIX}/mirror/{tid}/{i}"
        directives.append(f"mirror {path}")
        routes.append(Route("exact", path, Action(upstream=name),
                            ("internal", "rewrite ^ $nsplane_uri break", *req)))
    upstreams.append(Upstream(f"gw_{tid}", tuple(live)))
    routes.insert(0, Route("string", base + "/", Action(upstream=f"gw_{tid}"), tuple(directives)))
    return routes


def to_proxy(prog: Program, pem_of: Callable[[str, str], str | None]) -> ProxyConfig:
    maps = [flt.DOLLAR_SNIPPET]
    upstreams: list[Upstream] = []
    servers: list[Server] = []
    certs = {}
    for ns, name in prog.certs:
        pem = pem_of(ns, name)
        if pem:
            certs[cert_name(ns, name)] = pem
    ordered = sorted(enumerate(prog.servers), key=lambda e: (e[1].port, hn.specificity(e[1].host)))
    for k, srv in ordered:
        var = f"$nsplane_s{k}"
        names = mr.header_names([t.match for t in srv.targets])
        entries = [f'    "~{flt.qre(mr.pattern(t.match, names))[1:-1]}" s{k}m{n};'
                   for n, t in enumerate(srv.targets)]
        maps.append(f'map "{mr.summary(names)}" {var} {{\n    default none;\n' + "\n".join(entries) + "\n}")
        routes = [Route("string", "/", Action(status=404),
                        ("set $nsplane_uri $uri", f"set $nsplane_target {var}",
                         f"rewrite ^ {PREFIX}/$nsplane_target$nsplane_uri last")),
                  Route("string", f"{PREFIX}/none/", Action(status=404), ("internal",))]
        for n, t in enumerate(srv.targets):
            routes += _target_routes(t, f"s{k}m{n}", srv, maps, upstreams)
        cert = cert_name(*srv.cert) if srv.cert and cert_name(*srv.cert) in certs else None
        servers.append(Server(port=srv.port, hostnames=server_host(srv.host), tls_cert=cert, routes=tuple(routes)))
    for port, _ in prog.ports:                  # a listener without routes still listens (404)
        if not any(s.port == port for s in servers):
            cert = cert_name(*prog.port_certs[port]) if port in prog.port_certs else None
            servers.append(Server(port=port, tls_cert=cert if cert in certs else None))
    if any(ERROR_ADDRESS == a for u in upstreams for a, _ in u.servers):
        servers.append(Server(port=ERROR_PORT, fallback=Action(status=500)))
    return ProxyConfig(servers=tuple(servers), upstreams=tuple(upstreams), certs=certs,
                       tls_ports=tuple(p for p, protocol in prog.ports if protocol == "HTTPS"),
                       http_snippets=tuple(maps))
