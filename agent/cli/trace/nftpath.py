"""The pure half of `nsplane trace` in kube-proxy's nftables mode.

kube-proxy's `table ip kube-proxy` carries no counters, so which rules a
connection took is not read from the kernel's counters as in iptables mode:
the table is read back from the node (`nft -j list table ip kube-proxy`)
and the connection's first packet is walked through it
(`dataplane.nft.trace.walk`); where `numgen random` chose among endpoints,
the branch is the endpoint the kernel's conntrack entry shows. Each hop is
a rule as `nft list` prints it and what it did to this packet.
"""
from __future__ import annotations

from dataplane.nft.ruleset import NftRuleset
from dataplane.nft.trace import Path, UnknownRule, walk

TABLE = "ip kube-proxy"
NOTE = ("nftables mode: kube-proxy's table has no counters, so the hops are the rules of table ip kube-proxy "
        "(read back from the node) that the connection's first packet takes, walked by nsplane; the numgen "
        "branch is the endpoint of the connection's conntrack entry")


def pick(paths: list[Path], endpoint: str | None) -> tuple[Path | None, str]:
    """The path the connection took (the one ending at `endpoint`, "ip:port"
    from conntrack) and a note when that cannot be told."""
    if not paths:
        return None, ""
    if endpoint:
        for p in paths:
            if p.outcome == endpoint:
                return p, ""
    reached = [p for p in paths if p.outcome not in ("", "REJECT", "DROP")]
    if len(paths) == 1 or not reached:
        return paths[0], ""
    if endpoint:
        return None, (f"the kernel's conntrack entry names {endpoint}, which no rule of table ip kube-proxy "
                      f"leads to (the table changed since?)")
    return reached[0], (f"no conntrack entry: the packet may go to any of {', '.join(sorted(p.outcome for p in reached))}"
                        f" (numgen random); one branch is shown")


ROLES = {  # kube-proxy's fixed chains, for the jumps into them
    "services": "look the destination up in @service-ips (cluster, external, LB IPs) and @service-nodeports",
    "masquerading": "SNAT what mark-for-masquerade marked",
    "mark-for-masquerade": "mark the connection for masquerade",
    "firewall-check": "loadBalancerSourceRanges: @firewall-ips",
    "service-endpoints-check": "Services without endpoints: @no-endpoint-services",
    "nodeport-endpoints-check": "nodePorts without endpoints: @no-endpoint-nodeports",
    "cluster-ips-check": "reject invalid ports of ClusterIPs, drop unallocated ClusterIPs",
}


def _meaning(hop) -> str:
    did = hop.did
    verb, _, target = did.partition(" ")
    if verb in ("jump", "goto") and target in ROLES:
        return f"{did}: {ROLES[target]}"
    if hop.chain == "masquerading" and did == "return":
        return "not marked for masquerade: the source address stays"
    if did.startswith("picks "):
        return f"numgen random {did[len('picks '):]}"
    return did


def _why_stopped(path: Path) -> str:
    """What the last hop of a REJECT / DROP path means in Kubernetes terms."""
    last = path.hops[-1]
    via = next((h.did for h in reversed(path.hops) if "@no-endpoint-" in h.did), "")
    if via and via.endswith(": drop"):
        return f"drop: externalTrafficPolicy Local and no endpoint on this node ({via})"
    if via:
        return f"reject: the Service has no endpoints ({via})"
    if last.chain.startswith("firewall-"):
        return "drop: the client is outside the Service's loadBalancerSourceRanges"
    comment = last.rule.partition(' comment "')[2].rstrip('"')
    return f"{last.did}: {comment}" if comment else last.did


def hops(rs: NftRuleset, src: str, dst: str, port: int, proto: str, node_ips, endpoint: str | None
         ) -> tuple[list[dict], str, str]:
    """(hop dicts as iptables mode's `path.hit` gives them, with the rule as
    nft lists it and packets None; the outcome: "ip:port", "REJECT", "DROP"
    or ""; a note or "")."""
    try:
        paths = walk(rs, src, dst, port, proto, node_ips)
    except UnknownRule as e:
        return [], "", f"the table holds a rule nsplane cannot walk: {e}"
    path, note = pick(paths, endpoint)
    if path is None:
        return [], "", note
    out = [{"table": TABLE, "chain": h.chain, "rule": h.rule, "packets": None, "meaning": _meaning(h)}
           for h in path.hops]
    if path.outcome in ("REJECT", "DROP") and out:
        out[-1]["stop"] = path.outcome.lower()
        out[-1]["meaning"] = _why_stopped(path)
    return out, path.outcome, note
