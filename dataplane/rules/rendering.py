"""The render: every Service port -> one `Ruleset`, and what is kept between syncs.

`render_service` renders one Service port: its plan (`service.plan`), then
cluster IP, external destinations and endpoints, into a `ServiceRules`.
`render` does that for every port, reusing the `ServiceRules` of ports whose
endpoints did not change since the last render (`RenderCache`), and
assembles the shared chains from the ports' entries.

Scale: when KUBE-SERVICES (nat or filter) or nat KUBE-NODEPORTS would hold
more than `dispatch.TREE_THRESHOLD` (1,000) rules, it becomes a tree of
KUBE-SVCS-<prefix>-<len> / KUBE-NP-<PROTO>-<low>-<high> chains keyed by
destination address / port (see `dataplane.dispatch`), so a new connection
walks ~60 rules instead of every Service's. Below the threshold the output
is kube-proxy's, rule for rule. The rules inside each leaf, and every
per-Service chain, are unchanged. Each shared chain's output is cached too,
and reused while its entries are the same. Pure.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from dataplane.dispatch import TREE_THRESHOLD, ip_tree, port_tree
from dataplane.model import Endpoint, NodeInfo, ServicePort
from dataplane.rules.clusterip import render_cluster_ip
from dataplane.rules.endpoints import render_endpoints
from dataplane.rules.external import nodeports_jumps, render_external
from dataplane.rules.masquerade import add_hairpin_rules, fixed_chains
from dataplane.rules.ruleset import Ruleset
from dataplane.rules.service import ServiceOut, ServiceRules, plan, unique_endpoints

# kube-proxy drops per-endpoint comments above this many endpoints.
LARGE_CLUSTER_ENDPOINTS = 1000


def render_service(sp: ServicePort, endpoints: Sequence[Endpoint], node: NodeInfo, large: bool) -> ServiceRules:
    """The rules of one Service port (pure; `render` caches them between syncs)."""
    out = ServiceOut(node=node, large=large)
    p = plan(sp, unique_endpoints(endpoints), node, large)
    render_cluster_ip(p, out)
    render_external(p, out)
    render_endpoints(p, out)
    return out.freeze(endpoints, p.choice.reachable)


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
    endpoints the large-cluster layout is used (`dataplane.rules.endpoints`).
    """
    total_endpoints = sum(len(eps) for eps in services.values())
    large = total_endpoints > large_threshold
    cache = cache if cache is not None else RenderCache()
    if cache.context != (node, large, tree_threshold):
        cache.by_port, cache.dispatch, cache.context = {}, {}, (node, large, tree_threshold)
    previous, cache.by_port, cache.hits = cache.by_port, {}, 0
    if services.keys() != previous.keys():
        cache.order = sorted(services, key=_sort_key)

    filter_chains, nat_chains = fixed_chains(node)
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

    _add_shared_chains(filter_chains, nat_chains, shared, tree_threshold, cache.dispatch)
    nat_chains["KUBE-SERVICES"] += [f"-A KUBE-SERVICES {text}" for text in nodeports_jumps(node)]
    tables = {
        "filter": {c: tuple(r) for c, r in filter_chains.items()},
        "nat": {c: tuple(r) for c, r in nat_chains.items()},
    }
    # by_port is a new dict every render, so the Ruleset may keep it.
    return Ruleset(tables, service_ports=len(services), endpoints=total_endpoints, services=cache.by_port)


def _add_shared_chains(filter_chains: dict, nat_chains: dict, shared: dict, threshold: int, cache: dict) -> None:
    """Shared chains: KUBE-SERVICES (nat and filter) and nat KUBE-NODEPORTS as
    trees above `threshold` rules, every other shared chain as a list. `cache`
    keeps each chain's output, reused while its entries stay the same."""
    previous = dict(cache)
    cache.clear()
    for (table, chain), entries in shared.items():
        chains = nat_chains if table == "nat" else filter_chains
        if chain == "KUBE-POSTROUTING":
            add_hairpin_rules(chains[chain], entries)
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


def _sort_key(sp: ServicePort) -> tuple[str, str]:
    return (sp.spn, sp.protocol)
