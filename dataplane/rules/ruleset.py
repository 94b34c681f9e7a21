"""What a render produces and the applier writes: a `Ruleset`.

A Ruleset is {table: {chain: rule lines}} for filter and nat, plus what the
proxier needs to know about how it was made (how many Service ports and
endpoints, and each Service port's rendered rules with the endpoints it
uses). `restore_text` turns tables into iptables-restore input; the applier
(`dataplane.applier`) composes its restores from the same tables. Pure.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

if TYPE_CHECKING:
    from dataplane.model import Endpoint, ServicePort
    from dataplane.rules.service import ServiceRules

Tables = Mapping[str, Mapping[str, tuple[str, ...]]]


class Ruleset:
    """What to write: {table: {chain: rule lines}} for filter and nat.

    `chains` are the chains declared per table (so the applier can delete
    stale ones). `text` is the whole of it as iptables-restore input, built
    when asked for and not kept: a partial sync that writes only changed
    chains never builds it, and the applier's last ruleset does not hold
    megabytes of it. `services` maps each Service port to its rendered rules
    (`ServiceRules`), so the proxier's conntrack cleanup works from the
    endpoints this render chose (`reachable`) instead of choosing again.
    """

    def __init__(self, tables: Tables, service_ports: int = 0, endpoints: int = 0,
                 services: Mapping[ServicePort, ServiceRules] | None = None) -> None:
        self.tables = tables
        self.chains = {t: frozenset(c) for t, c in tables.items()}
        self.service_ports = service_ports
        self.endpoints = endpoints
        self.services = services if services is not None else {}

    @property
    def text(self) -> str:
        return restore_text(self.tables)

    def chains_in(self, table: str) -> frozenset[str]:
        return self.chains.get(table, frozenset())

    def rules(self) -> int:
        return sum(len(r) for chains in self.tables.values() for r in chains.values())

    def reachable(self, sp: ServicePort) -> tuple[Endpoint, ...]:
        """The endpoints `sp`'s rules send traffic to (() if it has none or was not rendered)."""
        rendered = self.services.get(sp)
        return rendered.reachable if rendered is not None else ()


def restore_text(tables: Mapping[str, Mapping[str, Sequence[str]]],
                 head: Mapping[str, Sequence[str]] | None = None,
                 tail: Mapping[str, Sequence[str]] | None = None) -> str:
    """iptables-restore input declaring (and so flushing) every chain of
    `tables`; `head`/`tail` add lines at the start / end of a table's section."""
    parts = []
    for table, chains in tables.items():
        parts.append(f"*{table}")
        parts += (head or {}).get(table, ())
        parts += [f":{c} - [0:0]" for c in chains]
        for rules in chains.values():
            parts += rules
        parts += (tail or {}).get(table, ())
        parts.append("COMMIT")
    parts.append("")
    return "\n".join(parts)
