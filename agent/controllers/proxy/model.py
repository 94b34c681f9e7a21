"""What a proxy instance should do, as plain data: the neutral model that the
Ingress controller (and the Gateway API controller) build and `nginx.render`
turns into nginx.conf. Nothing here knows Kubernetes objects or nginx syntax.

- `Upstream`: a named group of `host:port` servers with weights (a Service's
  ClusterIP:port; several for a weighted split).
- `Route`: one location: a path match (`exact`, `prefix` = Kubernetes'
  element-wise prefix, `string` = nginx's plain string prefix, `regex`),
  and what to do: proxy to an upstream, or answer a status (503 for a missing
  backend, a redirect with `location`). `directives` are extra nginx lines
  put inside the location (header changes, rewrites) for callers that need
  more than this model says.
- `Server`: one virtual server on one port: host names (exact, `*.suffix` =
  exactly one more DNS label, as Kubernetes and the Gateway API define the
  wildcard; an empty tuple = the port's default server), TLS certificate
  name or None, the routes, and `fallback`, the action when no route matches.
- `ProxyConfig`: the servers, the upstreams, the certificates (name -> PEM
  with certificate and key) the servers name, and `tls_ports`, the ports
  that speak TLS (as does any port where a server has a certificate);
  `http_snippets`, raw http-level blocks (the Gateway API controller's
  `map`s) for callers whose `directives` need them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

MATCHES = ("exact", "prefix", "string", "regex")


@dataclass(frozen=True)
class Upstream:
    name: str                                   # [a-z0-9_.-]: nginx upstream name, unique
    servers: tuple[tuple[str, int], ...]        # ("10.96.0.20:8080", weight)


@dataclass(frozen=True)
class Action:
    upstream: str = ""                # proxy_pass to this upstream, or...
    status: int = 0                   # ...answer this status
    location: str = ""                # Location header of a redirect status
    body: str = ""                    # text body of a plain status


@dataclass(frozen=True)
class Route:
    match: str                        # one of MATCHES
    path: str
    action: Action
    directives: tuple[str, ...] = ()  # extra nginx lines inside the location


@dataclass(frozen=True)
class Server:
    port: int
    hostnames: tuple[str, ...] = ()   # () = the default server of `port`
    tls_cert: str | None = None       # a key of ProxyConfig.certs, or None for plain HTTP
    routes: tuple[Route, ...] = ()
    fallback: Action = Action(status=404)


@dataclass(frozen=True)
class ProxyConfig:
    servers: tuple[Server, ...] = ()
    upstreams: tuple[Upstream, ...] = ()
    certs: dict[str, str] = field(default_factory=dict)
    tls_ports: tuple[int, ...] = ()
    http_snippets: tuple[str, ...] = ()   # raw http-level directives (maps) a caller's directives use
