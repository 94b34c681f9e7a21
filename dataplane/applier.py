"""One iptables applier per node namespace: writes rulesets, remembers what it wrote.

Neutron's IptablesManager idea, for kube-proxy's rules: the object that
writes the tables of one network namespace (the one its process is in) is
the one that knows what they hold. `Applier.apply(ruleset)` writes a
`dataplane.rules.Ruleset` in one `iptables-legacy-restore --noflush`:
- full (the first apply, `full=True`, or after a failed one): every chain is
  rewritten, our stale service chains deleted, our jump rules made to exist
  exactly once and the canaries (re)created (`iptables.compose_restore`);
- partial (otherwise, kube-proxy >= 1.28): only the chains whose rules differ
  from the last ruleset written are rewritten and chains gone since are
  deleted (`iptables.compose_partial`); nothing is read.
`written` is the last ruleset the kernel accepted (None when unknown, which
makes the next apply full). `canary_missing()` tells whether someone deleted
our chains since, reading them back only when the tables changed since our
last restore (their fingerprint, `iptables.tables_fingerprint`), so asking
once a second costs microseconds.

Verify mode (off by default; the kernel tests turn it on) is Neutron's
"apply twice, fail on a change" check: after each apply the tables are read
back, the same ruleset is written again in full, and the tables read again.
A chain that the second, full write changed, a chain of the ruleset missing
or with another number of rules, a stale service chain, a jump rule not
there exactly once or a missing canary means the kernel did not hold what
was written: `verify="raise"` raises `IptablesVerifyError` with the diff,
`verify="log"` logs it as an error. It costs a full restore and three table
reads per apply, and the second write resets the rule counters.
"""
from __future__ import annotations

import difflib
import logging

from dataplane import iptables
from dataplane.chains import is_service_chain
from dataplane.rules.ruleset import Ruleset

log = logging.getLogger(__name__)

VERIFY_MODES = ("off", "log", "raise")
_TABLES = ("filter", "nat", "mangle")

Saved = dict[str, dict[str, list[str]]]  # {table: {chain: "-A" lines}}


class IptablesVerifyError(iptables.IptablesError):
    """Verify mode found the kernel holding something else than what was written."""

    def __init__(self, message: str, problems: list[str]):
        super().__init__(message)
        self.problems = problems


class Applier:
    """Writes rulesets into this network namespace's filter and nat tables and
    owns what was last written there (see the module docstring)."""

    def __init__(self, verify: str = "off") -> None:
        if verify not in VERIFY_MODES:
            raise ValueError(f"verify must be one of {', '.join(VERIFY_MODES)}, not {verify!r}")
        self.verify = verify
        self.written: Ruleset | None = None
        self._fingerprint: tuple | None = None  # tables_fingerprint() right after our last restore

    def apply(self, ruleset: Ruleset, full: bool = False) -> int:
        """Write `ruleset`: in full when asked or when what the kernel holds is
        unknown, else only what changed since the last apply. Returns the
        number of chains written or deleted. Raises IptablesRestoreError
        naming the line (and, with verify="raise", IptablesVerifyError)."""
        previous, self.written = (None if full else self.written), None
        if previous is None:
            self._restore(iptables.compose_restore(ruleset, iptables.read_tables()))
            changed = sum(len(c) for c in ruleset.chains.values())
        else:
            text, changed = iptables.compose_partial(ruleset, previous)
            if text:
                self._restore(text)
        if self.verify != "off":
            self._verify(ruleset)
        self.written = ruleset
        return changed

    def canary_missing(self) -> bool:
        """True when a KUBE-PROXY-CANARY chain is gone from mangle, nat or
        filter, i.e. someone deleted our chains (firewall reload, `iptables
        -X`): resync in full. Tables nobody wrote since our last restore are
        not read back."""
        fingerprint = iptables.tables_fingerprint()
        if fingerprint == self._fingerprint:
            return False
        if not iptables.canaries_present():
            return True
        self._fingerprint = fingerprint  # someone else wrote, our canaries are there: quiet until the next write
        return False

    def _restore(self, text: str) -> None:
        self._fingerprint = None
        iptables.restore(text)
        self._fingerprint = iptables.tables_fingerprint()

    # -- verify mode

    def _verify(self, ruleset: Ruleset) -> None:
        after_apply = iptables.save(_TABLES)
        self._restore(iptables.compose_restore(ruleset, iptables.parse_save(after_apply)))
        rewritten = iptables.parse_rules(iptables.save(_TABLES))
        problems = held_differently(ruleset, rewritten)
        problems += changed_by_rewrite(ours(iptables.parse_rules(after_apply)), ours(rewritten))
        if not problems:
            return
        message = "iptables verify: the kernel does not hold what was written:\n" + "\n".join(problems)
        if self.verify == "raise":
            raise IptablesVerifyError(message, problems)
        log.error("%s", message)


# ---------------------------------------------------------------- comparing (pure)


def ours(saved: Saved) -> dict[tuple[str, str], tuple[str, ...]]:
    """{(table, chain): rules} of our chains, and of each built-in chain the
    jump rules of ours it holds (others' rules left out)."""
    result: dict[tuple[str, str], tuple[str, ...]] = {}
    for table, chains in saved.items():
        owned = iptables.OWNED_CHAINS.get(table, ())
        jumps = {f"-A {j.chain} {j.spec}" for j in iptables.JUMPS if j.table == table}
        for chain, rules in chains.items():
            if chain in owned or is_service_chain(chain):
                result[(table, chain)] = tuple(rules)
            elif any(rule in jumps for rule in rules):
                result[(table, chain)] = tuple(rule for rule in rules if rule in jumps)
    return result


def held_differently(ruleset: Ruleset, saved: Saved) -> list[str]:
    """What in `saved` (iptables-save, parsed) does not match `ruleset` written in
    full: chains missing or with another number of rules, stale service chains,
    jump rules not there exactly once, missing canaries."""
    problems = []
    for table, chains in ruleset.tables.items():
        held = saved.get(table, {})
        for chain, rules in chains.items():
            if chain not in held:
                problems.append(f"{table} {chain}: written, but not in the kernel")
            elif len(held[chain]) != len(rules):
                problems.append(f"{table} {chain}: {len(rules)} rules written, the kernel holds {len(held[chain])}")
        problems += [f"{table} {chain}: a stale service chain"
                     for chain in sorted(held) if is_service_chain(chain) and chain not in chains]
    for jump in iptables.JUMPS:
        n = saved.get(jump.table, {}).get(jump.chain, []).count(f"-A {jump.chain} {jump.spec}")
        if n != 1:
            problems.append(f"{jump.table} {jump.chain}: the jump to {jump.target} is there {n} times, not once")
    problems += [f"{table}: no {iptables.CANARY} chain"
                 for table in iptables.CANARY_TABLES if iptables.CANARY not in saved.get(table, {})]
    return problems


def changed_by_rewrite(before: dict[tuple[str, str], tuple[str, ...]],
                       after: dict[tuple[str, str], tuple[str, ...]]) -> list[str]:
    """A unified diff per chain that a full rewrite of the same ruleset changed."""
    problems = []
    for table, chain in sorted(before.keys() | after.keys()):
        old, new = before.get((table, chain)), after.get((table, chain))
        if old == new:
            continue
        diff = difflib.unified_diff(old or (), new or (), f"{table} {chain} after the apply",
                                    f"{table} {chain} written again in full", lineterm="", n=1)
        problems.append("\n".join(diff) if old is not None and new is not None
                        else f"{table} {chain}: {'only after' if old is None else 'only before'} a full rewrite")
    return problems
