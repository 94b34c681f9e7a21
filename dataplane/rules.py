"""Render kube-proxy's iptables rules (iptables mode) as iptables-restore text.

Pure: `render(services, node)` takes plain data (`dataplane.model`) and returns
a `Ruleset` whose text holds a `*filter` and a `*nat` section, exactly the
lines kube-proxy's syncProxyRules (pkg/proxy/iptables/proxier.go) writes for
the same input: chain names (`dataplane.chains`: KUBE-SVC-/SVL-/EXT-/FW-/SEP-),
comments, statistic probabilities ("%0.10f"), masquerade mark, REJECT/DROP
filter rules. A reader of `iptables-save` sees what the Kubernetes docs show.

Rendering is split by concern, one function each: which endpoints a Service
port uses (`categorize`), its ClusterIP, its external destinations (external
IPs, load-balancer IPs, NodePorts, the KUBE-EXT and KUBE-FW chains), the
dispatch to endpoints (KUBE-SVC/KUBE-SVL -> KUBE-SEP), and the fixed
masquerade/forward chains. Each Service port renders to a `ServiceRules`
(its own chains plus its rules in shared chains), which a `RenderCache`
keeps between syncs: a sync re-renders only Service ports whose endpoints
changed, and the `Ruleset` holds every chain's rules so the applier can
write only the chains that differ (partial sync).

Scale: when KUBE-SERVICES (nat or filter) or nat KUBE-NODEPORTS would hold
more than `dispatch.TREE_THRESHOLD` (1,000) rules, it becomes a tree of
KUBE-SVCS-<prefix>-<len> / KUBE-NP-<PROTO>-<low>-<high> chains keyed by
destination address / port (see `dataplane.dispatch`), so a new connection
walks ~60 rules instead of every Service's. Below the threshold the output
is kube-proxy's, rule for rule. The rules inside each leaf, and every
per-Service chain, are unchanged.

Large clusters (more than 1,000 endpoints, where kube-proxy already drops
per-endpoint comments): an endpoint whose node is known gets no KUBE-SEP
chain; the Service chain's statistic rule DNATs to it directly, and the
hairpin masquerade that KUBE-SEP's `-s <endpoint>` rule did moves to one
`-s IP -d IP -j KUBE-MARK-MASQ` rule per local endpoint IP at the head of
KUBE-POSTROUTING (only a pod on this node can be DNATed to itself here).
That is 5 kernel entries fewer per endpoint (chain head, tail, jump, two
rules for one DNAT): at 10,000 Services x 3 endpoints the nat table shrinks
from ~190,000 entries to ~70,000, and every legacy restore, which replaces
the whole table, costs that much less. Session affinity (`-m recent` lists
named after KUBE-SEP chains), externalTrafficPolicy Local (a remote pod can
reach a NodePort here and be DNATed to itself) and endpoints without a node
keep their KUBE-SEP chains.

Deliberate differences from kube-proxy (besides the trees above), all
invisible to packets:
- Services are written in sorted order (kube-proxy walks a Go map), so the
  output is deterministic.
- Localhost NodePorts behave as kube-proxy's default without nfacct counters:
  KUBE-FIREWALL blocks martian localnet traffic and the NodePort jump is
  `-m addrtype --dst-type LOCAL` (route_localnet is the node's business).
- IPv4 only; topology hints are not implemented.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from dataplane.chains import (FILTER_CHAINS, KUBELET_FIREWALL_CHAIN, MARK_MASQ, NAT_CHAINS, ServiceChains,
                              endpoint_chain_name, service_chains)
from dataplane.dispatch import TREE_THRESHOLD, ip_key, ip_tree, port_tree
from dataplane.model import Endpoint, NodeInfo, ServicePort

# kube-proxy drops per-endpoint comments above this many endpoints.
LARGE_CLUSTER_ENDPOINTS = 1000


class Ruleset:
    """What to write: {table: {chain: rule lines}} for filter and nat.

    `text` is the whole of it as iptables-restore input (built when asked
    for and not kept, so a partial sync that writes only changed chains never
    builds it and the proxier's last ruleset does not hold megabytes of it);
    `chains` the chains declared per table (so the applier can delete stale
    ones). A Ruleset made from `text` alone (no `tables`) can only be applied
    in full.
    """

    def __init__(self, text: str | None = None, chains: Mapping[str, frozenset[str]] | None = None,
                 service_ports: int = 0, endpoints: int = 0,
                 tables: Mapping[str, Mapping[str, tuple[str, ...]]] | None = None) -> None:
        self.tables = tables
        self._text = text
        self.chains = chains if chains is not None else {t: frozenset(c) for t, c in (tables or {}).items()}
        self.service_ports = service_ports
        self.endpoints = endpoints

    @property
    def text(self) -> str:
        return self._text if self._text is not None else restore_text(self.tables or {})

    def chains_in(self, table: str) -> frozenset[str]:
        return self.chains.get(table, frozenset())

    def rules(self) -> int:
        return sum(len(r) for chains in (self.tables or {}).values() for r in chains.values())


def restore_text(tables: Mapping[str, Mapping[str, Sequence[str]]],
                 head: Mapping[str, Sequence[str]] | None = None,
                 tail: Mapping[str, Sequence[str]] | None = None) -> str:
    """iptables-restore input declaring (and so flushing) every chain of
    `tables`; `head`/`tail` add lines at the start / end of a table's section."""
    parts = []
    for table, chains in tables.items():
        parts.append(f"*{table}")
        parts += (head or {}).get(table, ())
        parts += [f":{c} - [0:0]" for c in chains]
        for rules in chains.values():
            parts += rules
        parts += (tail or {}).get(table, ())
        parts.append("COMMIT")
    parts.append("")
    return "\n".join(parts)


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


@dataclass(frozen=True, slots=True)
class ServiceRules:
    """Everything one Service port contributes: its own nat chains (KUBE-SVC/
    SVL/EXT/FW/SEP, full "-A" lines) and its rules in shared chains as
    (table, chain, key, rule text after "-A <chain> "). `key` is what a dispatch
    tree sorts on (the destination IP as an int, or (protocol, nodePort)); None
    for chains that stay linear. `endpoints` is the input it was rendered from,
    so a cached copy is reused only for the same input."""

    endpoints: Sequence[Endpoint]
    chains: tuple[tuple[str, tuple[str, ...]], ...]
    shared: tuple[tuple[str, str, object, str], ...]


@dataclass
class _Out:
    """Line buffers for one Service port (kube-proxy's natChains/natRules, split by owner)."""

    node: NodeInfo
    large: bool
    own: dict[str, list[str]] = field(default_factory=dict)
    shared: list[tuple[str, str, object, str]] = field(default_factory=list)

    def nat_chain(self, name: str) -> list[str]:
        return self.own.setdefault(name, [])

    def rule(self, chain: str, text: str) -> None:
        """A rule in one of this Service port's own nat chains."""
        self.own[chain].append(f"-A {chain} {text}")

    def share(self, table: str, chain: str, key: object, text: str) -> None:
        """A rule in a shared chain (KUBE-SERVICES, KUBE-NODEPORTS, ...)."""
        self.shared.append((table, chain, key, text))

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
    sep: Mapping[str, str]  # "ip:port" -> KUBE-SEP- chain, for reachable endpoints that have one

    @property
    def lb_chain(self) -> str:
        return self.chains.fw if self.uses_fw_chain else self.chains.ext


def _plan(sp: ServicePort, endpoints: Sequence[Endpoint], node: NodeInfo, large: bool) -> _Plan:
    chains = service_chains(sp.spn, sp.protocol)
    # Large clusters: endpoints on a known node are DNATed straight from the
    # Service chain (no KUBE-SEP chain); see "Large clusters" in the docstring.
    compact = large and not sp.affinity_timeout and not sp.external_policy_local
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
        sep={ep.address: endpoint_chain_name(sp.spn, sp.protocol, ep.address)
             for ep in choice.reachable if not (compact and ep.node_name)},
    )


