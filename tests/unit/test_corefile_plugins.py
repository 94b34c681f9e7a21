"""The Corefile's plugins answering real DNS messages, without sockets: a Corefile is loaded,
built into handlers (dns/chain.py) and asked with dnslib-packed queries."""
import contextlib
import queue
import socket
import struct

from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from dns import chain
from dns.cluster import ClusterState
from dns.corefile import load
from dns.errorlog import ErrorLog
from dns.corefile.plugins_more import ErrorsOptions
from dns.forward import Forwarder, ForwardCache
from dns.querylog import line
from dns import wire
from tests.unit.loopback import free_port


def state():
    s = ClusterState()
    s.replace("Namespace", [{"metadata": {"name": "default"}}])
    s.replace("Service", [{"metadata": {"name": "web", "namespace": "default"},
                           "spec": {"clusterIP": "10.96.5.5", "type": "ClusterIP", "ports": [{"port": 80}]}}])
    s.replace("Pod", [{"metadata": {"name": "tmp", "namespace": "default"},
                       "status": {"podIP": "10.244.1.9", "podIPs": [{"ip": "10.244.1.9"}]}}])
    s.mark_synced()
    return s


COREFILE = """.:53 {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods verified
    }
    autopath @kubernetes
    hosts {
       10.1.2.3 db.legacy.internal
       fallthrough
    }
    rewrite name suffix .svc.clusterset.local .svc.cluster.local answer auto
}
example.test:53 {
    hosts {
       192.0.2.1 a.example.test
    }
}
"""


def ask(handler, name, qtype="A", addr=("10.244.1.9", 40000)):
    q = DNSRecord.question(name, qtype)
    sent = []
    reply = handler.handle(bytes(q.pack()), "udp", 1, sent.append, addr)
    return DNSRecord.parse(reply if reply is not None else sent[0])


def build(text=COREFILE):
    return chain.build(load(text, env={}), state(), local_ips=("10.244.0.2",), metrics={}).handlers[53]


def test_hosts_rewrite_and_blocks_by_longest_zone():
    h = build()
    r = ask(h, "db.legacy.internal")
    assert [str(rr.rdata) for rr in r.rr] == ["10.1.2.3"] and r.header.aa == 1
    r = ask(h, "web.default.svc.clusterset.local")
    assert str(r.q.qname) == "web.default.svc.clusterset.local." and str(r.rr[0].rname) == str(r.q.qname)
    assert str(r.rr[0].rdata) == "10.96.5.5"
    assert [str(rr.rdata) for rr in ask(h, "a.example.test").rr] == ["192.0.2.1"]      # the example.test block
    assert ask(h, "b.example.test").header.rcode == RCODE.NXDOMAIN                         # no fallthrough there


def test_autopath_answers_the_first_search_path_query_with_a_cname():
    h = build()
    r = ask(h, "web.default.svc.cluster.local.default.svc.cluster.local")
    assert r.header.rcode == RCODE.NOERROR
    assert r.rr[0].rtype == QTYPE.CNAME and str(r.rr[0].rdata) == "web.default.svc.cluster.local."
    assert str(r.rr[1].rdata) == "10.96.5.5"
    r = ask(h, "web.default.svc.cluster.local")                   # the name itself: no CNAME
    assert [rr.rtype for rr in r.rr] == [QTYPE.A]
    r = ask(h, "web.default.svc.cluster.local.default.svc.cluster.local", addr=("10.9.9.9", 1))   # not a pod
    assert r.header.rcode == RCODE.NXDOMAIN


def test_no_zone_matches_is_refused():
    h = build("example.test:53 {\n hosts {\n 192.0.2.1 a.example.test\n }\n}\n")
    assert ask(h, "example.org").header.rcode == RCODE.REFUSED


def test_default_corefile_gets_the_plain_query_handler():
    from agent.controllers.bootstrap import COREFILE as KUBEADM
    h = build(KUBEADM.format(domain="cluster.local", upstream="10.0.0.2"))
    assert h.handle.__func__ is chain.QueryHandler.handle      # the fast path, nothing wrapped


