"""Render kube-proxy's iptables rules (iptables mode) as iptables-restore text.

Pure: `render(services, node)` takes plain data (`dataplane.model`) and returns
a `Ruleset` whose text holds a `*filter` and a `*nat` section, exactly the
lines kube-proxy's syncProxyRules (pkg/proxy/iptables/proxier.go) writes for
the same input: chain names (KUBE-SVC-/SVL-/EXT-/FW-/SEP- + base32(sha256)),
comments, statistic probabilities ("%0.10f"), masquerade mark, REJECT/DROP
filter rules. A reader of `iptables-save` sees what the Kubernetes docs show.

Rendering is split by concern, one function each: which endpoints a Service
port uses (`categorize`), its ClusterIP, its external destinations (external
IPs, load-balancer IPs, NodePorts, the KUBE-EXT and KUBE-FW chains), the
dispatch to endpoints (KUBE-SVC/KUBE-SVL -> KUBE-SEP), and the fixed
masquerade/forward chains. Lines go into lists that are joined once.

Deliberate differences from kube-proxy, all invisible in the kernel:
- Services are written in sorted order (kube-proxy walks a Go map), so the
  output is deterministic.
- Localhost NodePorts behave as kube-proxy's default without nfacct counters:
  KUBE-FIREWALL blocks martian localnet traffic and the NodePort jump is
  `-m addrtype --dst-type LOCAL` (route_localnet is the node's business).
- IPv4 only; topology hints are not implemented.
"""
from __future__ import annotations

import functools
import hashlib
import ipaddress
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from dataplane.model import Endpoint, NodeInfo, ServicePort

# Top-level chains, in the order kube-proxy declares them.
FILTER_CHAINS = ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-NODEPORTS", "KUBE-PROXY-FIREWALL")
NAT_CHAINS = ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ")
KUBELET_FIREWALL_CHAIN = "KUBE-FIREWALL"
MARK_MASQ = "KUBE-MARK-MASQ"

# Per-service nat chains; any chain with one of these prefixes is ours.
SERVICE_CHAIN_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-")

# kube-proxy drops per-endpoint comments above this many endpoints.
LARGE_CLUSTER_ENDPOINTS = 1000


def is_service_chain(name: str) -> bool:
    """True for KUBE-SVC-/SVL-/EXT-/FW-/SEP- chains (kube-proxy's isServiceChainName)."""
    return name.startswith(SERVICE_CHAIN_PREFIXES)


@dataclass(frozen=True)
class Ruleset:
    """iptables-restore input for the filter and nat tables, plus the chains
    it declares per table (so the applier can delete stale ones)."""

    text: str
    chains: Mapping[str, frozenset[str]]
    service_ports: int = 0
    endpoints: int = 0

    def chains_in(self, table: str) -> frozenset[str]:
        return self.chains.get(table, frozenset())


# ---------------------------------------------------------------- chain names


_B32_PAIRS = [a + b for a in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" for b in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"]


@functools.lru_cache(maxsize=1 << 17)
def _hash16(text: str) -> str:
    """base32.StdEncoding(sha256(text))[:16]: the first 80 bits, 10 bits (two
    base32 digits) at a time; equal to base64.b32encode(digest)[:16], faster."""
    n = int.from_bytes(hashlib.sha256(text.encode()).digest()[:10], "big")
    t = _B32_PAIRS
    return (
        t[n >> 70] + t[(n >> 60) & 1023] + t[(n >> 50) & 1023] + t[(n >> 40) & 1023]
        + t[(n >> 30) & 1023] + t[(n >> 20) & 1023] + t[(n >> 10) & 1023] + t[n & 1023]
    )


def port_proto_hash(spn: str, protocol: str) -> str:
    """kube-proxy's portProtoHash: base32(sha256(spn + lowercase protocol))[:16]."""
    return _hash16(spn + protocol.lower())


def endpoint_chain_name(spn: str, protocol: str, address: str) -> str:
    """kube-proxy's servicePortEndpointChainName: KUBE-SEP- + hash(spn+proto+"ip:port")."""
    return "KUBE-SEP-" + _hash16(spn + protocol.lower() + address)


@dataclass(frozen=True)
class ServiceChains:
    svc: str  # KUBE-SVC-: Cluster traffic policy dispatch
    svl: str  # KUBE-SVL-: Local traffic policy dispatch
    ext: str  # KUBE-EXT-: external destinations
    fw: str  # KUBE-FW-: loadBalancerSourceRanges firewall


