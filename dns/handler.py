"""One DNS message in, one answer out: the server-level checks, then cluster or upstream.

The order follows CoreDNS's core/dnsserver/server.go and the kubernetes
plugin's handler.go:

1. header acceptance (miekg/dns): drop responses and short packets; NOTIMP for
   opcodes other than QUERY; FORMERR for anything that is not one question or
   does not parse;
2. a class other than IN: REFUSED; an EDNS version other than 0: BADVERS;
3. the prepared answer for the question (records.resolve via prepared.py):
   sent as is (UDP answers over the client's size are cut with TC set), or
   forwarded upstream, or completed by chasing an out-of-cluster CNAME.

`handle()` returns the reply bytes, or None when there is nothing to send now
(dropped, or forwarded: `send` is then called from the forwarder's thread).
It never raises: an unexpected error is logged, counted as a panic and
answered SERVFAIL, as CoreDNS's recover() does.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from dataclasses import replace

from dnslib import RCODE, DNSQuestion, DNSRecord

from dns import wire
from dns.cluster import ClusterState
from dns.forward import Forwarder
from dns.metrics import Metrics
from dns.prepared import Prepared, PreparedAnswers, message, split
from dns.records import Config, label

log = logging.getLogger(__name__)

MAX_TCP = 65535


class QueryHandler:
    def __init__(self, state: ClusterState, cfg: Config, forwarder: Forwarder | None = None,
                 metrics: Metrics | None = None, *, kubernetes: bool = True, routes: tuple = ()) -> None:
        self.state = state
        self.cfg = cfg
        self.forwarder = forwarder
        self.kubernetes = kubernetes     # False: a server block without the kubernetes plugin
        self.errors = None               # the errors plugin: errors(q, rcode, forwarder) logs a failure
        self.before_forward = None       # plugins between kubernetes and forward (file): (q, data) -> reply
        self.block_zone = "."            # the server block's zone, the metrics' zone label
        # several `forward FROM TO...` of one server block: (from zone labels, except zones, Forwarder)
        self.routes = routes
        self.metrics = metrics or Metrics()
        self.prepared = PreparedAnswers(state, cfg)
        self.zone_name = ".".join(cfg.domain) + "."

    def handle(self, data: bytes, proto: str, family: int, send, addr=None) -> bytes | None:
        started = time.perf_counter()
        if type(data) is not bytes:
            data = bytes(data)
        try:
            return self._handle(data, proto, family, send, started)
        except Exception:
            log.exception("dns: unexpected error answering a %d-byte %s query", len(data), proto)
            self.metrics.panic()
            try:
                return wire.header_only(data, RCODE.SERVFAIL)
            except Exception:
                return None

    def _handle(self, data, proto, family, send, started) -> bytes | None:
        try:
            q = wire.parse_query(data) or wire.parse_query_slow(data)
        except wire.Drop:
            return None
        except wire.Reject as rej:
            return wire.header_only(data, rej.rcode)
        if q.qclass != 1:
            return self._done(q, wire.simple_reply(q, RCODE.REFUSED), proto, family, started, "")
        if q.edns_size is not None and q.edns_version != 0:
            return self._done(q, wire.simple_reply(q, wire.RCODE_BADVERS), proto, family, started, "")
        fwd = self.forwarder
        if fwd is not None and fwd.probes and q.key in fwd.probes:
            index = fwd.seen_probe(q.key)
            if fwd.looped(index):
                return self._done(q, wire.simple_reply(q, RCODE.SERVFAIL), proto, family, started, "loop")
            return self._forward(q, data, proto, family, send, started, upstream=index)
        if not self.kubernetes:
            return self._forward(q, data, proto, family, send, started)
        p = self.prepared.get(q)
        if p.forward:
            return self._forward(q, data, proto, family, send, started)
        if p.answer.chase is not None:
            return self._chase(q, p, proto, family, send, started)
        return self._done(q, self._render(q, p, proto), proto, family, started, "kubernetes")

    def _render(self, q: wire.Query, p: Prepared, proto: str) -> bytes:
        counts, body = p.body()
        reply = wire.response(q, p.flags, counts, body)
        if proto == "udp":
            limit = q.udp_limit()
            if len(reply) > limit:
                budget = limit - (wire.OPT_SIZE if q.edns_size is not None else 0)
                counts, body = p.truncated_body(budget)
                reply = wire.response(q, p.flags | wire.FLAG_TC, counts, body)
        return reply

    def _done(self, q, reply, proto, family, started, plugin) -> bytes:
        zone = self.zone_name if plugin == "kubernetes" else self.block_zone
        self.metrics.observe(zone, proto, family, q.qtype, reply[3] & 0xF, plugin,
                             time.perf_counter() - started)
        return reply

    # -- upstream ------------------------------------------------------------

    def _route(self, q: wire.Query) -> Forwarder | None:
        """The `forward` whose FROM zone holds the name and whose `except` does not."""
        name = q.labels
        for zone, ignored, fwd in self.routes:
            if name[len(name) - len(zone):] == zone if zone else True:
                if not any(name[len(name) - len(z):] == z for z in ignored if len(z) <= len(name)):
                    return fwd
        return None

    def _forward(self, q, data, proto, family, send, started, upstream=None) -> bytes | None:
        forwarder = self.forwarder
        if upstream is None and (self.routes or self.before_forward is not None):
            if self.before_forward is not None:
                reply = self.before_forward(q, data)
                if reply is not None:
                    return self._done(q, reply, proto, family, started, "file")
            if self.routes:
                forwarder = self._route(q)
        if forwarder is None:
            return self._done(q, wire.simple_reply(q, RCODE.SERVFAIL), proto, family, started, "forward")
        if forwarder.force_tcp or (proto == "tcp" and not forwarder.prefer_udp):
            return self._forward_tcp(forwarder, q, data, proto, family, send, started)
        if proto == "tcp":
            reply, rcode = forwarder.ask(q, data)
            if reply is None and self.errors is not None:
                self.errors(q, rcode, forwarder)
            if reply is not None and reply[2] & 0x02:  # TC from upstream: ask it over TCP
                full = forwarder.ask_tcp(struct.pack("!H", q.qid) + data[2:])
                reply = full or reply
            reply = reply or wire.simple_reply(q, rcode)
            return self._done(q, reply, proto, family, started, "forward")

        def done(reply: bytes | None, rcode: int) -> None:
            if reply is None and self.errors is not None:
                self.errors(q, rcode, forwarder)
            reply = reply or wire.simple_reply(q, rcode)
            send(self._done(q, reply, proto, family, started, "forward"))

        forwarder.submit(q, data, done, upstream=upstream)
        return None

    def _forward_tcp(self, forwarder, q, data, proto, family, send, started) -> bytes | None:
        """The forward plugin's force_tcp (and TCP clients without prefer_udp): upstream over TCP."""
        def ask() -> bytes:
            reply, rcode = forwarder.ask_tcp_cached(q, data)
            if reply is None and self.errors is not None:
                self.errors(q, rcode, forwarder)
            return self._done(q, reply or wire.simple_reply(q, rcode), proto, family, started, "forward")
        if proto == "tcp":
            return ask()
        threading.Thread(target=lambda: send(ask()), name="dns-forward-tcp", daemon=True).start()
        return None

    def _chase(self, q: wire.Query, p: Prepared, proto, family, send, started) -> bytes | None:
        """CNAME to a name outside the cluster: the CNAME first, then what upstream says for
        the target (CoreDNS's Upstream.Lookup). Without an answer, the CNAME alone. A
        truncated upstream answer keeps its TC bit (plugin.A's `truncated`); over TCP the
        target is asked again over TCP, as CoreDNS's forward does for a TCP client."""
        if self.forwarder is None:
            return self._done(q, self._render(q, p, proto), proto, family, started, "kubernetes")
        target, qtype = p.answer.chase
        ask = DNSRecord(q=DNSQuestion(label(target), qtype))
        ask.header.rd = 1
        data = bytes(ask.pack())
        sub = wire.parse_query(data)

        def finish(reply: bytes | None, _rcode: int) -> bytes:
            extra, tc = [], reply is not None and bool(reply[2] & 0x02)
            if reply is not None:
                try:
                    extra = DNSRecord.parse(reply).rr
                except Exception:
                    extra = []
            records = tuple(p.answer.answer) + tuple(extra)
            counts, body = split(message(p.labels, p.qtype, p.answer, records).pack(), p.labels)
            chased = Prepared(replace(p.answer, answer=records), p.labels, p.qtype,
                              flags=p.flags | (wire.FLAG_TC if tc else 0), bodies=((counts, body),))
            return self._done(q, self._render(q, chased, proto), proto, family, started, "kubernetes")

        if proto == "tcp":
            reply, rcode = self.forwarder.ask(sub, data)
            if reply is not None and reply[2] & 0x02:
                reply = self.forwarder.ask_tcp(data) or reply
            return finish(reply, rcode)
        self.forwarder.submit(sub, data, lambda reply, rcode: send(finish(reply, rcode)))
        return None
