"""A transaction's operations written as one nf_tables netlink batch, not through nft.

Why: nft 1.0.6 (Debian 12) reads the kernel's whole table into its cache
before every transaction, every chain and every set, even to add one map
element: 0.13 s at 10,000 Services, each time (measured with strace: 246
netlink reads of chains and sets). A batch written here reads nothing; the
kernel's own work is all that is left.

`encode(ops, declarations, names)` (pure) turns `dataplane.nft.transaction`
operations into the batch's bytes; what `dataplane.nft.compile` cannot
express raises `Unsupported` before anything is sent, and the caller
writes that transaction with nft instead. Declarations of the fixed maps,
sets and base chains are never encoded here: a full sync writes them
through nft first (see `dataplane.nft.applier`).

Anonymous maps (each `numgen random mod N vmap { ... }`) get a name chosen
here, `__map.<token>.<n>`, instead of nft's `__map%d`: with `%d` the kernel
picks the lowest free number by reading the name of every set in the table
(nf_tables_set_alloc_name), one more scan of the table's sets per map on
top of those it makes anyway. The `.` keeps these names out of that
numbering; nft lists the maps inline all the same.

`write(batch)` sends the batch in the calling thread's network namespace
and raises NftError naming the operation the kernel refused.

Large syncs are split (`split`). For every anonymous map a rule binds (or
unbinds, when its chain is flushed), the kernel walks the whole
transaction so far (__nft_set_trans_bind, 63 % of kernel samples in `perf
record` of a full sync at 3,000 Services): a transaction binding n maps
costs O(n x its length). A transaction binding more than `BINDS_PER_BATCH`
maps is therefore written as several: every chain and set declared first;
then the chains' flushes and rules, a Service port's chains always
together, `BINDS_PER_BATCH` maps at a time; then every map and set element
and every deletion. Each is atomic, and between them each Service port's
chains are all old or all new while the maps still send traffic to the
chains they named before; what was one transaction's moment of change
becomes a few of them. Smaller syncs stay one transaction, as kube-proxy's.
"""
from __future__ import annotations

import array
import errno
import itertools
import os
import secrets
import socket
import struct
from collections.abc import Callable, Mapping, Sequence

from dataplane.nft import compile as c
from dataplane.nft import nlmsg as m
from dataplane.nft.errors import NftError
from dataplane.nft.ruleset import CHAIN_COMMENTS, TABLE
from dataplane.nft.transaction import Existing, Op, binds, in_parts, line_of

Unsupported = c.Unsupported
NETLINK_NETFILTER = 12
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33
GETTABLE, GETCHAIN, GETSET = 1, 4, 10


