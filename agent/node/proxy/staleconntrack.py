"""The proxier's conntrack cleanup after a sync, the same in both proxy modes.

kube-proxy's CleanStaleEntries for UDP: entries of a UDP Service port that
just got its first endpoint, and entries DNATed to an endpoint its rules no
longer use, go ("uses" is what the sync's render chose: `reachable` of the
iptables `Ruleset` or the nftables `NftRuleset`). For TCP, CLOSE and
TIME_WAIT entries of endpoints that left their Service's slices go
(dataplane/conntrack.py says why). A failed cleanup is logged and never
fails the sync.
"""
from __future__ import annotations

import logging
from typing import Any

from dataplane.model import ServicePort


class StaleConntrack:
    """Remembers what the last sync rendered for the UDP ports; `conntrack`
    is `dataplane.conntrack` (or a fake)."""

    def __init__(self, conntrack: Any, log: logging.Logger) -> None:
        self._conntrack = conntrack
        self._log = log
        self._udp_rules: dict[ServicePort, Any] = {}

    def clear_udp(self, ruleset, udp_ports: list[ServicePort]) -> None:
        """Entries of a UDP port that just got its first endpoint, and entries
        DNATed to an endpoint it no longer uses, go; "uses" is what this sync's
        render chose (`Ruleset.reachable`). Ports rendered from the same
        ServiceRules as last time use the same endpoints: nothing to compare."""
        previous, self._udp_rules = self._udp_rules, {sp: ruleset.services.get(sp) for sp in udp_ports}
        for sp, rules in self._udp_rules.items():
            before = previous.pop(sp, None)
            if rules is before:
                continue
            now, then = _ips(rules), _ips(before)
            self._clear_service(sp, bool(now) and not then, then - now)
        for sp, before in previous.items():  # ports that are gone
            self._clear_service(sp, False, _ips(before))

    def _clear_service(self, sp: ServicePort, first_endpoints: bool, gone: frozenset[str]) -> None:
        try:
            if first_endpoints:
                self._clear_destinations(sp, None)
            for endpoint_ip in gone:
                self._clear_destinations(sp, endpoint_ip)
        except Exception as err:  # a failed cleanup must not fail the sync
            self._log.warning("clearing UDP conntrack entries for %s failed: %s", sp.spn, err)

    def _clear_destinations(self, sp: ServicePort, endpoint_ip: str | None) -> None:
        for ip in (sp.cluster_ip, *sp.external_ips, *sp.load_balancer_ips):
            if ip:
                self._conntrack.clear_udp(ip, sp.port, endpoint_ip)
        if sp.node_port:
            self._conntrack.clear_udp_node_port(sp.node_port, endpoint_ip)

    def clear_closed_tcp(self, left: list[tuple[ServicePort, frozenset[str]]]) -> None:
        """CLOSE and TIME_WAIT entries DNATed to an endpoint that is no longer
        in its Service's slices go, so no new connection reusing a source
        port follows them to a pod that is gone."""
        for sp, ips in left:
            try:
                for endpoint_ip in ips:
                    for ip in (sp.cluster_ip, *sp.external_ips, *sp.load_balancer_ips):
                        if ip:
                            self._conntrack.clear_closed_tcp(endpoint_ip, ip, sp.port)
                    if sp.node_port:
                        self._conntrack.clear_closed_tcp(endpoint_ip, node_port=sp.node_port)
            except Exception as err:  # a failed cleanup must not fail the sync
                self._log.warning("clearing closed TCP conntrack entries for %s failed: %s", sp.spn, err)


def _ips(rules: Any) -> frozenset[str]:
    return frozenset(ep.ip for ep in rules.reachable) if rules is not None else frozenset()