def reply_bytes(name="x.example.org", rcode=0, ttl=300, answers=1):
    r = DNSRecord.question(name).reply()
    r.header.rcode = rcode
    if answers:
        r.add_answer(*__import__("dnslib").RR.fromZone(f"{name} {ttl} A 192.0.2.9"))
    return bytes(r.pack())


def key_of(data):
    return wire.parse_query(data).key + b"-"


def test_cache_ttls_denial_disable_stale_and_prefetch():
    q = bytes(DNSRecord.question("x.example.org").pack())
    pq = wire.parse_query(q)
    c = ForwardCache(max_entries=10, max_ttl=60, min_ttl=5, denial_max_ttl=10, stale=30,
                     disable_success=("cluster.local.",), prefetch=(2, 60.0, 50))
    c.store(key_of(q), reply_bytes(), 0.0)
    data, refresh = c.lookup_stale(key_of(q), 7, pq.question, 1.0)
    assert struct.unpack_from("!I", data, len(data) - 10)[0] == 59 and not refresh    # capped at 60, aged 1 s
    data, refresh = c.lookup_stale(key_of(q), 7, pq.question, 40.0)    # 2nd hit, 20 s left of 60 (< 50%)
    assert refresh
    data, refresh = c.lookup_stale(key_of(q), 7, pq.question, 70.0)    # expired, within serve_stale
    assert refresh and struct.unpack_from("!I", data, len(data) - 10)[0] == 0
    assert c.lookup_stale(key_of(q), 7, pq.question, 91.0) == (None, False)
    local = bytes(DNSRecord.question("web.cluster.local").pack())
    c.store(key_of(local), reply_bytes("web.cluster.local"), 0.0)
    assert c.lookup(key_of(local), 1, wire.parse_query(local).question, 1.0) is None      # disable success


def test_forward_policies():
    ups = [("10.0.0.1", 53), ("10.0.0.2", 53), ("10.0.0.3", 53)]
    seq = Forwarder(ups, policy="sequential")
    assert [seq._pick() for _ in range(3)] == [0, 0, 0] and seq._pick(after=0) == 1
    rr = Forwarder(ups, policy="round_robin")
    assert sorted(rr._pick() for _ in range(3)) == [0, 1, 2]
    seq.disabled.add(0)
    assert seq._pick() == 1


def test_errors_and_log_lines():
    out = []
    log = ErrorLog(ErrorsOptions(consolidate=((30.0, "i/o timeout$"),)), out=out.append)
    q = wire.parse_query(bytes(DNSRecord.question("foo.example.org").pack()))
    log(q, 2, Forwarder([("10.0.0.53", 53)]))
    log(q, 2, Forwarder([("10.0.0.53", 53)]))
    log._flush(0)
    assert out == ["[WARNING] 2 errors like 'i/o timeout$' occurred in last 30s"]
    plain = ErrorLog(ErrorsOptions(), out=out.append)
    plain(q, 2, Forwarder([("10.0.0.53", 53)]))
    assert out[-1] == "[ERROR] plugin/errors: 2 foo.example.org. A: read udp ->10.0.0.53:53: i/o timeout"
    from dns.corefile.plugins_more import DEFAULT_LOG_FORMAT
    text = line(DEFAULT_LOG_FORMAT, q, ("10.244.0.5", 41234), "udp", 33, reply_bytes("foo.example.org"), 0.000131)
    assert text.startswith(f'[INFO] 10.244.0.5:41234 - {q.qid} "A IN foo.example.org. udp 33 false 512" NOERROR qr,aa,rd,ra 49 ')
    assert text.endswith(" 0.000131s")


ZONE = """$TTL 3600
@   IN SOA ns.example.org. admin.example.org. ( 1 7200 3600 1209600 3600 )
@   IN NS ns
ns  IN A 10.0.0.1
www IN A 10.0.0.2
alias IN CNAME www
*.wild IN A 10.0.0.9
"""


