"""Walk one new connection's first packet through kube-proxy's nftables table.

`walk(ruleset, src, dst, port, proto, node_ips)` follows the packet the way
netfilter runs the table's base chains: for a packet from elsewhere,
prerouting (filter-prerouting's firewall check, then nat-prerouting's
`services`: the `service-ips` / `service-nodeports` verdict maps, the
Service's `service-`/`local-`/`external-` chains, `numgen random mod N vmap`
and the `endpoint-` chain's DNAT), then input (to a node address) or
forward (the "no endpoints" and ClusterIP checks), then nat-postrouting's
`masquerading`; for a packet the node itself sends (`src` is one of
`node_ips`), output instead of prerouting. Base chains run in hook, then
priority order, as declared (`type T hook H priority P ;`).

Every numgen branch is followed, so the result is one `Path` per endpoint
the packet may reach (or one path that ends in REJECT, DROP or untouched).
Each `Hop` is a rule that matched, its text as given (the render's or
`nft list`'s, see dataplane.nft.listing), and what it did for this packet.
Session-affinity sets are taken as empty (no client has been seen), so
their lookups never match; conntrack is taken as "new connection".
A rule outside kube-proxy's vocabulary raises `UnknownRule` naming it.
Pure: the same walker serves kube-proxy's packet-flow unit tests and
`nsplane trace` / `doctor` on a node's table as read back from the kernel.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from dataplane.nft.ruleset import NftRuleset

HOOKS_IN = ("prerouting",)
HOOKS_OUT = ("output",)
MAX_DEPTH = 64


class UnknownRule(ValueError):
    """A rule the walker cannot evaluate (not one kube-proxy writes)."""


@dataclass(frozen=True)
class Hop:
    chain: str
    rule: str
    did: str


@dataclass(frozen=True)
class Path:
    """One way the packet goes: `outcome` is "ip:port" (DNAT to an endpoint),
    "REJECT", "DROP" or "" (no rule of the table changed it)."""

    hops: tuple[Hop, ...]
    outcome: str
    masquerade: bool
    stopped_in: str = ""


@dataclass(frozen=True)
class _Packet:
    src: str
    dst: str
    port: int
    proto: str
    marked: bool = False
    dnat: str = ""
    hops: tuple[Hop, ...] = field(default=())

    def add(self, chain: str, rule: str, did: str) -> _Packet:
        return replace(self, hops=(*self.hops, Hop(chain, rule, did)))


# (verdict, packet): verdict "" = fell off / returned, else accept, drop, reject
_Result = list[tuple[str, _Packet]]

_COMMENT = re.compile(r'\s+comment "[^"]*"$')
_SPLIT = re.compile(r"\s*,\s*")
_ADDR = r"(?:@\S+|\{[^}]*\}|\d[\d.]*(?:/\d+)?)"
_CONDS = [
    ("ct", re.compile(r"ct state (new|\{ ?[^}]*\})\s*")),
    ("ip", re.compile(rf"ip (saddr|daddr) (!= )?({_ADDR})\s*")),
    ("port", re.compile(r"(tcp|udp|sctp) dport (!= )?(\d+)\s*")),
    ("l4", re.compile(r"meta l4proto (\w+)\s*(?!\.)")),
    ("fib", re.compile(r"fib (saddr|daddr) type (!= )?local\s*")),
    ("mark", re.compile(r"(?:meta )?mark (?:&|and) (0x[0-9a-f]+|\d+) (==|!=) (0x[0-9a-f]+|\d+)\s*")),
]
_VMAP = re.compile(r"(numgen random mod \d+(?: offset \d+)?|ip daddr \. meta l4proto \. th dport|"
                   r"meta l4proto \. th dport) vmap (@\S+|\{ .* \})$")
_JUMP = re.compile(r"(jump|goto) (\S+)$")
_DNAT = re.compile(r"dnat to (\S+)$")
_MARK_SET = re.compile(r"(?:meta )?mark set (?:meta )?mark (\||or|\^|xor) (0x[0-9a-f]+|\d+)$")


def _in(addr: str, value: str, rs: NftRuleset) -> bool:
    if value.startswith("@"):
        keys = rs.sets.get(value[1:], ("", frozenset()))[1]
        return addr in keys or any(_in(addr, k, rs) for k in keys if "/" in k or "-" in k)
    if value.startswith("{"):
        return any(_in(addr, v, rs) for v in _SPLIT.split(value.strip("{} ")) if v)
    if "/" not in value:
        return addr == value
    try:
        return ipaddress.ip_address(addr) in ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False


def _conditions(rs: NftRuleset, text: str, p: _Packet, node_ips: frozenset[str]) -> tuple[bool, str]:
    """(all matched, the statement left after the matches)."""
    ok = True
    while True:
        for kind, rx in _CONDS:
            m = rx.match(text)
            if not m:
                continue
            if kind == "ip":
                addr = p.src if m.group(1) == "saddr" else p.dst
                ok &= _in(addr, m.group(3), rs) != bool(m.group(2))
            elif kind == "port":
                ok &= (p.proto == m.group(1) and p.port == int(m.group(3))) != bool(m.group(2))
            elif kind == "l4":
                ok &= p.proto == m.group(1)
            elif kind == "fib":
                ok &= ((p.src if m.group(1) == "saddr" else p.dst) in node_ips) != bool(m.group(2))
            elif kind == "mark":
                is_zero = not p.marked or int(m.group(1), 0) & 0x4000 == 0
                ok &= is_zero == ((m.group(2) == "==") == (int(m.group(3), 0) == 0))
            text = text[m.end():]
            break
        else:
            return ok, text


def element(rs: NftRuleset, name: str, key: str) -> str | None:
    """The value of map `name`'s element `key` (an element's comment ignored), or None."""
    elements = rs.maps.get(name, ("", {}))[1]
    if key in elements:
        return elements[key]
    return next((v for k, v in elements.items() if _COMMENT.sub("", k) == key), None)


class _Walker:
    def __init__(self, rs: NftRuleset, node_ips: Iterable[str]):
        self.rs, self.node_ips = rs, frozenset(node_ips)
        self._maps: dict[str, dict[str, str]] = {}

    def element(self, name: str, key: str) -> str | None:
        """`element()` over an index of the map built once per walk (at
        10,000 Services: one pass over the map, not one per lookup)."""
        if name not in self._maps:
            self._maps[name] = {(_COMMENT.sub("", k) if ' comment "' in k else k): v
                                for k, v in self.rs.maps.get(name, ("", {}))[1].items()}
        return self._maps[name].get(key)

    def chain(self, name: str, p: _Packet, depth: int = 0) -> _Result:
        if depth > MAX_DEPTH:
            raise UnknownRule(f"chain {name}: more than {MAX_DEPTH} nested jumps (a loop?)")
        return self.rules(name, 0, p, depth)

    def rules(self, name: str, start: int, p: _Packet, depth: int) -> _Result:
        rules = self.rs.chains.get(name, ())
        for i in range(start, len(rules)):
            rule = rules[i]
            ok, stmt = _conditions(self.rs, _COMMENT.sub("", rule), p, self.node_ips)
            if not ok:
                continue
            out = self.statement(name, rule, stmt, p, depth)
            if out is None:  # a vmap without a matching element: next rule
                continue
            done: _Result = []
            for verdict, q in out:
                if verdict == "next":
                    done += self.rules(name, i + 1, q, depth)
                else:
                    done.append((verdict, q))
            return done
        return [("", p)]

    def _verdict(self, chain: str, rule: str, value: str, p: _Packet, did: str, depth: int) -> _Result:
        """A verdict (from a rule or a map element) applied to the packet."""
        p = p.add(chain, rule, did)
        m = _JUMP.fullmatch(value)
        if m:
            after = self.chain(m.group(2), p, depth + 1)
            if m.group(1) == "goto":
                return after
            # a jump returns here; a jump into a chain that did nothing is not worth a hop
            return [("next", q if q.hops != p.hops else replace(q, hops=q.hops[:-1])) if v == "" else (v, q)
                    for v, q in after]
        if value in ("drop", "reject", "accept"):
            return [(value, p)]
        if value == "return":
            return [("", p)]
        raise UnknownRule(f"chain {chain}: verdict {value!r} in {rule!r}")

    def statement(self, chain: str, rule: str, stmt: str, p: _Packet, depth: int) -> _Result | None:
        stmt = stmt.strip()
        if not stmt:
            return [("next", p.add(chain, rule, "matched, no statement"))]
        m = _VMAP.fullmatch(stmt)
        if m and m.group(1).startswith("numgen"):
            branches = [b.split(" : ", 1) for b in _SPLIT.split(m.group(2).strip("{} ")) if b]
            out: _Result = []
            for index, value in branches:
                did = f"picks {index} of {len(branches)} at random: {value}"
                out += self._verdict(chain, rule, value, p, did, depth)
            return out
        if m:
            key = f"{p.dst} . {p.proto} . {p.port}" if m.group(1).startswith("ip daddr") else f"{p.proto} . {p.port}"
            value = self.element(m.group(2)[1:], key) if m.group(2).startswith("@") else None
            if value is None:
                return None
            return self._verdict(chain, rule, value, p, f"{key} in {m.group(2)}: {value}", depth)
        m = _JUMP.fullmatch(stmt)
        if m or stmt in ("drop", "accept", "return"):
            return self._verdict(chain, rule, stmt, p, stmt, depth)
        if stmt == "reject" or stmt.startswith("reject with "):
            return [("reject", p.add(chain, rule, "reject"))]
        m = _DNAT.search(stmt)
        if m and stmt == m.group(0):
            q = replace(p, dnat=m.group(1), dst=m.group(1).rpartition(":")[0], port=int(m.group(1).rpartition(":")[2]))
            return [("accept", q.add(chain, rule, f"DNAT to {m.group(1)}"))]
        m = _MARK_SET.fullmatch(stmt)
        if m:
            marked = m.group(1) in ("|", "or")
            did = "mark for masquerade" if marked else "clear the masquerade mark"
            return [("next", replace(p.add(chain, rule, did), marked=marked))]
        if stmt.startswith("masquerade"):
            return [("accept", p.add(chain, rule, "masquerade: SNAT to the node's address"))]
        if stmt.startswith("update @"):
            return [("next", p.add(chain, rule, "remember the client for session affinity"))]
        if stmt.startswith("counter"):
            return [("next", p)]
        raise UnknownRule(f"chain {chain}: cannot walk {rule!r}")


def _hooks(rs: NftRuleset, hooks: Iterable[str]) -> list[str]:
    """The base chains of `hooks`, in hook then priority order."""
    found = []
    for name, decl in rs.base_chains.items():
        m = re.search(r"hook (\w+) priority (-?\d+)", decl)
        if m and m.group(1) in hooks:
            found.append((list(hooks).index(m.group(1)), int(m.group(2)), name))
    return [name for *_, name in sorted(found)]


def walk(rs: NftRuleset, src: str, dst: str, port: int, proto: str = "tcp",
         node_ips: Iterable[str] = ()) -> list[Path]:
    """Every way the first packet of src -> dst:port/proto goes through `rs`
    on a node whose addresses are `node_ips` (one Path per reachable endpoint)."""
    w = _Walker(rs, node_ips)
    first = HOOKS_OUT if src in w.node_ips else HOOKS_IN
    states = [_Packet(src, dst, port, proto.lower())]
    paths: list[Path] = []
    for stage in ("first", "route", "post"):
        nxt = []
        for p in states:
            if stage == "first":
                hooks = first
            elif stage == "route":
                # to a node address: input (also after output, over loopback); else forwarded
                hooks = ("input",) if p.dst in w.node_ips else () if first == HOOKS_OUT else ("forward",)
            else:
                hooks = ("postrouting",)
            alive = [p]
            for base in _hooks(rs, hooks):
                step = []
                for q in alive:
                    for verdict, r in w.chain(base, q):
                        if verdict in ("drop", "reject"):
                            paths.append(Path(r.hops, verdict.upper(), False, base))
                        else:
                            step.append(r)
                alive = step
            nxt += alive
        states = nxt
    for p in states:
        masq = bool(p.hops) and p.hops[-1].did.startswith("masquerade")
        paths.append(Path(p.hops, p.dnat, masq))
    return paths


def outcome(paths: list[Path]) -> tuple[str, bool]:
    """kube-proxy's packet-flow summary of `walk`: ("ip:port, ..." sorted, or
    "REJECT" / "DROP" / "", masqueraded). Raises ValueError when endpoints
    disagree on the masquerade."""
    stops = [p.outcome for p in paths if p.outcome in ("REJECT", "DROP")]
    if stops and len(stops) == len(paths):
        return stops[0], False
    reached = [p for p in paths if p.outcome]
    if not reached:
        return "", False
    masq = {p.masquerade for p in reached}
    if len(masq) != 1:
        raise ValueError(f"masquerade differs between endpoints: {[(p.outcome, p.masquerade) for p in reached]}")
    return ", ".join(sorted({p.outcome for p in reached})), masq.pop()
