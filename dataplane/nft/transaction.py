"""The text of one `nft -f` transaction that writes an `NftRuleset` (pure).

kube-proxy's nftables proxier writes each sync as one knftables transaction;
nft applies a file (or buffer) as one netlink batch, so every sync is atomic:
a packet sees the table before or after, never half of it.

- `compose_full(ruleset, existing)`: what kube-proxy's full sync does. The
  table is added (created when missing, else untouched), every chain, map
  and set declared (`add` is idempotent for an identical declaration),
  every chain flushed and refilled, every map and every set not filled by
  the datapath (a `timeout` set: session affinity) flushed and refilled,
  then the chains, maps and sets of ours that the kernel holds
  (`existing`, read by the caller) and the ruleset no longer has are
  flushed and deleted: chains after every rule and element that referred
  to them is gone, in the same transaction.
- `compose_partial(ruleset, previous)`: kube-proxy's partial sync, reading
  nothing. Chains whose rules changed are flushed and refilled, new chains
  declared, map and set elements added or deleted one by one (an element
  whose value changed is deleted and added again: nft refuses to `add` an
  existing key with another value), chains, maps and sets gone since
  `previous` deleted. Returns None when the two rulesets differ in what a
  partial sync cannot change (base chains, a map's or set's declaration):
  the caller syncs in full.

Element keys may carry an nft comment (`10.96.0.10 . udp . 53 comment
"kube-system/kube-dns:dns"`); a deletion names the key without it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from dataplane.nft.ruleset import CHAIN_COMMENTS, FAMILY, TABLE, NftRuleset

TABLE_COMMENT = "rules for kube-proxy"
PREFIX = f"{FAMILY} {TABLE}"
_COMMENT = re.compile(r'\s+comment\s+"[^"]*"')


@dataclass(frozen=True)
class Existing:
    """What the kernel's `table ip kube-proxy` holds, by name (no rules, no elements)."""

    chains: frozenset[str] = frozenset()
    maps: frozenset[str] = frozenset()
    sets: frozenset[str] = frozenset()


@dataclass
class Transaction:
    """One nft transaction's text and what it touched (for logs and metrics)."""

    text: str
    chains_written: int = 0
    chains_deleted: int = 0
    elements_added: int = 0
    elements_deleted: int = 0
    deleted: list[str] = field(default_factory=list)  # names of chains, maps and sets removed

    @property
    def changed(self) -> int:
        return self.chains_written + self.chains_deleted


def element_key(key: str) -> str:
    """A map or set element's key without its comment (what `delete element` takes)."""
    return _COMMENT.sub("", key).strip()


def _chain(name: str) -> str:
    """`add chain` of a regular chain, with its comment if it has one."""
    comment = CHAIN_COMMENTS.get(name)
    return f'add chain {PREFIX} {name} {{ comment "{comment}" ; }}' if comment else f"add chain {PREFIX} {name}"


def _decl(body: str) -> str:
    body = body.strip()
    return f" {{ {body} }}" if body else ""


def _elements(items: Iterable[str]) -> str:
    return ", ".join(items)


def is_dynamic(declaration: str) -> bool:
    """A set the datapath fills (`update @set`): session affinity's, with a timeout."""
    return "timeout" in declaration or "dynamic" in declaration


def _fill_map(out: list[str], name: str, elements: Mapping[str, str]) -> None:
    if elements:
        out.append(f"add element {PREFIX} {name} {{ {_elements(f'{k} : {v}' for k, v in elements.items())} }}")


def _fill_set(out: list[str], name: str, elements: Iterable[str]) -> None:
    elements = list(elements)
    if elements:
        out.append(f"add element {PREFIX} {name} {{ {_elements(elements)} }}")


def _delete(out: list[str], chains: Iterable[str], maps: Iterable[str], sets: Iterable[str]) -> list[str]:
    """Flush then delete stale chains (they may refer to each other), then maps and sets."""
    chains, gone = sorted(chains), []
    out += [f"flush chain {PREFIX} {c}" for c in chains]
    out += [f"delete chain {PREFIX} {c}" for c in chains]
    out += [f"delete map {PREFIX} {m}" for m in sorted(maps)]
    out += [f"delete set {PREFIX} {s}" for s in sorted(sets)]
    gone += chains + sorted(maps) + sorted(sets)
    return gone