def test_file_after_kubernetes(tmp_path):
    db = tmp_path / "db.example.org"
    db.write_text(ZONE)
    h = build(f""".:53 {{
    kubernetes cluster.local
    file {db} example.org
}}""")
    assert [str(rr.rdata) for rr in ask(h, "www.example.org").rr] == ["10.0.0.2"]
    r = ask(h, "alias.example.org")
    assert [rr.rtype for rr in r.rr] == [QTYPE.CNAME, QTYPE.A] and r.header.aa == 1
    assert [str(rr.rdata) for rr in ask(h, "x.wild.example.org").rr] == ["10.0.0.9"]
    r = ask(h, "nope.example.org")
    assert r.header.rcode == RCODE.NXDOMAIN and r.auth[0].rtype == QTYPE.SOA
    r = ask(h, "www.example.org", "AAAA")
    assert r.header.rcode == RCODE.NOERROR and not r.rr and r.auth[0].rtype == QTYPE.SOA
    assert [str(rr.rdata) for rr in ask(h, "web.default.svc.cluster.local").rr] == ["10.96.5.5"]


def test_a_bad_first_corefile_exits_1_with_coredns_message(tmp_path, capsys):
    from agent.coredns.main import main
    conf = tmp_path / "Corefile"
    conf.write_text(".:53 {\n    forward . foo\n}\n")
    assert main(["-conf", str(conf), "--api", "https://127.0.0.1:1"]) == 1
    assert capsys.readouterr().out.strip() == 'plugin/forward: not an IP address or file: "foo"'


def test_a_stopped_build_unhooks_its_prepared_answers():
    """A reload stops the old build: its tables no longer hear state changes (they would pile
    up, one per reload, each emptied on every watch event), while the live build's do."""
    s = state()
    old = chain.build(load(COREFILE, env={}), s, local_ips=(), metrics={})
    live = chain.build(load(COREFILE, env={}), s, local_ips=(), metrics={})
    for built in (old, live):
        ask(built.handlers[53], "web.default.svc.cluster.local")
        assert len(built.cores[0].prepared) == 1
    old.stop()
    s.apply("Namespace", "ADDED", {"metadata": {"name": "other"}})
    assert len(live.cores[0].prepared) == 0           # emptied by the change
    assert len(old.cores[0].prepared) == 1            # unhooked: not told any more


CLUSTER_ZONE = """$ORIGIN cluster.local.
@      IN SOA files.cluster.local. admin.cluster.local. ( 1 7200 3600 1209600 3600 )
@      IN NS files
files  IN A 10.0.0.1
legacy IN A 10.0.0.7
"""


@contextlib.contextmanager
def upstream():
    """A dnslib server on 127.0.0.1 answering every A question 192.0.2.53; yields (port, names asked)."""
    from dnslib.server import BaseResolver, DNSLogger, DNSServer

    asked: list[str] = []

    class Resolver(BaseResolver):
        def resolve(self, request, handler):
            asked.append(str(request.q.qname))
            reply = request.reply()
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("192.0.2.53"), ttl=60))
            return reply

    port = free_port(socket.SOCK_DGRAM)
    server = DNSServer(Resolver(), address="127.0.0.1", port=port, logger=DNSLogger("-request,-reply,-truncated,"
                                                                                    "-error,-recv,-send,-data"))
    server.start_thread()
    try:
        yield port, asked
    finally:
        server.stop()


def ask_waiting(handler, name, qtype="A"):
    """ask(), waiting for an answer that comes back later from the forwarder's thread."""
    got: queue.Queue = queue.Queue()
    reply = handler.handle(bytes(DNSRecord.question(name, qtype).pack()), "udp", 1, got.put, ("10.244.1.9", 40000))
    return DNSRecord.parse(reply if reply is not None else got.get(timeout=10))