class Names:
    """Unique names for anonymous maps, per writer (a random token and a count)."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(4)
        self._count = itertools.count()

    def next(self, prefix: str = "__map") -> str:
        return f"{prefix}.{self.token}.{next(self._count)}"


class Batch:
    """The encoded batch, and which operation each message came from (for errors)."""

    def __init__(self) -> None:
        self.buffer = bytearray(m.batch_marker(m.NFNL_MSG_BATCH_BEGIN, 0))
        self.origin = array.array("I")  # message seq - 1 -> index of its operation
        self.seq = 0
        self._closed = False

    def add(self, op_index: int, kind: int, flags: int, payload: bytes) -> None:
        self.seq += 1
        self.origin.append(op_index)
        self.buffer += m.message(kind, flags, self.seq, payload)

    def data(self) -> bytearray:
        if not self._closed:
            self.buffer += m.batch_marker(m.NFNL_MSG_BATCH_END, self.seq + 1)
            self._closed = True
        return self.buffer

    def op_of(self, seq: int) -> int | None:
        return self.origin[seq - 1] if 0 < seq <= len(self.origin) else None


def encode(ops: Sequence[Op], declarations: Mapping[str, str], names: Names) -> Batch:
    """The batch for `ops`; `declarations` are the maps' and sets' declarations
    by name (element keys are encoded from their types). Unsupported when
    an operation is outside what is compiled here, or text compile.py does
    not read (a port that is not a number, say): nft then reads it, and
    says what is wrong with it."""
    try:
        return _encode(ops, declarations, names)
    except Unsupported:
        raise
    except (ValueError, IndexError, struct.error) as err:
        raise Unsupported(f"{type(err).__name__}: {err}") from err


def _encode(ops: Sequence[Op], declarations: Mapping[str, str], names: Names) -> Batch:
    batch = Batch()
    table = m.string(1, TABLE)
    fields_of: dict[str, tuple[str, ...]] = {}
    set_ids = itertools.count(1)
    for index, op in enumerate(ops):
        kind = op[0]
        if kind == "chain":
            if op[2]:
                raise Unsupported(f"a base chain: {op[1]}")
            if op[1] in CHAIN_COMMENTS:
                raise Unsupported(f"a chain with a comment: {op[1]}")
            batch.add(index, m.NEWCHAIN, m.NLM_F_CREATE, table + m.string(m.CHAIN_NAME, op[1]))
        elif kind in ("flush chain", "delete chain"):
            msg = m.DELRULE if kind == "flush chain" else m.DELCHAIN
            batch.add(index, msg, 0, table + m.string(m.RULE_CHAIN if msg == m.DELRULE else m.CHAIN_NAME, op[1]))
        elif kind in ("flush map", "flush set"):
            batch.add(index, m.DELSETELEM, 0, table + m.string(m.ELEM_LIST_SET, op[1]))
        elif kind in ("delete map", "delete set"):
            batch.add(index, m.DELSET, 0, table + m.string(m.SET_NAME, op[1]))
        elif kind == "set":
            timeout = c.affinity_set(op[2])
            batch.add(index, m.NEWSET, m.NLM_F_CREATE, c.affinity_set_attrs(op[1], timeout, next(set_ids), TABLE))
        elif kind in ("elements", "delete elements"):
            name = op[1]
            if name not in fields_of:
                if name not in declarations:
                    raise Unsupported(f"elements of {name}, whose declaration is unknown")
                fields_of[name] = c.key_fields(declarations[name])
            fields = fields_of[name]
            items = []
            for item in op[2]:
                key_text, value = (item, None) if kind == "delete elements" else item
                parts = m.nest(m.ELEM_KEY, m.attr(m.DATA_VALUE, c.key(fields, key_text)))
                if value is not None:
                    parts += m.verdict(m.ELEM_DATA, *c.element_verdict(value))
                comment = c.key_comment(key_text) if kind == "elements" else None
                if comment is not None:
                    parts += m.attr(m.ELEM_USERDATA, m.udata(0, comment))
                items.append(m.nest(m.LIST_ELEM, parts))
            msg = m.NEWSETELEM if kind == "elements" else m.DELSETELEM
            for chunk in _chunks(items):
                batch.add(index, msg, m.NLM_F_CREATE if msg == m.NEWSETELEM else 0,
                          table + m.string(m.ELEM_LIST_SET, name) + m.nest(m.ELEM_LIST_ELEMENTS, *chunk))
        elif kind == "rule":
            rule = c.rule(op[2])
            exprs = rule.exprs
            if rule.vmap is not None:
                anon, set_id = names.next(), next(set_ids)
                _anonymous(batch, index, c.anonymous_vmap_attrs(anon, len(rule.vmap), set_id, TABLE), set_id,
                           [m.nest(m.LIST_ELEM, m.nest(m.ELEM_KEY, m.attr(m.DATA_VALUE, c.vmap_key(k))),
                                   m.verdict(m.ELEM_DATA, m.NFT_GOTO, chain)) for k, chain in rule.vmap])
                exprs += c.lookup(anon, set_id, verdict_map=True)
            elif rule.interval is not None:
                anon, set_id = names.next("__set"), next(set_ids)
                _anonymous(batch, index, c.interval_set_attrs(anon, len(rule.interval), set_id, TABLE), set_id,
                           [m.nest(m.LIST_ELEM, *((m.u32(m.ELEM_FLAGS, m.ELEM_INTERVAL_END),) if end else ()),
                                   m.nest(m.ELEM_KEY, m.attr(m.DATA_VALUE, key))) for key, end in rule.interval])
                exprs += c.lookup(anon, set_id, negate=rule.negate) + rule.after
            payload = table + m.string(m.RULE_CHAIN, op[1]) + m.nest(m.RULE_EXPRESSIONS, exprs)
            if rule.comment is not None:
                payload += m.attr(m.RULE_USERDATA, m.udata(0, rule.comment))
            batch.add(index, m.NEWRULE, m.NLM_F_CREATE | m.NLM_F_APPEND, payload)
        else:
            raise Unsupported(f"operation {kind!r}")
    return batch


def _anonymous(batch: Batch, index: int, set_attrs: bytes, set_id: int, items: list[bytes]) -> None:
    """An anonymous map or set and its elements. The elements name it by id
    alone: the kernel finds a set made in this transaction by id from the
    newest one back, where a name is compared with every set of the table."""
    batch.add(index, m.NEWSET, m.NLM_F_CREATE, set_attrs)
    batch.add(index, m.NEWSETELEM, m.NLM_F_CREATE, m.string(m.ELEM_LIST_TABLE, TABLE)
              + m.u32(m.ELEM_LIST_SET_ID, set_id) + m.nest(m.ELEM_LIST_ELEMENTS, *items))


BINDS_PER_BATCH = 500


def split(ops: Sequence[Op], group_of: Callable[[], Mapping[str, object]],
          limit: int | None = None) -> list[list[Op]]:
    """`ops` as the transactions to write, in order: one, unless its rules
    bind more than `limit` anonymous maps (see the module docstring), then
    `transaction.in_parts`; `group_of()` gives each per-Service chain's
    Service port (only called when the transaction is split)."""
    limit = BINDS_PER_BATCH if limit is None else limit
    if binds(ops) <= limit:
        return [list(ops)]
    groups = group_of()
    stale = {op[1] for op in ops if op[0] == "delete chain"}
    declare, last = [], []
    rewrites: dict[object, list[Op]] = {}
    for op in ops:
        if op[0] in ("chain", "set", "map"):
            declare.append(op)
        elif op[0] in ("flush chain", "rule") and op[1] not in stale:
            rewrites.setdefault(groups.get(op[1]), []).append(op)
        else:
            last.append(op)
    return list(in_parts(declare, rewrites.values(), lambda: last, limit))


_ATTR_MAX = 0xFFFF - 1024  # an attribute's length is 16 bits: long element lists take several messages


def _chunks(items: list[bytes]) -> list[list[bytes]]:
    out: list[list[bytes]] = [[]]
    size = 0
    for item in items:
        if size + len(item) > _ATTR_MAX and out[-1]:
            out.append([])
            size = 0
        out[-1].append(item)
        size += len(item)
    return out


class Socket:
    """A netlink socket in the calling thread's current network namespace,
    kept open between batches (closing one costs about 8 ms, measured: as
    much as a small sync) and made again when the thread is in another
    namespace. It keeps its namespace alive while open: its owner (the
    applier) closes it with itself."""

    def __init__(self) -> None:
        self._held: tuple[int, socket.socket] | None = None

    def get(self) -> socket.socket:
        ns = os.stat("/proc/thread-self/ns/net").st_ino
        if self._held is not None and self._held[0] == ns:
            return self._held[1]
        self.close()
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20)
        sock.bind((0, 0))
        self._held = (ns, sock)
        return sock

    def close(self) -> None:
        if self._held is not None:
            self._held[1].close()
            self._held = None


def write(batch: Batch, ops: Sequence[Op], held: Socket | None = None) -> None:
    """Send `batch` (made from `ops`) in this thread's network namespace as
    one transaction (through `held` when given); NftError naming the first
    operation refused."""
    data = batch.data()
    own = held if held is not None else Socket()
    try:
        _send(own.get(), data, batch, ops)
    finally:
        if held is None:
            own.close()


def _send(sock: socket.socket, data: bytearray, batch: Batch, ops: Sequence[Op]) -> None:
    sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, len(data) + 65536)
    sock.sendto(data, (0, 0))
    # The kernel runs the whole batch inside sendto: any refusal is queued by now.
    replies = b""
    while True:
        try:
            chunk = sock.recv(1 << 20, socket.MSG_DONTWAIT)
        except BlockingIOError:
            break
        if not chunk:
            break
        replies += chunk
    refused = m.errors(replies)
    if refused:
        code, seq = refused[0]
        index = batch.op_of(seq)
        line = line_of(ops[index]) if index is not None else "the transaction's commit"
        raise NftError(f"the kernel refused {line!r}: {os.strerror(code)} ({errno.errorcode.get(code, code)}); "
                       "nothing of this transaction was applied", line=line)


def _attrs(data: bytes, offset: int, end: int, wanted: frozenset[int]) -> dict[int, bytes]:
    out = {}
    while offset + 4 <= end:
        size, kind = struct.unpack_from("<HH", data, offset)
        if size < 4:
            break
        if kind & 0x3FFF in wanted:
            out[kind & 0x3FFF] = data[offset + 4:offset + size]
        offset += (size + 3) & ~3
    return out


def _dump(kind: int, wanted: frozenset[int], keep: Callable[[dict[int, bytes]], object | None]) -> list:
    """keep(attributes) of every object of one kind (tables, chains, sets) of
    the ip family, read attribute by attribute (only the `wanted` ones), and
    left out where keep returns None: at 10,000 Services the chains alone
    are 50,000 objects, so nothing else of them is held."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    out = []
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        sock.bind((0, 0))
        sock.sendto(m.message(kind, 0x300, 1, b""), (0, 0))  # NLM_F_DUMP
        while True:
            data = sock.recv(1 << 20)
            offset = 0
            while offset + 16 <= len(data):
                size, msg_type = struct.unpack_from("<IH", data, offset)
                if msg_type == 3:  # NLMSG_DONE
                    return out
                if msg_type == m.NLMSG_ERROR:
                    (err,) = struct.unpack_from("<i", data, offset + 16)
                    if err:
                        raise NftError(f"listing nf_tables objects failed: {os.strerror(-err)}")
                else:
                    kept = keep(_attrs(data, offset + 20, offset + size, wanted))
                    if kept is not None:
                        out.append(kept)
                offset += (size + 3) & ~3
    finally:
        sock.close()


