"""The kernel side of iptables for the network namespace this process is in.

Stateless building blocks: what our chains and jump rules are, reading the
tables (iptables-legacy-save), composing iptables-restore input (pure), one
`iptables-legacy-restore --noflush` call, the cheap table fingerprint and
the canary readback, and `cleanup()`. What was last written, and so whether
a sync may be partial, is the business of `dataplane.applier.Applier`, one
per node namespace.

Ours are the chains `dataplane.rules` declares, the per-service chains
(KUBE-SVC-/SVL-/EXT-/FW-/SEP-, and the dispatch trees' KUBE-SVCS-/KUBE-NP-),
the KUBE-PROXY-CANARY chains, and the jump rules from built-in chains listed
in `JUMPS` (kube-proxy's iptablesJumpChains plus the kubelet KUBE-FIREWALL
jumps it also ensures). Nothing else is ever touched.

A full restore (`compose_restore`) is composed from the tables read once:
the ruleset, the declaration + `-X` of stale service chains (so chains of
deleted Services go away), the canary chains, and `-I`/`-D` lines that leave
each jump rule present exactly once. kube-proxy ensures jumps with separate
`iptables -C/-I` calls; folding them into the restore keeps the whole change
atomic. A partial restore (`compose_partial`, kube-proxy >= 1.28's partial
sync) reads nothing: it diffs two rulesets chain by chain. Legacy xtables
still replaces the whole table blob in the kernel on every restore, so even
a one-chain change costs time in proportion to the table's size (about 2 us
per rule or chain, measured by tests/bench/run); that is the floor under
every incremental sync.

`canaries_present()` reads back through python-iptables (libiptc), as
DESIGN.md asks for readback; `tables_fingerprint()` asks the kernel for each
table's entry count and size (IPT_SO_GET_INFO, no rules copied), which lets
the applier skip that readback while nobody else wrote the tables.
`cleanup()` removes everything of ours and nothing else.
"""
from __future__ import annotations

import ctypes
import functools
import re
import socket
import struct
import subprocess
from dataclasses import dataclass
from typing import Iterable

from dataplane.chains import FILTER_CHAINS, KUBELET_FIREWALL_CHAIN, NAT_CHAINS, is_service_chain
from dataplane.rules.ruleset import Ruleset, restore_text


RESTORE = ("iptables-legacy-restore", "--noflush", "--wait=10")
SAVE = "iptables-legacy-save"
CANARY = "KUBE-PROXY-CANARY"
CANARY_TABLES = ("mangle", "filter", "nat")  # cheapest to read first
TIMEOUT = 120.0


@dataclass(frozen=True)
class JumpRule:
    """A rule in a built-in chain that sends packets into one of our chains."""

    table: str
    chain: str  # built-in source chain, e.g. PREROUTING
    target: str  # our chain
    comment: str = ""
    ctstate_new: bool = False

    @property
    def spec(self) -> str:
        """The rule as iptables-save prints it (so it can be matched verbatim)."""
        parts = []
        if self.ctstate_new:
            parts.append("-m conntrack --ctstate NEW")
        if self.comment:
            parts.append(f'-m comment --comment "{self.comment}"')
        parts.append(f"-j {self.target}")
        return " ".join(parts)


_EXT, _LB, _PORTALS = "kubernetes externally-visible service portals", "kubernetes load balancer firewall", (
    "kubernetes service portals"
)