# ---------------------------------------------------------------- cluster IP


def _render_cluster_ip(p: _Plan, out: _Out) -> None:
    """KUBE-SERVICES capture of the ClusterIP (or a filter REJECT/DROP), and the
    masquerade of off-cluster sources inside the internal policy chain."""
    sp = p.sp
    if not sp.cluster_ip:
        return
    match = f"-m {p.proto} -p {p.proto} -d {sp.cluster_ip} --dport {sp.port}"
    key = ip_key(sp.cluster_ip)
    if p.has_internal:
        comment = f'-m comment --comment "{sp.spn} cluster IP"'
        out.share("nat", "KUBE-SERVICES", key, f"{comment} {match} -j {p.internal_chain}")
        if out.node.cluster_cidr:
            out.nat_chain(p.internal_chain)
            out.rule(p.internal_chain, f"{comment} {match} ! -s {out.node.cluster_cidr} -j {MARK_MASQ}")
    else:
        target, comment = p.internal_filter
        out.share("filter", "KUBE-SERVICES", key, f"-m comment --comment {comment} {match} -j {target}")


# ---------------------------------------------------------------- external


def _render_external_ips(p: _Plan, out: _Out) -> None:
    sp = p.sp
    for ip in sp.external_ips:
        match = f"-m {p.proto} -p {p.proto} -d {ip} --dport {sp.port}"
        if p.choice.has_any:
            out.share("nat", "KUBE-SERVICES", ip_key(ip),
                      f'-m comment --comment "{sp.spn} external IP" {match} -j {p.chains.ext}')
        if not p.has_external:
            target, comment = p.external_filter
            out.share("filter", "KUBE-EXTERNAL-SERVICES", None, f"-m comment --comment {comment} {match} -j {target}")


