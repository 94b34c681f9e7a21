"""Prepared answers: cluster names answered by a dictionary lookup of ready wire bytes.

Answers for cluster names change only when the watch changes the state, so
each (name, type) is resolved once per state generation with dnslib (the
builder of record) and kept as the bytes after the question. A query is then
answered by: header (its ID and RD/CD echoed) + its own question bytes (so the
client's case comes back, and every compression pointer into the question
still lands) + the prepared body (+ an OPT record when the query had one).

Every state change swaps in an empty table (O(1), done by a ClusterState
listener under the state lock); entries are rebuilt lazily by the first query
that needs them. An entry built from an older generation is never stored in
a newer table. The table is bounded, so a flood of random names cannot grow
it without limit.

SRV answers are the one case where the client's spelling changes more than
the owner names: their targets and glue carry the zone in the query's case
(CoreDNS's handler_case_test), so an SRV question whose bytes are not all
lower case gets its own entry, keyed by those bytes and packed against them.

A UDP answer over the client's size keeps as much as fits, as miekg/dns's
Msg.Truncate (CoreDNS's Scrub) does: the longest prefix of the answer
section, then of the authority section if every answer fitted, then of the
additional section; TC is set since something was left out.

Several A/AAAA records are served in rotation (as CoreDNS's `loadbalance`
shuffles them), from up to `MAX_ROTATIONS` pre-built bodies.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

from dnslib import QTYPE, RR, SOA, SRV, DNSHeader, DNSLabel, DNSQuestion, DNSRecord

from dns.cluster import ClusterState
from dns.names import is_subdomain, match_zone
from dns.records import Answer, Config, label, resolve
from dns.wire import FLAG_AA, FLAG_QR, Query, question_labels

MAX_ENTRIES = 50_000
MAX_ROTATIONS = 8
CASE_KEY = b"case:"   # never the start of a lower-case key (a label length is < 64)
RCODE_REFUSED = 5
TYPE_SRV = 33


@dataclass(slots=True)
class Prepared:
    """One question's answer, ready to send."""

    answer: Answer
    labels: tuple
    qtype: int
    flags: int = 0
    bodies: tuple = ()                      # ((an, ns, ar), body) per rotation
    truncated: dict = field(default_factory=dict)
    turn: itertools.count = field(default_factory=itertools.count)

    @property
    def forward(self) -> bool:
        return self.answer.forward

    def body(self) -> tuple:
        if len(self.bodies) == 1:
            return self.bodies[0]
        return self.bodies[next(self.turn) % len(self.bodies)]

    def truncated_body(self, budget: int) -> tuple:
        """What miekg's Truncate keeps within `budget` bytes (TC is the caller's to set)."""
        hit = self.truncated.get(budget)
        if hit is None:
            hit = _truncate(self, budget)
            self.truncated[budget] = hit
        return hit


def message(labels: tuple, qtype: int, answer: Answer, records: tuple | None = None,
            authority: tuple | None = None, additional: tuple | None = None) -> DNSRecord:
    rec = DNSRecord(DNSHeader(id=0, qr=1, aa=int(not answer.forward), rcode=answer.rcode),
                    q=DNSQuestion(label(labels), qtype))
    rec.rr = list(answer.answer if records is None else records)
    rec.auth = list(answer.authority if authority is None else authority)
    rec.ar = list(answer.additional if additional is None else additional)
    return rec


def split(wire: bytes, labels: tuple) -> tuple:
    """Packed message -> ((an, ns, ar), bytes after the question)."""
    qlen = sum(len(p.encode("latin-1")) + 1 for p in labels) + 1 + 4
    an, ns, ar = (int.from_bytes(wire[i:i + 2], "big") for i in (6, 8, 10))
    return (an, ns, ar), wire[12 + qlen:]


