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

A transaction is kept as a list of operations (`Op`: a kind and its
arguments, in the order they are written) and as the `nft -f` text they
read as; `dataplane.nft.netlink` writes the same operations as netlink
messages.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from dataplane.nft.names import is_affinity_set, is_service_chain
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


# One operation: (kind, *arguments). Kinds and arguments:
#   "table" | "chain" name body | "map" name decl | "set" name decl (declare; body/decl may be "")
#   "flush chain" | "flush map" | "flush set" | "delete chain" | "delete map" | "delete set": name
#   "elements" set [(key, value or None)] | "delete elements" set [key] | "rule" chain text
Op = tuple


@dataclass
class Transaction:
    """One nft transaction's operations, its text and what it touched (for logs and metrics)."""

    ops: list[Op]
    chains_written: int = 0
    chains_deleted: int = 0
    elements_added: int = 0
    elements_deleted: int = 0
    deleted: list[str] = field(default_factory=list)  # names of chains, maps and sets removed
    full: bool = False  # the whole table (compose_full)

    @property
    def changed(self) -> int:
        return self.chains_written + self.chains_deleted

    @property
    def text(self) -> str:
        """The operations as `nft -f` input."""
        return "\n".join(line_of(op) for op in self.ops) + "\n" if self.ops else ""


def line_of(op: Op) -> str:
    """One operation as a line of `nft -f` input."""
    kind = op[0]
    if kind == "table":
        return f'add table {PREFIX} {{ comment "{TABLE_COMMENT}" ; }}'
    if kind == "chain":
        comment = CHAIN_COMMENTS.get(op[1])
        if comment and not op[2]:
            return f'add chain {PREFIX} {op[1]} {{ comment "{comment}" ; }}'
        return f"add chain {PREFIX} {op[1]}{_decl(op[2])}"
    if kind in ("map", "set"):
        return f"add {kind} {PREFIX} {op[1]}{_decl(op[2])}"
    if kind == "elements":
        return f"add element {PREFIX} {op[1]} {{ {_elements(k if v is None else f'{k} : {v}' for k, v in op[2])} }}"
    if kind == "delete elements":
        return f"delete element {PREFIX} {op[1]} {{ {_elements(element_key(k) for k in op[2])} }}"
    if kind == "rule":
        return f"add rule {PREFIX} {op[1]} {op[2]}"
    return f"{kind} {PREFIX} {op[1]}"  # flush / delete chain, map or set


def element_key(key: str) -> str:
    """A map or set element's key without its comment (what `delete element` takes)."""
    return _COMMENT.sub("", key).strip()


def _decl(body: str) -> str:
    body = body.strip()
    return f" {{ {body} }}" if body else ""


def _elements(items: Iterable[str]) -> str:
    return ", ".join(items)


def is_dynamic(declaration: str) -> bool:
    """A set the datapath fills (`update @set`): session affinity's, with a timeout."""
    return "timeout" in declaration or "dynamic" in declaration


def _fill_map(out: list[Op], name: str, elements: Mapping[str, str]) -> None:
    if elements:
        out.append(("elements", name, list(elements.items())))


def _fill_set(out: list[Op], name: str, elements: Iterable[str]) -> None:
    elements = [(k, None) for k in elements]
    if elements:
        out.append(("elements", name, elements))


def _delete(out: list[Op], chains: Iterable[str], maps: Iterable[str], sets: Iterable[str]) -> list[str]:
    """Flush then delete stale chains (they may refer to each other), then maps and sets."""
    chains, gone = sorted(chains), []
    out += [("flush chain", c) for c in chains]
    out += [("delete chain", c) for c in chains]
    out += [("delete map", m) for m in sorted(maps)]
    out += [("delete set", s) for s in sorted(sets)]
    gone += chains + sorted(maps) + sorted(sets)
    return gone


