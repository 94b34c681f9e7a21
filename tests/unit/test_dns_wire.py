"""The query pipeline without sockets: prepared answers, wire patching, bad input, forward cache."""

import random
import struct

from dnslib import EDNS0, QTYPE, RCODE, RR, A, DNSRecord
from test_dns_records import HTTP, cluster, ep, eps, svc

from dns import wire
from dns.forward import ForwardCache, parse_upstream, upstreams_from_resolv_conf
from dns.handler import QueryHandler
from dns.records import Config

CFG = Config(local_ips=("10.244.0.5",))


def handler(state=None):
    return QueryHandler(state or cluster(), CFG)


def ask(h, name, qtype="A", proto="udp", edns=None, qid=4242):
    q = DNSRecord.question(name, qtype)
    q.header.id = qid
    if edns:
        q.add_ar(EDNS0(udp_len=edns))
    reply = h.handle(q.pack(), proto, 1, lambda r: None)
    return DNSRecord.parse(reply), reply


def test_answer_echoes_id_and_question_case():
    rec, _ = ask(handler(), "WEB.Default.svc.CLUSTER.local", qid=777)
    assert rec.header.id == 777 and rec.header.aa == 1 and rec.header.rd == 1
    assert str(rec.q.qname) == "WEB.Default.svc.CLUSTER.local."
    assert [(str(r.rname), str(r.rdata)) for r in rec.rr] == [("WEB.Default.svc.CLUSTER.local.", "10.96.0.20")]


def test_second_query_is_served_from_the_prepared_table():
    h = handler()
    ask(h, "web.default.svc.cluster.local")
    assert len(h.prepared) == 1
    rec, _ = ask(h, "Web.default.svc.cluster.local", qid=9)
    assert rec.header.id == 9 and str(rec.rr[0].rdata) == "10.96.0.20"


def test_state_change_invalidates_prepared_answers():
    state = cluster()
    h = handler(state)
    ask(h, "web.default.svc.cluster.local")
    state.apply("Service", "MODIFIED", svc("default", "web", "10.96.0.99", [HTTP]))
    rec, _ = ask(h, "web.default.svc.cluster.local")
    assert str(rec.rr[0].rdata) == "10.96.0.99"


def test_edns_is_echoed():
    rec, _ = ask(handler(), "web.default.svc.cluster.local", edns=1232)
    opts = [r for r in rec.ar if r.rtype == QTYPE.OPT]
    assert len(opts) == 1 and opts[0].rclass == 1232


def big_state(n=120):
    state = cluster()
    state.apply("Service", "ADDED", svc("default", "big", "None", [HTTP]))
    state.apply("EndpointSlice", "ADDED", eps("default", "big", [ep(f"10.244.50.{i}") for i in range(1, n + 1)], [HTTP]))
    return state


def test_udp_truncates_with_tc_and_tcp_is_complete():
    h = handler(big_state())
    rec, raw = ask(h, "big.default.svc.cluster.local")
    assert rec.header.tc == 1 and len(raw) <= 512 and 0 < len(rec.rr) < 120
    rec, raw = ask(h, "big.default.svc.cluster.local", edns=1232)
    assert rec.header.tc == 1 and len(raw) <= 1232
    rec, raw = ask(h, "big.default.svc.cluster.local", proto="tcp")
    assert rec.header.tc == 0 and len(rec.rr) == 120


def test_address_records_rotate():
    h = handler()
    firsts = {str(ask(h, "headless.default.svc.cluster.local")[0].rr[0].rdata) for _ in range(4)}
    assert firsts == {"10.244.2.1", "10.244.2.2"}


def raw_query(flags=0x0100, qd=1, an=0, ns=0, ar=0, body=b"\x03web\x00\x00\x01\x00\x01"):
    return struct.pack("!HHHHHH", 1, flags, qd, an, ns, ar) + body


def rcode_of(reply):
    return reply[3] & 0xF


def test_bad_headers_follow_miekg_accept_rules():
    h = handler()
    assert h.handle(b"\x00\x01", "udp", 1, None) is None                       # shorter than a header
    assert h.handle(raw_query(flags=0x8000), "udp", 1, None) is None            # a response
    assert rcode_of(h.handle(raw_query(flags=0x1000), "udp", 1, None)) == RCODE.NOTIMP  # STATUS opcode
    assert rcode_of(h.handle(raw_query(qd=2), "udp", 1, None)) == RCODE.FORMERR
    assert rcode_of(h.handle(raw_query(qd=0, body=b""), "udp", 1, None)) == RCODE.FORMERR
    assert rcode_of(h.handle(raw_query(body=b"\x05ab"), "udp", 1, None)) == RCODE.FORMERR  # cut short


