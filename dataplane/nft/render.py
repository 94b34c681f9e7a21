"""The nftables render: every Service port -> one `NftRuleset`.

`render(services, node)` takes the same plain inputs as the iptables render
(`dataplane.rules.render`) and returns what kube-proxy's nftables proxier
(pkg/proxy/nftables/proxier.go, Kubernetes 1.32/1.33) writes for them into
`table ip kube-proxy`: the fixed chains, maps and sets (`dataplane.nft.fixed`)
and each Service port's elements, chains and affinity sets
(`dataplane.nft.service`). `NftRuleset.text()` is the `nft -f` input.

A `NftRenderCache` keeps each Service port's output between renders, so a
sync re-renders only the ports whose Service or endpoints changed, and the
last ruleset, so the next one is that ruleset with the changed ports'
chains and elements swapped (copies of its dicts, patched). Such a ruleset
carries a `Delta` naming what it touched, and `transaction.compose_partial`
then compares only those names and keys: at 10,000 Services a one-endpoint
sync no longer rebuilds and compares 40,000 chains and 10,000 map elements.

Deliberate differences from kube-proxy, none visible to packets:
- an unset nodePortAddresses (`NodeInfo.node_port_ips` None) means the
  node's primary IP, kube-proxy's nftables default, rather than "all";
- detectLocalMode InterfaceNamePrefix matches `iifname <prefix>*` where
  kube-proxy writes `iif <prefix>*`, which nft refuses;
- IPv4 only (`table ip`); topology hints are not implemented.
Pure.
"""
from __future__ import annotations

import dataclasses
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
from dataplane.nft.ruleset import Delta, NftRuleset
from dataplane.nft.service import NftServiceRules, render_service


class NftRenderCache:
    """The NftServiceRules of the last render, so an unchanged Service port
    (same ServicePort, same endpoints) is not rendered again, and the last
    ruleset with what patching it needs. Valid for one node and one set of
    Service CIDRs; `render` resets it when they change."""

    def __init__(self) -> None:
        self.by_port: dict[ServicePort, NftServiceRules] = {}
        self.node: NodeInfo | None = None
        self.hits = 0
        self.key: tuple | None = None
        self.last: NftRuleset | None = None
        self.cluster_ips: dict[str, int] = {}  # ClusterIP -> Service ports naming it (ports of a Service share it)


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
    `cache`, ports whose endpoints did not change reuse their output, and
    the result is the last one patched where that is exact (see the module
    docstring).
    """
    cache = cache if cache is not None else NftRenderCache()
    key = (node, tuple(service_cidrs))
    if cache.key != key:
        cache.by_port, cache.node, cache.key, cache.last = {}, node, key, None
    previous, cache.by_port, cache.hits = cache.by_port, {}, 0
    local = local_matches(node)
    total_endpoints = 0
    changed: list[tuple[NftServiceRules | None, NftServiceRules | None]] = []  # (old, new); new None: gone
    for sp, endpoints in services.items():
        total_endpoints += len(endpoints)
        if not sp.cluster_ip:
            continue
        rendered = previous.get(sp)
        if rendered is not None and (rendered.endpoints is endpoints or rendered.endpoints == endpoints):
            cache.hits += 1
        else:
            old, rendered = rendered, render_service(sp, endpoints, node, local)
            changed.append((old, rendered))
        cache.by_port[sp] = rendered
    if len(cache.by_port) != len(previous) + sum(old is None for old, _ in changed):  # some ports are gone
        changed += [(rendered, None) for sp, rendered in previous.items() if sp not in cache.by_port]
    ruleset = None
    if cache.last is not None:
        ruleset = _patched(cache, changed, len(services), total_endpoints)
    if ruleset is None:
        ruleset = _whole(cache, node, service_cidrs, len(services), total_endpoints)
    cache.last = ruleset
    return ruleset


def _whole(cache: NftRenderCache, node: NodeInfo, service_cidrs: Sequence[str], ports: int,
           total_endpoints: int) -> NftRuleset:
    """The ruleset built from every port's output (cache.by_port)."""
    nodeport_ips = node_port_ips(node)
    chains = {name: tuple(rules) for name, rules in fixed_chains(node, nodeport_ips, service_cidrs).items()}
    sets = fixed_sets(nodeport_ips)
    elements: dict[str, dict[str, str]] = {name: {} for name in MAPS}
    counts: dict[str, int] = {}
    affinity: dict[str, str] = {}
    unique = True  # no map key named by two ports (else the last port wins, and patching is not exact)
    for rendered in cache.by_port.values():
        chains.update(rendered.chains)
        for container, key, value in rendered.elements:
            if value is None:
                counts[key] = counts.get(key, 0) + 1
            else:
                unique = unique and key not in elements[container]
                elements[container][key] = value
        affinity.update(rendered.affinity_sets)
    cache.cluster_ips = counts if unique else {}
    out_sets = {name: (decl, frozenset(keys)) for name, (decl, keys) in sets.items()}
    out_sets["cluster-ips"] = (out_sets["cluster-ips"][0], frozenset(counts))
    out_sets.update((name, (decl, frozenset())) for name, decl in affinity.items())
    ruleset = NftRuleset(
        base_chains=dict(BASE_CHAINS),
        chains=chains,
        maps={name: (MAPS[name], elements[name]) for name in MAPS},
        sets=out_sets,
        service_ports=ports,
        endpoints=total_endpoints,
        services=cache.by_port,  # a new dict every render, so the ruleset may keep it
    )
    return ruleset if unique else dataclasses.replace(ruleset, delta=Delta(None, frozenset(), {}, patchable=False))


