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

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from dataplane.model import Endpoint, ServicePort

TABLE = "kube-proxy"
FAMILY = "ip"


@dataclass(frozen=True)
class NftRuleset:
    base_chains: Mapping[str, str]
    chains: Mapping[str, tuple[str, ...]]
    maps: Mapping[str, tuple[str, Mapping[str, str]]] = field(default_factory=dict)
    sets: Mapping[str, tuple[str, frozenset[str]]] = field(default_factory=dict)
    service_ports: int = 0
    endpoints: int = 0
    services: Mapping[Any, Any] = field(default_factory=dict)

    def rules(self) -> int:
        return sum(len(r) for r in self.chains.values())

    def reachable(self, sp: ServicePort) -> tuple[Endpoint, ...]:
        """The endpoints `sp`'s rules send traffic to (() if it has none or was not rendered)."""
        rendered = self.services.get(sp)
        return rendered.reachable if rendered is not None else ()
