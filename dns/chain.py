"""A parsed Corefile -> the handler the DNS server calls: one per server block, picked by zone.

The server calls `handle(data, proto, family, send, addr)`. With several
server blocks on a port the question's name picks the block with the longest
matching zone (as CoreDNS does; no match is REFUSED). Inside a block the
plugins run in plugin.cfg order:

    log -> rewrite -> autopath -> hosts -> kubernetes -> file -> forward (cache inside)

The kubernetes + forward + cache part is QueryHandler (prepared answers, the
forwarder and its cache), unchanged; a block that has only those, which is
kubeadm's Corefile, gets QueryHandler.handle itself as its handler, so the
default Corefile answers exactly as fast as before. The other plugins wrap
it: `send` and the returned reply pass back through them (rewrite puts the
client's question back, log prints the line).

`Built` holds what a Corefile made (the handlers and the forwarders it
started), so a reload can build the next one, swap, and stop the old one.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field, replace

from dnslib import AAAA, PTR, QTYPE, RCODE, RR, A, DNSLabel, DNSRecord

from dns import querylog, rewrite, wire
from dns.autopath import Autopath, cnamed, query_for
from dns.corefile.zones import longest_match
from dns.corefile.parser import CorefileError
from dns.errorlog import ErrorLog
from dns.forward import Forwarder, ForwardCache
from dns.handler import QueryHandler
from dns.hosts import Hosts
from dns.metrics import Metrics
from dns.names import labels_of
from dns.records import Config
from dns.zonefile import ZoneFile

log = logging.getLogger(__name__)
UNLIMITED = 1 << 30


def make_cache(opts) -> ForwardCache:
    if opts is None:
        return ForwardCache(max_entries=0)
    (scap, sttl, smin), (dcap, dttl, dmin) = opts.success, opts.denial
    return ForwardCache(max_entries=scap, max_ttl=sttl, min_ttl=smin, denial_entries=dcap,
                        denial_max_ttl=dttl, denial_min_ttl=dmin, stale=opts.serve_stale,
                        disable_success=opts.disable_success, disable_denial=opts.disable_denial,
                        prefetch=opts.prefetch, keepttl=opts.keepttl)


def make_forwarders(server, self_check) -> list[tuple[tuple, tuple, Forwarder]]:
    out = []
    for f in server.forward:
        ups = [u for u in f.to if not self_check(u)]
        fwd = Forwarder(ups, max_concurrent=f.max_concurrent or UNLIMITED, cache=make_cache(server.cache),
                        policy=f.policy, force_tcp=f.force_tcp, prefer_udp=f.prefer_udp)
        out.append((labels_of(f.from_zone), tuple(labels_of(z) for z in f.ignored), fwd))
    return out


class BlockHandler:
    """One server block: the wrapping plugins around its QueryHandler."""

    def __init__(self, server, core: QueryHandler, state) -> None:
        self.server = server
        self.core = core
        self.hosts = Hosts(server.hosts) if server.hosts is not None else None
        self.rules = server.rewrite
        self.logs = server.log
        self.autopath = Autopath(server.autopath, state, core.cfg) if server.autopath is not None else None

    @property
    def plain(self) -> bool:
        return not (self.hosts or self.rules or self.logs or self.autopath)

    def handle(self, data: bytes, proto: str, family: int, send, addr=None) -> bytes | None:
        if self.plain:
            return self.core.handle(data, proto, family, send, addr)
        started = time.perf_counter()
        try:
            q = wire.parse_query(data) or wire.parse_query_slow(data)
        except (wire.Drop, wire.Reject):
            return self.core.handle(data, proto, family, send, addr)
        post = self._post(q, data, proto, addr, started)
        name = ".".join(q.labels) + "."
        hit = []
        if self.rules:
            new, hit = rewrite.apply(self.rules, name)
            if hit:
                data = _with_name(data, q, new)
                name = new
                q = wire.parse_query(data) or wire.parse_query_slow(data)
        original = post.original
        finish = (lambda r: post(rewrite.revert(r, original, hit))) if hit else post
        if self.autopath is not None:
            answer = self.autopath.resolve(q, name, addr, self._lookup)
            if answer is not None:
                return finish(answer)
            planned = self.autopath.plan(q, name, addr)
            if planned is not None:          # last: the bare name, through the rest of the chain
                asked = q
                bare = query_for(q, planned[0] + ".")
                sub = wire.parse_query(bare)

                def bare_done(reply, sub=sub):
                    if reply is not None and reply[3] & 0xF != 3:
                        return finish(cnamed(reply, asked))
                    return None
                reply = self._bare(bare, sub, proto, family, send, bare_done, data, finish, addr)
                return reply
        if self.hosts is not None:
            found = self.hosts.lookup(name, q.qtype)
            if found is not None:
                return finish(hosts_reply(data, found, self.hosts.opts.ttl))
        reply = self.core.handle(data, proto, family, lambda r: send(finish(r)), addr)
        return None if reply is None else finish(reply)

    def _bare(self, bare, sub, proto, family, send, bare_done, data, finish, addr):
        """Autopath's last try, the bare name (hosts, cluster, upstream); NXDOMAIN: the query as asked."""
        name = ".".join(sub.labels) + "."
        if self.hosts is not None:
            found = self.hosts.lookup(name, sub.qtype)
            if found is not None:
                out = bare_done(hosts_reply(bare, found, self.hosts.opts.ttl))
                if out is not None:
                    return out

        def as_asked():
            return self.core.handle(data, proto, family, lambda r: send(finish(r)), addr)

        def later(reply):
            out = bare_done(reply)
            if out is not None:
                send(out)
                return
            r = as_asked()
            if r is not None:
                send(finish(r))

        reply = self.core.handle(bare, proto, family, later, addr)
        if reply is None:
            return None
        out = bare_done(reply)
        if out is not None:
            return out
        r = as_asked()
        return None if r is None else finish(r)

    def _lookup(self, data: bytes) -> bytes | None:
        """Autopath's probe: answer `data` from hosts, the cluster and, for names the kubernetes
        plugin falls through on, `file` (no upstream)."""
        q = wire.parse_query(data) or wire.parse_query_slow(data)
        name = ".".join(q.labels) + "."
        if self.hosts is not None:
            found = self.hosts.lookup(name, q.qtype)
            if found is not None:
                return hosts_reply(data, found, self.hosts.opts.ttl)
        if not self.core.kubernetes:
            return None
        p = self.core.prepared.get(q)
        if p.forward:
            before = self.core.before_forward
            return None if before is None else before(q, data)
        if p.answer.chase is not None:
            return None
        return self.core._render(q, p, "tcp")

    def _post(self, q, data, proto, addr, started):
        logs = [r for r in self.logs if longest_match([r.zone], ".".join(q.labels) + ".")]

        def post(reply: bytes) -> bytes:
            if logs and reply is not None:
                cls = querylog.reply_class(reply)
                for rule in logs:
                    if "all" in rule.classes or cls in rule.classes:
                        print(querylog.line(rule.format, q, addr, proto, len(data), reply,
                                            time.perf_counter() - started), file=sys.stdout, flush=True)
            return reply
        post.original = q.question
        return post