def _render_load_balancer_ips(p: _Plan, out: _Out) -> None:
    sp = p.sp
    for ip in sp.load_balancer_ips:
        match = f"-m {p.proto} -p {p.proto} -d {ip} --dport {sp.port}"
        if p.choice.has_any:
            out.share("nat", "KUBE-SERVICES", ip_key(ip),
                      f'-m comment --comment "{sp.spn} loadbalancer IP" {match} -j {p.lb_chain}')
        if p.uses_fw_chain:
            out.share("filter", "KUBE-PROXY-FIREWALL", None,
                      f'-m comment --comment "{sp.spn} traffic not accepted by {p.chains.fw}" {match} -j DROP')
    if not p.has_external:
        target, comment = p.external_filter
        for ip in sp.load_balancer_ips:
            out.share("filter", "KUBE-EXTERNAL-SERVICES", None,
                      f"-m comment --comment {comment} -m {p.proto} -p {p.proto} -d {ip} --dport {sp.port} -j {target}")


def _render_node_ports(p: _Plan, out: _Out) -> None:
    sp = p.sp
    if sp.node_port:
        if p.choice.has_any:
            out.share("nat", "KUBE-NODEPORTS", (p.proto, sp.node_port),
                      f"-m comment --comment {sp.spn} -m {p.proto} -p {p.proto} --dport {sp.node_port} -j {p.chains.ext}")
        if not p.has_external:
            target, comment = p.external_filter
            out.share("filter", "KUBE-EXTERNAL-SERVICES", None,
                      f"-m comment --comment {comment} -m addrtype --dst-type LOCAL "
                      f"-m {p.proto} -p {p.proto} --dport {sp.node_port} -j {target}")
    if sp.health_check_node_port:
        out.share("filter", "KUBE-NODEPORTS", None,
                  f'-m comment --comment "{sp.spn} health check node port" '
                  f"-m tcp -p tcp --dport {sp.health_check_node_port} -j ACCEPT")


def _render_ext_chain(p: _Plan, out: _Out) -> None:
    """KUBE-EXT-: masquerade (Cluster policy) or short-circuit pod and node
    traffic to the Cluster chain (Local policy), then the policy chain."""
    if not p.uses_ext_chain:
        return
    sp, ext = p.sp, p.chains.ext
    out.nat_chain(ext)
    if not sp.external_policy_local:
        out.rule(ext, f'-m comment --comment "masquerade traffic for {sp.spn} external destinations" -j {MARK_MASQ}')
    else:
        if out.node.cluster_cidr:
            out.rule(ext, f'-m comment --comment "pod traffic for {sp.spn} external destinations" '
                          f"-s {out.node.cluster_cidr} -j {p.chains.svc}")
        out.rule(ext, f'-m comment --comment "masquerade LOCAL traffic for {sp.spn} external destinations" '
                      f"-m addrtype --src-type LOCAL -j {MARK_MASQ}")
        out.rule(ext, f'-m comment --comment "route LOCAL traffic for {sp.spn} external destinations" '
                      f"-m addrtype --src-type LOCAL -j {p.chains.svc}")
    if p.has_external:
        out.rule(ext, f"-j {p.external_policy_chain}")