def recase(answer: Answer, qname: tuple, zone: tuple, case: tuple) -> Answer:
    """The answer as CoreDNS writes it for a question spelled `case`: the owner of the
    answers is the question itself, and every name under the zone (SRV targets, their
    glue, the SOA's names) has the zone part in the query's case (handler.go keeps it:
    `zone = qname[len(qname)-len(zone):]`) and the rest as the objects spell it."""
    zcase = case[len(case) - len(zone):]

    def fix(name: DNSLabel) -> DNSLabel:
        labels = tuple(part.decode("latin-1").lower() for part in name.label)
        if labels == qname:
            return label(case)
        if is_subdomain(labels, zone):
            return DNSLabel(name.label[:len(labels) - len(zone)] + label(zcase).label)
        return name

    def fix_rr(rr: RR) -> RR:
        rdata = rr.rdata
        if rr.rtype == QTYPE.SRV:
            rdata = SRV(rdata.priority, rdata.weight, rdata.port, fix(rdata.target))
        elif rr.rtype == QTYPE.SOA:
            rdata = SOA(fix(rdata.mname), fix(rdata.rname), rdata.times)
        return RR(fix(rr.rname), rr.rtype, rr.rclass, rr.ttl, rdata)

    return replace(answer, answer=tuple(map(fix_rr, answer.answer)),
                   authority=tuple(map(fix_rr, answer.authority)),
                   additional=tuple(map(fix_rr, answer.additional)))


def _rotations(records: tuple) -> list[tuple]:
    if len(records) < 2 or any(rr.rtype not in (QTYPE.A, QTYPE.AAAA) for rr in records):
        return [records]
    n = min(len(records), MAX_ROTATIONS)
    step = max(1, len(records) // n)
    return [records[i * step:] + records[:i * step] for i in range(n)]


def prepare(answer: Answer, labels: tuple, qtype: int) -> Prepared:
    """Pack an Answer into sendable bodies (nothing to pack when it is forwarded)."""
    p = Prepared(answer, labels, qtype)
    if answer.forward:
        return p
    # Authoritative, SERVFAIL before the first sync included (BackendError); the
    # REFUSED for zone transfers is the server's plain error reply.
    p.flags = FLAG_QR | (FLAG_AA if answer.rcode != RCODE_REFUSED else 0) | answer.rcode
    p.bodies = tuple(split(message(labels, qtype, answer, rot).pack(), labels)
                     for rot in _rotations(answer.answer))
    return p


def _truncate(p: Prepared, budget: int) -> tuple:
    sections = (p.answer.answer, p.answer.authority, p.answer.additional)
    keep = [0, 0, 0]

    def packed() -> bytes:
        return message(p.labels, p.qtype, p.answer, *(s[:n] for s, n in zip(sections, keep))).pack()

    for i, section in enumerate(sections):
        lo, hi = 0, len(section)        # the longest prefix that fits: sizes grow with it
        while lo < hi:
            keep[i] = (lo + hi + 1) // 2
            if len(packed()) <= budget:
                lo = keep[i]
            else:
                hi = keep[i] - 1
        keep[i] = lo
        if lo < len(section):
            break                       # miekg: nothing after the first record left out
    return split(packed(), p.labels)


class PreparedAnswers:
    """The per-generation table of Prepared answers for one ClusterState."""

    def __init__(self, state: ClusterState, cfg: Config) -> None:
        self._state = state
        self._cfg = cfg
        self._entries: dict[bytes, Prepared] = {}
        state.add_listener(self._invalidate)

    def _invalidate(self) -> None:
        self._entries = {}

    def close(self) -> None:
        """Unhooks the table from the state (it is no longer served)."""
        self._state.remove_listener(self._invalidate)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, q: Query) -> Prepared:
        entries = self._entries
        key = q.key
        if q.qtype == TYPE_SRV and q.question != key:
            key = CASE_KEY + q.question
        hit = entries.get(key)
        if hit is not None:
            return hit
        case = question_labels(q.question) if key is not q.key else None
        generation = self._state.generation
        view = self._state.view()
        answer = resolve(view, q.labels, q.qtype, self._cfg)
        if case is not None and not answer.forward:
            answer = recase(answer, q.labels, match_zone(q.labels, self._cfg.zones), case)
        prepared = prepare(answer, case or q.labels, q.qtype)
        if view.generation == generation:
            if len(entries) >= MAX_ENTRIES:
                self._entries = entries = {}
            entries[key] = prepared
        return prepared