@functools.lru_cache(maxsize=1 << 16)
def service_chains(spn: str, protocol: str) -> ServiceChains:
    h = port_proto_hash(spn, protocol)
    return ServiceChains("KUBE-SVC-" + h, "KUBE-SVL-" + h, "KUBE-EXT-" + h, "KUBE-FW-" + h)


# ---------------------------------------------------------------- endpoints


@dataclass(slots=True)
class EndpointChoice:
    """Which endpoints a Service port uses on this node (kube-proxy's
    CategorizeEndpoints without topology hints)."""

    cluster: tuple[Endpoint, ...]
    local: tuple[Endpoint, ...]
    reachable: tuple[Endpoint, ...]
    has_any: bool


def categorize(sp: ServicePort, endpoints: Sequence[Endpoint], node_name: str) -> EndpointChoice:
    """Ready endpoints by default; serving+terminating ones when none are ready
    (independently for Cluster and Local policy)."""
    cluster: tuple[Endpoint, ...] = ()
    has_any = False
    if sp.uses_cluster_endpoints:
        cluster = tuple(ep for ep in endpoints if ep.ready)
        if not cluster:
            cluster = tuple(ep for ep in endpoints if ep.serving and ep.terminating)
        has_any = bool(cluster)
    if not sp.uses_local_endpoints:
        return EndpointChoice(cluster, (), cluster, has_any)

    def is_local(ep: Endpoint) -> bool:
        return bool(node_name) and ep.node_name == node_name

    local = tuple(ep for ep in endpoints if ep.ready and is_local(ep))
    fallback = False
    if not local:
        local = tuple(ep for ep in endpoints if ep.serving and ep.terminating and is_local(ep))
        fallback = bool(local)
    has_any = has_any or any(ep.ready or (ep.serving and ep.terminating) for ep in endpoints)
    if not sp.uses_cluster_endpoints:
        return EndpointChoice((), local, local, has_any)
    if not fallback:
        return EndpointChoice(cluster, local, cluster, has_any)
    merged = {ep.address: ep for ep in cluster}
    merged.update((ep.address, ep) for ep in local)
    reachable = tuple(merged[a] for a in sorted(merged))
    return EndpointChoice(cluster, local, reachable, has_any)


# ---------------------------------------------------------------- output


@dataclass
class _Out:
    """Line buffers, as kube-proxy's filterChains/filterRules/natChains/natRules."""

    node: NodeInfo
    mark: str
    large: bool
    filter_chains: list[str] = field(default_factory=list)
    filter_rules: list[str] = field(default_factory=list)
    nat_chains: list[str] = field(default_factory=list)
    nat_rules: list[str] = field(default_factory=list)
    nat_names: set[str] = field(default_factory=set)

    def nat_chain(self, name: str) -> None:
        self.nat_chains.append(f":{name} - [0:0]")
        self.nat_names.add(name)

    def ep_comment(self, text: str) -> str:
        """Comment on per-endpoint rules; omitted in large clusters like kube-proxy."""
        return "" if self.large else f" -m comment --comment {text}"


@dataclass(slots=True)
class _Plan:
    """The per-port decisions of syncProxyRules, computed once."""

    sp: ServicePort
    proto: str
    chains: ServiceChains
    choice: EndpointChoice
    internal_chain: str
    external_policy_chain: str
    has_internal: bool
    has_external: bool
    uses_ext_chain: bool
    uses_fw_chain: bool
    internal_filter: tuple[str, str]  # (target, quoted comment) when no internal endpoints
    external_filter: tuple[str, str]
    sep: Mapping[str, str]  # "ip:port" -> KUBE-SEP- chain, for every reachable endpoint

    @property
    def lb_chain(self) -> str:
        return self.chains.fw if self.uses_fw_chain else self.chains.ext