_OURS = TABLE.encode() + b"\0"


def _name(a: dict[int, bytes], table_attr: int, name_attr: int) -> str | None:
    return a[name_attr].rstrip(b"\0").decode() if a.get(table_attr) == _OURS else None


def _named_set(a: dict[int, bytes]) -> tuple[str, bool] | None:
    """(name, is a map) of one of our named sets."""
    (flags,) = struct.unpack(">I", a.get(m.SET_FLAGS, b"\0\0\0\0"))
    if a.get(m.SET_TABLE) != _OURS or flags & m.SET_ANONYMOUS:
        return None
    return a[m.SET_NAME].rstrip(b"\0").decode(), bool(flags & m.SET_MAP)


def existing() -> Existing:
    """The names of `table ip kube-proxy`'s chains, maps and (named) sets, read
    over netlink without rules or elements: what a full sync deletes when
    stale. Empty when there is no table."""
    chains = _dump(GETCHAIN, frozenset((m.CHAIN_TABLE, m.CHAIN_NAME)), lambda a: _name(a, m.CHAIN_TABLE, m.CHAIN_NAME))
    sets = _dump(GETSET, frozenset((m.SET_TABLE, m.SET_NAME, m.SET_FLAGS)), _named_set)
    return Existing(frozenset(chains), frozenset(n for n, is_map in sets if is_map),
                    frozenset(n for n, is_map in sets if not is_map))


def table_handle() -> int | None:
    """The handle of `table ip kube-proxy`, None when there is none."""
    handles = _dump(GETTABLE, frozenset((m.TABLE_NAME, 4)),  # NFTA_TABLE_HANDLE
                    lambda a: struct.unpack(">Q", a[4])[0] if a.get(m.TABLE_NAME) == _OURS else None)
    return handles[0] if handles else None