def compose_full(ruleset: NftRuleset, existing: Existing = Existing()) -> Transaction:
    """The whole table as `ruleset` has it (see the module docstring)."""
    out = [f'add table {PREFIX} {{ comment "{TABLE_COMMENT}" ; }}']
    for name, body in ruleset.base_chains.items():
        out.append(f"add chain {PREFIX} {name}{_decl(body)}")
    regular = [c for c in ruleset.chains if c not in ruleset.base_chains]
    out += [_chain(c) for c in regular]
    for name, (decl, _) in ruleset.maps.items():
        out.append(f"add map {PREFIX} {name}{_decl(decl)}")
    for name, (decl, _) in ruleset.sets.items():
        out.append(f"add set {PREFIX} {name}{_decl(decl)}")
    out += [f"flush chain {PREFIX} {c}" for c in (*ruleset.base_chains, *regular)]
    out += [f"flush map {PREFIX} {m}" for m in ruleset.maps]
    out += [f"flush set {PREFIX} {s}" for s, (decl, _) in ruleset.sets.items() if not is_dynamic(decl)]
    elements = 0
    for name, (decl, items) in ruleset.sets.items():
        if not is_dynamic(decl):
            _fill_set(out, name, sorted(items))
            elements += len(items)
    for name, (_, items) in ruleset.maps.items():
        _fill_map(out, name, items)
        elements += len(items)
    for chain, rules in ruleset.chains.items():
        out += [f"add rule {PREFIX} {chain} {rule}" for rule in rules]
    gone = _delete(out, existing.chains - set(ruleset.chains) - set(ruleset.base_chains),
                   existing.maps - set(ruleset.maps), existing.sets - set(ruleset.sets))
    return Transaction("\n".join(out) + "\n", len(ruleset.chains), len(gone), elements, 0, gone)


def compose_partial(ruleset: NftRuleset, previous: NftRuleset) -> Transaction | None:
    """What turns `previous` (written last) into `ruleset`; None when only a
    full sync can (see the module docstring). Empty text when nothing changed."""
    if dict(ruleset.base_chains) != dict(previous.base_chains):
        return None
    for now, before in ((ruleset.maps, previous.maps), (ruleset.sets, previous.sets)):
        if any(name in before and before[name][0] != decl for name, (decl, _) in now.items()):
            return None
    adds, deletes, fills, rules = [], [], [], []
    new_chains = [c for c in ruleset.chains if c not in previous.chains]
    changed = [c for c, r in ruleset.chains.items()
               if c in previous.chains and previous.chains[c] is not r and previous.chains[c] != r]
    adds += [_chain(c) for c in new_chains]
    added = deleted = 0
    for name, (decl, items) in ruleset.maps.items():
        if name not in previous.maps:
            adds.append(f"add map {PREFIX} {name}{_decl(decl)}")
            _fill_map(fills, name, items)
            added += len(items)
            continue
        old = previous.maps[name][1]
        if old is items:
            continue
        gone = [k for k, v in old.items() if items.get(k) != v]
        new = {k: v for k, v in items.items() if old.get(k) != v}
        if gone:
            deletes.append(f"delete element {PREFIX} {name} {{ {_elements(element_key(k) for k in gone)} }}")
        _fill_map(fills, name, new)
        added, deleted = added + len(new), deleted + len(gone)
    for name, (decl, items) in ruleset.sets.items():
        if name not in previous.sets:
            adds.append(f"add set {PREFIX} {name}{_decl(decl)}")
            if not is_dynamic(decl):
                _fill_set(fills, name, sorted(items))
                added += len(items)
            continue
        old = previous.sets[name][1]
        if old is items or is_dynamic(decl):
            continue
        gone, new = sorted(old - items), sorted(items - old)
        if gone:
            deletes.append(f"delete element {PREFIX} {name} {{ {_elements(element_key(k) for k in gone)} }}")
        _fill_set(fills, name, new)
        added, deleted = added + len(new), deleted + len(gone)
    for chain in changed:
        rules.append(f"flush chain {PREFIX} {chain}")
    for chain in (*new_chains, *changed):
        rules += [f"add rule {PREFIX} {chain} {rule}" for rule in ruleset.chains[chain]]
    tail: list[str] = []
    gone_names = _delete(tail, [c for c in previous.chains if c not in ruleset.chains],
                         [m for m in previous.maps if m not in ruleset.maps],
                         [s for s in previous.sets if s not in ruleset.sets])
    lines = adds + deletes + rules + fills + tail
    text = "\n".join(lines) + "\n" if lines else ""
    return Transaction(text, len(new_chains) + len(changed),
                       len([n for n in gone_names if n in previous.chains]), added, deleted, gone_names)
