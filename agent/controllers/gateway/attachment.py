"""Which listeners an HTTPRoute attaches to, and its `status.parents[]`
entry for each of our Gateways it names: a parentRef selects listeners by
`sectionName` and `port` (none: `NoMatchingParent`), the listener's
allowedRoutes must admit the route's namespace (Same, All, Selector) and
kind (none: `NotAllowedByListeners`), and the hostnames must intersect
(none: `NoMatchingListenerHostname`). A route that attaches is `Accepted`
unless every rule is invalid; `ResolvedRefs` reports its backends.

Pure: namespaces' labels and the judged listeners are handed in."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent.api import selectors
from agent.controllers.gateway import hostnames as hn
from agent.controllers.gateway.conditions import CONTROLLER_NAME, GROUP, cond
from agent.controllers.gateway.listeners import Listener


@dataclass
class Attachment:
    """A route on one listener of one Gateway, serving these host names."""
    gateway: tuple[str, str]
    listener: Listener
    hosts: list[str]


def parent_key(route_ns: str, ref: dict) -> tuple[str, str] | None:
    """(namespace, name) of the Gateway a parentRef names; None for other kinds."""
    if ref.get("group", GROUP) != GROUP or ref.get("kind", "Gateway") != "Gateway":
        return None
    return (ref.get("namespace") or route_ns, ref.get("name", ""))


def allows(lst: Listener, gw_ns: str, route_ns: str, ns_labels: Callable[[str], dict | None]) -> bool:
    """Does the listener's allowedRoutes admit an HTTPRoute from `route_ns`?"""
    if not any(k["kind"] == "HTTPRoute" for k in lst.supported_kinds):
        return False
    nss = lst.allowed.get("namespaces") or {}
    frm = nss.get("from", "Same")
    if frm == "All":
        return True
    if frm == "Same":
        return route_ns == gw_ns
    if frm == "Selector":
        try:
            sel = selectors.from_label_selector(nss.get("selector"))
        except ValueError:
            return False
        labels = ns_labels(route_ns)
        return labels is not None and sel.matches(labels)
    return False


def attach(route: dict, ref: dict, gw: dict, listeners: list[Listener],
           ns_labels: Callable[[str], dict | None]) -> tuple[list[Attachment], dict]:
    """(the attachments, the Accepted condition) for one parentRef."""
    route_ns = route["metadata"]["namespace"]
    gw_ns, gw_name = gw["metadata"]["namespace"], gw["metadata"]["name"]
    section, port = ref.get("sectionName"), ref.get("port")
    chosen = [lst for lst in listeners
              if (section is None or lst.name == section) and (port is None or lst.port == port)]
    if not chosen:
        what = " and ".join(x for x in (f"sectionName {section}" if section else "",
                                        f"port {port}" if port is not None else "") if x)
        return [], cond("Accepted", False, "NoMatchingParent",
                        f"Gateway {gw_ns}/{gw_name} has no listener with {what}")
    allowed = [lst for lst in chosen if allows(lst, gw_ns, route_ns, ns_labels)]
    if not allowed:
        return [], cond("Accepted", False, "NotAllowedByListeners",
                        f"no listener of Gateway {gw_ns}/{gw_name} allows HTTPRoutes from namespace {route_ns}")
    out = []
    for lst in allowed:
        hosts = hn.route_hostnames(lst.hostname, (route.get("spec") or {}).get("hostnames"))
        if hosts:
            out.append(Attachment((gw_ns, gw_name), lst, hosts))
    if not out:
        return [], cond("Accepted", False, "NoMatchingListenerHostname",
                        "no hostname of the route matches a listener's hostname")
    return out, cond("Accepted", True, "Accepted", "Route accepted")


def parent_status(ref: dict, conditions: list[dict]) -> dict:
    """A `status.parents[]` entry as we write it (the parentRef as given,
    with the schema's defaults)."""
    pref = {"group": ref.get("group", GROUP), "kind": ref.get("kind", "Gateway"), **ref}
    return {"parentRef": pref, "controllerName": CONTROLLER_NAME, "conditions": conditions}
