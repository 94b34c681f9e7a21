"""The nftables render: every Service port -> one `NftRuleset`.

`render(services, node)` takes the same plain inputs as the iptables render
(`dataplane.rules.render`) and returns what kube-proxy's nftables proxier
(pkg/proxy/nftables/proxier.go, Kubernetes 1.32/1.33) writes for them into
`table ip kube-proxy`: the fixed chains, maps and sets (`dataplane.nft.fixed`)
and each Service port's elements, chains and affinity sets
(`dataplane.nft.service`). `NftRuleset.text()` is the `nft -f` input.

A `NftRenderCache` keeps each Service port's output between renders, so a
sync re-renders only the ports whose Service or endpoints changed.

Deliberate differences from kube-proxy, none visible to packets:
- an unset nodePortAddresses (`NodeInfo.node_port_ips` None) means the
  node's primary IP, kube-proxy's nftables default, rather than "all";
- detectLocalMode InterfaceNamePrefix matches `iifname <prefix>*` where
  kube-proxy writes `iif <prefix>*`, which nft refuses;
- IPv4 only (`table ip`); topology hints are not implemented.
Pure.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from dataplane.model import Endpoint, NodeInfo, ServicePort
from dataplane.nft.fixed import (
    BASE_CHAINS,
    MAPS,
    fixed_chains,
    fixed_sets,
    local_matches,
    node_port_ips,
)
from dataplane.nft.ruleset import NftRuleset
from dataplane.nft.service import NftServiceRules, render_service


class NftRenderCache:
    """The NftServiceRules of the last render, so an unchanged Service port
    (same ServicePort, same endpoints) is not rendered again. Valid for one
    node; `render` resets it when the node changes."""

    def __init__(self) -> None:
        self.by_port: dict[ServicePort, NftServiceRules] = {}
        self.node: NodeInfo | None = None
        self.hits = 0


def render(
    services: Mapping[ServicePort, Sequence[Endpoint]],
    node: NodeInfo,
    cache: NftRenderCache | None = None,
    service_cidrs: Sequence[str] = (),
) -> NftRuleset:
    """kube-proxy's whole nftables table for these Service ports on `node`.

    `services` maps every Service port to its endpoints (all of them, ready
    or not, in any order); ports without a ClusterIP are skipped. With
    `service_cidrs` (the cluster's Service CIDRs), traffic to an unallocated
    ClusterIP is dropped ("Drop traffic to unallocated ClusterIPs"). With a
    `cache`, ports whose endpoints did not change reuse their output.
    """
    cache = cache if cache is not None else NftRenderCache()
    if cache.node != node:
        cache.by_port, cache.node = {}, node
    previous, cache.by_port, cache.hits = cache.by_port, {}, 0
    local = local_matches(node)
    nodeport_ips = node_port_ips(node)

    chains = {name: tuple(rules) for name, rules in fixed_chains(node, nodeport_ips, service_cidrs).items()}
    sets = fixed_sets(nodeport_ips)
    elements: dict[str, dict[str, str]] = {name: {} for name in MAPS}
    cluster_ips = sets["cluster-ips"][1]
    affinity: dict[str, str] = {}
    total_endpoints = 0
    for sp, endpoints in services.items():
        total_endpoints += len(endpoints)
        if not sp.cluster_ip:
            continue
        rendered = previous.get(sp)
        if rendered is not None and (rendered.endpoints is endpoints or rendered.endpoints == endpoints):
            cache.hits += 1
        else:
            rendered = render_service(sp, endpoints, node, local)
        cache.by_port[sp] = rendered
        chains.update(rendered.chains)
        for container, key, value in rendered.elements:
            if value is None:
                cluster_ips.add(key)
            else:
                elements[container][key] = value
        affinity.update(rendered.affinity_sets)

    out_sets = {name: (decl, frozenset(keys)) for name, (decl, keys) in sets.items()}
    out_sets.update((name, (decl, frozenset())) for name, decl in affinity.items())
    return NftRuleset(
        base_chains=dict(BASE_CHAINS),
        chains=chains,
        maps={name: (MAPS[name], elements[name]) for name in MAPS},
        sets=out_sets,
        service_ports=len(services),
        endpoints=total_endpoints,
        services=cache.by_port,  # a new dict every render, so the ruleset may keep it
    )
