"""From the cluster's Gateway API objects to what the controller writes:
GatewayClass, Gateway and HTTPRoute statuses and, per Gateway, the
`Program` the proxy renders (servers by port and host name, each with its
matches in precedence order and their resolved backends and filters).

Pure: a `Snapshot` of plain objects in; `cert_error(secret)` and the
Gateways' proxy addresses are handed in."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from agent.controllers.gateway import attachment, precedence
from agent.controllers.gateway import listeners as lsn
from agent.controllers.gateway.conditions import CONTROLLER_NAME, cond
from agent.controllers.gateway.rules import Backend, Resolver, RuleProblem, check_rule


@dataclass
class Snapshot:
    classes: list[dict] = field(default_factory=list)
    gateways: list[dict] = field(default_factory=list)
    routes: list[dict] = field(default_factory=list)
    services: list[dict] = field(default_factory=list)
    secrets: list[dict] = field(default_factory=list)
    grants: list[dict] = field(default_factory=list)
    namespaces: list[dict] = field(default_factory=list)


@dataclass
class Target:
    """One match of one rule, where its requests go."""
    id: str
    match: dict
    filters: list[dict]
    backends: list[Backend]
    mirrors: list[Backend]
    timeouts: dict


@dataclass
class Server:
    port: int
    protocol: str
    host: str                              # "" = any host name
    cert: tuple[str, str] | None
    targets: list[Target] = field(default_factory=list)


@dataclass
class Program:
    servers: list[Server] = field(default_factory=list)
    ports: list[tuple[int, str]] = field(default_factory=list)         # (port, protocol) of usable listeners
    certs: list[tuple[str, str]] = field(default_factory=list)
    port_certs: dict = field(default_factory=dict)                      # HTTPS port -> a listener's cert
    address: str | None = None                                          # the IP spec.addresses asks for


@dataclass
class Result:
    class_conditions: dict = field(default_factory=dict)               # name -> conditions
    gateway_status: dict = field(default_factory=dict)                 # (ns, name) -> status
    route_parents: dict = field(default_factory=dict)                  # (ns, name) -> our parents[] entries
    programs: dict = field(default_factory=dict)                       # (ns, name) -> Program


def _key(obj: dict) -> tuple[str, str]:
    return (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


def ours(classes: list[dict]) -> set[str]:
    return {c["metadata"]["name"] for c in classes if (c.get("spec") or {}).get("controllerName") == CONTROLLER_NAME}


def build(snap: Snapshot, cert_error: Callable, address_of: Callable[[tuple], str | None],
          unusable: Callable[[tuple], str | None] = lambda k: None,
          ready: Callable[[tuple], bool] = lambda k: True,
          rejected: Callable[[tuple], str | None] = lambda k: None) -> Result:
    """`address_of(key)`: the Gateway proxy's address (None: pending);
    `unusable(key)`: why its requested address cannot be had, if so;
    `ready(key)`: whether its proxy has a ready pod; `rejected(key)`: nginx's
    complaint about the configuration last handed to it, if any."""
    res = Result()
    mine = ours(snap.classes)
    for gc in snap.classes:
        name = gc["metadata"]["name"]
        if name not in mine:
            continue
        if (gc.get("spec") or {}).get("parametersRef"):
            res.class_conditions[name] = [cond("Accepted", False, "InvalidParameters",
                                               "nsplane's GatewayClass takes no parameters; remove parametersRef")]
        else:
            res.class_conditions[name] = [cond("Accepted", True, "Accepted", "GatewayClass is accepted by nsplane")]
    mine = {n for n in mine if res.class_conditions[n][0]["status"] == "True"}
    by_key = {(k, _key(o)): o for k, objs in (("svc", snap.services), ("secret", snap.secrets))
              for o in objs}
    ns_labels = {n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in snap.namespaces}
    gateways = {_key(g): g for g in snap.gateways if (g.get("spec") or {}).get("gatewayClassName") in mine
                and not g["metadata"].get("deletionTimestamp")}
    judged = {k: lsn.judge(g, lambda ns, n: by_key.get(("secret", (ns, n))), snap.grants, cert_error)
              for k, g in gateways.items()}
    servers: dict[tuple, dict] = {k: {} for k in gateways}
    not_accepted = {k: why for k, g in gateways.items() if (why := _not_accepted(g, judged[k]))}
    for route in sorted(snap.routes, key=lambda r: _key(r)):
        _route(route, gateways, judged, servers, snap, ns_labels, by_key, res, not_accepted)
    for k, g in gateways.items():
        listeners = judged[k]
        addr = address_of(k)
        wanted, refused = lsn.requested_address(g)
        gconds = lsn.gateway_conditions(listeners, addr, refused, unusable(k), ready(k), rejected(k))
        res.gateway_status[k] = {
            "addresses": [{"type": "IPAddress", "value": addr}] if addr else [],
            "conditions": gconds,
            "listeners": [{"name": x.name, "supportedKinds": x.supported_kinds, "attachedRoutes": x.attached,
                           "conditions": x.conditions} for x in listeners]}
        if refused:
            continue                                # no proxy for a Gateway that is not accepted
        res.programs[k] = _program(listeners, servers[k])
        res.programs[k].address = wanted
    return res


def _not_accepted(gw: dict, listeners: list) -> str | None:
    """Why the Gateway is not Accepted (as gateway_conditions will say), or None."""
    _, refused = lsn.requested_address(gw)
    if refused:
        return f"{refused['reason']}: {refused['message']}"
    if not any(lst.conditions[0]["status"] == "True" for lst in listeners):
        return "ListenersNotValid: none of its listeners is valid"
    return None


def _route(route, gateways, judged, servers, snap, ns_labels, by_key, res, not_accepted) -> None:
    md = route["metadata"]
    rns = md["namespace"]
    spec = route.get("spec") or {}
    parents = []
    problems: list = []
    resolver = Resolver(rns, lambda ns, n: by_key.get(("svc", (ns, n))), snap.grants, problems)
    rules, dropped = [], []
    for i, rule in enumerate(spec.get("rules") or ()):
        try:
            check_rule(rule, i)
        except RuleProblem as p:
            dropped.append((i, p))
            continue
        rules.append((i, rule, resolver.backends(rule),
                      [resolver.backend(f["requestMirror"]["backendRef"]) for f in rule.get("filters") or ()
                       if f.get("type") == "RequestMirror" and (f.get("requestMirror") or {}).get("backendRef")]))
    refs = cond("ResolvedRefs", True, "ResolvedRefs", "Resolved all references") if not problems else \
        cond("ResolvedRefs", False, problems[0][0], "; ".join(m for _, m in problems))
    for ref in spec.get("parentRefs") or ():
        gk = attachment.parent_key(rns, ref)
        if gk not in gateways:
            continue                     # not a Gateway of ours: another controller's to report
        if gk in not_accepted:           # no listener of a Gateway that is not Accepted takes routes
            parents.append(attachment.parent_status(ref, [
                cond("Accepted", False, "NotAllowedByListeners",
                     f"Gateway {gk[0]}/{gk[1]} is not accepted ({not_accepted[gk]}), so none of its listeners "
                     "allows routes"), refs]))
            continue
        atts, accepted = attachment.attach(route, ref, gateways[gk], judged[gk], ns_labels.get)
        conds = [accepted, refs]
        if atts and not rules:
            p = dropped[0][1]
            conds[0] = cond("Accepted", False, p.reason, "; ".join(d.message for _, d in dropped))
        elif atts and dropped:
            conds.append(cond("PartiallyInvalid", True, "UnsupportedValue",
                              "Dropped Rule(s) " + ", ".join(str(i) for i, _ in dropped) + ": "
                              + "; ".join(d.message for _, d in dropped)))
        parents.append(attachment.parent_status(ref, conds))
        for att in atts:
            att.listener.attached += 1
            if not att.listener.usable or not rules:
                continue
            for host in att.hosts:
                srv = servers[gk].setdefault((att.listener.port, host), [])
                srv.append((route, att.listener, rules))
    res.route_parents[_key(route)] = parents


def _program(listeners: list, servers: dict) -> Program:
    prog = Program()
    by_port = {}
    for x in listeners:
        if x.usable:
            by_port.setdefault(x.port, x)
            if x.cert and x.cert not in prog.certs:
                prog.certs.append(x.cert)
            if x.cert:
                prog.port_certs.setdefault(x.port, x.cert)
    prog.ports = sorted((p, x.protocol) for p, x in by_port.items())
    for (port, host), entries in sorted(servers.items()):
        refs, targets = [], {}
        cert = None
        for route, lst, rules in entries:
            cert = cert or lst.cert
            md = route["metadata"]
            for i, rule, backends, mirrors in rules:
                for j, m in enumerate(rule.get("matches") or [{}]):
                    ref = precedence.MatchRef(md["namespace"], md["name"], md.get("creationTimestamp", ""),
                                              i, j, precedence.default_match(m))
                    if ref in targets:
                        continue
                    refs.append(ref)
                    targets[ref] = (rule, backends, mirrors)
        srv = Server(port, by_port[port].protocol, host, cert)
        for n, ref in enumerate(precedence.ordered(refs)):
            rule, backends, mirrors = targets[ref]
            srv.targets.append(Target(f"m{n}", ref.match, list(rule.get("filters") or ()), backends, mirrors,
                                      dict(rule.get("timeouts") or {})))
        prog.servers.append(srv)
    return prog