# kube-proxy's iptablesJumpChains, in its order (each is prepended), then the
# kubelet firewall jumps it ensures alongside.
JUMPS: tuple[JumpRule, ...] = (
    JumpRule("filter", "INPUT", "KUBE-EXTERNAL-SERVICES", _EXT, True),
    JumpRule("filter", "FORWARD", "KUBE-EXTERNAL-SERVICES", _EXT, True),
    JumpRule("filter", "INPUT", "KUBE-NODEPORTS", "kubernetes health check service ports"),
    JumpRule("filter", "FORWARD", "KUBE-SERVICES", _PORTALS, True),
    JumpRule("filter", "OUTPUT", "KUBE-SERVICES", _PORTALS, True),
    JumpRule("filter", "FORWARD", "KUBE-FORWARD", "kubernetes forwarding rules"),
    JumpRule("filter", "INPUT", "KUBE-PROXY-FIREWALL", _LB, True),
    JumpRule("filter", "OUTPUT", "KUBE-PROXY-FIREWALL", _LB, True),
    JumpRule("filter", "FORWARD", "KUBE-PROXY-FIREWALL", _LB, True),
    JumpRule("nat", "OUTPUT", "KUBE-SERVICES", _PORTALS),
    JumpRule("nat", "PREROUTING", "KUBE-SERVICES", _PORTALS),
    JumpRule("nat", "POSTROUTING", "KUBE-POSTROUTING", "kubernetes postrouting rules"),
    JumpRule("filter", "INPUT", KUBELET_FIREWALL_CHAIN),
    JumpRule("filter", "OUTPUT", KUBELET_FIREWALL_CHAIN),
)

# Every fixed chain of ours, per table (service chains are found by prefix).
OWNED_CHAINS: dict[str, tuple[str, ...]] = {
    "filter": (*FILTER_CHAINS, KUBELET_FIREWALL_CHAIN, CANARY),
    "nat": (*NAT_CHAINS, CANARY),
    "mangle": (CANARY,),
}


class IptablesError(RuntimeError):
    """An iptables command failed; the message names the command and the fix."""


class IptablesRestoreError(IptablesError):
    """iptables-restore rejected its input; `line_number`/`line` say where."""

    def __init__(self, message: str, line_number: int | None, line: str | None, stderr: str):
        super().__init__(message)
        self.line_number = line_number
        self.line = line
        self.stderr = stderr


@dataclass
class TableState:
    """What iptables-save shows for one table: chain names, and the rules of
    every chain that is not a per-Service one (the only rules anyone reads
    back are jumps; at 10,000 Services this skips ~60,000 lines)."""

    chains: set[str]
    rules: list[str]

    def count(self, chain: str, spec: str) -> int:
        wanted = f"-A {chain} {spec}"
        return sum(1 for rule in self.rules if rule == wanted)


# ---------------------------------------------------------------- reading


def parse_save(text: str) -> dict[str, TableState]:
    """iptables-save output -> {table: TableState}."""
    tables: dict[str, TableState] = {}
    current: TableState | None = None
    for line in text.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:].strip(), TableState(set(), []))
        elif current is None:
            continue
        elif line.startswith(":"):
            current.chains.add(line[1:].split(" ", 1)[0])
        elif line.startswith("-A ") and not is_service_chain(line[3:line.find(" ", 3)]):
            current.rules.append(line)
    return tables


def parse_rules(text: str) -> dict[str, dict[str, list[str]]]:
    """iptables-save output -> {table: {chain: its "-A" lines, in order}}, every chain."""
    tables: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in text.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:].strip(), {})
        elif current is None:
            continue
        elif line.startswith(":"):
            current.setdefault(line[1:].split(" ", 1)[0], [])
        elif line.startswith("-A "):
            end = line.find(" ", 3)
            current.setdefault(line[3:] if end < 0 else line[3:end], []).append(line)
    return tables


def save(tables: Iterable[str] = ("filter", "nat", "mangle")) -> str:
    """iptables-legacy-save output for `tables` in this network namespace."""
    return "".join(_run([SAVE, "-t", table], what=f"read the {table} table") for table in tables)


def read_tables(tables: Iterable[str] = ("filter", "nat", "mangle")) -> dict[str, TableState]:
    """Current state of `tables` in this network namespace (iptables-legacy-save)."""
    tables = tuple(tables)
    state = parse_save(save(tables))
    return {table: state.get(table, TableState(set(), [])) for table in tables}


# ---------------------------------------------------------------- composing (pure)


