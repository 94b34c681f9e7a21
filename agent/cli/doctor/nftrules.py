"""A Service's kube-proxy rules in nftables mode, as read back from a node's
`table ip kube-proxy` (`dataplane.nft.listing`): checked (`check_node`, the
doctor's node-rules step) and listed with what each does (`explain`).

The Service's entries are map elements: its cluster IP, external and
load-balancer IPs in `service-ips` (or, without endpoints, in
`no-endpoint-services`), its nodePorts in `service-nodeports` (or
`no-endpoint-nodeports`), source-ranged LB IPs in `firewall-ips`; its
chains are the ones those elements lead to (`service-`, `local-`,
`external-`, `firewall-`, and through `numgen random mod N vmap` the
`endpoint-` chains with their DNAT). Pure.
"""
from __future__ import annotations

import re

from dataplane.nft.ruleset import NftRuleset
from dataplane.nft.trace import element

_TARGETS = re.compile(r"(?:goto|jump) ([^\s,}]+)")
_DNAT = re.compile(r"dnat to (\S+)")


def chains_from(rs: NftRuleset, verdict: str) -> list[str]:
    """The Service and endpoint chains (names with a "/") a verdict leads to, in walk order."""
    out, todo = [], [t for t in _TARGETS.findall(verdict)]
    while todo:
        c = todo.pop(0)
        if "/" in c and c not in out and c in rs.chains:
            out.append(c)
            todo += [t for rule in rs.chains[c] for t in _TARGETS.findall(rule)]
    return out


def dnat_targets(rs: NftRuleset, chains: list[str]) -> set[str]:
    return {m.group(1) for c in chains for rule in rs.chains[c] for m in [_DNAT.search(rule)] if m}


def _lb_ips(svc: dict) -> list[str]:
    return [i["ip"] for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [] if i.get("ip")]


def check_node(rs: NftRuleset, svc: dict, ready_ips) -> tuple[bool, str]:
    """(ok, evidence) for one node in nftables mode: every port's cluster IP
    is in @service-ips with the ready endpoints behind it (or, without
    endpoints, in @no-endpoint-services), its nodePort in
    @service-nodeports / @no-endpoint-nodeports, its LB IPs in either map."""
    spec = svc["spec"]
    ready = set(ready_ips) if not isinstance(ready_ips, int) else None
    n_ready = len(ready) if ready is not None else ready_ips
    if spec.get("clusterIP") in (None, "", "None"):
        return True, "headless Service: no rules (DNS answers with the pods' IPs)"
    said = []
    for port in spec.get("ports") or []:
        ip, proto = spec["clusterIP"], port.get("protocol", "TCP").lower()
        key = f"{ip} . {proto} . {port['port']}"
        if n_ready == 0:
            stop = element(rs, "no-endpoint-services", key)
            if stop is None:
                return False, (f"no element {key} in map no-endpoint-services (nftables; expected a reject: the "
                               f"Service has no endpoints)")
            said.append(f"{key} in @no-endpoint-services: {stop} (no endpoints)")
            continue
        to = element(rs, "service-ips", key)
        if to is None:
            return False, f"no element {key} in map service-ips (nftables)"
        chains = chains_from(rs, to)
        dests = {d.rpartition(":")[0] for d in dnat_targets(rs, chains)}
        if ready is not None and dests and dests != ready:
            return False, (f"{to.split()[-1]} sends {ip}:{port['port']} to {sorted(dests)}, the ready endpoints "
                           f"are {sorted(ready)} (stale rules)")
        said.append(f"{key} in @service-ips: {to} ({len(dests) or n_ready} endpoint(s))")
        missing = _missing_external(rs, svc, port, proto)
        if missing:
            return False, missing
    return True, ", ".join(said)


def _missing_external(rs: NftRuleset, svc: dict, port: dict, proto: str) -> str:
    if port.get("nodePort"):
        key = f"{proto} . {port['nodePort']}"
        if element(rs, "service-nodeports", key) is None and element(rs, "no-endpoint-nodeports", key) is None:
            return f"no element {key} in map service-nodeports (nftables) for nodePort {port['nodePort']}"
    for ip in _lb_ips(svc):
        key = f"{ip} . {proto} . {port['port']}"
        if element(rs, "service-ips", key) is None and element(rs, "no-endpoint-services", key) is None:
            return f"no element {key} in map service-ips (nftables) for load-balancer IP {ip}"
    return ""


ROLES = {
    "service-": "the Service port's cluster-wide endpoints: numgen random mod N vmap picks one at random",
    "local-": "the Service port's endpoints on this node only (trafficPolicy Local)",
    "external-": "external traffic (nodePort, LB or external IP): masquerades when externalTrafficPolicy is "
                 "Cluster, then goes to the endpoints",
    "firewall-": "load-balancer traffic filtered by loadBalancerSourceRanges",
    "endpoint-": "one endpoint: marks hairpin traffic for masquerade, then DNATs to the pod's IP:port",
}


def explain(rs: NftRuleset, svc: dict) -> list[dict]:
    """The Service's map elements and chains: [{"table", "chain", "role", "rules": [{"rule", "meaning"}]}]."""
    spec, out, seen = svc["spec"], [], []
    keys = []
    for port in spec.get("ports") or []:
        proto = port.get("protocol", "TCP").lower()
        ips = [spec.get("clusterIP"), *(spec.get("externalIPs") or []), *_lb_ips(svc)]
        keys += [("ip-map", f"{ip} . {proto} . {port['port']}") for ip in ips if ip and ip != "None"]
        if port.get("nodePort"):
            keys.append(("port-map", f"{proto} . {port['nodePort']}"))
    for name in ("service-ips", "service-nodeports", "firewall-ips", "no-endpoint-services", "no-endpoint-nodeports"):
        rows = []
        for kind, key in keys:
            if (kind == "port-map") != name.endswith("nodeports"):
                continue
            value = element(rs, name, key)
            if value is not None:
                rows.append({"rule": f"{key} : {value}", "meaning": f"{key} -> {value}"})
                seen += [c for c in chains_from(rs, value) if c not in seen]
        if rows:
            out.append({"table": "ip kube-proxy", "chain": f"map {name}", "role": "", "rules": rows})
    for c in seen:
        role = next((text for prefix, text in ROLES.items() if c.startswith(prefix)), "")
        out.append({"table": "ip kube-proxy", "chain": c, "role": role,
                    "rules": [{"rule": r, "meaning": ""} for r in rs.chains[c]]})
    return out


def render_explain(groups: list[dict], node: str, ns: str, name: str) -> str:
    if not groups:
        return f"node {node}: no rules for Service {ns}/{name} in table ip kube-proxy (nftables mode)\n"
    lines = [f"node {node}: the rules of Service {ns}/{name} (nftables mode: nft list table ip kube-proxy)"]
    for g in groups:
        lines.append(f"\n{g['chain']}" if g["chain"].startswith("map ") else f"\nchain {g['chain']}")
        if g["role"]:
            lines.append(f"  # {g['role']}")
        lines += [f"  {r['rule']}" for r in g["rules"]]
    lines.append("\nnat-postrouting -> masquerading then masquerades what mark-for-masquerade marked.")
    return "\n".join(lines) + "\n"
