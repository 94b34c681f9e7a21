"""Ingresses -> the proxy's configuration (agent/controllers/proxy/model.py):
a pure function of the Ingresses this controller owns, the Services and the
TLS certificates, plus the problems to report as Events.

Routing, as Kubernetes defines it and ingress-nginx does it:
- Host: exact, or `*.suffix` matching exactly one more label (the renderer's
  job); rules without a host go to each port's default server. Ingresses
  naming the same host are merged; for the same path and pathType the
  oldest Ingress wins (creationTimestamp, then namespace/name).
- Paths: Exact before Prefix, the longest Prefix first, Prefix on whole
  path elements (/foo matches /foo and /foo/bar, not /foobar);
  ImplementationSpecific is nginx's plain string prefix, as in ingress-nginx.
- A request matching no path of its host goes to the defaultBackend of the
  oldest Ingress with a rule for that host that has one, else to the oldest
  Ingress's defaultBackend, else 404; unknown hosts get the latter two.
- Backends are the Service's ClusterIP and port (a port name resolved through
  the Service's ports): kube-proxy picks the endpoint, so pod churn needs no
  reload and readiness is kube-proxy's. A missing Service, port, ClusterIP
  (headless, ExternalName) or a resource backend answers 503.
- TLS: a host listed in spec.tls gets its Secret's certificate by SNI
  (`certs` says which Secrets are usable); otherwise, or when the Secret is
  missing, the default certificate. Plain HTTP to a TLS host is redirected
  (308) to HTTPS unless `nginx.ingress.kubernetes.io/ssl-redirect: "false"`.
"""
from __future__ import annotations

from dataclasses import dataclass

from agent.controllers.proxy.model import Action, ProxyConfig, Route, Server, Upstream

HTTP_PORT, HTTPS_PORT = 80, 443
SSL_REDIRECT = "nginx.ingress.kubernetes.io/ssl-redirect"
_ORDER = {"Exact": 0, "Prefix": 1, "ImplementationSpecific": 2}
_MATCH = {"Exact": "exact", "Prefix": "prefix", "ImplementationSpecific": "string"}
NOT_FOUND = Action(status=404)
UNAVAILABLE = Action(status=503)


@dataclass(frozen=True)
class Problem:
    namespace: str
    name: str                 # the Ingress
    reason: str
    message: str


def age_key(obj: dict) -> tuple:
    md = obj["metadata"]
    return md.get("creationTimestamp") or "", md.get("namespace", ""), md["name"]


def cert_name(namespace: str, secret: str) -> str:
    return f"{namespace}_{secret}"


def build(ingresses: list[dict], services: dict, certs: dict) -> tuple[ProxyConfig, list[Problem]]:
    """`services`: (namespace, name) -> Service; `certs`: (namespace, secret) ->
    PEM (certificate + key) of each TLS Secret the Ingresses name that exists,
    or None when it holds no usable certificate and key."""
    ings = sorted(ingresses, key=age_key)
    problems: list[Problem] = []
    upstreams: dict[str, Upstream] = {}

    def action(ing: dict, backend: dict | None) -> Action:
        return _backend_action(ing, backend or {}, services, upstreams, problems)

    global_default = next((action(i, i["spec"]["defaultBackend"]) for i in ings
                           if (i.get("spec") or {}).get("defaultBackend")), NOT_FOUND)
    hosts: dict[str, list[tuple[dict, dict]]] = {}
    for ing in ings:
        for rule in (ing.get("spec") or {}).get("rules") or []:
            hosts.setdefault(rule.get("host") or "", []).append((ing, rule))
    tls, redirect, used_certs = _tls(ings, certs, problems)
    servers: list[Server] = []
    for host in sorted(hosts):
        entries = hosts[host]
        paths, owners = [], {}
        for n, (ing, rule) in enumerate(entries):
            for m, p in enumerate(((rule.get("http") or {}).get("paths")) or []):
                ptype = p.get("pathType", "ImplementationSpecific")
                path = p.get("path") or "/"
                first = owners.setdefault((ptype, path), ing)
                if first is not ing:
                    problems.append(_conflict(ing, first, host, ptype, path))
                    continue
                paths.append(((_ORDER.get(ptype, 2), -len(path), n, m), ptype, path, ing, p.get("backend")))
        routes = tuple(Route(_MATCH.get(ptype, "string"), path, action(ing, backend))
                       for _, ptype, path, ing, backend in sorted(paths, key=lambda t: t[0]))
        fallback = next((action(ing, ing["spec"]["defaultBackend"]) for ing, _ in entries
                         if ing["spec"].get("defaultBackend")), global_default)
        names = (host,) if host else ()
        if host:
            cert = tls.get(host) or _wildcard_cert(host, tls)
        else:
            cert = None
        https = Server(HTTPS_PORT, names, cert, routes, fallback)
        if host and host in redirect:
            http = Server(HTTP_PORT, names, None, (), Action(status=308, location="https://$host$request_uri"))
        else:
            http = Server(HTTP_PORT, names, None, routes, fallback)
        servers += [http, https]
    if "" not in hosts:
        servers += [Server(HTTP_PORT, (), None, (), global_default), Server(HTTPS_PORT, (), None, (), global_default)]
    config = ProxyConfig(servers=tuple(servers), upstreams=tuple(upstreams[k] for k in sorted(upstreams)),
                         certs={cert_name(*k): certs[k] for k in sorted(used_certs)}, tls_ports=(HTTPS_PORT,))
    return config, problems


