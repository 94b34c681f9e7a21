"""Forwarding names we do not own to upstream resolvers (CoreDNS's `forward` + `cache` + `loop`).

* Upstreams: an explicit list, or the nameservers of a resolv.conf file.
  Loopback stubs there (systemd-resolved's 127.0.0.53 and the like) are
  skipped with a log line: they answer only in the host's namespace, never in
  the pod's, and pointing a pod at itself is a loop.
* Queries go out over UDP from one socket, each with a fresh transaction ID;
  one receiver thread matches replies (by ID, upstream address and question),
  retries the next upstream after `attempt_timeout`, and answers SERVFAIL once
  `timeout` has passed. At most `max_concurrent` queries are in flight; more
  get REFUSED, as CoreDNS's `max_concurrent` does.
* The cache holds forwarded answers only (cluster answers are always live):
  NOERROR and NXDOMAIN, not truncated, for min(smallest TTL, `max_ttl`)
  seconds (`cache 30` in the kubeadm Corefile), served with aged TTLs.
* Loop detection, like CoreDNS's `loop` plugin: at start each upstream is sent
  an HINFO query for a random name under `nsplane-loop-check.`. If that query
  reaches this server again 3 times, the upstream forwards back to us: it is
  disabled and an error names it. The server handler reports sightings
  through `seen_probe()`.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import random
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from dns import wire

log = logging.getLogger(__name__)

PROBE_ZONE = "nsplane-loop-check"
LOOP_THRESHOLD = 3
RCODE_SERVFAIL = 2
RCODE_REFUSED = 5


def parse_upstream(text: str) -> tuple[str, int]:
    """'10.0.0.2', '10.0.0.2:5353', '[fd00::1]:53' or 'fd00::1' -> (ip, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        return str(ipaddress.ip_address(host)), int(port.lstrip(":") or 53)
    if text.count(":") == 1:
        host, port = text.split(":")
        return str(ipaddress.ip_address(host)), int(port)
    return str(ipaddress.ip_address(text)), 53


def upstreams_from_resolv_conf(path: str) -> list[tuple[str, int]]:
    """The usable nameservers of a resolv.conf; loopback stubs skipped with a log line."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        log.error("dns forward: cannot read %s (%s); names outside the cluster will get SERVFAIL; "
                  "pass upstreams= explicitly", path, exc)
        return []
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) < 2 or parts[0] != "nameserver":
            continue
        try:
            ip = ipaddress.ip_address(parts[1].split("%")[0])
        except ValueError:
            log.warning("dns forward: ignoring unparsable nameserver %r in %s", parts[1], path)
            continue
        if ip.is_loopback:
            log.warning("dns forward: skipping loopback stub resolver %s from %s: it only answers in the "
                        "host's own namespace; point resolv_conf at the real resolvers (for "
                        "systemd-resolved: /run/systemd/resolve/resolv.conf) or pass upstreams=", ip, path)
            continue
        out.append((str(ip), 53))
    if not out:
        log.error("dns forward: no usable nameserver in %s; names outside the cluster will get SERVFAIL", path)
    return out


@dataclass(slots=True)
class Pending:
    orig_id: int
    question: bytes            # lower-cased name + type + class, to match the reply
    data: bytes                # the query as sent (with our ID)
    cache_key: bytes | None
    done: object               # callable(bytes | None, rcode)
    upstream: int
    deadline: float
    attempt_deadline: float
    pinned: bool = False


@dataclass(slots=True)
class CacheEntry:
    data: bytes
    offsets: list
    ttls: list
    stored: float
    expires: float
    denial: bool = False
    hits: int = 0


@dataclass
class ForwardStats:
    requests: dict = field(default_factory=dict)       # to -> count
    responses: dict = field(default_factory=dict)      # (to, rcode) -> count
    errors: dict = field(default_factory=dict)         # (to, reason) -> count
    rejects: int = 0
    cache_hits: dict = field(default_factory=dict)     # success|denial -> count
    cache_misses: int = 0


class ForwardCache:
    """Forwarded answers by (name, type, class, EDNS-or-not), aged on the way out.

    With the Corefile's `cache`: success and denial (NXDOMAIN / NODATA) each
    have a capacity and a max and min TTL, zones under `disable` are not
    stored, and `serve_stale` keeps serving an expired entry (TTL 0) for that
    many seconds while a refresh goes upstream.
    """

    def __init__(self, max_entries: int = 10_000, max_ttl: int = 30, *, min_ttl: int = 0,
                 denial_entries: int | None = None, denial_max_ttl: int | None = None, denial_min_ttl: int = 0,
                 stale: float = 0.0, disable_success: tuple = (), disable_denial: tuple = (),
                 prefetch: tuple = (0, 60.0, 10), keepttl: bool = False) -> None:
        self.max_entries = max_entries
        self.max_ttl = max_ttl
        self.min_ttl = min_ttl
        self.denial_entries = max_entries if denial_entries is None else denial_entries
        self.denial_max_ttl = max_ttl if denial_max_ttl is None else denial_max_ttl
        self.denial_min_ttl = denial_min_ttl
        self.stale = stale
        self.disable = {False: tuple(_zone_wire(z) for z in disable_success),
                        True: tuple(_zone_wire(z) for z in disable_denial)}
        self.keepttl = keepttl           # serve the TTLs as received, not aged
        self.prefetch = prefetch         # (amount: 0 is off, duration, percentage of TTL left)
        self._entries: dict[bytes, CacheEntry] = {}
        self._counts = {False: 0, True: 0}

    def __len__(self) -> int:
        return len(self._entries)

    def store(self, key: bytes, data: bytes, now: float) -> None:
        flags = struct.unpack_from("!H", data, 2)[0]
        if flags & wire.FLAG_TC or (flags & 0xF) not in (0, 3):
            return
        denial = (flags & 0xF) == 3 or struct.unpack_from("!H", data, 6)[0] == 0
        cap = self.denial_entries if denial else self.max_entries
        if cap <= 0 or any(_under(key, z) for z in self.disable[denial]):
            return
        try:
            offsets, smallest = wire.ttl_offsets(data)
        except (ValueError, struct.error, IndexError):
            return
        hi, lo = (self.denial_max_ttl, self.denial_min_ttl) if denial else (self.max_ttl, self.min_ttl)
        ttl = max(min(smallest, hi), lo)
        if not offsets or ttl <= 0:
            return
        ttls = [struct.unpack_from("!I", data, o)[0] for o in offsets]
        if key not in self._entries and self._counts[denial] >= cap:
            for old_key, old in self._entries.items():
                if old.denial == denial:
                    del self._entries[old_key]
                    self._counts[denial] -= 1
                    break
        if self._entries.get(key) is None:
            self._counts[denial] += 1
        else:
            self._counts[self._entries[key].denial] -= 1
            self._counts[denial] += 1
        self._entries[key] = CacheEntry(data, offsets, [min(t, ttl) for t in ttls], now, now + ttl, denial)

    def lookup(self, key: bytes, qid: int, question: bytes, now: float) -> bytes | None:
        return self.lookup_stale(key, qid, question, now)[0]

    def lookup_stale(self, key: bytes, qid: int, question: bytes, now: float) -> tuple[bytes | None, bool]:
        """(the cached reply or None, whether it wants a refresh upstream: it is stale, or
        popular and near its end, as `prefetch AMOUNT DURATION PERCENTAGE%` says)."""
        entry = self._entries.get(key)
        if entry is None:
            return None, False
        stale = now >= entry.expires
        refresh = stale
        amount = self.prefetch[0]
        if amount and not stale:
            entry.hits += 1
            ttl = entry.expires - entry.stored
            if entry.hits >= amount and now - entry.stored <= self.prefetch[1] + ttl \
                    and entry.expires - now <= ttl * self.prefetch[2] / 100:
                entry.hits, refresh = 0, True
        if stale and now >= entry.expires + self.stale:
            self._entries.pop(key, None)
            self._counts[entry.denial] -= 1
            return None, False
        buf = bytearray(entry.data)
        age = 0 if self.keepttl else int(now - entry.stored)
        for off, ttl in zip(entry.offsets, entry.ttls):
            struct.pack_into("!I", buf, off, 0 if stale else max(0, ttl - age))
        struct.pack_into("!H", buf, 0, qid)
        buf[12:12 + len(question)] = question
        return bytes(buf), refresh


def _zone_wire(zone: str) -> bytes:
    labels = [p for p in zone.lower().rstrip(".").split(".") if p]
    return b"".join(bytes([len(p)]) + p.encode() for p in labels) + b"\x00"


def _under(key: bytes, zone: bytes) -> bool:
    """Is the cache key's name (wire form, lower case) at or below `zone` (wire form)?"""
    name_end = key.index(b"\x00") + 1 if b"\x00" in key else len(key)
    name, i = key[:name_end], 0
    while i < len(name):
        if name[i:] == zone:
            return True
        if name[i] == 0:
            return False
        i += name[i] + 1
    return False


class Forwarder:
    """Sends queries upstream and calls back with the reply (or None and an rcode)."""

    def __init__(self, upstreams: list[tuple[str, int]], *, timeout: float = 5.0,
                 attempt_timeout: float = 2.0, max_concurrent: int = 1000,
                 cache: ForwardCache | None = None, policy: str = "round_robin",
                 force_tcp: bool = False, prefer_udp: bool = True) -> None:
        self.upstreams = list(upstreams)
        self.force_tcp = force_tcp      # every query upstream over TCP
        self.prefer_udp = prefer_udp    # False: a TCP client's query goes upstream over TCP
        self.policy = policy            # random | round_robin | sequential (the forward plugin's)
        self.disabled: set[int] = set()
        self.timeout = timeout
        self.attempt_timeout = attempt_timeout
        self.max_concurrent = max_concurrent
        self.cache = cache if cache is not None else ForwardCache()
        self.stats = ForwardStats()
        self.probes: dict[bytes, list] = {}       # probe key -> [upstream index, sightings]
        self._pending: dict[int, Pending] = {}
        self._lock = threading.Lock()
        self._next = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # -- lifecycle -------------------------------------------------------

    def start(self) -> None:
        family = socket.AF_INET6 if any(":" in ip for ip, _ in self.upstreams) else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        self._thread = threading.Thread(target=self._receive_loop, name="dns-forward", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        if self._sock:
            self._sock.close()

    def name(self, index: int) -> str:
        ip, port = self.upstreams[index]
        return f"{ip}:{port}" if ":" not in ip else f"[{ip}]:{port}"

    # -- asking ----------------------------------------------------------

    def submit(self, q: wire.Query, data: bytes, done, *, upstream: int | None = None) -> None:
        """Forward `data` (the client's query, whose parsed form is `q`); done(reply|None, rcode)."""
        ckey = q.key + (b"E" if q.edns_size is not None else b"-")
        now = time.monotonic()
        cached, stale = self.cache.lookup_stale(ckey, q.qid, q.question, now)
        if stale and cached is not None:
            self._refresh(q, data, ckey, now)
        if cached is not None and len(cached) <= max(q.udp_limit(), 512):
            kind = "denial" if cached[3] & 0xF == 3 else "success"
            self.stats.cache_hits[kind] = self.stats.cache_hits.get(kind, 0) + 1
            done(cached, 0)
            return
        self.stats.cache_misses += 1
        index = self._pick() if upstream is None else upstream
        if index is None:
            done(None, RCODE_SERVFAIL)
            return
        with self._lock:
            if len(self._pending) >= self.max_concurrent:
                self.stats.rejects += 1
                done(None, RCODE_REFUSED)
                return
            txid = self._new_id()
            sent = struct.pack("!H", txid) + data[2:]
            self._pending[txid] = Pending(q.qid, q.key, sent, ckey, done, index,
                                          now + self.timeout, now + self.attempt_timeout,
                                          pinned=upstream is not None)
        self._send(index, sent)

    def _refresh(self, q: wire.Query, data: bytes, ckey: bytes, now: float) -> None:
        """serve_stale / prefetch: ask upstream in the background; the reply refreshes the cache."""
        index = self._pick()
        with self._lock:
            if index is None or len(self._pending) >= self.max_concurrent:
                return
            txid = self._new_id()
            sent = struct.pack("!H", txid) + data[2:]
            self._pending[txid] = Pending(q.qid, q.key, sent, ckey, lambda reply, rcode: None, index,
                                          now + self.timeout, now + self.attempt_timeout)
        self._send(index, sent)

    def ask(self, q: wire.Query, data: bytes, timeout: float | None = None) -> tuple[bytes | None, int]:
        """Blocking submit, for TCP clients and CNAME chasing."""
        box: list = []
        event = threading.Event()

        def done(reply, rcode):
            box.append((reply, rcode))
            event.set()

        self.submit(q, data, done)
        event.wait(timeout if timeout is not None else self.timeout + 1)
        return box[0] if box else (None, RCODE_SERVFAIL)

    def ask_tcp_cached(self, q: wire.Query, data: bytes) -> tuple[bytes | None, int]:
        """A query over TCP (force_tcp, or a TCP client without prefer_udp), through the cache."""
        ckey = q.key + (b"E" if q.edns_size is not None else b"-")
        now = time.monotonic()
        cached, _ = self.cache.lookup_stale(ckey, q.qid, q.question, now)
        if cached is not None:
            return cached, 0
        self.stats.cache_misses += 1
        reply = self.ask_tcp(data)
        if reply is None:
            return None, RCODE_SERVFAIL
        self.cache.store(ckey, reply, time.monotonic())
        return reply, reply[3] & 0xF

    def ask_tcp(self, data: bytes, index: int | None = None) -> bytes | None:
        """One query over TCP to an upstream (when its UDP reply was truncated)."""
        index = self._pick() if index is None else index
        if index is None:
            return None
        ip, port = self.upstreams[index]
        try:
            with socket.create_connection((ip, port), timeout=self.attempt_timeout) as s:
                s.sendall(struct.pack("!H", len(data)) + data)
                head = _recv_exact(s, 2)
                return _recv_exact(s, struct.unpack("!H", head)[0])
        except OSError as exc:
            self._error(index, "tcp", exc)
            return None

    def _pick(self, after: int | None = None) -> int | None:
        """The upstream to ask; `after` is the one that just timed out (a retry)."""
        usable = [i for i in range(len(self.upstreams)) if i not in self.disabled]
        if not usable:
            return None
        if self.policy == "sequential":
            if after is None or after not in usable:
                return usable[0]
            return usable[(usable.index(after) + 1) % len(usable)]
        if self.policy == "random" and after is None:
            return random.choice(usable)
        self._next = (self._next + 1) % len(usable)
        return usable[self._next]

    def _new_id(self) -> int:
        for _ in range(64):
            txid = random.getrandbits(16)
            if txid not in self._pending:
                return txid
        raise RuntimeError("dns forward: no free transaction id (max_concurrent above 65000?)")

    def _send(self, index: int, data: bytes) -> None:
        to = self.name(index)
        self.stats.requests[to] = self.stats.requests.get(to, 0) + 1
        try:
            self._sock.sendto(data, self.upstreams[index])
        except OSError as exc:
            self._error(index, "network", exc)

    def _error(self, index: int, reason: str, exc: Exception | None = None) -> None:
        key = (self.name(index), reason)
        self.stats.errors[key] = self.stats.errors.get(key, 0) + 1
        if exc is not None:
            log.debug("dns forward: %s to %s failed: %s", reason, key[0], exc)

    # -- receiving -------------------------------------------------------

    def _receive_loop(self) -> None:
        last_sweep = time.monotonic()
        while not self._stop.is_set():
            ready, _, _ = select.select([self._sock], [], [], 0.05)
            if ready:
                for _ in range(256):
                    try:
                        data, addr = self._sock.recvfrom(65535, socket.MSG_DONTWAIT)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    self._on_reply(data, addr)
            now = time.monotonic()
            if now - last_sweep >= 0.05:
                self._sweep(now)
                last_sweep = now

    def _on_reply(self, data: bytes, addr) -> None:
        if len(data) < 12:
            return
        txid = struct.unpack_from("!H", data)[0]
        with self._lock:
            p = self._pending.get(txid)
            if p is None or (_plain_ip(addr[0]), addr[1]) != self.upstreams[p.upstream]:
                return
            qend = 12 + len(p.question)
            name_len = len(p.question) - 4
            got = data[12:qend]
            if got[:name_len].lower() + got[name_len:] != p.question:
                return
            del self._pending[txid]
        rcode = data[3] & 0xF
        to = self.name(p.upstream)
        self.stats.responses[(to, rcode)] = self.stats.responses.get((to, rcode), 0) + 1
        reply = struct.pack("!H", p.orig_id) + data[2:]
        if p.cache_key is not None:
            self.cache.store(p.cache_key, reply, time.monotonic())
        self._finish(p, reply, rcode)

    def _sweep(self, now: float) -> None:
        expired, retry = [], []
        with self._lock:
            for txid, p in list(self._pending.items()):
                if now >= p.deadline:
                    expired.append(self._pending.pop(txid))
                elif now >= p.attempt_deadline:
                    retry.append(p)
        for p in expired:
            self._error(p.upstream, "timeout")
            self._finish(p, None, RCODE_SERVFAIL)
        for p in retry:
            self._error(p.upstream, "timeout")
            nxt = p.upstream if p.pinned else self._pick(after=p.upstream)
            p.upstream = p.upstream if nxt is None else nxt
            p.attempt_deadline = now + self.attempt_timeout
            self._send(p.upstream, p.data)

    @staticmethod
    def _finish(p: Pending, reply: bytes | None, rcode: int) -> None:
        try:
            p.done(reply, rcode)
        except Exception:  # a client that went away must not stop the receiver
            log.exception("dns forward: delivering a reply failed")

    # -- loop detection --------------------------------------------------

    def start_loop_probes(self) -> None:
        """Send one random HINFO probe to each upstream (CoreDNS `loop`)."""
        for index in range(len(self.upstreams)):
            name = f"{os.urandom(6).hex()}.{os.urandom(6).hex()}.{PROBE_ZONE}"
            data = wire.HEADER.pack(random.getrandbits(16), wire.FLAG_RD, 1, 0, 0, 0)
            data += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
            data += struct.pack("!HH", 13, 1)  # HINFO IN
            q = wire.parse_query(data)
            self.probes[q.key] = [index, 0]
            self.submit(q, data, lambda reply, rcode: None, upstream=index)

    def seen_probe(self, key: bytes) -> int | None:
        """A probe of ours came back in; returns its upstream index, or None if not a probe."""
        entry = self.probes.get(key)
        if entry is None:
            return None
        entry[1] += 1
        if entry[1] >= LOOP_THRESHOLD and entry[0] not in self.disabled:
            self.disabled.add(entry[0])
            log.error("dns forward: loop detected: upstream %s sends our queries back to this server "
                      "(probe seen %d times); it is disabled. Fix: point upstreams / resolv.conf at a "
                      "resolver that is not this DNS server", self.name(entry[0]), entry[1])
        return entry[0]

    def looped(self, index: int) -> bool:
        return index in self.disabled


def _plain_ip(text: str) -> str:
    ip = ipaddress.ip_address(text.split("%")[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip)


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("upstream closed the TCP connection early")
        buf += chunk
    return buf