def _with_name(data: bytes, q, name: str) -> bytes:
    """The query with its question's name replaced (header and the rest kept)."""
    old_len = len(q.question) - 4
    return data[:12] + wire.encode_name(name) + data[12 + old_len:]


def hosts_reply(data: bytes, found: tuple[str, list], ttl: int) -> bytes:
    kind, records = found
    query = DNSRecord.parse(data)
    reply = query.reply(ra=0, aa=1)
    reply.header.ad = 0
    if kind == "nxdomain":
        reply.header.rcode = RCODE.NXDOMAIN
    for rtype, value in records:
        rdata = A(value) if rtype == QTYPE.A else AAAA(value) if rtype == QTYPE.AAAA else PTR(DNSLabel(value))
        reply.add_answer(RR(query.q.qname, rtype, ttl=ttl, rdata=rdata))
    return bytes(reply.pack())


def file_lookup(options):
    """The file plugin's zones as one lookup: the longest zone holding the name answers."""
    zones = {}
    for opts in options:
        for zone in opts.zones:
            try:
                zones[zone] = ZoneFile(opts.path, zone, opts.reload)
            except OSError as exc:
                raise CorefileError(f"plugin/file: {exc}") from None
            except ValueError as exc:
                raise CorefileError(f"plugin/file: {exc}") from None

    def lookup(q, data: bytes) -> bytes | None:
        zone = longest_match(zones, ".".join(q.labels) + ".")
        return None if zone is None else zones[zone].answer(data)
    return lookup


