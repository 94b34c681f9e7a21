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
from dns.forwardcache import ForwardCache

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


@dataclass
class ForwardStats:
    requests: dict = field(default_factory=dict)       # to -> count
    responses: dict = field(default_factory=dict)      # (to, rcode) -> count
    errors: dict = field(default_factory=dict)         # (to, reason) -> count
    rejects: int = 0
    cache_hits: dict = field(default_factory=dict)     # success|denial -> count
    cache_misses: int = 0


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
