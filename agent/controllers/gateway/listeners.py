"""A Gateway's listeners judged as the Gateway API spec says: protocol
(HTTP and HTTPS here; TLS passthrough, TCP and UDP are UnsupportedProtocol),
conflicts between listeners sharing a port (ProtocolConflict,
HostnameConflict), HTTPS certificate references (kubernetes.io/tls Secrets,
ReferenceGrant across namespaces: InvalidCertificateRef, RefNotPermitted),
allowedRoutes kinds (InvalidRouteKinds) — and from them the listener
conditions and the Gateway's own Accepted and Programmed.

Pure: Secrets, grants and the certificate check are handed in."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.controllers.gateway import grants as refgrants
from agent.controllers.gateway.conditions import GROUP, cond
from agent.controllers.proxy.nginx import HEALTH_PORT

SUPPORTED_PROTOCOLS = ("HTTP", "HTTPS")
ERROR_PORT = 10256                    # the proxy answers 500 here for a backendRef that did not resolve
RESERVED_PORTS = {HEALTH_PORT: "the proxy's health checks", ERROR_PORT: "the proxy's answer for unresolved backends"}
ROUTE_KINDS = ({"group": GROUP, "kind": "HTTPRoute"},)


@dataclass
class Listener:
    name: str
    port: int
    protocol: str
    hostname: str
    allowed: dict
    supported_kinds: list[dict]
    conditions: list[dict] = field(default_factory=list)
    usable: bool = False                  # rendered into the proxy's configuration
    cert: tuple[str, str] | None = None   # (namespace, name) of the Secret serving it
    attached: int = 0


def _conflicts(specs: list[dict]) -> dict[str, str]:
    """Listener name -> HostnameConflict / ProtocolConflict."""
    out: dict[str, str] = {}
    protocols: dict[int, set] = {}
    for s in specs:
        protocols.setdefault(s.get("port"), set()).add(s.get("protocol"))
    seen = Counter((s.get("port"), s.get("protocol"), (s.get("hostname") or "").lower()) for s in specs)
    for s in specs:
        if len(protocols[s.get("port")]) > 1:
            out[s["name"]] = "ProtocolConflict"
        elif seen[(s.get("port"), s.get("protocol"), (s.get("hostname") or "").lower())] > 1:
            out[s["name"]] = "HostnameConflict"
    return out


def _kinds(spec: dict) -> tuple[list[dict], list[str]]:
    """(supportedKinds, the kinds asked for that we cannot serve)."""
    asked = (spec.get("allowedRoutes") or {}).get("kinds")
    if not asked:
        return [dict(k) for k in ROUTE_KINDS], []
    ok, bad = [], []
    for k in asked:
        g = k.get("group", GROUP)
        if g == GROUP and k.get("kind") == "HTTPRoute":
            if {"group": g, "kind": "HTTPRoute"} not in ok:
                ok.append({"group": g, "kind": "HTTPRoute"})
        else:
            bad.append(f"{g or 'core'}/{k.get('kind')}")
    return ok, bad


def _certificate(gw: dict, spec: dict, secret_of: Callable, grants: list[dict],
                 cert_error: Callable) -> tuple[tuple | None, str, str]:
    """((namespace, name) | None, reason, message) for an HTTPS listener."""
    tls = spec.get("tls") or {}
    if tls.get("mode", "Terminate") != "Terminate":
        return None, "UnsupportedProtocol", \
            f"TLS mode {tls.get('mode')} is not supported on an HTTPS listener; use Terminate"
    refs = tls.get("certificateRefs") or []
    if not refs:
        return None, "InvalidCertificateRef", "an HTTPS listener needs tls.certificateRefs"
    ref = refs[0]
    gw_ns = gw["metadata"]["namespace"]
    ns, name = ref.get("namespace") or gw_ns, ref.get("name", "")
    if ref.get("group", "") != "" or ref.get("kind", "Secret") != "Secret":
        return None, "InvalidCertificateRef", \
            f"certificateRef {ref.get('group') or 'core'}/{ref.get('kind')} {name} is not a Secret"
    if not refgrants.permitted(grants, from_group=GROUP, from_kind="Gateway", from_ns=gw_ns,
                               to_group="", to_kind="Secret", to_ns=ns, to_name=name):
        return None, "RefNotPermitted", \
            f"Secret {ns}/{name} is in another namespace and no ReferenceGrant there allows it"
    secret = secret_of(ns, name)
    if secret is None:
        return None, "InvalidCertificateRef", f"Secret {ns}/{name} does not exist"
    if secret.get("type") != "kubernetes.io/tls":
        return None, "InvalidCertificateRef", \
            f"Secret {ns}/{name} is of type {secret.get('type') or 'Opaque'}, not kubernetes.io/tls"
    problem = cert_error(secret)
    if problem:
        return None, "InvalidCertificateRef", f"Secret {ns}/{name}: {problem}"
    return (ns, name), "ResolvedRefs", "Resolved all references"


def judge(gw: dict, secret_of: Callable, grants: list[dict], cert_error: Callable) -> list[Listener]:
    """Every listener of `gw` with its conditions (Programmed assumes the
    proxy runs; `gateway_conditions` lowers it while it has no address)."""
    specs = (gw.get("spec") or {}).get("listeners") or []
    conflicts = _conflicts(specs)
    out = []
    for s in specs:
        kinds, bad_kinds = _kinds(s)
        lst = Listener(s["name"], s.get("port"), s.get("protocol", ""), (s.get("hostname") or "").lower(),
                       s.get("allowedRoutes") or {}, kinds)
        conds = []
        if lst.protocol not in SUPPORTED_PROTOCOLS:
            accepted = cond("Accepted", False, "UnsupportedProtocol",
                            f"protocol {lst.protocol} is not supported; nsplane serves HTTP and HTTPS")
        elif lst.port in RESERVED_PORTS:
            accepted = cond("Accepted", False, "PortUnavailable",
                            f"port {lst.port} is used by {RESERVED_PORTS[lst.port]}; choose another port")
        elif s["name"] in conflicts:
            accepted = cond("Accepted", False, conflicts[s["name"]], "the listener conflicts with another listener")
        else:
            accepted = cond("Accepted", True, "Accepted", "Listener accepted")
        conds.append(accepted)
        reason = conflicts.get(s["name"])
        conds.append(cond("Conflicted", bool(reason), reason or "NoConflicts",
                          {"ProtocolConflict": f"another listener on port {lst.port} has a different protocol",
                           "HostnameConflict": f"another listener on port {lst.port} has the same hostname"}
                          .get(reason, "No conflicts")))
        refs_ok, refs = True, cond("ResolvedRefs", True, "ResolvedRefs", "Resolved all references")
        if bad_kinds:
            refs_ok, refs = False, cond("ResolvedRefs", False, "InvalidRouteKinds",
                                        f"route kinds not supported: {', '.join(bad_kinds)}")
        if lst.protocol == "HTTPS" and accepted["status"] == "True":
            lst.cert, why, msg = _certificate(gw, s, secret_of, grants, cert_error)
            if lst.cert is None:
                if why == "UnsupportedProtocol":
                    accepted = conds[0] = cond("Accepted", False, why, msg)
                else:
                    refs_ok, refs = False, cond("ResolvedRefs", False, why, msg)
        conds.append(refs)
        lst.usable = accepted["status"] == "True" and refs_ok and (lst.protocol != "HTTPS" or bool(lst.cert))
        conds.append(cond("Programmed", True, "Programmed", "Listener programmed") if lst.usable
                     else cond("Programmed", False, "Invalid", "the listener is invalid; see its other conditions"))
        lst.conditions = conds
        out.append(lst)
    return out


def requested_address(gw: dict) -> tuple[str | None, dict | None]:
    """(the IP the Gateway asks for in spec.addresses, or None; the Accepted
    condition refusing what cannot be served: other address types, or more
    than one address, since a proxy has one LoadBalancer address)."""
    wanted = (gw.get("spec") or {}).get("addresses") or []
    bad = [a for a in wanted if a.get("type", "IPAddress") != "IPAddress"]
    if bad:
        return None, cond("Accepted", False, "UnsupportedAddress",
                          f"address type {bad[0].get('type')} is not supported; use IPAddress")
    if len(wanted) > 1:
        return None, cond("Accepted", False, "UnsupportedAddress",
                          "a Gateway here has one address (its proxy's LoadBalancer IP); list at most one")
    return (wanted[0].get("value") if wanted else None), None


def _pending(listeners: list[Listener], why: str) -> None:
    """Usable listeners wait too: their Programmed becomes False (Pending)."""
    for lst in listeners:
        if lst.usable:
            lst.conditions[-1] = cond("Programmed", False, "Pending", why)


def gateway_conditions(listeners: list[Listener], address: str | None, refused: dict | None = None,
                       unusable: str | None = None, ready: bool = True, rejected: str | None = None) -> list[dict]:
    """The Gateway's Accepted and Programmed. A proxy without an address yet
    leaves every listener's Programmed False (Pending) and the Gateway's
    False (AddressNotAssigned); a requested address that cannot be had
    (`unusable`, why) is AddressNotUsable; `refused` replaces Accepted; a
    proxy with no ready pod yet (`ready` False) is Pending, so `kubectl
    wait --for=condition=Programmed` returns when requests are answered; a
    configuration nginx -t refuses (`rejected`, nginx's message) is Invalid,
    on the Gateway and its usable listeners, while the proxy keeps serving
    the previous one."""
    if refused:
        for lst in listeners:
            lst.usable = False
            lst.conditions[-1] = cond("Programmed", False, "Invalid", "the Gateway is not accepted")
        return [refused, cond("Programmed", False, "Invalid", "the Gateway is not accepted")]
    valid = [lst for lst in listeners if lst.conditions[0]["status"] == "True"]
    if len(valid) == len(listeners):
        accepted = cond("Accepted", True, "Accepted", "Gateway accepted")
    else:
        accepted = cond("Accepted", bool(valid), "ListenersNotValid",
                        f"{len(listeners) - len(valid)} of {len(listeners)} listeners are not valid: "
                        + ", ".join(lst.name for lst in listeners if lst not in valid))
    if unusable:
        _pending(listeners, "waiting for the Gateway's address")
        programmed = cond("Programmed", False, "AddressNotUsable", unusable)
    elif not address:
        _pending(listeners, "waiting for the proxy's address")
        programmed = cond("Programmed", False, "AddressNotAssigned",
                          "the Gateway's proxy has no LoadBalancer address yet")
    elif not any(lst.usable for lst in listeners):
        programmed = cond("Programmed", False, "Invalid", "no listener can be programmed")
    elif rejected:
        why = f"nginx -t refused the new configuration, the proxy at {address} keeps serving the previous one: " \
              + rejected
        for lst in listeners:
            if lst.usable:
                lst.conditions[-1] = cond("Programmed", False, "Invalid", why)
        programmed = cond("Programmed", False, "Invalid", why)
    elif not ready:
        _pending(listeners, "waiting for the proxy's pods")
        programmed = cond("Programmed", False, "Pending", f"the proxy at {address} has no ready pod yet")
    else:
        programmed = cond("Programmed", True, "Programmed", f"Programmed on the proxy at {address}")
    return [accepted, programmed]
