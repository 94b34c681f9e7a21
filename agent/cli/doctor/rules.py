"""A Service's kube-proxy rules as read back from a node's iptables-save,
checked (`check_node`, for doctor) and annotated in Kubernetes terms
(`explain`, for `nsplane explain svc/NAME`). Pure: the input is
`dataplane.iptables.parse_rules` output, {table: {chain: ["-A ..." lines]}}.

A rule belongs to Service ns/name when its comment names it ("ns/name",
"ns/name:port ...", kube-proxy's service port name); the per-Service chains
it jumps to (KUBE-SVC-/SVL-/EXT-/FW-/SEP-) belong to it too, so endpoint
chains without comments (more than 1,000 endpoints) are still found.
"""
from __future__ import annotations

import ipaddress
import shlex

from dataplane.chains import is_service_chain

ROLES = {
    "KUBE-SERVICES": "entry point for every Service: nat PREROUTING and OUTPUT jump here; one rule per "
                     "cluster IP (and external/LB IP) and port sends the connection to the Service's chain",
    "KUBE-NODEPORTS": "reached from the last rule of KUBE-SERVICES for packets addressed to this node: "
                      "one rule per nodePort",
    "KUBE-EXTERNAL-SERVICES": "filter: rejects or drops external traffic to a Service without usable endpoints",
    "KUBE-POSTROUTING": "masquerades (SNATs) every packet that KUBE-MARK-MASQ marked with 0x4000",
    "KUBE-MARK-MASQ": "sets mark 0x4000: this connection is SNATed to the node's address on the way out",
    "KUBE-PROXY-FIREWALL": "filter: drops what loadBalancerSourceRanges do not allow",
    "KUBE-SVC-": "the Service port's cluster-wide endpoints (internalTrafficPolicy Cluster): picks one "
                 "endpoint at random, rule i with probability 1/(n-i)",
    "KUBE-SVL-": "the Service port's endpoints on this node only (trafficPolicy Local)",
    "KUBE-EXT-": "external traffic (nodePort, LB or external IP): masquerades when "
                 "externalTrafficPolicy is Cluster, then goes to the endpoints",
    "KUBE-FW-": "load-balancer traffic filtered by loadBalancerSourceRanges",
    "KUBE-SEP-": "one endpoint: marks hairpin traffic (the pod reaching itself) for masquerade, then DNATs "
                 "to the pod's IP:port",
}


