"""The DNS server process: UDP and TCP sockets, worker threads, and `run()` for the agent.

UDP: `udp_workers` threads block in recvfrom on one socket and answer inline
(a prepared answer is a dictionary lookup, so there is nothing to hand off);
forwarded queries are answered later from the forwarder's thread. TCP:
length-prefixed messages, one thread per connection, at most
`MAX_TCP_CONNECTIONS` at a time, closed after `TCP_IDLE` seconds idle.
The kernel's socket buffer absorbs bursts; a flood costs the flooder its own
drops, never a crash (every message goes through QueryHandler.handle, which
never raises).

`run()` is the one entry point the agent calls (it owns the watch that feeds
the ClusterState); `DNSServer` is the same thing as an object, for tests.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct
import threading
from dataclasses import replace

from dns.cluster import ClusterState
from dns.forward import Forwarder, ForwardCache, parse_upstream, upstreams_from_resolv_conf
from dns.handler import QueryHandler
from dns.health import HttpEndpoints
from dns.metrics import Metrics
from dns.names import labels_of
from dns.records import Config

log = logging.getLogger(__name__)

MAX_TCP_CONNECTIONS = 256
TCP_IDLE = 10.0
TCP_MAX_QUERIES = 10_000


def local_addresses() -> tuple[str, ...]:
    """This namespace's non-loopback addresses (what CoreDNS calls localIPs)."""
    from pyroute2 import IPRoute

    out = []
    with IPRoute() as ipr:
        for msg in ipr.get_addr():
            ip = ipaddress.ip_address(msg.get_attr("IFA_ADDRESS"))
            if not ip.is_loopback and not ip.is_link_local:
                out.append(str(ip))
    return tuple(out)