class ServerHandler:
    """All server blocks on one port; picks the block by the longest zone match."""

    def __init__(self, blocks: list[tuple[tuple[str, ...], BlockHandler]]) -> None:
        self.blocks = blocks
        self.by_zone = {z: b for zones, b in blocks for z in zones}
        if len(blocks) == 1 and blocks[0][0] == (".",):
            self.handle = blocks[0][1].handle if not blocks[0][1].plain else blocks[0][1].core.handle

    def handle(self, data: bytes, proto: str, family: int, send, addr=None) -> bytes | None:
        try:
            q = wire.parse_query(data) or wire.parse_query_slow(data)
        except (wire.Drop, wire.Reject):
            return self.blocks[0][1].handle(data, proto, family, send, addr)
        zone = longest_match(self.by_zone, ".".join(q.labels) + ".")
        if zone is None:
            return wire.simple_reply(q, RCODE.REFUSED)
        return self.by_zone[zone].handle(data, proto, family, send, addr)


@dataclass
class Built:
    """What one Corefile made: a handler per port and the forwarders to start and stop."""

    handlers: dict[int, ServerHandler]
    forwarders: list[Forwarder] = field(default_factory=list)
    loop_probes: list[Forwarder] = field(default_factory=list)
    cores: list[QueryHandler] = field(default_factory=list)

    def start(self) -> None:
        for f in self.forwarders:
            f.start()
        for f in self.loop_probes:
            if f.upstreams:
                f.start_loop_probes()

    def stop(self, grace: float = 0.0) -> None:
        """Stops the forwarders, after `grace` seconds so answers in flight still arrive."""
        def stop_all():
            for f in self.forwarders:
                f.stop()
            self._forget_prepared()
        if grace > 0:
            threading.Timer(grace, stop_all).start()
        else:
            stop_all()

    def _forget_prepared(self) -> None:
        """Unhooks the old prepared-answer tables from the state, so reloads do not pile them up."""
        for core in self.cores:
            core.prepared.close()


def build(corefile, state, *, local_ips: tuple[str, ...], metrics: dict[int, Metrics],
          self_check=lambda upstream: False) -> Built:
    """Handlers for every server of `corefile` (nothing starts until Built.start())."""
    built = Built({})
    per_port: dict[int, list] = {}
    for server in corefile.servers:
        kcfg = replace(server.kubernetes or Config(), local_ips=tuple(local_ips))
        routes = make_forwarders(server, self_check)
        fwds = [f for _, _, f in routes]
        built.forwarders += fwds
        if server.loop:
            built.loop_probes += fwds
        simple = len(routes) == 1 and routes[0][0] == () and not routes[0][1]
        core = QueryHandler(state, kcfg, fwds[0] if fwds else None,
                            metrics.setdefault(server.port, Metrics(server=f"dns://:{server.port}")),
                            kubernetes=server.kubernetes is not None, routes=() if simple else tuple(routes))
        built.cores.append(core)
        core.block_zone = server.zones[0]
        if server.errors is not None:
            core.errors = ErrorLog(server.errors)
        if server.file:
            core.before_forward = file_lookup(server.file)
        per_port.setdefault(server.port, []).append((server.zones, BlockHandler(server, core, state)))
    built.handlers = {port: ServerHandler(blocks) for port, blocks in per_port.items()}
    return built