def _render_fw_chain(p: _Plan, out: _Out) -> None:
    """KUBE-FW-: let loadBalancerSourceRanges (and the node itself) through to
    KUBE-EXT; anything else falls out undNATed and KUBE-PROXY-FIREWALL drops it."""
    if not p.uses_fw_chain:
        return
    sp, fw = p.sp, p.chains.fw
    out.nat_chain(fw)
    head = f'-m comment --comment "{sp.spn} loadbalancer IP"'
    allow_from_node = False
    for cidr in sp.load_balancer_source_ranges:
        out.rule(fw, f"{head} -s {cidr} -j {p.chains.ext}")
        allow_from_node = allow_from_node or any(_in_cidr(ip, cidr) for ip in out.node.node_ips)
    if allow_from_node:
        for ip in sp.load_balancer_ips:
            out.rule(fw, f"{head} -s {ip} -j {p.chains.ext}")
    out.rule(fw, f'-m comment --comment "other traffic to {sp.spn} will be dropped by KUBE-PROXY-FIREWALL"')


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
    sp, rules = p.sp, out.nat_chain(chain)
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
        sep = p.sep.get(ep.address)
        comment = out.ep_comment(f'"{spn} -> {ep.address}"')
        target = f"-j {sep}" if sep else f"-m {p.proto} -p {p.proto} -j DNAT --to-destination {ep.address}"
        if i < n - 1:
            rules.append(f"-A {chain}{comment} -m statistic --mode random --probability {_probability(n - i)} {target}")
        else:
            rules.append(f"-A {chain}{comment} {target}")


def _render_endpoint_chains(p: _Plan, out: _Out) -> None:
    """KUBE-SEP-: hairpin masquerade, affinity --set, DNAT (or, for endpoints
    without a chain, the node's hairpin rule in KUBE-POSTROUTING)."""
    sp = p.sp
    comment = out.ep_comment(sp.spn)
    affinity = " -m recent --name {} --set" if sp.affinity_timeout else ""
    for ep in p.choice.reachable:
        sep = p.sep.get(ep.address)
        if sep is None:  # DNATed from the Service chain; a local one needs the hairpin rule
            if ep.node_name == out.node.name:
                out.share("nat", "KUBE-POSTROUTING", ep.ip,
                          f'-m comment --comment "hairpin traffic of local endpoint {ep.ip}" '
                          f"-s {ep.ip} -d {ep.ip} -j {MARK_MASQ}")
            continue
        out.own[sep] = [
            f"-A {sep}{comment} -s {ep.ip} -j {MARK_MASQ}",
            f"-A {sep}{comment}{affinity.format(sep)} -m {p.proto} -p {p.proto} -j DNAT --to-destination {ep.address}",
        ]


def _render_endpoints(p: _Plan, out: _Out) -> None:
    if p.choice.cluster and p.sp.uses_cluster_endpoints:
        _render_dispatch(p, p.chains.svc, p.choice.cluster, out)
    if p.choice.local and p.sp.uses_local_endpoints:
        _render_dispatch(p, p.chains.svl, p.choice.local, out)
    _render_endpoint_chains(p, out)


def render_service(sp: ServicePort, endpoints: Sequence[Endpoint], node: NodeInfo, large: bool) -> ServiceRules:
    """The rules of one Service port (pure; `render` caches them between syncs)."""
    out = _Out(node=node, large=large)
    p = _plan(sp, unique_endpoints(endpoints), node, large)
    _render_cluster_ip(p, out)
    _render_external_ips(p, out)
    _render_load_balancer_ips(p, out)
    _render_node_ports(p, out)
    _render_ext_chain(p, out)
    _render_fw_chain(p, out)
    _render_endpoints(p, out)
    return ServiceRules(endpoints, tuple((c, tuple(r)) for c, r in out.own.items()), tuple(out.shared))


# ---------------------------------------------------------------- fixed chains


