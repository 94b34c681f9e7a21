"""A Service port's way to its endpoints: KUBE-SVC-/KUBE-SVL- dispatch and
KUBE-SEP- chains.

The Cluster (KUBE-SVC-) and Local (KUBE-SVL-) policy chains first recheck
session affinity (`-m recent --rcheck`), then pick an endpoint with
statistic-random rules of probability 1/n, 1/(n-1), ... ("%0.10f", as
kube-proxy prints them). Each endpoint's KUBE-SEP- chain marks hairpin
traffic (the endpoint reaching itself) for masquerading, records affinity
and DNATs.

Large clusters (more than 1,000 endpoints, where kube-proxy already drops
per-endpoint comments): an endpoint whose node is known gets no KUBE-SEP
chain; the Service chain's statistic rule DNATs to it directly, and its
hairpin masquerade becomes one rule per local endpoint IP at the head of
KUBE-POSTROUTING (`dataplane.rules.masquerade`; only a pod on this node can
be DNATed to itself here). That is 5 kernel entries fewer per endpoint
(chain head, tail, jump, two rules for one DNAT): at 10,000 Services x 3
endpoints the nat table shrinks from ~190,000 entries to ~70,000, and every
legacy restore, which replaces the whole table, costs that much less.
Session affinity (`-m recent` lists named after KUBE-SEP chains),
externalTrafficPolicy Local (a remote pod can reach a NodePort here and be
DNATed to itself) and endpoints without a node keep their KUBE-SEP chains
(`ServicePlan.sep` says which endpoints have one). Pure.
"""
from __future__ import annotations

from typing import Sequence

from dataplane.chains import MARK_MASQ
from dataplane.model import Endpoint
from dataplane.rules.masquerade import hairpin_rule
from dataplane.rules.service import ServiceOut, ServicePlan

_PROBABILITIES = ["<bad value>"] + [f"{1.0 / n:0.10f}" for n in range(1, 1001)]


def probability(n: int) -> str:
    """kube-proxy's computeProbability: fmt "%0.10f" of 1/n."""
    return _PROBABILITIES[n] if n < len(_PROBABILITIES) else f"{1.0 / n:0.10f}"


def render_endpoints(p: ServicePlan, out: ServiceOut) -> None:
    if p.choice.cluster and p.sp.uses_cluster_endpoints:
        _render_dispatch(p, p.chains.svc, p.choice.cluster, out)
    if p.choice.local and p.sp.uses_local_endpoints:
        _render_dispatch(p, p.chains.svl, p.choice.local, out)
    _render_endpoint_chains(p, out)


def _render_dispatch(p: ServicePlan, chain: str, endpoints: Sequence[Endpoint], out: ServiceOut) -> None:
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
            rules.append(f"-A {chain}{comment} -m statistic --mode random --probability {probability(n - i)} {target}")
        else:
            rules.append(f"-A {chain}{comment} {target}")


def _render_endpoint_chains(p: ServicePlan, out: ServiceOut) -> None:
    """KUBE-SEP-: hairpin masquerade, affinity --set, DNAT (or, for endpoints
    without a chain, the node's hairpin rule in KUBE-POSTROUTING)."""
    sp = p.sp
    comment = out.ep_comment(sp.spn)
    affinity = " -m recent --name {} --set" if sp.affinity_timeout else ""
    for ep in p.choice.reachable:
        sep = p.sep.get(ep.address)
        if sep is None:  # DNATed from the Service chain; a local one needs the hairpin rule
            if ep.node_name == out.node.name:
                out.share("nat", "KUBE-POSTROUTING", ep.ip, hairpin_rule(ep.ip))
            continue
        out.own[sep] = [
            f"-A {sep}{comment} -s {ep.ip} -j {MARK_MASQ}",
            f"-A {sep}{comment}{affinity.format(sep)} -m {p.proto} -p {p.proto} -j DNAT --to-destination {ep.address}",
        ]
