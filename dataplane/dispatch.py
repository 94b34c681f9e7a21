"""Dispatch trees: KUBE-SERVICES and KUBE-NODEPORTS in O(log n) at scale.

kube-proxy's KUBE-SERVICES is one linear list: the first packet of every new
connection is compared with every Service's rule, so at 10,000 Services each
new connection walks ~10,000 rules (legacy xtables has no maps, and ipset sets
cannot jump to a per-Service chain). Above `TREE_THRESHOLD` rules a chain is
turned into a tree of chains keyed by destination, so a packet walks about
`FANOUT/2 * depth + LEAF_SIZE/2` rules (~60 at 10,000 Services, 3 levels):

    KUBE-SERVICES                      (nat; filter KUBE-SERVICES likewise)
      -d 10.96.0.0/16  -j KUBE-SVCS-10.96.0.0-16
      -d 10.97.0.0/16  -j KUBE-SVCS-10.97.0.0-16   ... up to 16 prefixes
      ... NodePort jump, still the last rule
    KUBE-SVCS-10.96.0.0-16
      -d 10.96.0.0/20  -j KUBE-SVCS-10.96.0.0-20  ... up to 16
    KUBE-SVCS-10.96.0.0-20             (a leaf: <= LEAF_SIZE of the usual rules)
      -m comment --comment "ns/a:http cluster IP" -m tcp -p tcp -d 10.96.0.5 --dport 80 -j KUBE-SVC-...

    KUBE-NODEPORTS                     (by protocol and destination port)
      -p tcp -m tcp --dport 30208:30223 -j KUBE-NP-TCP-30208-30223 ...

Each tree node splits its entries by the next `STRIDE` bits after their
longest common prefix, and each child is named by (and matched on) the
longest common prefix of its own entries, so an empty part of the address
space costs nothing and a miss leaves a subtree at the first rule. A child
holding a single rule is inlined. Entries keep their relative order within a
leaf, so two rules for one IP keep kube-proxy's order; distinct keys never
overlap, so reordering across keys changes nothing. Chain names depend only
on the keys below them, so adding one Service rewrites only its path (which
keeps partial syncs small).

Pure: lists of rule strings in, chains out; `dataplane.rules` decides when.
"""
from __future__ import annotations

import ipaddress
from typing import Callable, Sequence

# Chains with more rules than this become trees. kube-proxy's own "large
# cluster" cut-off is 1,000 endpoints; at 1,000 Service ports a linear walk
# still costs only some microseconds per new connection (the benchmark shows
# it), and every cluster below keeps kube-proxy's exact shape.
TREE_THRESHOLD = 1000
STRIDE = 4  # bits per level: up to 16 children per node
LEAF_SIZE = 64  # rules in a leaf chain before it is split

IP_TREE_PREFIX = "KUBE-SVCS-"
PORT_TREE_PREFIX = "KUBE-NP-"
TREE_CHAIN_PREFIXES = (IP_TREE_PREFIX, PORT_TREE_PREFIX)

Entry = tuple[int, str]  # (key: IPv4 address or port as an int, rule text after "-A <chain> ")
Chains = dict[str, list[str]]  # chain -> rule text after "-A <chain> ", in order


def ip_key(ip: str) -> int:
    """Dotted IPv4 -> int (the model only holds validated IPv4 addresses)."""
    a, b, c, d = ip.split(".")
    return (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)


def ip_tree(entries: Sequence[Entry], threshold: int = TREE_THRESHOLD) -> tuple[list[str], Chains]:
    """(top rules, sub-chains) dispatching `entries` by destination address;
    the entries themselves, in order, when there are at most `threshold`."""
    if len(entries) <= threshold:
        return [tail for _, tail in entries], {}
    return _tree(entries, 32, _ip_name, _ip_match)


def port_tree(entries: Sequence[tuple[str, int, str]], threshold: int = TREE_THRESHOLD) -> tuple[list[str], Chains]:
    """As `ip_tree` for (protocol, destination port, rule) entries: one tree per protocol."""
    if len(entries) <= threshold:
        return [tail for _, _, tail in entries], {}
    top: list[str] = []
    chains: Chains = {}
    for proto in sorted({p for p, _, _ in entries}):
        mine = [(port, tail) for p, port, tail in entries if p == proto]
        rules, sub = _tree(mine, 16, _port_name(proto), _port_match(proto))
        top += rules
        chains.update(sub)
    return top, chains


# ---------------------------------------------------------------- the tree


def _tree(entries: Sequence[Entry], bits: int, name: Callable[[int, int], str],
          match: Callable[[int, int], str]) -> tuple[list[str], Chains]:
    chains: Chains = {}
    ordered = sorted(entries, key=lambda e: e[0])  # stable: same key keeps its order
    top = _split(ordered, bits, name, match, chains)
    return top, chains


def _split(entries: list[Entry], bits: int, name, match, chains: Chains) -> list[str]:
    """Rules of one interior node: a jump per child (or the rule, for a single-rule child)."""
    lcp = _common_prefix(entries[0][0], entries[-1][0], bits)
    width = min(STRIDE, bits - lcp)
    shift = bits - lcp - width
    rules: list[str] = []
    start = 0
    while start < len(entries):
        group = entries[start][0] >> shift
        end = start
        while end < len(entries) and entries[end][0] >> shift == group:
            end += 1
        rules += _child(entries[start:end], bits, name, match, chains)
        start = end
    return rules


def _child(entries: list[Entry], bits: int, name, match, chains: Chains) -> list[str]:
    if len(entries) == 1:
        return [entries[0][1]]
    lcp = _common_prefix(entries[0][0], entries[-1][0], bits)
    prefix = entries[0][0] >> (bits - lcp) << (bits - lcp) if lcp else 0
    chain = name(prefix, lcp)
    if len(entries) <= LEAF_SIZE or lcp == bits:
        chains[chain] = [tail for _, tail in entries]
    else:
        chains[chain] = _split(entries, bits, name, match, chains)
    return [f"{match(prefix, lcp)} -j {chain}"]


def _common_prefix(low: int, high: int, bits: int) -> int:
    """Length of the common leading bits of two `bits`-wide keys."""
    return bits - (low ^ high).bit_length()


# ---------------------------------------------------------------- names and matches


def _ip_name(prefix: int, length: int) -> str:
    return f"{IP_TREE_PREFIX}{ipaddress.IPv4Address(prefix)}-{length}"  # <= 28 characters


def _ip_match(prefix: int, length: int) -> str:
    return f"-d {ipaddress.IPv4Address(prefix)}/{length}"


def _port_range(prefix: int, length: int) -> tuple[int, int]:
    return prefix, prefix | ((1 << (16 - length)) - 1)


def _port_name(proto: str) -> Callable[[int, int], str]:
    def name(prefix: int, length: int) -> str:
        low, high = _port_range(prefix, length)
        return f"{PORT_TREE_PREFIX}{proto.upper()}-{low}-{high}"

    return name


def _port_match(proto: str) -> Callable[[int, int], str]:
    p = proto.lower()

    def match(prefix: int, length: int) -> str:
        low, high = _port_range(prefix, length)
        return f"-p {p} -m {p} --dport {low}:{high}"

    return match