def _fixed_chains(node: NodeInfo) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(filter, nat) chains whose rules do not depend on Services: the
    masquerade chains, the localnet firewall and KUBE-FORWARD."""
    m = node.masquerade_mark
    filter_chains: dict[str, list[str]] = {c: [] for c in (*FILTER_CHAINS, KUBELET_FIREWALL_CHAIN)}
    nat_chains: dict[str, list[str]] = {c: [] for c in NAT_CHAINS}
    nat_chains["KUBE-POSTROUTING"] += [
        f"-A KUBE-POSTROUTING -m mark ! --mark {m}/{m} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {m}",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    ]
    nat_chains[MARK_MASQ].append(f"-A {MARK_MASQ} -j MARK --or-mark {m}")
    filter_chains[KUBELET_FIREWALL_CHAIN].append(
        f'-A {KUBELET_FIREWALL_CHAIN} -m comment --comment "block incoming localnet connections" '
        "-d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
    )
    filter_chains["KUBE-FORWARD"] += [
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        f'-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark {m}/{m} -j ACCEPT',
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" '
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    ]
    return filter_chains, nat_chains


NODEPORTS_JUMP = (
    '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule '
    'in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS'
)


# ---------------------------------------------------------------- entry point


class RenderCache:
    """The ServiceRules of the last render, so an unchanged Service port (same
    ServicePort, same endpoints) is not rendered again, and a dispatch chain
    whose entries did not change is not rebuilt. Valid for one node, one
    large-cluster setting and one tree threshold; `render` resets it when any
    changes."""

    def __init__(self) -> None:
        self.by_port: dict[ServicePort, ServiceRules] = {}
        self.context: tuple[NodeInfo, bool, int] | None = None
        self.hits = 0
        self.order: list[ServicePort] = []  # by_port's keys, sorted
        self.dispatch: dict[tuple[str, str], tuple[list, list[str], dict]] = {}  # (table, chain) -> entries, tree


def render(
    services: Mapping[ServicePort, Sequence[Endpoint]],
    node: NodeInfo,
    cache: RenderCache | None = None,
    tree_threshold: int = TREE_THRESHOLD,
    large_threshold: int = LARGE_CLUSTER_ENDPOINTS,
) -> Ruleset:
    """All of kube-proxy's filter and nat rules for these Service ports on `node`.

    `services` maps every Service port to proxy to its endpoints (all of them,
    ready or not, sorted or not); a port with no endpoints gets REJECT rules.
    With a `cache`, Service ports whose endpoints are the same as last time
    reuse their rendered rules. Chains with more than `tree_threshold` rules
    become dispatch trees (`dataplane.dispatch`); above `large_threshold`
    endpoints the large-cluster layout is used.
    """
    total_endpoints = sum(len(eps) for eps in services.values())
    large = total_endpoints > large_threshold
    cache = cache if cache is not None else RenderCache()
    if cache.context != (node, large, tree_threshold):
        cache.by_port, cache.dispatch, cache.context = {}, {}, (node, large, tree_threshold)
    previous, cache.by_port, cache.hits = cache.by_port, {}, 0
    if services.keys() != previous.keys():
        cache.order = sorted(services, key=_sort_key)

    filter_chains, nat_chains = _fixed_chains(node)
    shared: dict[tuple[str, str], list] = {}
    for sp in cache.order:
        if not sp.cluster_ip:
            continue
        endpoints = services[sp]
        rendered = previous.get(sp)
        if rendered is not None and (rendered.endpoints is endpoints or rendered.endpoints == endpoints):
            cache.hits += 1
        else:
            rendered = render_service(sp, endpoints, node, large)
        cache.by_port[sp] = rendered
        nat_chains.update(rendered.chains)
        for table, chain, key, text in rendered.shared:
            shared.setdefault((table, chain), []).append((key, text))

    _add_dispatch(filter_chains, nat_chains, shared, tree_threshold, cache.dispatch)
    tables = {
        "filter": {c: tuple(r) for c, r in filter_chains.items()},
        "nat": {c: tuple(r) for c, r in nat_chains.items()},
    }
    return Ruleset(tables=tables, service_ports=len(services), endpoints=total_endpoints)


def _add_dispatch(filter_chains: dict, nat_chains: dict, shared: dict, threshold: int, cache: dict) -> None:
    """Shared chains: KUBE-SERVICES (nat and filter) and nat KUBE-NODEPORTS as
    trees above `threshold` rules, every other shared chain as a list. `cache`
    keeps each chain's output, reused while its entries stay the same."""
    previous = dict(cache)
    cache.clear()
    for (table, chain), entries in shared.items():
        chains = nat_chains if table == "nat" else filter_chains
        if chain == "KUBE-POSTROUTING":  # hairpin rules, one per local endpoint IP, before the mark check
            hairpin = dict(sorted(entries, key=lambda entry: ip_key(entry[0])))
            chains[chain][:0] = [f"-A {chain} {text}" for text in hairpin.values()]
            continue
        before = previous.get((table, chain))
        if before is not None and before[0] == entries:
            top, sub = before[1], before[2]
        else:
            if chain == "KUBE-SERVICES":
                top, sub = ip_tree(entries, threshold)
            elif (table, chain) == ("nat", "KUBE-NODEPORTS"):
                top, sub = port_tree([(proto, port, text) for (proto, port), text in entries], threshold)
            else:
                top, sub = [text for _, text in entries], {}
            top = [f"-A {chain} {text}" for text in top]
            sub = {name: tuple(f"-A {name} {text}" for text in texts) for name, texts in sub.items()}
        cache[(table, chain)] = (entries, top, sub)
        chains[chain] += top
        chains.update(sub)
    nat_chains["KUBE-SERVICES"].append(f"-A KUBE-SERVICES {NODEPORTS_JUMP}")


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
