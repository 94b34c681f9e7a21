"""One Service port's part of kube-proxy's nftables table.

What syncProxyRules (pkg/proxy/nftables/proxier.go) writes for one Service
port: its map and set elements (`cluster-ips`, `service-ips`,
`service-nodeports`, `no-endpoint-services`, `no-endpoint-nodeports`,
`firewall-ips`), its chains (`service-`/`local-` policy chains with
`numgen random mod N vmap`, `external-`, `firewall-`, `endpoint-` with the
hairpin masquerade and DNAT) and its session-affinity sets. Which endpoints
it uses is decided by `dataplane.rules.service.categorize`, the same
function the iptables render uses, so both modes choose identically. Pure.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from dataplane.model import Endpoint, NodeInfo, ServicePort
from dataplane.nft import names
from dataplane.nft.fixed import MARK_MASQ, REJECT_CHAIN
from dataplane.rules.service import EndpointChoice, categorize, unique_endpoints


@dataclass(frozen=True, slots=True)
class NftServiceRules:
    """Everything one Service port contributes. `elements` are (map or set,
    key, value or None for a set element); a key that carries kube-proxy's
    element comment ends in ` comment "<ns>/<name>:<port>"` (nft accepts the
    comment in `delete element` too). `endpoints` is the input it was
    rendered from, so a cached copy is reused only for the same input;
    `reachable` the endpoints its rules send traffic to."""

    endpoints: Sequence[Endpoint]
    chains: tuple[tuple[str, tuple[str, ...]], ...]
    elements: tuple[tuple[str, str, str | None], ...]
    affinity_sets: tuple[tuple[str, str], ...]
    reachable: tuple[Endpoint, ...] = ()


def source_ranges(sp: ServicePort) -> list[str]:
    """loadBalancerSourceRanges as kube-proxy keeps them: parsed (spaces
    trimmed, host bits cleared), invalid entries left out."""
    out = []
    for text in sp.load_balancer_source_ranges:
        try:
            out.append(str(ipaddress.ip_network(text.strip(), strict=False)))
        except ValueError:
            continue
    return out


@dataclass(slots=True)
class _Plan:
    """syncProxyRules' per-port decisions (names as kube-proxy's variables)."""

    sp: ServicePort
    proto: str
    cluster_chain: str
    local_chain: str
    ext_chain: str
    fw_chain: str
    choice: EndpointChoice
    has_internal: bool
    has_external: bool
    uses_ext: bool
    ranges: list[str]
    internal_verdict: str  # no-endpoint-services verdict when there are no internal endpoints
    external_verdict: str

    @property
    def uses_fw(self) -> bool:
        return bool(self.sp.load_balancer_ips) and bool(self.ranges)

    @property
    def internal_chain(self) -> str:
        return self.local_chain if self.sp.internal_policy_local else self.cluster_chain

    @property
    def external_policy_chain(self) -> str:
        return self.local_chain if self.sp.external_policy_local else self.cluster_chain


def _plan(sp: ServicePort, endpoints: Sequence[Endpoint], node: NodeInfo) -> _Plan:
    proto = sp.protocol.lower()
    base = names.service_base(sp.namespace, sp.name, proto, sp.port_name)
    choice = categorize(sp, unique_endpoints(endpoints), node.name)
    has_any = choice.has_any
    has_internal = has_any and (bool(choice.local) or not sp.internal_policy_local)
    has_external = has_any and (bool(choice.local) or not sp.external_policy_local)
    if not has_any:
        internal_verdict = external_verdict = f"goto {REJECT_CHAIN}"
    else:
        internal_verdict = "" if has_internal else "drop"
        external_verdict = "" if has_external else "drop"
    return _Plan(sp, proto, names.SERVICE_PREFIX + base, names.LOCAL_PREFIX + base, names.EXTERNAL_PREFIX + base,
                 names.FIREWALL_PREFIX + base, choice, has_internal, has_external,
                 has_any and sp.externally_accessible, source_ranges(sp), internal_verdict, external_verdict)


def render_service(sp: ServicePort, endpoints: Sequence[Endpoint], node: NodeInfo,
                   local: tuple[str, str]) -> NftServiceRules:
    """The elements, chains and sets of one Service port (which must have a
    ClusterIP) with these endpoints (all of them, in any order: deduplicated
    and sorted by "ip:port" here, as kube-proxy's endpoint cache does);
    `local` is (IfLocalNFT, IfNotLocalNFT) (`fixed.local_matches`)."""
    p = _plan(sp, endpoints, node)
    chains, affinity_sets = _chains(p, node, local)
    return NftServiceRules(endpoints, chains, _elements(p), affinity_sets, p.choice.reachable)


def _elements(p: _Plan) -> tuple[tuple[str, str, str | None], ...]:
    """The port's map and set elements; "no endpoints" ones carry its name as comment."""
    sp, has_any = p.sp, p.choice.has_any
    comment = f' comment "{sp.spn}"'
    port = f" . {p.proto} . {sp.port}"
    out: list[tuple[str, str, str | None]] = [("cluster-ips", sp.cluster_ip, None)]
    if p.has_internal:
        out.append(("service-ips", sp.cluster_ip + port, f"goto {p.internal_chain}"))
    else:
        out.append(("no-endpoint-services", sp.cluster_ip + port + comment, p.internal_verdict))
    for ip in sp.external_ips:
        if has_any:
            out.append(("service-ips", ip + port, f"goto {p.ext_chain}"))
        if not p.has_external:
            out.append(("no-endpoint-services", ip + port + comment, p.external_verdict))
    for ip in sp.load_balancer_ips:
        if has_any:
            out.append(("service-ips", ip + port, f"goto {p.ext_chain}"))
        if p.uses_fw:
            out.append(("firewall-ips", ip + port, f"goto {p.fw_chain}"))
    if not p.has_external:
        out += [("no-endpoint-services", ip + port + comment, p.external_verdict) for ip in sp.load_balancer_ips]
    if sp.node_port:
        if has_any:
            out.append(("service-nodeports", f"{p.proto} . {sp.node_port}", f"goto {p.ext_chain}"))
        if not p.has_external:
            out.append(("no-endpoint-nodeports", f"{p.proto} . {sp.node_port}{comment}", p.external_verdict))
    return tuple(out)


def _chains(p: _Plan, node: NodeInfo, local: tuple[str, str]):
    """The port's chains (policy, external, firewall, endpoint) and affinity sets."""
    sp, choice = p.sp, p.choice
    chains: dict[str, list[str]] = {}
    if choice.cluster and sp.uses_cluster_endpoints:
        chains[p.cluster_chain] = []
    if choice.local and sp.uses_local_endpoints:
        chains[p.local_chain] = []
    if p.uses_ext:
        chains[p.ext_chain] = []
    if p.uses_fw:
        chains[p.fw_chain] = []

    if p.has_internal:
        to_svc = f"ip daddr {sp.cluster_ip} {p.proto} dport {sp.port}"
        if node.masquerade_all:
            chains[p.internal_chain].append(f"{to_svc} jump {MARK_MASQ}")
        elif local[1]:
            # Masquerade off-cluster traffic to the ClusterIP (it may be routed here from outside).
            chains[p.internal_chain].append(f"{to_svc} {local[1]} jump {MARK_MASQ}")
    if p.uses_ext:
        rules = chains[p.ext_chain]
        if not sp.external_policy_local:
            rules.append(f"jump {MARK_MASQ}")
        else:
            if local[0]:
                rules.append(f'{local[0]} goto {p.cluster_chain} comment "short-circuit pod traffic"')
            rules.append(f'fib saddr type local jump {MARK_MASQ} comment "masquerade local traffic"')
            rules.append(f'fib saddr type local goto {p.cluster_chain} comment "short-circuit local traffic"')
        if p.has_external:
            rules.append(f"goto {p.external_policy_chain}")
    if p.uses_fw:
        sources = list(p.ranges)
        node_ip = node.node_ips[0] if node.node_ips else ""
        if node_ip and any(ipaddress.ip_address(node_ip) in ipaddress.ip_network(r) for r in p.ranges):
            sources += sp.load_balancer_ips  # the node reaching its own LB IP, SNATed to that IP
        chains[p.fw_chain].append(f"ip saddr != {{ {' , '.join(sources)} }} drop")

    ep_names = {ep.address: names.endpoint_base(sp.namespace, sp.name, p.proto, sp.port_name, ep.ip, ep.port)
                for ep in choice.reachable}
    affinity = sp.affinity_timeout > 0
    affinity_sets: tuple[tuple[str, str], ...] = ()
    if affinity:
        decl = f"type ipv4_addr ; flags dynamic,timeout ; timeout {sp.affinity_timeout}s ;"
        affinity_sets = tuple((names.AFFINITY_PREFIX + ep_names[ep.address], decl) for ep in choice.reachable)
    for chain, eps in ((p.cluster_chain, choice.cluster), (p.local_chain, choice.local)):
        if chain in chains and eps:
            _dispatch(chains[chain], [ep_names[ep.address] for ep in eps], affinity)
    for ep in choice.reachable:
        epbase = ep_names[ep.address]
        rules = chains[names.ENDPOINT_PREFIX + epbase] = [f"ip saddr {ep.ip} jump {MARK_MASQ}"]
        if affinity:
            rules.append(f"update @{names.AFFINITY_PREFIX}{epbase} {{ ip saddr }}")
        rules.append(f"meta l4proto {p.proto} dnat to {ep.address}")
    return tuple((c, tuple(r)) for c, r in chains.items()), affinity_sets


def _dispatch(rules: list[str], bases: list[str], affinity: bool) -> None:
    """writeServiceToEndpointRules: affinity lookups, then the random choice."""
    if affinity:
        rules += [f"ip saddr @{names.AFFINITY_PREFIX}{b} goto {names.ENDPOINT_PREFIX}{b}" for b in bases]
    vmap = " , ".join(f"{i} : goto {names.ENDPOINT_PREFIX}{b}" for i, b in enumerate(bases))
    rules.append(f"numgen random mod {len(bases)} vmap {{ {vmap} }}")