class DNSServer:
    """UDP+TCP DNS on one address, with the forwarder and the HTTP endpoints."""

    def __init__(self, state: ClusterState, *, listen: str = "0.0.0.0", port: int = 53,
                 health_port: int | None = 8080, ready_port: int | None = 8181,
                 metrics_port: int | None = 9153, upstreams: list[str] | None = None,
                 resolv_conf: str = "/etc/resolv.conf", domain: str = "cluster.local", ttl: int = 30,
                 local_ips: list[str] | None = None, udp_workers: int = 2,
                 forward_timeout: float = 5.0, max_concurrent: int = 1000, cache_ttl: int = 30,
                 options: dict | None = None) -> None:
        self.state = state
        self.listen = listen
        self.port = port
        self.family = socket.AF_INET6 if ":" in listen else socket.AF_INET
        if local_ips is None:
            unspecified = ipaddress.ip_address(listen).is_unspecified
            local_ips = list(local_addresses()) if unspecified else [listen]
        self.cfg = Config(domain=labels_of(domain), ttl=ttl, local_ips=tuple(local_ips))
        if options:  # the kubernetes block's other options (dns.records.Config fields)
            self.cfg = replace(self.cfg, **options)
        ups = [parse_upstream(u) for u in upstreams] if upstreams is not None \
            else upstreams_from_resolv_conf(resolv_conf)
        ups = [u for u in ups if not self._is_self(u)]
        self.forwarder = Forwarder(ups, timeout=forward_timeout, max_concurrent=max_concurrent,
                                   cache=ForwardCache(max_ttl=cache_ttl))
        self.metrics = Metrics(server=f"dns://:{port}")
        self.handler = QueryHandler(state, self.cfg, self.forwarder, self.metrics)
        self.http = HttpEndpoints(listen, health_port=health_port, ready_port=ready_port,
                                  metrics_port=metrics_port, is_ready=lambda: state.synced,
                                  render_metrics=lambda: self.metrics.render(self.forwarder))
        self.udp_workers = udp_workers
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._tcp_slots = threading.BoundedSemaphore(MAX_TCP_CONNECTIONS)
        self.udp: socket.socket | None = None
        self.tcp: socket.socket | None = None

    def _is_self(self, upstream: tuple[str, int]) -> bool:
        ip, port = upstream
        if port == self.port and (ip == self.listen or ipaddress.ip_address(self.listen).is_unspecified
                                  and ipaddress.ip_address(ip).is_loopback):
            log.warning("dns forward: skipping upstream %s:%d: it is this server (a forwarding loop)", ip, port)
            return True
        return False

    # -- lifecycle -------------------------------------------------------

    def start(self) -> None:
        self.udp = socket.socket(self.family, socket.SOCK_DGRAM)
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.tcp = socket.socket(self.family, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.udp.bind((self.listen, self.port))
            self.port = self.udp.getsockname()[1]
            self.tcp.bind((self.listen, self.port))
            self.tcp.listen(128)
        except OSError as exc:
            self.udp.close()
            self.tcp.close()
            raise OSError(f"dns: cannot listen on {self.listen}:{self.port} UDP+TCP ({exc}); "
                          f"is another DNS server running there?") from exc
        self.http.start()
        self.forwarder.start()
        for i in range(self.udp_workers):
            self._spawn(self._udp_loop, f"dns-udp-{i}")
        self._spawn(self._tcp_accept_loop, "dns-tcp")
        if self.forwarder.upstreams:
            self.forwarder.start_loop_probes()
        log.info("dns: serving %s on %s:%d (UDP+TCP), upstreams %s, synced=%s", ".".join(self.cfg.domain),
                 self.listen, self.port,
                 [self.forwarder.name(i) for i in range(len(self.forwarder.upstreams))] or "none",
                 self.state.synced)

    def stop(self) -> None:
        self._stop.set()
        for sock in (self.udp, self.tcp):
            if sock is None:
                continue
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # ENOTCONN on UDP, yet it wakes the blocked readers
        for t in self._threads:
            t.join(timeout=2)
        for sock in (self.udp, self.tcp):
            if sock is not None:
                sock.close()
        self.forwarder.stop()
        self.http.stop()
        log.info("dns: stopped %s:%d", self.listen, self.port)

    def _spawn(self, target, name: str, *args) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    # -- UDP -------------------------------------------------------------

    def _udp_loop(self) -> None:
        sock, stop = self.udp, self._stop
        family = 2 if self.family == socket.AF_INET6 else 1
        sendto = sock.sendto

        def sender(addr):
            return lambda reply: self._send_udp(reply, addr)

        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(65535)
            except OSError:
                if stop.is_set():
                    return
                continue
            if not data and stop.is_set():
                return
            # self.handler is read per query: a Corefile reload swaps it while the socket stays
            reply = self.handler.handle(data, "udp", family, sender(addr), addr)
            if reply is not None:
                try:
                    sendto(reply, addr)
                except OSError as exc:
                    log.debug("dns: reply to %s failed: %s", addr, exc)

    def _send_udp(self, reply: bytes, addr) -> None:
        try:
            self.udp.sendto(reply, addr)
        except OSError as exc:
            log.debug("dns: reply to %s failed: %s", addr, exc)

    # -- TCP -------------------------------------------------------------

    def _tcp_accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, addr = self.tcp.accept()
            except OSError:
                if self._stop.is_set():
                    return
                continue
            if not self._tcp_slots.acquire(blocking=False):
                log.warning("dns: %d TCP connections open; closing the one from %s", MAX_TCP_CONNECTIONS, addr)
                conn.close()
                continue
            threading.Thread(target=self._tcp_conn, args=(conn, addr), name="dns-tcp-conn", daemon=True).start()

    def _tcp_conn(self, conn: socket.socket, addr) -> None:
        family = 2 if self.family == socket.AF_INET6 else 1
        try:
            conn.settimeout(TCP_IDLE)
            for _ in range(TCP_MAX_QUERIES):
                head = _recv_exact(conn, 2)
                if head is None:
                    return
                data = _recv_exact(conn, struct.unpack("!H", head)[0])
                if data is None:
                    return
                reply = self.handler.handle(data, "tcp", family, lambda r: None, addr)
                if reply is None:
                    continue
                conn.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            return
        finally:
            conn.close()
            self._tcp_slots.release()


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def run(state: ClusterState, *, listen: str = "0.0.0.0", port: int = 53, health_port: int | None = 8080,
        ready_port: int | None = 8181, metrics_port: int | None = 9153, upstreams: list[str] | None = None,
        resolv_conf: str = "/etc/resolv.conf", domain: str = "cluster.local", ttl: int = 30,
        local_ips: list[str] | None = None, stop: threading.Event | None = None,
        options: dict | None = None) -> None:
    """Serve DNS for `state` until `stop` is set (forever when it is None).

    The caller owns the list+watch: it calls state.replace()/apply() and then
    state.mark_synced(); until then cluster names get SERVFAIL and /ready 503.
    """
    server = DNSServer(state, listen=listen, port=port, health_port=health_port, ready_port=ready_port,
                       metrics_port=metrics_port, upstreams=upstreams, resolv_conf=resolv_conf,
                       domain=domain, ttl=ttl, local_ips=local_ips, options=options)
    server.start()
    try:
        (stop or threading.Event()).wait()
    finally:
        server.stop()