def _plan(sp: ServicePort, endpoints: Sequence[Endpoint], node: NodeInfo) -> _Plan:
    chains = service_chains(sp.spn, sp.protocol)
    choice = categorize(sp, endpoints, node.name)
    has_any = choice.has_any
    has_local = bool(choice.local)
    has_internal = has_any and (has_local or not sp.internal_policy_local)
    has_external = has_any and (has_local or not sp.external_policy_local)
    if not has_any:
        reject = ("REJECT", f'"{sp.spn} has no endpoints"')
        internal_filter = external_filter = reject
    else:
        drop = ("DROP", f'"{sp.spn} has no local endpoints"')
        internal_filter = drop if not has_internal else ("", "")
        external_filter = drop if not has_external else ("", "")
    return _Plan(
        sp=sp,
        proto=sp.protocol.lower(),
        chains=chains,
        choice=choice,
        internal_chain=chains.svl if sp.internal_policy_local else chains.svc,
        external_policy_chain=chains.svl if sp.external_policy_local else chains.svc,
        has_internal=has_internal,
        has_external=has_external,
        uses_ext_chain=has_any and sp.externally_accessible,
        uses_fw_chain=has_any and bool(sp.load_balancer_ips) and bool(sp.load_balancer_source_ranges),
        internal_filter=internal_filter,
        external_filter=external_filter,
        sep={ep.address: endpoint_chain_name(sp.spn, sp.protocol, ep.address) for ep in choice.reachable},
    )


# ---------------------------------------------------------------- cluster IP


def _render_cluster_ip(p: _Plan, out: _Out) -> None:
    """KUBE-SERVICES capture of the ClusterIP (or a filter REJECT/DROP), and the
    masquerade of off-cluster sources inside the internal policy chain."""
    sp = p.sp
    if not sp.cluster_ip:
        return
    match = f"-m {p.proto} -p {p.proto} -d {sp.cluster_ip} --dport {sp.port}"
    if p.has_internal:
        comment = f'-m comment --comment "{sp.spn} cluster IP"'
        out.nat_rules.append(f"-A KUBE-SERVICES {comment} {match} -j {p.internal_chain}")
        if out.node.cluster_cidr:
            out.nat_rules.append(
                f"-A {p.internal_chain} {comment} {match} ! -s {out.node.cluster_cidr} -j {MARK_MASQ}"
            )
    else:
        target, comment = p.internal_filter
        out.filter_rules.append(f"-A KUBE-SERVICES -m comment --comment {comment} {match} -j {target}")


# ---------------------------------------------------------------- external


