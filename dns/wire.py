"""DNS wire format, the fast and the careful way.

`parse_query()` reads the header, the single question and an optional EDNS0
OPT record with `struct` only; that is all a well-formed stub query has, and
it is what lets cluster names be answered by a dictionary lookup. Anything it
does not recognise falls back to dnslib (`parse_query_slow`), which stays the
parser of record; what dnslib cannot parse either gets FORMERR.

Header acceptance follows miekg/dns's DefaultMsgAcceptFunc (what CoreDNS
runs): responses are ignored, opcodes other than QUERY get NOTIMP, a
qdcount other than 1 (or stuffed answer/authority/additional sections) gets
FORMERR.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from dnslib import QTYPE, DNSRecord

HEADER = struct.Struct("!HHHHHH")
OPT_TYPE = 41
OPT_SIZE = 11  # an OPT record with no options
FLAG_QR = 0x8000
FLAG_AA = 0x0400
FLAG_TC = 0x0200
FLAG_RD = 0x0100
FLAG_CD = 0x0010
OPCODE_MASK = 0x7800
ECHO_FLAGS = FLAG_RD | FLAG_CD | OPCODE_MASK
RCODE_FORMERR = 1
RCODE_NOTIMP = 4
RCODE_BADVERS = 16
MAX_NAME = 255


class Drop(Exception):
    """Not worth an answer (shorter than a header, or a response)."""


class Reject(Exception):
    """Answer with a header-only error (FORMERR / NOTIMP), as miekg/dns does."""

    def __init__(self, rcode: int):
        super().__init__(rcode)
        self.rcode = rcode


@dataclass(slots=True)
class Query:
    qid: int
    flags: int
    question: bytes          # name + type + class, exactly as received (the client's case)
    key: bytes               # lower-cased name + type + class: the prepared-answer key
    labels: tuple            # lower-case labels (str) of the name
    qtype: int
    qclass: int
    edns_size: int | None    # None: the query had no OPT record
    edns_version: int = 0
    edns_do: bool = False

    def udp_limit(self) -> int:
        return 512 if self.edns_size is None else max(512, self.edns_size)


def check_header(data: bytes) -> tuple[int, int, int, int, int, int]:
    if len(data) < 12:
        raise Drop()
    hdr = HEADER.unpack_from(data)
    qid, flags, qd, an, ns, ar = hdr
    if flags & FLAG_QR:
        raise Drop()
    if (flags & OPCODE_MASK) >> 11 != 0:
        raise Reject(RCODE_NOTIMP)
    if qd != 1 or an > 1 or ns > 1 or ar > 2:
        raise Reject(RCODE_FORMERR)
    return hdr


def parse_query(data: bytes) -> Query | None:
    """Header + question (+ OPT) with struct; None when the slow path must decide."""
    qid, flags, _, an, ns, ar = check_header(data)
    if an or ns or ar > 1:
        return None
    end = len(data)
    off = 12
    labels = []
    while True:
        if off >= end:
            return None
        length = data[off]
        if length == 0:
            off += 1
            break
        if length > 63:
            return None  # compression pointer in a question, or garbage
        labels.append(data[off + 1:off + 1 + length].lower().decode("latin-1"))
        off += 1 + length
    if off - 12 > MAX_NAME or off + 4 > end:
        return None
    qtype, qclass = struct.unpack_from("!HH", data, off)
    qend = off + 4
    size, version, do = None, 0, False
    if ar:
        if qend + 11 > end or data[qend] != 0:
            return None
        rtype, size, ttl, rdlen = struct.unpack_from("!HHIH", data, qend + 1)
        if rtype != OPT_TYPE or qend + 11 + rdlen != end:
            return None
        version, do = (ttl >> 16) & 0xFF, bool(ttl & 0x8000)
    elif qend != end:
        return None
    name = data[12:off]
    return Query(qid, flags, data[12:qend], name.lower() + data[off:qend], tuple(labels),
                 qtype, qclass, size, version, do)


def parse_query_slow(data: bytes) -> Query:
    """dnslib's full parse for whatever the fast path declined; Reject(FORMERR) if it fails."""
    qid, flags, *_ = check_header(data)
    try:
        rec = DNSRecord.parse(data)
    except Exception as exc:  # dnslib raises several types on garbage
        raise Reject(RCODE_FORMERR) from exc
    q = rec.q
    raw = tuple(q.qname.label)
    if sum(len(p) + 1 for p in raw) + 1 > MAX_NAME or any(len(p) > 63 for p in raw):
        raise Reject(RCODE_FORMERR)
    name = b"".join(bytes([len(p)]) + p for p in raw) + b"\x00"
    tail = struct.pack("!HH", q.qtype, q.qclass)
    size, version, do = None, 0, False
    for rr in rec.ar:
        if rr.rtype == OPT_TYPE:
            size, version, do = rr.rclass, (rr.ttl >> 16) & 0xFF, bool(rr.ttl & 0x8000)
    labels = tuple(p.lower().decode("latin-1") for p in raw)
    return Query(qid, flags, name + tail, name.lower() + tail, labels, q.qtype, q.qclass,
                 size, version, do)