def _jump_fixes(state: dict[str, TableState], table: str) -> list[str]:
    """-I for missing jump rules, -D for duplicates: each exactly once afterwards."""
    lines = []
    current = state.get(table, TableState(set(), []))
    for jump in JUMPS:
        if jump.table != table:
            continue
        n = current.count(jump.chain, jump.spec)
        if n == 0:
            lines.append(f"-I {jump.chain} 1 {jump.spec}")
        lines += [f"-D {jump.chain} {jump.spec}"] * max(0, n - 1)
    return lines


def compose_restore(ruleset: Ruleset, state: dict[str, TableState]) -> str:
    """The single iptables-restore input of a full apply (pure, unit-testable).

    As in `compose_partial`, nat is committed between two filter commits when
    our filter chains already exist: first the new filter rules are appended
    to the old ones (a union, nothing flushed), then nat, then filter exactly."""
    head, tail = {}, {}
    for table in ("filter", "nat"):
        existing = state.get(table, TableState(set(), [])).chains
        stale = sorted(c for c in existing if is_service_chain(c) and c not in ruleset.chains_in(table))
        head[table] = [f":{CANARY} - [0:0]"] + [f":{c} - [0:0]" for c in stale]
        tail[table] = _jump_fixes(state, table) + [f"-X {c}" for c in stale]
    # Built in one pass: at 10k Services the text is ~10 MB.
    tables = {"mangle": {CANARY: ()}, "nat": ruleset.tables.get("nat", {}), "filter": ruleset.tables.get("filter", {})}
    existing = state.get("filter", TableState(set(), [])).chains
    ours = tables["filter"]
    if existing & set(ours):
        union = ["*filter", *(f":{c} - [0:0]" for c in ours if c not in existing),
                 *(rule for rules in ours.values() for rule in rules), "COMMIT", ""]
        return "\n".join(union) + restore_text(tables, head, tail)
    return restore_text(tables, head, tail)


def compose_partial(ruleset: Ruleset, previous: Ruleset) -> tuple[str, int]:
    """(iptables-restore input, chains touched) turning `previous` into
    `ruleset`: changed chains are declared (which flushes them) and refilled,
    removed chains are declared and deleted after every rule referring to them
    is gone. Empty text when nothing changed (pure).

    Legacy xtables commits each table separately. When both change, filter is
    written twice around nat: first every changed filter chain with its old
    and its new rules, then nat, then filter as it should be. A Service whose
    last endpoint goes (nat DNAT -> filter REJECT) or whose first one comes
    (REJECT -> DNAT) is then always either DNATed or rejected, never neither
    (which loses the SYN and costs the client a 1 s retransmission)."""
    diff = {}
    for table in ("filter", "nat"):
        now, before = ruleset.tables.get(table, {}), previous.tables.get(table, {})
        changed = [c for c, rules in now.items() if before.get(c) is not rules and before.get(c) != rules]
        gone = [c for c in before if c not in now]
        if changed or gone:
            diff[table] = (now, before, changed, gone)
    sections = []
    if len(diff) == 2:
        now, before, changed, _ = diff["filter"]
        lines = ["*filter", *(f":{c} - [0:0]" for c in changed)]
        for chain in changed:
            old = before.get(chain, ())
            kept = set(old)
            lines += [*old, *(rule for rule in now[chain] if rule not in kept)]
        sections.append("\n".join([*lines, "COMMIT\n"]))
    for table in ("nat", "filter"):
        if table not in diff:
            continue
        now, _, changed, gone = diff[table]
        lines = [f"*{table}", *(f":{c} - [0:0]" for c in changed + gone)]
        for chain in changed:
            lines += now[chain]
        lines += [f"-X {c}" for c in gone]
        sections.append("\n".join([*lines, "COMMIT\n"]))
    return "".join(sections), sum(len(d[2]) + len(d[3]) for d in diff.values())