def in_cidr(ip: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


FILTER_ROLES = {
    "KUBE-SERVICES": "filter: rejects connections to the cluster IP of a Service without endpoints "
                     "(\"has no endpoints\")",
    "KUBE-NODEPORTS": "filter: accepts the Service's healthCheckNodePort (externalTrafficPolicy Local) on this node",
}


def role(chain: str, table: str = "nat") -> str:
    if table == "filter" and chain in FILTER_ROLES:
        return FILTER_ROLES[chain]
    if chain in ROLES:
        return ROLES[chain]
    for prefix, text in ROLES.items():
        if prefix.endswith("-") and chain.startswith(prefix):
            return text
    return ""


def _args(rule: str) -> list[str]:
    try:
        return shlex.split(rule)
    except ValueError:
        return rule.split()


def opt(rule: str, flag: str) -> str | None:
    a = _args(rule)
    return a[a.index(flag) + 1] if flag in a and a.index(flag) + 1 < len(a) else None


def _names(rule: str, ns: str, name: str) -> bool:
    comment = opt(rule, "--comment") or ""
    head = comment.split(" ", 1)[0]
    return head == f"{ns}/{name}" or head.startswith(f"{ns}/{name}:")


def service_rules(tables: dict, ns: str, name: str) -> dict[str, dict[str, list[str]]]:
    """{table: {chain: [its rules of this Service]}}, chains in first-seen order."""
    out: dict[str, dict[str, list[str]]] = {}
    for table, chains in tables.items():
        mine = {c: [r for r in rules if _names(r, ns, name)] for c, rules in chains.items()}
        owned = {c for c, rules in mine.items() if rules and is_service_chain(c)}
        todo = [opt(r, "-j") for rules in mine.values() for r in rules]
        while todo:
            c = todo.pop()
            if c and is_service_chain(c) and c not in owned and c in chains:
                owned.add(c)
                todo.extend(opt(r, "-j") for r in chains[c])
        for c in owned:
            mine[c] = list(chains[c])
        picked = {c: rules for c, rules in mine.items() if rules}
        if picked:
            out[table] = picked
    return out


def check_node(tables: dict, ns: str, name: str, svc: dict, ready_ips) -> tuple[bool, str]:
    """(ok, evidence) for one node: every port of the Service has its entry
    (nat KUBE-SERVICES -> KUBE-SVC- with the ready endpoints, or, without
    endpoints, filter KUBE-SERVICES REJECT)."""
    spec = svc["spec"]
    ready = set(ready_ips) if not isinstance(ready_ips, int) else None
    n_ready = len(ready) if ready is not None else ready_ips
    if spec.get("clusterIP") in (None, "", "None"):
        return True, "headless Service: no rules (DNS answers with the pods' IPs)"
    mine = service_rules(tables, ns, name)
    nat, flt = mine.get("nat", {}), mine.get("filter", {})
    said = []
    for port in spec.get("ports") or []:
        dport, ip = str(port["port"]), spec["clusterIP"]
        entry = [r for r in nat.get("KUBE-SERVICES", []) if opt(r, "-d") in (ip, f"{ip}/32")
                 and opt(r, "--dport") == dport]
        if n_ready == 0:
            rej = [r for r in flt.get("KUBE-SERVICES", []) if opt(r, "--dport") == dport]
            if not rej:
                return False, f"no rule for {ip}:{dport} (expected a REJECT: the Service has no endpoints)"
            said.append(f"{ip}:{dport} {opt(rej[0], '-j')} (no endpoints)")
            continue
        if not entry:
            return False, f"no KUBE-SERVICES rule for {ip}:{dport}/{port.get('protocol', 'TCP')} in nat"
        chain = opt(entry[0], "-j") or ""
        dests = {(opt(r, "--comment") or "").rpartition("-> ")[2].rpartition(":")[0]
                 for r in nat.get(chain, []) if opt(r, "-j", ) and opt(r, "-j").startswith("KUBE-SEP-")}
        dests.discard("")
        if chain.startswith("KUBE-SVC-") and ready is not None and dests and dests != ready:
            return False, (f"{chain} sends {ip}:{dport} to {sorted(dests)}, the ready endpoints are "
                           f"{sorted(ready)} (stale rules)")
        said.append(f"{ip}:{dport} -> {chain} ({len(dests) or n_ready} endpoint(s))")
        missing = _missing_external(nat, flt, svc, port)
        if missing:
            return False, missing
    return True, ", ".join(said)


def _missing_external(nat: dict, flt: dict, svc: dict, port: dict) -> str:
    """What external rule of `port` is missing: its nodePort in KUBE-NODEPORTS
    (or a DROP/REJECT in KUBE-EXTERNAL-SERVICES), its load-balancer IPs in
    KUBE-SERVICES. "" when none is."""
    dport = str(port["port"])
    if port.get("nodePort"):
        np = str(port["nodePort"])
        if not any(opt(r, "--dport") == np for r in nat.get("KUBE-NODEPORTS", []) + flt.get("KUBE-EXTERNAL-SERVICES", [])):
            return f"no KUBE-NODEPORTS rule for nodePort {np}"
    lbs = [i.get("ip") for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]
    for ip in filter(None, lbs):
        rules = nat.get("KUBE-SERVICES", []) + flt.get("KUBE-EXTERNAL-SERVICES", [])
        if not any(opt(r, "-d") in (ip, f"{ip}/32") and opt(r, "--dport") == dport for r in rules):
            return f"no KUBE-SERVICES rule for load-balancer IP {ip}:{dport}"
    return ""


def annotate(rule: str) -> str:
    """What one rule does, in Kubernetes terms."""
    target = opt(rule, "-j") or ""
    comment = opt(rule, "--comment") or ""
    parts = []
    if opt(rule, "-d"):
        parts.append(f"to {opt(rule, '-d').removesuffix('/32')}")
    if opt(rule, "--dport"):
        kind = "nodePort" if opt(rule, "-A") == "KUBE-NODEPORTS" else "port"
        parts.append(f"{kind} {opt(rule, '--dport')}/{(opt(rule, '-p') or '').upper()}")
    if opt(rule, "-s"):
        parts.append(f"from {opt(rule, '-s').removesuffix('/32')}")
    if "!" in _args(rule) and "-s" in _args(rule):
        parts[-1] = "not " + parts[-1] + " (traffic from outside the pod network)"
    if opt(rule, "--probability"):
        parts.append(f"with probability {float(opt(rule, '--probability')):.3f}")
    if opt(rule, "-A") == "KUBE-POSTROUTING":
        return {"RETURN": "not marked 0x4000 for masquerade: the source address stays",
                "MASQUERADE": "masquerade: SNAT to the node's address (the connection was marked 0x4000)",
                "MARK": "clear the masquerade mark"}.get(target, f"go to {target}")
    what = {"KUBE-MARK-MASQ": "mark for masquerade (SNAT to the node)",
            "DNAT": f"DNAT to endpoint {opt(rule, '--to-destination')}",
            "REJECT": "reject: the Service has no endpoints", "DROP": "drop",
            "ACCEPT": "accept", "RETURN": "return"}.get(target)
    if what is None and target.startswith("KUBE-SEP-"):
        what = f"go to endpoint {comment.rpartition('-> ')[2] or target}"
    elif what is None and target:
        what = f"go to {target}"
    elif what is None:
        what = "no target: the packet goes on to the next rule"
    if "--set" in _args(rule) and "recent" in _args(rule):
        what += " (sessionAffinity ClientIP: remember this client)"
    if "--rcheck" in _args(rule):
        what = f"sessionAffinity ClientIP: a client seen in the last {opt(rule, '--seconds')}s goes back to its endpoint"
    label = f"[{comment}] " if comment else ""
    return f"{label}{' '.join(parts)}{': ' if parts else ''}{what or ''}".strip()


ORDER = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES", "KUBE-FW-", "KUBE-EXT-",
         "KUBE-SVC-", "KUBE-SVL-", "KUBE-SEP-", "KUBE-PROXY-FIREWALL", "KUBE-POSTROUTING"]


