"""Serving a Corefile and reloading it on change (CoreDNS's `reload`, faster).

`CorefileServer` reads the Corefile, builds its handlers (dns/chain.py) and
serves them on DNSServer sockets (one per port). With the `reload` plugin in
the Corefile the file is polled every POLL (0.25) seconds (never less often than
reload's own interval): when its content changed, the new Corefile is
parsed and built first, then swapped in — the sockets stay and no query is
dropped; the old forwarders stop after the forward timeout. A bad Corefile
is logged as CoreDNS logs it (`[ERROR] Restart failed: ...`) and the last
good one keeps serving. The first Corefile must be good: `load_first`
raises, and the process exits as CoreDNS does.

The HTTP endpoints (health, ready, prometheus) and their ports are taken
from the first Corefile.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

from dns import chain
from dns.corefile import CorefileError, load
from dns.metrics import Metrics
from dns.server import DNSServer

log = logging.getLogger(__name__)
POLL = 0.25


def say(line: str) -> None:
    """CoreDNS's own log lines ([INFO] / [ERROR]) go to stdout, unadorned."""
    print(line, file=sys.stdout, flush=True)


def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


class CorefileServer:
    def __init__(self, state, path: str, *, listen: str = "0.0.0.0", port_override: int | None = None,
                 env: dict | None = None, on_event=None) -> None:
        self.state = state
        self.path = path
        self.listen = listen
        self.port_override = port_override
        self.env = env
        self.on_event = on_event or (lambda reason, message, warning: None)
        self.servers: dict[int, DNSServer] = {}
        self.metrics: dict[int, Metrics] = {}
        self.built: chain.Built | None = None
        self.corefile = None
        self.failed = 0                   # coredns_reload_failed_total
        self._stop = threading.Event()

    def _port(self, port: int) -> int:
        return self.port_override if self.port_override is not None and port == 53 else port

    def load_first(self) -> None:
        self.corefile = load(read(self.path), self.path, self.env)

    @property
    def lameduck(self) -> float:
        h = self.corefile.first("health")
        return h.lameduck if h else 0.0

    def start(self) -> None:
        cf = self.corefile
        health, ready, prom = cf.first("health"), cf.first("ready"), cf.first("prometheus")
        for i, server in enumerate(sorted({s.port for s in cf.servers})):
            first = i == 0
            srv = DNSServer(self.state, listen=self.listen, port=self._port(server), upstreams=[],
                            health_port=health.port if first and health else None,
                            ready_port=ready.port if first and ready else None,
                            metrics_port=prom.port if first and prom else None)
            self.servers[server] = srv
        self._swap(cf)
        for srv in self.servers.values():
            srv.start()
            if self.built.forwarders:
                own, srv.forwarder = srv.forwarder, self.built.forwarders[0]    # what /metrics reports
                own.stop()
        for line in cf.warnings:
            say(line)
        for z in cf.servers:
            say(f"{','.join(z.zones)}:{z.port}" if len(z.zones) == 1 else ",".join(f"{x}:{z.port}" for x in z.zones))
        if cf.reload is not None:
            say(f"[INFO] plugin/reload: Running configuration SHA512 = {cf.sha512}")
            threading.Thread(target=self._watch, name="corefile-reload", daemon=True).start()
        say("CoreDNS-1.11.3")
        say(f"linux/amd64, python{sys.version_info.major}.{sys.version_info.minor}, nsplane")

    def _swap(self, cf) -> None:
        any_server = next(iter(self.servers.values()))
        built = chain.build(cf, self.state, local_ips=any_server.cfg.local_ips, metrics=self.metrics,
                            self_check=any_server._is_self)
        missing = set(built.handlers) - set(self.servers)
        if missing:
            built.stop()
            raise CorefileError(f"serving new ports on reload is not supported by nsplane: "
                                f"{sorted(missing)} (restart the coredns pods)")
        built.start()
        old, self.built, self.corefile = self.built, built, cf
        for port, srv in self.servers.items():
            handler = built.handlers.get(port)
            if handler is None:
                handler = chain.ServerHandler([])
            srv.handler = handler
            srv.metrics = _Rendered(self, port)
            if built.forwarders and old is not None:
                srv.forwarder = built.forwarders[0]
        if old is not None:
            old.stop(grace=6.0)

    def _watch(self) -> None:
        last = self.corefile.sha512
        while not self._stop.is_set():
            interval = self.corefile.reload.interval if self.corefile.reload else None
            if interval is None:
                return
            self._stop.wait(min(POLL, interval))
            try:
                text = read(self.path)
            except OSError as exc:
                log.debug("corefile: cannot read %s: %s", self.path, exc)
                continue
            from hashlib import sha512
            digest = sha512(text.encode()).hexdigest()
            if digest == last:
                continue
            last = digest
            self.reload(text)

    def reload(self, text: str) -> bool:
        started = time.monotonic()
        say("[INFO] Reloading")
        try:
            cf = load(text, self.path, self.env)
            self._swap(cf)
        except (CorefileError, OSError, ValueError) as exc:
            self.failed += 1
            say(f"[ERROR] Restart failed: {exc}")
            say(f"[ERROR] plugin/reload: Corefile changed but reload failed: {exc}")
            self.on_event("ReloadFailed", f"Corefile changed but reload failed: {exc}", True)
            return False
        for line in cf.warnings:
            say(line)
        say(f"[INFO] plugin/reload: Running configuration SHA512 = {cf.sha512}")
        say("[INFO] Reloading complete")
        log.info("corefile: reloaded in %.1f ms", (time.monotonic() - started) * 1000)
        return True

    def stop(self) -> None:
        self._stop.set()
        for srv in self.servers.values():
            srv.stop()
        if self.built is not None:
            self.built.stop()


class _Rendered:
    """What a DNSServer's /metrics renders: its port's Metrics, plus the reload plugin's
    coredns_reload_failed_total and coredns_reload_version_info."""

    def __init__(self, owner: CorefileServer, port: int) -> None:
        self.owner, self.port = owner, port

    def render(self, forwarder=None) -> str:
        metrics = self.owner.metrics.get(self.port)
        text = metrics.render(forwarder) if metrics is not None else ""
        lines = ["# HELP coredns_reload_failed_total Counter of the number of failed reload attempts.",
                 "# TYPE coredns_reload_failed_total counter", f"coredns_reload_failed_total {self.owner.failed}",
                 "# HELP coredns_reload_version_info A metric with a constant '1' value labeled by hash, "
                 "and value which type of hash generated.", "# TYPE coredns_reload_version_info gauge",
                 f'coredns_reload_version_info{{hash="sha512",value="{self.owner.corefile.sha512}"}} 1']
        return text.rstrip("\n") + "\n" + "\n".join(lines) + "\n"
