"""kubectl's columns and cells for Ingress and IngressClass (kube-apiserver's
printIngress, printIngressClass: pkg/printers/internalversion).

Registered into agent/api/printers.py's tables (`COLUMNS`, `ROWS`).
"""
from __future__ import annotations

from agent.api import durations as p

COLUMNS = {
    "Ingress": (["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"], []),
    "IngressClass": (["NAME", "CONTROLLER", "PARAMETERS", "AGE"], []),
}


def format_hosts(rules: list) -> str:
    """formatHosts: at most 3 hosts, then "+ N more..."; "*" when none."""
    hosts, more = [], False
    for rule in rules:
        if len(hosts) == 3:
            more = True
        if not more and (rule or {}).get("host"):
            hosts.append(rule["host"])
    if not hosts:
        return "*"
    text = ",".join(hosts)
    return f"{text} + {len(rules) - 3} more..." if more else text


def load_balancer_address(status: dict, wide: bool) -> str:
    """ingressLoadBalancerStatusStringer: ips and hostnames, cut to 16 columns unless wide."""
    ingress = ((status or {}).get("loadBalancer") or {}).get("ingress") or []
    text = ",".join(v for i in ingress for v in (i.get("ip"), i.get("hostname")) if v)
    return text[:13] + "..." if not wide and len(text) > 16 else text


def _ingress(ing: dict, wide: bool, now) -> list[str]:
    md, spec = ing.get("metadata") or {}, ing.get("spec") or {}
    return [md.get("name", ""), spec.get("ingressClassName") or "<none>", format_hosts(spec.get("rules") or []),
            load_balancer_address(ing.get("status") or {}, wide), "80, 443" if spec.get("tls") else "80",
            p.since(md.get("creationTimestamp"), now)]


def _ingress_class(ic: dict, wide: bool, now) -> list[str]:
    md, spec = ic.get("metadata") or {}, ic.get("spec") or {}
    params = spec.get("parameters")
    text = "<none>"
    if params:
        text = params.get("kind", "") + (f".{params['apiGroup']}" if params.get("apiGroup") is not None else "") \
            + "/" + params.get("name", "")
    return [md.get("name", ""), spec.get("controller", ""), text, p.since(md.get("creationTimestamp"), now)]


ROWS = {"Ingress": _ingress, "IngressClass": _ingress_class}