def rank(chain: str) -> int:
    """Where `chain` comes on a packet's way (entry chains first, the SNAT last)."""
    return next((i for i, p in enumerate(ORDER) if chain == p or (p.endswith("-") and chain.startswith(p))),
                len(ORDER))


def explain(tables: dict, ns: str, name: str) -> list[dict]:
    """The Service's rules grouped by table and chain, each chain with its
    role and each rule with its annotation, entry chains first."""
    out = []
    for table, chains in service_rules(tables, ns, name).items():
        for chain in sorted(chains, key=lambda c: (rank(c), c)):
            out.append({"table": table, "chain": chain, "role": role(chain, table),
                        "rules": [{"rule": r, "meaning": annotate(r)} for r in chains[chain]]})
    return out


def render_explain(groups: list[dict], node: str, ns: str, name: str) -> str:
    if not groups:
        return f"node {node}: no rules for Service {ns}/{name}\n"
    lines = [f"node {node}: the rules of Service {ns}/{name} (iptables-save)"]
    for g in groups:
        lines.append(f"\n-t {g['table']} {g['chain']}")
        if g["role"]:
            lines.append(f"  # {g['role']}")
        for r in g["rules"]:
            lines.append(f"  {r['rule']}")
            lines.append(f"      -> {r['meaning']}")
    lines.append("\nKUBE-POSTROUTING then masquerades the connections marked 0x4000 by KUBE-MARK-MASQ.")
    return "\n".join(lines) + "\n"