def test_unknown_class_is_refused_and_bad_edns_version_gets_badvers():
    h = handler()
    q = DNSRecord.question("web.default.svc.cluster.local", "A", "CH")
    assert DNSRecord.parse(h.handle(q.pack(), "udp", 1, None)).header.rcode == RCODE.REFUSED
    q = DNSRecord.question("web.default.svc.cluster.local")
    q.add_ar(EDNS0(version=1))
    rec = DNSRecord.parse(h.handle(q.pack(), "udp", 1, None))
    (opt,) = [r for r in rec.ar if r.rtype == QTYPE.OPT]
    assert (opt.ttl >> 24) == 1 and rec.header.rcode == 0  # extended rcode BADVERS (16)


def test_forwarded_names_without_upstream_get_servfail():
    rec, _ = ask(handler(), "www.example.com")
    assert rec.header.rcode == RCODE.SERVFAIL


def test_random_bytes_never_crash_the_handler():
    h = handler()
    rng = random.Random(1234)
    seeds = [DNSRecord.question("web.default.svc.cluster.local").pack(), raw_query()]
    for i in range(3000):
        if i % 2:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 80)))
        else:
            data = bytearray(rng.choice(seeds))
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.getrandbits(8)
            data = bytes(data)
        for proto in ("udp", "tcp"):
            reply = h.handle(data, proto, 1, lambda r: None)
            assert reply is None or len(reply) >= 12
    assert h.metrics.panics == 0


def test_fast_and_slow_parsers_agree():
    data = DNSRecord.question("Web.Default.svc.cluster.local", "SRV").pack()
    fast, slow = wire.parse_query(data), wire.parse_query_slow(data)
    assert (fast.key, fast.question, fast.labels, fast.qtype) == (slow.key, slow.question, slow.labels, slow.qtype)


def upstream_reply(ttl=300):
    r = DNSRecord.question("www.example.com").reply()
    r.add_answer(RR("www.example.com", QTYPE.A, rdata=A("192.0.2.7"), ttl=ttl))
    return r.pack()


def test_forward_cache_ages_ttls_and_expires():
    cache = ForwardCache(max_ttl=30)
    cache.store(b"k", upstream_reply(), now=100.0)
    question = DNSRecord.question("WWW.example.com").pack()[12:]
    got = DNSRecord.parse(cache.lookup(b"k", 55, question, now=110.0))
    assert got.header.id == 55 and got.rr[0].ttl == 20 and str(got.q.qname) == "WWW.example.com."
    assert cache.lookup(b"k", 55, question, now=131.0) is None


def test_forward_cache_skips_servfail_and_truncated():
    cache = ForwardCache()
    fail = DNSRecord.question("x.example").reply()
    fail.header.rcode = RCODE.SERVFAIL
    cache.store(b"a", fail.pack(), 0.0)
    tc = DNSRecord.parse(upstream_reply())
    tc.header.tc = 1
    cache.store(b"b", tc.pack(), 0.0)
    assert len(cache) == 0


def test_resolv_conf_skips_loopback_stubs(tmp_path, caplog):
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch example\nnameserver ::1\n")
    assert upstreams_from_resolv_conf(str(path)) == [("192.0.2.1", 53)]
    assert "skipping loopback stub resolver 127.0.0.53" in caplog.text


def test_parse_upstream_forms():
    assert parse_upstream("10.0.0.2") == ("10.0.0.2", 53)
    assert parse_upstream("10.0.0.2:5353") == ("10.0.0.2", 5353)
    assert parse_upstream("[fd00::1]:53") == ("fd00::1", 53)
    assert parse_upstream("fd00::1") == ("fd00::1", 53)


def test_names_to_and_from_the_wire_keep_the_clients_spelling():
    enc = wire.encode_name("Web.Default.svc.")
    assert enc == b"\x03Web\x07Default\x03svc\x00" and wire.encode_name(".") == b"\x00"
    assert wire.question_name(enc + b"\x00\x01\x00\x01") == "Web.Default.svc."