def compose_full(ruleset: NftRuleset, existing: Existing = Existing()) -> Transaction:
    """The whole table as `ruleset` has it (see the module docstring)."""
    out: list[Op] = [("table",)]
    out += [("chain", name, body) for name, body in ruleset.base_chains.items()]
    regular = [c for c in ruleset.chains if c not in ruleset.base_chains]
    out += [("chain", c, "") for c in regular]
    out += [("map", name, decl) for name, (decl, _) in ruleset.maps.items()]
    out += [("set", name, decl) for name, (decl, _) in ruleset.sets.items()]
    out += [("flush chain", c) for c in (*ruleset.base_chains, *regular)]
    out += [("flush map", m) for m in ruleset.maps]
    out += [("flush set", s) for s, (decl, _) in ruleset.sets.items() if not is_dynamic(decl)]
    elements = 0
    for name, (decl, items) in ruleset.sets.items():
        if not is_dynamic(decl):
            _fill_set(out, name, sorted(items))
            elements += len(items)
    for name, (_, items) in ruleset.maps.items():
        _fill_map(out, name, items)
        elements += len(items)
    for chain, rules in ruleset.chains.items():
        out += [("rule", chain, rule) for rule in rules]
    gone = _delete(out, existing.chains - set(ruleset.chains) - set(ruleset.base_chains),
                   existing.maps - set(ruleset.maps), existing.sets - set(ruleset.sets))
    return Transaction(out, len(ruleset.chains), len(gone), elements, 0, gone, full=True)


def compose_partial(ruleset: NftRuleset, previous: NftRuleset) -> Transaction | None:
    """What turns `previous` (written last) into `ruleset`; None when only a
    full sync can (see the module docstring). Empty text when nothing changed."""
    if dict(ruleset.base_chains) != dict(previous.base_chains):
        return None
    for now, before in ((ruleset.maps, previous.maps), (ruleset.sets, previous.sets)):
        if any(name in before and before[name][0] != decl for name, (decl, _) in now.items()):
            return None
    delta = ruleset.delta
    if delta is not None and delta.base is previous:  # only what the render says it touched
        names, touched = delta.chains, delta.elements
    else:
        names, touched = ruleset.chains.keys() | previous.chains.keys(), None
    chains, before = ruleset.chains, previous.chains
    new_chains = sorted(c for c in names if c in chains and c not in before)
    changed = sorted(c for c in names if c in chains and c in before and chains[c] is not before[c]
                     and chains[c] != before[c])
    adds: list[Op] = [("chain", c, "") for c in new_chains]
    deletes: list[Op] = []
    fills: list[Op] = []
    added, deleted = _element_changes(ruleset, previous, touched, adds, deletes, fills)
    rules: list[Op] = [("flush chain", chain) for chain in changed]
    for chain in (*new_chains, *changed):
        rules += [("rule", chain, rule) for rule in chains[chain]]
    tail: list[Op] = []
    gone_chains = [c for c in names if c not in chains and c in before]
    gone_names = _delete(tail, gone_chains, [m for m in previous.maps if m not in ruleset.maps],
                         [s for s in previous.sets if s not in ruleset.sets])
    return Transaction(adds + deletes + rules + fills + tail, len(new_chains) + len(changed), len(gone_chains),
                       added, deleted, gone_names)


def _element_changes(ruleset: NftRuleset, previous: NftRuleset, touched: Mapping[str, frozenset[str]] | None,
                     adds: list[Op], deletes: list[Op], fills: list[Op]) -> tuple[int, int]:
    """The map and set operations turning `previous` into `ruleset`: new
    maps and sets declared and filled, elements deleted and added; only the
    `touched` keys of each are compared when given. Returns (added, deleted)."""
    added = deleted = 0
    for kind, now, before in (("map", ruleset.maps, previous.maps), ("set", ruleset.sets, previous.sets)):
        for name, (decl, items) in now.items():
            dynamic = kind == "set" and is_dynamic(decl)
            if name not in before:
                adds.append((kind, name, decl))
                if not dynamic:
                    (_fill_map if kind == "map" else _fill_set)(fills, name, items if kind == "map" else sorted(items))
                    added += len(items)
                continue
            old = before[name][1]
            if old is items or dynamic:
                continue
            if touched is not None:
                keys = touched.get(name, ())
            else:
                keys = old.keys() | items.keys() if kind == "map" else old | items
            if kind == "map":
                gone = sorted(k for k in keys if k in old and items.get(k) != old[k])
                new = {k: items[k] for k in sorted(keys) if k in items and old.get(k) != items[k]}
                _fill_map(fills, name, new)
            else:
                gone = sorted(k for k in keys if k in old and k not in items)
                new = sorted(k for k in keys if k in items and k not in old)
                _fill_set(fills, name, new)
            if gone:
                deletes.append(("delete elements", name, gone))
            added, deleted = added + len(new), deleted + len(gone)
    return added, deleted


