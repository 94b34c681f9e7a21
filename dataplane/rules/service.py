"""One Service port's rendering context, shared by the concern modules.

kube-proxy's syncProxyRules decides, per Service port, which endpoints it
uses (CategorizeEndpoints), whether it has internal and external endpoints,
which chains its traffic goes through and what filter rule stands in when
it has none. Those decisions are made once, here (`plan`), into a
`ServicePlan`; `clusterip`, `external` and `endpoints` render from it into a
`ServiceOut` (the port's own chains, and its rules in shared chains), which
freezes into the `ServiceRules` a render caches between syncs. Pure.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from dataplane.chains import ServiceChains, endpoint_chain_name, service_chains
from dataplane.model import Endpoint, NodeInfo, ServicePort

# ---------------------------------------------------------------- endpoint selection


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


def unique_endpoints(endpoints: Sequence[Endpoint]) -> list[Endpoint]:
    """One endpoint per ip:port, sorted by "ip:port" as kube-proxy's
    EndpointSliceCache does; a non-terminating duplicate wins."""
    by_address: dict[str, Endpoint] = {}
    for ep in endpoints:
        if ep.address not in by_address or not ep.terminating:
            by_address[ep.address] = ep
    return [by_address[a] for a in sorted(by_address)]


# ---------------------------------------------------------------- decisions


@dataclass(slots=True)
class ServicePlan:
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


def plan(sp: ServicePort, endpoints: Sequence[Endpoint], node: NodeInfo, large: bool) -> ServicePlan:
    chains = service_chains(sp.spn, sp.protocol)
    # Large clusters: endpoints on a known node are DNATed straight from the
    # Service chain, without a KUBE-SEP chain (see `dataplane.rules.endpoints`).
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
    return ServicePlan(
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


# ---------------------------------------------------------------- output


@dataclass(frozen=True, slots=True)
class ServiceRules:
    """Everything one Service port contributes: its own nat chains (KUBE-SVC/
    SVL/EXT/FW/SEP, full "-A" lines) and its rules in shared chains as
    (table, chain, key, rule text after "-A <chain> "). `key` is what a dispatch
    tree sorts on (the destination IP as an int, or (protocol, nodePort)); None
    for chains that stay linear. `endpoints` is the input it was rendered from,
    so a cached copy is reused only for the same input; `reachable` the
    endpoints its rules send traffic to (the plan's choice)."""

    endpoints: Sequence[Endpoint]
    chains: tuple[tuple[str, tuple[str, ...]], ...]
    shared: tuple[tuple[str, str, object, str], ...]
    reachable: tuple[Endpoint, ...] = ()


@dataclass
class ServiceOut:
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

    def freeze(self, endpoints: Sequence[Endpoint], reachable: tuple[Endpoint, ...]) -> ServiceRules:
        return ServiceRules(endpoints, tuple((c, tuple(r)) for c, r in self.own.items()), tuple(self.shared),
                            reachable)