def question_labels(question: bytes) -> tuple:
    """The labels of a question's name as the client spelled them (str, latin-1)."""
    labels, off = [], 0
    while question[off]:
        length = question[off]
        labels.append(question[off + 1:off + 1 + length].decode("latin-1"))
        off += 1 + length
    return tuple(labels)


def question_name(question: bytes) -> str:
    """The question's name as the client spelled it, dotted and fully qualified ('Web.default.svc.')."""
    return ".".join(question_labels(question)) + "."


def encode_name(name: str) -> bytes:
    """'web.default.svc.' -> its uncompressed wire form (length-prefixed labels, then the root)."""
    return b"".join(bytes([len(p)]) + p.encode("latin-1") for p in name.rstrip(".").split(".") if p) + b"\x00"


def header_only(data: bytes, rcode: int) -> bytes:
    """miekg's reply to a rejected message: the header echoed, no sections."""
    qid, flags = struct.unpack_from("!HH", data)
    flags = FLAG_QR | (flags & ECHO_FLAGS) | (rcode & 0xF)
    return HEADER.pack(qid, flags, 0, 0, 0, 0)


def opt_record(size: int, ext_rcode: int = 0, do: bool = False) -> bytes:
    """A version-0 OPT pseudo-RR advertising `size`, with no options."""
    ttl = ((ext_rcode >> 4) << 24) | (0x8000 if do else 0)
    return b"\x00" + struct.pack("!HHIH", OPT_TYPE, size, ttl, 0)


def response(q: Query, base_flags: int, counts: tuple[int, int, int], body: bytes,
             edns_size: int | None = None) -> bytes:
    """Header + the query's own question + a prepared body (+ OPT when the query had one)."""
    an, ns, ar = counts
    flags = base_flags | (q.flags & ECHO_FLAGS)
    if q.edns_size is None:
        return HEADER.pack(q.qid, flags, 1, an, ns, ar) + q.question + body
    opt = opt_record(edns_size or max(512, q.edns_size), do=q.edns_do)
    return HEADER.pack(q.qid, flags, 1, an, ns, ar + 1) + q.question + body + opt


def simple_reply(q: Query, rcode: int, authoritative: bool = False) -> bytes:
    """An answer with only the question (REFUSED, SERVFAIL, BADVERS)."""
    flags = FLAG_QR | (FLAG_AA if authoritative else 0) | (rcode & 0xF)
    if rcode > 0xF or q.edns_size is not None:
        opt = opt_record(max(512, q.edns_size or 512), ext_rcode=rcode, do=q.edns_do)
        flags |= q.flags & ECHO_FLAGS
        return HEADER.pack(q.qid, flags, 1, 0, 0, 1) + q.question + opt
    return HEADER.pack(q.qid, flags | (q.flags & ECHO_FLAGS), 1, 0, 0, 0) + q.question


def skip_name(data: bytes, off: int) -> int:
    """Offset just past a (possibly compressed) name; ValueError on garbage."""
    for _ in range(128):
        length = data[off]
        if length == 0:
            return off + 1
        if length & 0xC0 == 0xC0:
            return off + 2
        if length > 63:
            raise ValueError("bad label")
        off += 1 + length
    raise ValueError("name too long")


def ttl_offsets(data: bytes) -> tuple[list[int], int]:
    """Offsets of every TTL field (OPT excluded) in a response, and the smallest TTL.

    Used by the forward cache to age cached answers in place; ValueError when
    the message does not walk cleanly (then it is simply not cached).
    """
    _, _, qd, an, ns, ar = HEADER.unpack_from(data)
    off = 12
    for _ in range(qd):
        off = skip_name(data, off) + 4
    offsets, smallest = [], None
    for _ in range(an + ns + ar):
        off = skip_name(data, off)
        rtype, _, ttl, rdlen = struct.unpack_from("!HHIH", data, off)
        if rtype != OPT_TYPE:
            offsets.append(off + 4)
            smallest = ttl if smallest is None else min(smallest, ttl)
        off += 10 + rdlen
    if off != len(data):
        raise ValueError("trailing bytes")
    return offsets, (smallest if smallest is not None else 0)


def qtype_name(qtype: int) -> str:
    return QTYPE.get(qtype, "other") if qtype in QTYPE.forward else "other"