def _conflict(ing: dict, first: dict, host: str, ptype: str, path: str) -> Problem:
    md, fmd = ing["metadata"], first["metadata"]
    return Problem(md.get("namespace", ""), md["name"], "Conflict",
                   f'{ptype} path "{path}" of host "{host or "*"}" is already defined by Ingress '
                   f'{fmd.get("namespace", "")}/{fmd["name"]} (the oldest wins); this one is ignored')


def _wildcard_cert(host: str, tls: dict) -> str | None:
    parts = host.split(".", 1)
    return tls.get("*." + parts[1]) if len(parts) == 2 else None


def _tls(ings: list[dict], certs: dict, problems: list) -> tuple[dict, set, set]:
    """host -> certificate name, the hosts to redirect to HTTPS, the Secrets used."""
    hosts: dict[str, str] = {}
    redirect: set[str] = set()
    used: set = set()
    for ing in ings:
        md = ing["metadata"]
        ns = md.get("namespace", "")
        no_redirect = (md.get("annotations") or {}).get(SSL_REDIRECT) == "false"
        for entry in (ing.get("spec") or {}).get("tls") or []:
            secret = entry.get("secretName") or ""
            key = (ns, secret)
            if secret and key not in certs:
                problems.append(Problem(ns, md["name"], "SecretNotFound",
                                        f'Error getting SSL certificate "{ns}/{secret}": local SSL certificate '
                                        f"{ns}/{secret} was not found. Using default certificate"))
            elif secret and certs[key] is None:
                problems.append(Problem(ns, md["name"], "InvalidCertificate",
                                        f'Error getting SSL certificate "{ns}/{secret}": its tls.crt and tls.key '
                                        "are not a certificate and matching private key in PEM. Using default "
                                        "certificate"))
            for host in entry.get("hosts") or []:
                if not no_redirect:
                    redirect.add(host)
                if secret and certs.get(key) and host not in hosts:
                    hosts[host] = cert_name(*key)
                    used.add(key)
    return hosts, redirect, used


def _backend_action(ing: dict, backend: dict, services: dict, upstreams: dict, problems: list) -> Action:
    ns, name = ing["metadata"].get("namespace", ""), ing["metadata"]["name"]
    svc_ref = backend.get("service")
    if not svc_ref:
        problems.append(Problem(ns, name, "UnsupportedBackend",
                                "resource backends are not supported by the nsplane ingress controller; "
                                "requests to it are answered 503"))
        return UNAVAILABLE
    sname, port = svc_ref.get("name", ""), svc_ref.get("port") or {}
    svc = services.get((ns, sname))
    if svc is None:
        problems.append(Problem(ns, name, "ServiceNotFound",
                                f'Error obtaining Service "{ns}/{sname}": no object matching key "{ns}/{sname}" '
                                "in local store"))
        return UNAVAILABLE
    spec = svc.get("spec") or {}
    ports = spec.get("ports") or []
    want = port.get("name") or port.get("number")
    found = next((p for p in ports if (p.get("name") if port.get("name") else p.get("port")) == want), None)
    if found is None:
        which = f'named "{want}"' if port.get("name") else str(want)
        problems.append(Problem(ns, name, "ServicePortNotFound",
                                f'Service "{ns}/{sname}" does not have port {which}; requests to it are answered 503'))
        return UNAVAILABLE
    ip = spec.get("clusterIP")
    if not ip or ip == "None" or spec.get("type") == "ExternalName":
        problems.append(Problem(ns, name, "ServiceNotSupported",
                                f'Service "{ns}/{sname}" has no cluster IP (headless or ExternalName); '
                                "requests to it are answered 503"))
        return UNAVAILABLE
    up = f"{ns}_{sname}_{found['port']}"         # _ is in no DNS name: unique
    upstreams[up] = Upstream(up, ((f"{ip}:{found['port']}", 1),))
    return Action(upstream=up)