def compose_cleanup(state: dict[str, TableState]) -> str:
    """iptables-restore input removing all our jumps and chains (pure)."""
    sections = []
    for table in ("mangle", "filter", "nat"):
        current = state.get(table)
        if current is None:
            continue
        ours = [c for c in OWNED_CHAINS[table] if c in current.chains]
        ours += sorted(c for c in current.chains if is_service_chain(c))
        deletes = []
        for jump in JUMPS:
            if jump.table == table:
                deletes += [f"-D {jump.chain} {jump.spec}"] * current.count(jump.chain, jump.spec)
        if not ours and not deletes:
            continue
        lines = [f"*{table}", *(f":{c} - [0:0]" for c in ours), *deletes, *(f"-X {c}" for c in ours), "COMMIT"]
        sections.append("\n".join(lines) + "\n")
    return "".join(sections)


# ---------------------------------------------------------------- kernel calls


def cleanup() -> None:
    """Remove every chain and jump rule of ours from this namespace; others' rules stay."""
    text = compose_cleanup(read_tables())
    if text:
        restore(text)


_IPT_SO_GET_INFO = 64  # linux/netfilter_ipv4/ip_tables.h: IPT_BASE_CTL
_GETINFO = struct.Struct("32s13I")  # struct ipt_getinfo: name, hooks, entries, underflows, num_entries, size


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def tables_fingerprint(tables: Iterable[str] = CANARY_TABLES) -> tuple[tuple[int, int], ...]:
    """(entries, bytes) of each table, from the kernel's table info, which
    reading copies no rules of. Deleting or adding a chain or rule changes it
    (a rule swapped for one of the same size does not; the canary check only
    needs chains going away)."""
    libc = _libc()
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as sock:
        result = []
        for table in tables:
            buf = ctypes.create_string_buffer(_GETINFO.pack(table.encode(), *[0] * 13), _GETINFO.size)
            size = ctypes.c_uint(_GETINFO.size)
            if libc.getsockopt(sock.fileno(), socket.IPPROTO_IP, _IPT_SO_GET_INFO, buf, ctypes.byref(size)) != 0:
                result.append((-ctypes.get_errno(), 0))  # no such table (yet): a value of its own
                continue
            *_, entries, total = _GETINFO.unpack(buf.raw)
            result.append((entries, total))
    return tuple(result)


def canaries_present() -> bool:
    """True when the KUBE-PROXY-CANARY chain is in mangle, filter and nat
    (read back through python-iptables). A missing one means someone deleted
    our chains (firewall reload, `iptables -X`): time for a full resync."""
    import iptc  # python-iptables (libiptc); imported lazily so pure code never needs it

    for name in CANARY_TABLES:
        table = iptc.Table(name)
        table.refresh()
        if not table.is_chain(CANARY):
            return False
    return True


def restore(text: str) -> None:
    """Feed `text` to iptables-legacy-restore --noflush; errors name the bad line."""
    proc = subprocess.run(list(RESTORE), input=text.encode(), capture_output=True, timeout=TIMEOUT)
    if proc.returncode == 0:
        return
    stderr = proc.stderr.decode(errors="replace").strip()
    number = _failed_line(stderr)
    lines = text.splitlines()
    line = lines[number - 1] if number and 0 < number <= len(lines) else None
    where = f"line {number}: {line!r}" if line is not None else "unknown line"
    raise IptablesRestoreError(
        f"iptables-legacy-restore rejected {where} ({stderr}); "
        "check that the rendered rule is valid and the needed xtables modules are available",
        number,
        line,
        stderr,
    )


def _failed_line(stderr: str) -> int | None:
    match = re.search(r"(?:Error occurred at line: |line )(\d+)", stderr)
    return int(match.group(1)) if match else None


def _run(argv: list[str], what: str) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=TIMEOUT, check=False)
    except FileNotFoundError as err:
        raise IptablesError(f"cannot {what}: {argv[0]} is not installed (install the iptables package)") from err
    if proc.returncode != 0:
        raise IptablesError(f"cannot {what}: {' '.join(argv)} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode()
