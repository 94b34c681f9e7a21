"""One nftables applier per node namespace: writes `NftRuleset`s, remembers what it wrote.

The nftables counterpart of `dataplane.applier.Applier`. `apply(ruleset,
full)` writes one nft transaction (`dataplane.nft.transaction`) in the
network namespace this process is in:
- full (the first apply, `full=True`, after a failed one, or when a
  partial sync cannot express the change): the table is created if
  needed, every chain, map and set declared, flushed and refilled, and
  what the kernel holds of ours that the ruleset has not (chains, maps,
  sets, listed by name first) flushed and deleted: kube-proxy's full sync;
- partial (otherwise): only chains whose rules changed are flushed and
  refilled, only the map and set elements that changed are added or
  deleted, chains gone since are deleted; nothing is read: kube-proxy's
  partial sync.
`written` is the last ruleset the kernel accepted (None when unknown, which
makes the next apply full).

How it reaches the kernel (`netlink=True`, the default): a partial sync is
one netlink batch written by `dataplane.nft.netlink`, which reads nothing
first (a large one, several: `netlink.split`); a full sync writes the fixed
part through nft (`transaction.compose_fixed`), then the per-Service part
as netlink batches made one at a time (`transaction.service_parts`), and
reads the names of what the kernel holds over netlink. A transaction holding
something `dataplane.nft.compile` does not express (a LoadBalancer's
source ranges) is written whole through nft instead, as with
`netlink=False`. Measured at 10,000 Services x 3 endpoints: nft spends
0.13 s reading the table before each transaction, and a fresh table in
one `nft -f` takes 28 s, nearly all of it in the kernel (see
dataplane.nft.netlink).

"Is the table still ours" (`canary_missing`): the table's handle is noted
after every full write; a table deleted (`nft flush ruleset`, `nft delete
table ip kube-proxy`, a firewall reload) and perhaps made again has none or
another one, and the proxier resyncs in full. Reading the handle lists the
tables only (no chains, rules or elements), so asking once a second is
cheap at any size. A `nft flush table` that keeps the table is not seen;
the hourly full sync repairs that, as in kube-proxy.

Verify mode (off by default; the kernel tests turn it on) reads the table
back after every apply (`nft -j list table ip kube-proxy`), writes the same
ruleset again in full and reads it once more: a chain missing or holding
another number of rules, a stale chain, map or set, a map or set with
another number of elements, or a chain that the second, full write changed
means the kernel does not hold what was written. `verify="raise"` raises
`NftVerifyError` naming them, `verify="log"` logs them.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from dataplane.nft import netlink as nl
from dataplane.nft import transaction
from dataplane.nft.kernel import Nft, NftError
from dataplane.nft.ruleset import NftRuleset

log = logging.getLogger(__name__)

VERIFY_MODES = ("off", "log", "raise")


class NftVerifyError(NftError):
    """Verify mode found the kernel holding something else than what was written."""

    def __init__(self, message: str, problems: list[str]):
        super().__init__(message)
        self.problems = problems


class NftApplier:
    """Writes rulesets into this network namespace's `table ip kube-proxy`
    and owns what was last written there (see the module docstring)."""

    def __init__(self, verify: str = "off", nft: Nft | None = None, netlink: bool = True) -> None:
        if verify not in VERIFY_MODES:
            raise ValueError(f"verify must be one of {', '.join(VERIFY_MODES)}, not {verify!r}")
        self.verify = verify
        self.nft = nft if nft is not None else Nft()
        self.netlink = netlink
        self.names = nl.Names()
        self.socket = nl.Socket()
        self.via_nft = 0  # transactions written through nft because netlink could not express them
        self.written: NftRuleset | None = None
        self.last: transaction.Transaction | None = None  # the last transaction written (a full one without its ops)
        self._handle: int | None = None  # the table's handle after our last full write

    def apply(self, ruleset: NftRuleset, full: bool = False) -> int:
        """Write `ruleset`: in full when asked, when what the kernel holds is
        unknown or when only a full write can express the change; else only
        what changed since the last apply. Returns the number of chains
        written or deleted. Raises NftError naming the line nft refused
        (and, with verify="raise", NftVerifyError)."""
        previous, self.written = (None if full else self.written), None
        tx = transaction.compose_partial(ruleset, previous) if previous is not None else None
        if tx is None:
            self._handle = None
            tx = self._write_full(ruleset)
            self._handle = self.nft.table_handle()
        elif tx.ops:
            self._write(tx, ruleset)
        self.last = tx
        if self.verify != "off":
            self._verify(ruleset)
        self.written = ruleset
        return tx.changed

    def _stream(self, parts: Iterable[list], ruleset: NftRuleset) -> bool:
        """Write each list of operations in `parts` as one netlink transaction,
        encoded just before it is sent, so one batch at a time is in memory.
        False when netlink cannot express one of them: the caller then writes
        the whole transaction through nft, which is safe after earlier
        batches, as those only declared chains and sets and rewrote chains
        (the elements and deletions are in the last one)."""
        if not self.netlink:
            return False
        declarations = _declarations(ruleset)
        for part in parts:
            try:
                batch = nl.encode(part, declarations, self.names)
            except nl.Unsupported as why:
                log.debug("nftables: writing through nft: %s", why)
                self.via_nft += 1
                return False
            nl.write(batch, part, self.socket)
        return True

    def _write(self, tx: transaction.Transaction, ruleset: NftRuleset) -> None:
        """A partial sync: netlink batches when they can express it, else nft."""
        if not self._stream(nl.split(tx.ops, lambda: _groups(ruleset)), ruleset):
            self.nft.run(tx.text)

    def _write_full(self, ruleset: NftRuleset) -> transaction.Transaction:
        """A full sync: the fixed part through nft, then the per-Service part
        as netlink batches made one at a time (`transaction.service_parts`);
        all of it through nft in one transaction when netlink cannot express
        the per-Service part. Returns what was written, without its
        operations (the whole table: not kept)."""
        existing = nl.existing() if self.netlink else self.nft.existing()
        if self.netlink:
            self.nft.run(transaction.compose_fixed(ruleset, existing).text)
            if self._stream(transaction.service_parts(ruleset, existing, nl.BINDS_PER_BATCH), ruleset):
                return _summary(ruleset, existing)
        self.nft.run(transaction.compose_full(ruleset, existing).text)
        return _summary(ruleset, existing)

    def canary_missing(self) -> bool:
        """True when our table is gone or is not the one we wrote (another
        handle): resync in full."""
        return self.nft.table_handle() != self._handle

    def cleanup(self) -> bool:
        """Delete the table (kube-proxy's CleanupLeftovers); forget what was written."""
        self.written, self._handle = None, None
        self.socket.close()
        return self.nft.delete_table()

    # -- verify mode

    def _verify(self, ruleset: NftRuleset) -> None:
        after_apply = summarize(self.nft.read_table())
        self.nft.run(transaction.compose_full(ruleset, self.nft.existing()).text)
        self._handle = self.nft.table_handle()
        rewritten = summarize(self.nft.read_table())
        dynamic = {name for name, (decl, _) in ruleset.sets.items() if transaction.is_dynamic(decl)}
        problems = held_differently(ruleset, rewritten) + changed_by_rewrite(after_apply, rewritten, dynamic)
        if not problems:
            return
        message = "nftables verify: the kernel does not hold what was written:\n" + "\n".join(problems)
        if self.verify == "raise":
            raise NftVerifyError(message, problems)
        log.error("%s", message)


def _summary(ruleset: NftRuleset, existing: transaction.Existing) -> transaction.Transaction:
    """A full sync's counts, without its operations."""
    gone = sorted((existing.chains - ruleset.chains.keys() - ruleset.base_chains.keys())
                  | (existing.maps - ruleset.maps.keys()) | (existing.sets - ruleset.sets.keys()))
    elements = sum(len(items) for _, items in ruleset.maps.values())
    elements += sum(len(items) for decl, items in ruleset.sets.values() if not transaction.is_dynamic(decl))
    return transaction.Transaction([], len(ruleset.chains), len(gone), elements, 0, gone, full=True)


def _groups(ruleset: NftRuleset) -> dict[str, object]:
    """Each per-Service chain's Service port."""
    return {chain: sp for sp, rendered in ruleset.services.items() for chain, _ in rendered.chains}


def _declarations(ruleset: NftRuleset) -> dict[str, str]:
    """Every map's and set's declaration, by name."""
    return {name: decl for name, (decl, _) in (*ruleset.maps.items(), *ruleset.sets.items())}


# ---------------------------------------------------------------- comparing (pure)


class Held:
    """What `nft -j list table` shows, by name: each chain's rules (their
    expressions, handles left out), each map's and set's element count."""

    def __init__(self) -> None:
        self.chains: dict[str, list[str]] = {}
        self.maps: dict[str, int] = {}
        self.sets: dict[str, int] = {}


def summarize(listing: dict[str, Any]) -> Held:
    """`nft -j list table ip kube-proxy`, parsed, -> Held."""
    held = Held()
    for item in listing.get("nftables", ()):
        if "chain" in item:
            held.chains.setdefault(item["chain"]["name"], [])
        elif "rule" in item:
            rule = item["rule"]
            held.chains.setdefault(rule["chain"], []).append(
                json.dumps([rule.get("expr"), rule.get("comment")], sort_keys=True))
        elif "map" in item:
            held.maps[item["map"]["name"]] = len(item["map"].get("elem", ()))
        elif "set" in item:
            held.sets[item["set"]["name"]] = len(item["set"].get("elem", ()))
    return held


def held_differently(ruleset: NftRuleset, held: Held) -> list[str]:
    """What in `held` does not match `ruleset` written in full."""
    problems = []
    for chain in (*ruleset.base_chains, *ruleset.chains):
        rules = ruleset.chains.get(chain, ())
        if chain not in held.chains:
            problems.append(f"chain {chain}: written, but not in the kernel")
        elif len(held.chains[chain]) != len(rules):
            problems.append(f"chain {chain}: {len(rules)} rules written, the kernel holds {len(held.chains[chain])}")
    ours = set(ruleset.chains) | set(ruleset.base_chains)
    problems += [f"chain {c}: a stale chain" for c in sorted(held.chains) if c not in ours]
    for kind, written, kernel in (("map", ruleset.maps, held.maps), ("set", ruleset.sets, held.sets)):
        for name, (decl, items) in written.items():
            if name not in kernel:
                problems.append(f"{kind} {name}: written, but not in the kernel")
            elif not transaction.is_dynamic(decl) and kernel[name] != len(items):
                problems.append(f"{kind} {name}: {len(items)} elements written, the kernel holds {kernel[name]}")
        problems += [f"{kind} {name}: a stale {kind}" for name in sorted(kernel) if name not in written]
    return problems


def changed_by_rewrite(before: Held, after: Held, dynamic: set[str] = frozenset()) -> list[str]:
    """Chains (and element counts) that writing the same ruleset again in full
    changed; `dynamic` sets (filled by traffic: affinity) are not compared."""
    problems = [f"chain {c}: changed by a full rewrite of the same ruleset"
                for c in sorted(before.chains.keys() | after.chains.keys())
                if before.chains.get(c) != after.chains.get(c)]
    for kind, old, new in (("map", before.maps, after.maps), ("set", before.sets, after.sets)):
        problems += [f"{kind} {name}: {old.get(name)} elements after the apply, {new.get(name)} after a full rewrite"
                     for name in sorted(old.keys() | new.keys())
                     if old.get(name) != new.get(name) and name not in dynamic]
    return problems