def test_kubernetes_fallthrough_goes_to_file_then_forward(tmp_path):
    """`fallthrough cluster.local`: a cluster name the kubernetes plugin has no records for
    (NXDOMAIN there) is answered by the next plugin, `file`, with that zone's data and SOA; a
    reverse name, not covered by this fallthrough, stays the kubernetes plugin's NXDOMAIN;
    names in neither zone go on to `forward`."""
    db = tmp_path / "db.cluster.local"
    db.write_text(CLUSTER_ZONE)
    with upstream() as (port, asked):
        built = chain.build(load(f""".:53 {{
    kubernetes cluster.local in-addr.arpa {{
        fallthrough cluster.local
    }}
    file {db} cluster.local
    forward . 127.0.0.1:{port}
}}""", env={}), state(), local_ips=("10.244.0.2",), metrics={})
        built.start()
        try:
            h = built.handlers[53]
            assert [str(rr.rdata) for rr in ask(h, "web.default.svc.cluster.local").rr] == ["10.96.5.5"]
            r = ask(h, "legacy.cluster.local")        # no svc/pod label: NXDOMAIN for kubernetes
            assert [str(rr.rdata) for rr in r.rr] == ["10.0.0.7"] and r.header.aa == 1
            r = ask(h, "gone.default.svc.cluster.local")      # no such Service: file says NXDOMAIN
            assert r.header.rcode == RCODE.NXDOMAIN and str(r.auth[0].rdata.mname) == "files.cluster.local."
            r = ask(h, "9.9.0.10.in-addr.arpa", "PTR")        # not under this fallthrough
            assert r.header.rcode == RCODE.NXDOMAIN and str(r.auth[0].rdata.mname) == "ns.dns.in-addr.arpa."
            assert [str(rr.rdata) for rr in ask_waiting(h, "www.example.org").rr] == ["192.0.2.53"]
            assert asked == ["www.example.org."]              # only the name neither zone holds
        finally:
            built.stop()


def test_autopath_finds_what_kubernetes_falls_through_to_file(tmp_path):
    """autopath walks the rest of the chain for each search domain, as CoreDNS's does: a name in
    the file behind a kubernetes `fallthrough` is found at the cluster-domain step."""
    db = tmp_path / "db.cluster.local"
    db.write_text(CLUSTER_ZONE)
    built = chain.build(load(f""".:53 {{
    kubernetes cluster.local {{
        pods verified
        fallthrough cluster.local
    }}
    autopath @kubernetes
    file {db} cluster.local
}}""", env={}), state(), local_ips=("10.244.0.2",), metrics={})
    r = ask(built.handlers[53], "legacy.default.svc.cluster.local")     # pod tmp's first search query
    assert [(rr.rtype, str(rr.rdata)) for rr in r.rr] == [(QTYPE.CNAME, "legacy.cluster.local."),
                                                          (QTYPE.A, "10.0.0.7")]


def test_kubernetes_fallthrough_goes_to_forward():
    """Without `file`, what the kubernetes plugin falls through on is asked upstream; without
    `fallthrough` it is the plugin's NXDOMAIN and upstream never hears of it."""
    with upstream() as (port, asked):
        for block, forwarded in (("{\n        fallthrough\n    }", True), ("", False)):
            built = chain.build(load(f""".:53 {{
    kubernetes cluster.local {block}
    forward . 127.0.0.1:{port}
}}""", env={}), state(), local_ips=("10.244.0.2",), metrics={})
            built.start()
            try:
                r = ask_waiting(built.handlers[53], "legacy.cluster.local")
            finally:
                built.stop()
            if forwarded:
                assert [str(rr.rdata) for rr in r.rr] == ["192.0.2.53"] and asked == ["legacy.cluster.local."]
            else:
                assert r.header.rcode == RCODE.NXDOMAIN and str(r.auth[0].rdata.mname) == "ns.dns.cluster.local."
                assert asked == ["legacy.cluster.local."]     # still the one from the first round
