"""kube-proxy's proxy modes: which render and which applier a node's proxier uses.

`make(mode)` gives the pair for KubeProxyConfiguration `mode`:
- "iptables" (the default): `dataplane.rules.render` into a `Ruleset`,
  written by `dataplane.applier.Applier` (iptables-legacy-restore);
- "nftables": `dataplane.nft.render.render` into an `NftRuleset`, written by
  `dataplane.nft.applier.NftApplier` (netlink batches, nft for the fixed part).
Both rulesets answer `services` / `reachable`, so the proxier's conntrack
cleanup is the same in both modes.

`cleanup_other(mode)` is what kube-proxy does at start for the modes it is
not running in (its CleanupLeftovers): going to nftables, every KUBE-* chain
and jump rule of ours leaves iptables (`dataplane.iptables.cleanup`, others'
rules stay); going to iptables, `table ip kube-proxy` is deleted. The
proxier calls it after its first successful full sync in the new mode, so
Services are programmed by one mode or the other at every moment.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from dataplane.model import Endpoint, NodeInfo, ServicePort

MODES = ("iptables", "nftables")


@dataclass
class Backend:
    """One mode's render (with its cache) and applier."""

    mode: str
    applier: Any  # dataplane.applier.Applier or dataplane.nft.applier.NftApplier
    _render: Callable[..., Any]
    cache: Any
    options: dict = field(default_factory=dict)

    def render(self, services: Mapping[ServicePort, Sequence[Endpoint]], node: NodeInfo):
        return self._render(services, node, self.cache, **self.options)

    def rule_counts(self, ruleset) -> dict[str, int]:
        """Rules written, per iptables table ({"nftables": n} in nftables mode)."""
        if self.mode == "nftables":
            return {"nftables": ruleset.rules()}
        return {table: sum(map(len, chains.values())) for table, chains in ruleset.tables.items()}

    @property
    def canary(self) -> tuple[str, str]:
        """What the canary check reads, and what it says when it is gone (for the log)."""
        if self.mode == "nftables":
            return "handle of table ip kube-proxy", "table ip kube-proxy is gone or was made again (nft flushed?)"
        return "KUBE-PROXY-CANARY chains", "KUBE-PROXY-CANARY is gone (iptables flushed?)"


def make(mode: str = "iptables", applier: Any = None, verify: str = "off", **options) -> Backend:
    """The render and applier of `mode` (`applier` given: used as is).
    `options`: iptables mode's tree_threshold / large_threshold."""
    if mode == "nftables":
        from dataplane.nft.applier import NftApplier
        from dataplane.nft.render import NftRenderCache, render
        return Backend(mode, applier if applier is not None else NftApplier(verify=verify), render, NftRenderCache())
    if mode == "iptables":
        from dataplane.applier import Applier
        from dataplane.rules import RenderCache, render
        opts = {k: v for k, v in options.items() if k in ("tree_threshold", "large_threshold") and v is not None}
        return Backend(mode, applier if applier is not None else Applier(verify=verify),
                       _iptables_render(render), RenderCache(), opts)
    raise ValueError(f'unsupported proxy mode "{mode}": supported values: "iptables", "nftables"')


def _iptables_render(render):
    def call(services, node, cache, tree_threshold=None, large_threshold=None):
        from dataplane.dispatch import TREE_THRESHOLD
        from dataplane.rules import LARGE_CLUSTER_ENDPOINTS
        return render(services, node, cache, tree_threshold if tree_threshold is not None else TREE_THRESHOLD,
                      large_threshold if large_threshold is not None else LARGE_CLUSTER_ENDPOINTS)
    return call


def cleanup_other(mode: str) -> str:
    """Remove the rules of the mode that is not `mode` from this network
    namespace; returns what was done, for the log ("" when nothing was there)."""
    if mode == "nftables":
        from dataplane import iptables
        text = iptables.compose_cleanup(iptables.read_tables())
        if not text:
            return ""
        iptables.restore(text)
        return "removed the iptables mode's KUBE-* chains and jump rules"
    from dataplane.nft.kernel import Nft
    return "deleted table ip kube-proxy (nftables mode's)" if Nft().delete_table() else ""