def _patched(cache: NftRenderCache, changed: list, ports: int, total_endpoints: int) -> NftRuleset | None:
    """cache.last with the `changed` ports' (old, new) outputs swapped; None
    when that would not be exactly what `_whole` builds (a map key two ports
    name)."""
    last = cache.last
    if last.delta is not None and not last.delta.patchable:
        return None
    chains = dict(last.chains)
    elements = {name: dict(items) for name, (_, items) in last.maps.items()}
    sets = dict(last.sets)
    counts = dict(cache.cluster_ips)
    touched_chains: set[str] = set()
    touched: dict[str, set[str]] = {}
    for old, _ in changed:
        if old is None:
            continue
        for chain, _rules in old.chains:
            del chains[chain]
            touched_chains.add(chain)
        for container, key, value in old.elements:
            if value is None:
                counts[key] -= 1
                if not counts[key]:
                    del counts[key]
                    touched.setdefault("cluster-ips", set()).add(key)
            else:
                del elements[container][key]
                touched.setdefault(container, set()).add(key)
        for name, _decl in old.affinity_sets:
            del sets[name]
    for _, new in changed:
        if new is None:
            continue
        for chain, rules in new.chains:
            chains[chain] = rules
            touched_chains.add(chain)
        for container, key, value in new.elements:
            if value is None:
                counts[key] = counts.get(key, 0) + 1
                touched.setdefault("cluster-ips", set()).add(key)
            elif key in elements[container]:
                return None  # two ports name this key
            else:
                elements[container][key] = value
                touched.setdefault(container, set()).add(key)
        for name, decl in new.affinity_sets:
            sets[name] = (decl, frozenset())
    cache.cluster_ips = counts
    if "cluster-ips" in touched:
        sets["cluster-ips"] = (sets["cluster-ips"][0], frozenset(counts))
    return NftRuleset(
        base_chains=last.base_chains,
        chains=chains,
        maps={name: (decl, elements[name]) for name, (decl, _) in last.maps.items()},
        sets=sets,
        service_ports=ports,
        endpoints=total_endpoints,
        services=cache.by_port,
        delta=Delta(last, frozenset(touched_chains), {k: frozenset(v) for k, v in touched.items()}),
    )
