"""The chains whose rules do not depend on Services: masquerading, forwarding
and the localnet firewall.

KUBE-MARK-MASQ sets the masquerade bit (1 << 14 by default); KUBE-POSTROUTING
returns unmarked packets, clears the bit and MASQUERADEs (--random-fully)
the rest; KUBE-FORWARD drops INVALID and accepts marked and established
traffic; the kubelet's KUBE-FIREWALL blocks martian localnet connections.
In the large-cluster layout (`dataplane.rules.endpoints`) the hairpin
masquerade of endpoints without a KUBE-SEP chain also lives here: one rule
per local endpoint IP at the head of KUBE-POSTROUTING, before the mark
check. Pure.
"""
from __future__ import annotations

from typing import Iterable

from dataplane.chains import FILTER_CHAINS, KUBELET_FIREWALL_CHAIN, MARK_MASQ, NAT_CHAINS
from dataplane.dispatch import ip_key
from dataplane.model import NodeInfo


def fixed_chains(node: NodeInfo) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(filter, nat): every top-level chain declared, the fixed ones filled."""
    m = node.masquerade_mark
    filter_chains: dict[str, list[str]] = {c: [] for c in (*FILTER_CHAINS, KUBELET_FIREWALL_CHAIN)}
    nat_chains: dict[str, list[str]] = {c: [] for c in NAT_CHAINS}
    nat_chains["KUBE-POSTROUTING"] += [
        f"-A KUBE-POSTROUTING -m mark ! --mark {m}/{m} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {m}",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    ]
    nat_chains[MARK_MASQ].append(f"-A {MARK_MASQ} -j MARK --or-mark {m}")
    filter_chains[KUBELET_FIREWALL_CHAIN].append(
        f'-A {KUBELET_FIREWALL_CHAIN} -m comment --comment "block incoming localnet connections" '
        "-d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
    )
    filter_chains["KUBE-FORWARD"] += [
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        f'-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark {m}/{m} -j ACCEPT',
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" '
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    ]
    return filter_chains, nat_chains


def hairpin_rule(ip: str) -> str:
    """KUBE-POSTROUTING rule (after "-A KUBE-POSTROUTING ") masquerading local endpoint `ip` reaching itself."""
    return f'-m comment --comment "hairpin traffic of local endpoint {ip}" -s {ip} -d {ip} -j {MARK_MASQ}'


def add_hairpin_rules(postrouting: list[str], entries: Iterable[tuple[str, str]]) -> None:
    """Put the (endpoint IP, rule) entries at the head of KUBE-POSTROUTING's
    rules, one per IP, ordered by address."""
    hairpin = dict(sorted(entries, key=lambda entry: ip_key(entry[0])))
    postrouting[:0] = [f"-A KUBE-POSTROUTING {text}" for text in hairpin.values()]
