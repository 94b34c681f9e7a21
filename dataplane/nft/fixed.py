"""The part of kube-proxy's nftables table that does not depend on Services.

What pkg/proxy/nftables/proxier.go's setupNFTables writes on every full
sync: the base chains hooked into netfilter (names "<type>-<hook>",
priorities as numbers: dstnat-10 = -110, dstnat+10 = -90, dstnat = -100,
srcnat = 100), the jumps from them to the top-level regular chains, the
masquerade chains, the "no endpoints" / firewall / ClusterIP checks, the
declarations of the verdict maps and sets, and the `nodeport-ips` set.
Pure; `dataplane.nft.render` adds the Services' part.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from dataplane.model import NodeInfo

# name -> declaration body, in kube-proxy's nftablesBaseChains order
BASE_CHAINS = {
    "filter-prerouting": "type filter hook prerouting priority -110 ;",
    "filter-input": "type filter hook input priority -110 ;",
    "filter-forward": "type filter hook forward priority -110 ;",
    "filter-output": "type filter hook output priority -110 ;",
    "filter-output-post-dnat": "type filter hook output priority -90 ;",
    "nat-prerouting": "type nat hook prerouting priority -100 ;",
    "nat-output": "type nat hook output priority -100 ;",
    "nat-postrouting": "type nat hook postrouting priority 100 ;",
}

# kube-proxy's nftablesJumpChains: (from base chain, extra match, to chain), in order
JUMPS = (
    ("filter-input", "ct state new", "nodeport-endpoints-check"),
    ("filter-input", "ct state new", "service-endpoints-check"),
    ("filter-forward", "ct state new", "service-endpoints-check"),
    ("filter-output", "ct state new", "service-endpoints-check"),
    ("filter-prerouting", "ct state new", "firewall-check"),
    ("filter-output", "ct state new", "firewall-check"),
    ("nat-output", "", "services"),
    ("nat-prerouting", "", "services"),
    ("nat-postrouting", "", "masquerading"),
    ("filter-forward", "ct state new", "cluster-ips-check"),
    ("filter-output-post-dnat", "ct state new", "cluster-ips-check"),
)

SERVICE_MAP_TYPE = "type ipv4_addr . inet_proto . inet_service : verdict ;"
NODEPORT_MAP_TYPE = "type inet_proto . inet_service : verdict ;"
MAPS = {
    "no-endpoint-services": f'{SERVICE_MAP_TYPE} comment "vmap to drop or reject packets to services with no endpoints" ;',
    "no-endpoint-nodeports":
        f'{NODEPORT_MAP_TYPE} comment "vmap to drop or reject packets to service nodeports with no endpoints" ;',
    "firewall-ips": f'{SERVICE_MAP_TYPE} comment "destinations that are subject to LoadBalancerSourceRanges" ;',
    "service-ips": f'{SERVICE_MAP_TYPE} comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ;',
    "service-nodeports": f'{NODEPORT_MAP_TYPE} comment "NodePort traffic" ;',
}
CLUSTER_IPS_SET = 'type ipv4_addr ; comment "Active ClusterIPs" ;'
NODEPORT_IPS_SET = 'type ipv4_addr ; comment "IPs that accept NodePort traffic" ;'
NO_LOCALHOST = "ip daddr != 127.0.0.0/8"
REJECT_CHAIN = "reject-chain"
MARK_MASQ = "mark-for-masquerade"


def node_port_ips(node: NodeInfo) -> tuple[str, ...] | None:
    """The addresses NodePorts answer on, or None for every local address
    (kube-proxy's NodePortAddresses.MatchAll()). nftables mode defaults
    nodePortAddresses to the node's primary IP ("primary"), so an unset
    `node.node_port_ips` means `node.node_ips[0]`; loopback addresses are
    never used (kube-proxy logs "localhost NodePorts are not supported")."""
    ips = node.node_port_ips
    if ips is None:
        if not node.node_ips:
            return None
        ips = node.node_ips[:1]
    return tuple(ip for ip in ips if not ipaddress.ip_address(ip).is_loopback)


def fixed_chains(node: NodeInfo, nodeport_ips: tuple[str, ...] | None,
                 service_cidrs: Sequence[str]) -> dict[str, list[str]]:
    """Every non-Service chain and its rules (base chains included)."""
    mark = node.masquerade_mark
    chains: dict[str, list[str]] = {name: [] for name in BASE_CHAINS}
    for source, match, target in JUMPS:
        chains.setdefault(target, [])
        chains[source].append(f"{match} jump {target}" if match else f"jump {target}")
    chains[MARK_MASQ] = [f"mark set mark or {mark}"]
    chains["masquerading"] = [f"mark and {mark} == 0 return", f"mark set mark xor {mark}", "masquerade fully-random"]
    checks = chains["cluster-ips-check"]
    checks.append('ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"')
    if service_cidrs:
        checks.append(f'ip daddr {{ {",".join(service_cidrs)} }} drop comment "Drop traffic to unallocated ClusterIPs"')
    chains[REJECT_CHAIN] = ["reject"]
    chains["service-endpoints-check"].append("ip daddr . meta l4proto . th dport vmap @no-endpoint-services")
    daddr = NO_LOCALHOST if nodeport_ips is None else "ip daddr @nodeport-ips"
    chains["nodeport-endpoints-check"].append(f"{daddr} meta l4proto . th dport vmap @no-endpoint-nodeports")
    chains["firewall-check"].append("ip daddr . meta l4proto . th dport vmap @firewall-ips")
    chains["services"].append("ip daddr . meta l4proto . th dport vmap @service-ips")
    fib = f"fib daddr type local {NO_LOCALHOST}" if nodeport_ips is None else "ip daddr @nodeport-ips"
    chains["services"].append(f"{fib} meta l4proto . th dport vmap @service-nodeports")
    return chains


def fixed_sets(nodeport_ips: tuple[str, ...] | None) -> dict[str, tuple[str, set[str]]]:
    """`cluster-ips` (filled by the render) and `nodeport-ips` (absent when
    NodePorts answer on every local address)."""
    sets: dict[str, tuple[str, set[str]]] = {"cluster-ips": (CLUSTER_IPS_SET, set())}
    if nodeport_ips is not None:
        sets["nodeport-ips"] = (NODEPORT_IPS_SET, set(nodeport_ips))
    return sets


def local_matches(node: NodeInfo) -> tuple[str, str]:
    """kube-proxy's LocalTrafficDetector IfLocalNFT()/IfNotLocalNFT() for
    this node's detectLocal match ("", "" when there is none).

    By CIDR: "ip saddr <cidr>"; BridgeInterface: "iif <bridge>" as kube-proxy;
    InterfaceNamePrefix: "iifname <prefix>*" where kube-proxy writes "iif
    <prefix>*", which nft rejects ("Interface does not exist")."""
    match = node.if_local
    if not match:
        return "", ""
    flag, _, value = match.partition(" ")
    if flag == "-s":
        return f"ip saddr {value}", f"ip saddr != {value}"
    if flag == "-i" and value.endswith("+"):
        return f"iifname {value[:-1]}*", f"iifname != {value[:-1]}*"
    if flag == "-i":
        return f"iif {value}", f"iif != {value}"
    raise ValueError(f"detectLocal match {match!r} is neither '-s <cidr>' nor '-i <interface>'")