def compose_fixed(ruleset: NftRuleset, existing: Existing = Existing()) -> Transaction:
    """The part of a full sync that is not per-Service: the table, base and
    fixed chains and their rules, every map's and set's declaration but the
    affinity sets', and the stale objects among those; `service_parts` is
    the rest. Written first, it leaves the kernel consistent: the previous
    Services with the new fixed part (the maps and sets it names exist)."""
    fixed = [c for c in ruleset.chains if not is_service_chain(c) and c not in ruleset.base_chains]
    out: list[Op] = [("table",)]
    out += [("chain", name, body) for name, body in ruleset.base_chains.items()]
    out += [("chain", c, "") for c in fixed]
    out += [("map", name, decl) for name, (decl, _) in ruleset.maps.items()]
    out += [("set", name, decl) for name, (decl, _) in ruleset.sets.items() if not is_affinity_set(name)]
    out += [("flush chain", c) for c in (*ruleset.base_chains, *fixed)]
    for chain in (*ruleset.base_chains, *fixed):
        out += [("rule", chain, rule) for rule in ruleset.chains.get(chain, ())]
    gone = _delete(out, {c for c in existing.chains - ruleset.chains.keys() if not is_service_chain(c)},
                   existing.maps - ruleset.maps.keys(),
                   {n for n in existing.sets - ruleset.sets.keys() if not is_affinity_set(n)})
    return Transaction(out, len(fixed) + len(ruleset.base_chains), len(gone), full=True)


def binds(ops: Iterable[Op]) -> int:
    """Anonymous maps these operations' rules make (each `numgen ... vmap { }`)."""
    return sum(op[0] == "rule" and "vmap {" in op[2] for op in ops)


def in_parts(declare: list[Op], groups: Iterable[list[Op]], last: Callable[[], list[Op]],
             limit: int) -> Iterator[list[Op]]:
    """A transaction too large for one (see dataplane.nft.netlink on why), as
    several made one at a time: `declare`; then the groups of chain flushes
    and rules, a group never cut, `limit` anonymous maps at a time; then
    `last()` (the elements and deletions). Empty parts are left out."""
    if declare:
        yield declare
    current: list[Op] = []
    made = 0
    for group in groups:
        count = binds(group)
        if current and made + count > limit:
            yield current
            current, made = [], 0
        current += group
        made += count
    if current:
        yield current
    tail = last()
    if tail:
        yield tail


def service_parts(ruleset: NftRuleset, existing: Existing, limit: int) -> Iterator[list[Op]]:
    """The per-Service part of a full sync, as transactions made one at a
    time: one, when its rules bind at most `limit` anonymous maps; else
    `in_parts` with a Service port's chains as a group and every map and
    set element and the stale per-Service chains and affinity sets last."""
    groups = [[chain for chain, _ in rendered.chains] for rendered in ruleset.services.values()]
    grouped = {chain for group in groups for chain in group}
    groups.append([c for c in ruleset.chains if is_service_chain(c) and c not in grouped])
    declare: list[Op] = [("chain", c, "") for group in groups for c in group]
    declare += [("set", name, decl) for name, (decl, _) in ruleset.sets.items() if is_affinity_set(name)]

    def rewrite(group: list[str]) -> list[Op]:
        return [("flush chain", c) for c in group] + [("rule", c, rule) for c in group for rule in ruleset.chains[c]]

    def elements_and_stale() -> list[Op]:
        out: list[Op] = [("flush map", m) for m in ruleset.maps]
        out += [("flush set", s) for s, (decl, _) in ruleset.sets.items() if not is_dynamic(decl)]
        for name, (decl, items) in ruleset.sets.items():
            if not is_dynamic(decl):
                _fill_set(out, name, sorted(items))
        for name, (_, items) in ruleset.maps.items():
            _fill_map(out, name, items)
        _delete(out, {c for c in existing.chains - ruleset.chains.keys() if is_service_chain(c)}, (),
                {n for n in existing.sets - ruleset.sets.keys() if is_affinity_set(n)})
        return out

    if sum("vmap {" in rule for group in groups for c in group for rule in ruleset.chains[c]) <= limit:
        yield declare + [op for group in groups for op in rewrite(group)] + elements_and_stale()
        return
    yield from in_parts(declare, map(rewrite, groups), elements_and_stale, limit)