def _render_external_ips(p: _Plan, out: _Out) -> None:
    sp = p.sp
    for ip in sp.external_ips:
        match = f"-m {p.proto} -p {p.proto} -d {ip} --dport {sp.port}"
        if p.choice.has_any:
            out.nat_rules.append(
                f'-A KUBE-SERVICES -m comment --comment "{sp.spn} external IP" {match} -j {p.chains.ext}'
            )
        if not p.has_external:
            target, comment = p.external_filter
            out.filter_rules.append(f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {comment} {match} -j {target}")


def _render_load_balancer_ips(p: _Plan, out: _Out) -> None:
    sp = p.sp
    for ip in sp.load_balancer_ips:
        match = f"-m {p.proto} -p {p.proto} -d {ip} --dport {sp.port}"
        if p.choice.has_any:
            out.nat_rules.append(
                f'-A KUBE-SERVICES -m comment --comment "{sp.spn} loadbalancer IP" {match} -j {p.lb_chain}'
            )
        if p.uses_fw_chain:
            out.filter_rules.append(
                f'-A KUBE-PROXY-FIREWALL -m comment --comment "{sp.spn} traffic not accepted by {p.chains.fw}" '
                f"{match} -j DROP"
            )
    if not p.has_external:
        target, comment = p.external_filter
        for ip in sp.load_balancer_ips:
            out.filter_rules.append(
                f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {comment} "
                f"-m {p.proto} -p {p.proto} -d {ip} --dport {sp.port} -j {target}"
            )


def _render_node_ports(p: _Plan, out: _Out) -> None:
    sp = p.sp
    if sp.node_port:
        if p.choice.has_any:
            out.nat_rules.append(
                f"-A KUBE-NODEPORTS -m comment --comment {sp.spn} "
                f"-m {p.proto} -p {p.proto} --dport {sp.node_port} -j {p.chains.ext}"
            )
        if not p.has_external:
            target, comment = p.external_filter
            out.filter_rules.append(
                f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {comment} -m addrtype --dst-type LOCAL "
                f"-m {p.proto} -p {p.proto} --dport {sp.node_port} -j {target}"
            )
    if sp.health_check_node_port:
        out.filter_rules.append(
            f'-A KUBE-NODEPORTS -m comment --comment "{sp.spn} health check node port" '
            f"-m tcp -p tcp --dport {sp.health_check_node_port} -j ACCEPT"
        )


def _render_ext_chain(p: _Plan, out: _Out) -> None:
    """KUBE-EXT-: masquerade (Cluster policy) or short-circuit pod and node
    traffic to the Cluster chain (Local policy), then the policy chain."""
    if not p.uses_ext_chain:
        return
    sp, ext, rules = p.sp, p.chains.ext, out.nat_rules
    out.nat_chain(ext)
    if not sp.external_policy_local:
        rules.append(
            f'-A {ext} -m comment --comment "masquerade traffic for {sp.spn} external destinations" -j {MARK_MASQ}'
        )
    else:
        if out.node.cluster_cidr:
            rules.append(
                f'-A {ext} -m comment --comment "pod traffic for {sp.spn} external destinations" '
                f"-s {out.node.cluster_cidr} -j {p.chains.svc}"
            )
        rules.append(
            f'-A {ext} -m comment --comment "masquerade LOCAL traffic for {sp.spn} external destinations" '
            f"-m addrtype --src-type LOCAL -j {MARK_MASQ}"
        )
        rules.append(
            f'-A {ext} -m comment --comment "route LOCAL traffic for {sp.spn} external destinations" '
            f"-m addrtype --src-type LOCAL -j {p.chains.svc}"
        )
    if p.has_external:
        rules.append(f"-A {ext} -j {p.external_policy_chain}")


def _render_fw_chain(p: _Plan, out: _Out) -> None:
    """KUBE-FW-: let loadBalancerSourceRanges (and the node itself) through to
    KUBE-EXT; anything else falls out undNATed and KUBE-PROXY-FIREWALL drops it."""
    if not p.uses_fw_chain:
        return
    sp, fw = p.sp, p.chains.fw
    out.nat_chain(fw)
    head = f'-A {fw} -m comment --comment "{sp.spn} loadbalancer IP"'
    allow_from_node = False
    for cidr in sp.load_balancer_source_ranges:
        out.nat_rules.append(f"{head} -s {cidr} -j {p.chains.ext}")
        allow_from_node = allow_from_node or any(_in_cidr(ip, cidr) for ip in out.node.node_ips)
    if allow_from_node:
        for ip in sp.load_balancer_ips:
            out.nat_rules.append(f"{head} -s {ip} -j {p.chains.ext}")
    out.nat_rules.append(
        f'-A {fw} -m comment --comment "other traffic to {sp.spn} will be dropped by KUBE-PROXY-FIREWALL"'
    )


def _in_cidr(ip: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


# ---------------------------------------------------------------- endpoints


def _probability(n: int) -> str:
    """kube-proxy's computeProbability: fmt "%0.10f" of 1/n."""
    return _PROBABILITIES[n] if n < len(_PROBABILITIES) else f"{1.0 / n:0.10f}"


_PROBABILITIES = ["<bad value>"] + [f"{1.0 / n:0.10f}" for n in range(1, 1001)]


def _render_dispatch(p: _Plan, chain: str, endpoints: Sequence[Endpoint], out: _Out) -> None:
    """KUBE-SVC-/KUBE-SVL-: affinity rechecks, then statistic-random dispatch."""
    sp, rules = p.sp, out.nat_rules
    out.nat_chain(chain)
    spn = sp.spn
    if sp.affinity_timeout:
        for ep in endpoints:
            sep = p.sep[ep.address]
            comment = out.ep_comment(f'"{spn} -> {ep.address}"')
            rules.append(
                f"-A {chain}{comment} -m recent --name {sep} --rcheck --seconds {sp.affinity_timeout} --reap -j {sep}"
            )
    n = len(endpoints)
    for i, ep in enumerate(endpoints):
        sep = p.sep[ep.address]
        comment = out.ep_comment(f'"{spn} -> {ep.address}"')
        if i < n - 1:
            rules.append(f"-A {chain}{comment} -m statistic --mode random --probability {_probability(n - i)} -j {sep}")
        else:
            rules.append(f"-A {chain}{comment} -j {sep}")


def _render_endpoint_chains(p: _Plan, out: _Out) -> None:
    """KUBE-SEP-: hairpin masquerade, affinity --set, DNAT."""
    sp, rules = p.sp, out.nat_rules
    comment = out.ep_comment(sp.spn)
    affinity = " -m recent --name {} --set" if sp.affinity_timeout else ""
    for ep in p.choice.reachable:
        sep = p.sep[ep.address]
        out.nat_chain(sep)
        rules.append(f"-A {sep}{comment} -s {ep.ip} -j {MARK_MASQ}")
        rules.append(
            f"-A {sep}{comment}{affinity.format(sep)} -m {p.proto} -p {p.proto} -j DNAT --to-destination {ep.address}"
        )


def _render_endpoints(p: _Plan, out: _Out) -> None:
    if p.choice.cluster and p.sp.uses_cluster_endpoints:
        _render_dispatch(p, p.chains.svc, p.choice.cluster, out)
    if p.choice.local and p.sp.uses_local_endpoints:
        _render_dispatch(p, p.chains.svl, p.choice.local, out)
    _render_endpoint_chains(p, out)


# ---------------------------------------------------------------- fixed chains


def _render_masquerade(out: _Out) -> None:
    """KUBE-POSTROUTING / KUBE-MARK-MASQ: mark, then masquerade marked packets."""
    m = out.mark
    out.nat_rules += [
        f"-A KUBE-POSTROUTING -m mark ! --mark {m}/{m} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {m}",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
        f"-A {MARK_MASQ} -j MARK --or-mark {m}",
    ]


def _render_localnet_firewall(out: _Out) -> None:
    out.filter_chains.append(f":{KUBELET_FIREWALL_CHAIN} - [0:0]")
    out.filter_rules.append(
        f'-A {KUBELET_FIREWALL_CHAIN} -m comment --comment "block incoming localnet connections" '
        "-d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
    )


def _render_tail(out: _Out) -> None:
    """The NodePort jump (last KUBE-SERVICES rule) and KUBE-FORWARD."""
    m = out.mark
    out.nat_rules.append(
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule '
        'in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS'
    )
    out.filter_rules += [
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        f'-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark {m}/{m} -j ACCEPT',
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" '
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    ]


# ---------------------------------------------------------------- entry point


def render(services: Mapping[ServicePort, Sequence[Endpoint]], node: NodeInfo) -> Ruleset:
    """All of kube-proxy's filter and nat rules for these Service ports on `node`.

    `services` maps every Service port to proxy to its endpoints (all of them,
    ready or not, sorted or not); a port with no endpoints gets REJECT rules.
    """
    total_endpoints = sum(len(eps) for eps in services.values())
    out = _Out(node=node, mark=node.masquerade_mark, large=total_endpoints > LARGE_CLUSTER_ENDPOINTS)
    out.filter_chains += [f":{c} - [0:0]" for c in FILTER_CHAINS]
    for c in NAT_CHAINS:
        out.nat_chain(c)
    _render_masquerade(out)
    _render_localnet_firewall(out)

    for sp in sorted(services, key=_sort_key):
        if not sp.cluster_ip:
            continue
        endpoints = unique_endpoints(services[sp])
        p = _plan(sp, endpoints, node)
        _render_cluster_ip(p, out)
        _render_external_ips(p, out)
        _render_load_balancer_ips(p, out)
        _render_node_ports(p, out)
        _render_ext_chain(p, out)
        _render_fw_chain(p, out)
        _render_endpoints(p, out)

    _render_tail(out)
    text = "\n".join(
        ["*filter", *out.filter_chains, *out.filter_rules, "COMMIT", "*nat", *out.nat_chains, *out.nat_rules, "COMMIT", ""]
    )
    filter_names = frozenset(line[1:].split(" ", 1)[0] for line in out.filter_chains)
    return Ruleset(
        text=text,
        chains={"filter": filter_names, "nat": frozenset(out.nat_names)},
        service_ports=len(services),
        endpoints=total_endpoints,
    )


def _sort_key(sp: ServicePort) -> tuple[str, str]:
    return (sp.spn, sp.protocol)


def unique_endpoints(endpoints: Sequence[Endpoint]) -> list[Endpoint]:
    """One endpoint per ip:port, sorted by "ip:port" as kube-proxy's
    EndpointSliceCache does; a non-terminating duplicate wins."""
    by_address: dict[str, Endpoint] = {}
    for ep in endpoints:
        if ep.address not in by_address or not ep.terminating:
            by_address[ep.address] = ep
    return [by_address[a] for a in sorted(by_address)]
