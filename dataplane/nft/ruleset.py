"""What the nftables render produces and the nftables applier writes: an `NftRuleset`.

kube-proxy's nftables mode (pkg/proxy/nftables) keeps everything in one
table, `table ip kube-proxy`: base chains hooked into netfilter, regular
chains (per Service port `service-<hash>-<ns>/<name>/<proto>/<port>`, per
endpoint `endpoint-<hash>-...`, `external-...`, `firewall-...`), verdict
maps (`service-ips`, `service-nodeports`, `no-endpoint-services`, ...) and
sets (`cluster-ips`, `nodeport-ips`). A partial sync rewrites only the
chains whose rules changed and adds or deletes only the map and set
elements that changed, so the ruleset is kept as plain data the applier can
compare with what it wrote last:

- `chains`: {chain name: rule lines in `nft` syntax, without the `add rule
  ip kube-proxy <chain>` prefix};
- `base_chains`: {chain name: its declaration body, e.g. `type nat hook
  prerouting priority dstnat ;`} (fixed for a table's life);
- `maps`: {map name: (its declaration, e.g. `type ipv4_addr . inet_proto .
  inet_service : verdict ;`, {element key: element value})};
- `sets`: {set name: (its declaration, frozenset of element keys)};
- `services`: each Service port's rendered plan (`dataplane.rules.ServiceRules`
  or an equivalent with `reachable`), so the proxier's conntrack cleanup works
  in both modes.

Pure data. The render (dataplane.nft.render) makes it; the applier
(dataplane.nft.applier) turns it, or its difference from the last one
written, into one `nft -f` transaction.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from dataplane.model import Endpoint, ServicePort

TABLE = "kube-proxy"
FAMILY = "ip"
TABLE_COMMENT = "rules for kube-proxy"
# Regular chains kube-proxy declares with a comment.
CHAIN_COMMENTS = {"reject-chain": "helper for @no-endpoint-services / @no-endpoint-nodeports"}


class Delta:
    """How a ruleset differs from `base` (the ruleset rendered before it):
    only in these chains (added, changed or gone) and in these keys of these
    maps and sets (and in affinity sets, found by comparing names). A render
    that could not say so marks its ruleset `patchable=False`. The base is
    held weakly: each ruleset would otherwise keep every earlier one alive."""

    __slots__ = ("_base", "chains", "elements", "patchable")

    def __init__(self, base: NftRuleset | None, chains: frozenset[str], elements: Mapping[str, frozenset[str]],
                 patchable: bool = True) -> None:
        self._base = weakref.ref(base) if base is not None else None
        self.chains, self.elements, self.patchable = chains, elements, patchable

    @property
    def base(self) -> NftRuleset | None:
        return self._base() if self._base is not None else None


@dataclass(frozen=True)
class NftRuleset:
    base_chains: Mapping[str, str]
    chains: Mapping[str, tuple[str, ...]]
    maps: Mapping[str, tuple[str, Mapping[str, str]]] = field(default_factory=dict)
    sets: Mapping[str, tuple[str, frozenset[str]]] = field(default_factory=dict)
    service_ports: int = 0
    endpoints: int = 0
    services: Mapping[Any, Any] = field(default_factory=dict)
    delta: Delta | None = None  # what changed since the ruleset rendered before (dataplane.nft.render)

    def rules(self) -> int:
        return sum(len(r) for r in self.chains.values())

    def reachable(self, sp: ServicePort) -> tuple[Endpoint, ...]:
        """The endpoints `sp`'s rules send traffic to (() if it has none or was not rendered)."""
        rendered = self.services.get(sp)
        return rendered.reachable if rendered is not None else ()

    def text(self, replace: bool = False) -> str:
        """The whole table as `nft -f` input (knftables' syntax, which is also
        how kube-proxy's tests print it): table, chains, sets and maps, then
        rules, then elements, so every name is declared before it is used.
        With `replace`, the table is first added and deleted, so the load
        replaces whatever table of that name existed (in one transaction)."""
        t = f"{FAMILY} {TABLE}"
        out = []
        if replace:
            out += [f"add table {t}", f"delete table {t}"]
        out.append(f'add table {t} {{ comment "{TABLE_COMMENT}" ; }}')
        out += [f"add chain {t} {name} {{ {body} }}" for name, body in self.base_chains.items()]
        for name in self.chains:
            if name in self.base_chains:
                continue
            if name in CHAIN_COMMENTS:
                out.append(f'add chain {t} {name} {{ comment "{CHAIN_COMMENTS[name]}" ; }}')
            else:
                out.append(f"add chain {t} {name}")
        out += [f"add set {t} {name} {{ {decl} }}" for name, (decl, _) in self.sets.items()]
        out += [f"add map {t} {name} {{ {decl} }}" for name, (decl, _) in self.maps.items()]
        for name, rules in self.chains.items():
            prefix = f"add rule {t} {name} "
            out += [prefix + rule for rule in rules]
        for name, (_, keys) in self.sets.items():
            prefix = f"add element {t} {name} {{ "
            out += [f"{prefix}{key} }}" for key in keys]
        for name, (_, elements) in self.maps.items():
            prefix = f"add element {t} {name} {{ "
            out += [f"{prefix}{key} : {value} }}" for key, value in elements.items()]
        out.append("")
        return "\n".join(out)
