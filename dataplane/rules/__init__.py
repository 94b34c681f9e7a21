"""Render kube-proxy's iptables rules (iptables mode) as iptables-restore input.

Pure: `render(services, node)` takes plain data (`dataplane.model`) and returns
a `Ruleset` of `filter` and `nat` chains holding exactly the lines kube-proxy's
syncProxyRules (pkg/proxy/iptables/proxier.go) writes for the same input:
chain names (`dataplane.chains`: KUBE-SVC-/SVL-/EXT-/FW-/SEP-), comments,
statistic probabilities ("%0.10f"), masquerade mark, REJECT/DROP filter
rules. A reader of `iptables-save` sees what the Kubernetes docs show.

Split by concern rather than in one 800-line function:

- `service`: per Service port, which endpoints it uses (`categorize`) and the
  decisions that follow (`plan`), rendered into a `ServiceRules`;
- `clusterip`: the ClusterIP's KUBE-SERVICES rule and off-cluster masquerade;
- `external`: external IPs, load-balancer IPs, NodePorts, KUBE-EXT, KUBE-FW;
- `endpoints`: KUBE-SVC/KUBE-SVL dispatch and KUBE-SEP chains (and the
  large-cluster layout without them);
- `masquerade`: the fixed chains (KUBE-MARK-MASQ, KUBE-POSTROUTING,
  KUBE-FORWARD, KUBE-FIREWALL) and the hairpin rules;
- `rendering`: `render` over every port, the `RenderCache` that lets a sync
  re-render only Service ports whose endpoints changed, and the shared chains
  (dispatch trees above 1,000 rules, `dataplane.dispatch`);
- `ruleset`: the `Ruleset` the applier writes, chain by chain, so a partial
  sync writes only the chains that differ.

Deliberate differences from kube-proxy (besides the dispatch trees and the
large-cluster layout), all invisible to packets:
- Services are written in sorted order (kube-proxy walks a Go map), so the
  output is deterministic.
- Localhost NodePorts behave as kube-proxy's default without nfacct counters:
  KUBE-FIREWALL blocks martian localnet traffic and the NodePort jump is
  `-m addrtype --dst-type LOCAL` (route_localnet is the node's business).
- IPv4 only; topology hints are not implemented.
"""
from __future__ import annotations

from dataplane.rules.rendering import LARGE_CLUSTER_ENDPOINTS, RenderCache, render, render_service
from dataplane.rules.ruleset import Ruleset, restore_text
from dataplane.rules.service import EndpointChoice, ServiceRules, categorize, unique_endpoints

__all__ = [
    "LARGE_CLUSTER_ENDPOINTS",
    "EndpointChoice",
    "RenderCache",
    "Ruleset",
    "ServiceRules",
    "categorize",
    "render",
    "render_service",
    "restore_text",
    "unique_endpoints",
]
