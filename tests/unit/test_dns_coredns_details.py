"""Wire-level details where CoreDNS is the reference, through QueryHandler without sockets.

* the case of SRV targets and glue (handler_case_test.go: zone part in the query's case);
* SERVFAIL before the first sync (handler.go + plugin.BackendError: authoritative, with the SOA);
* UDP truncation as miekg/dns Msg.Truncate (v1.1.58, what CoreDNS 1.11 vendors) does it;
* a TC bit from upstream kept on the chased ExternalName answer (plugin.A's `truncated`).
"""

import struct

from dnslib import EDNS0, QTYPE, RCODE, RR, A, DNSRecord

from dns import wire
from dns.cluster import ClusterState
from dns.handler import QueryHandler
from dns.records import Config

HTTP = {"name": "http", "protocol": "TCP", "port": 80}


def svc(ns, name, cluster_ip, **spec):
    return {"kind": "Service", "metadata": {"namespace": ns, "name": name},
            "spec": {"type": spec.pop("type", "ClusterIP"), "clusterIP": cluster_ip, "ports": [HTTP], **spec}}


def slice_of(ns, service, ips, hostnames=False):
    endpoints = [{"addresses": [ip], "conditions": {"ready": True},
                  **({"hostname": f"h{i}"} if hostnames else {})} for i, ip in enumerate(ips)]
    return {"kind": "EndpointSlice", "metadata": {"namespace": ns, "name": f"{service}-x",
                                                  "labels": {"kubernetes.io/service-name": service}},
            "ports": [HTTP], "endpoints": endpoints}


def state(synced=True, headless_endpoints=3):
    st = ClusterState()
    st.replace("Namespace", [{"metadata": {"name": "testns"}}])
    st.replace("Service", [svc("testns", "svc1", "10.0.0.1"), svc("testns", "hdls", "None"),
                           svc("testns", "ext", "", type="ExternalName", externalName="big.example.test")])
    st.replace("EndpointSlice", [slice_of("testns", "svc1", ["10.244.0.1"]),
                                 slice_of("testns", "hdls", [f"10.244.1.{i}" for i in range(1, headless_endpoints + 1)],
                                          hostnames=True)])
    if synced:
        st.mark_synced()
    return st


def ask(h, name, qtype="A", proto="udp", edns=None):
    q = DNSRecord.question(name, qtype)
    if edns:
        q.add_ar(EDNS0(udp_len=edns))
    box = []
    reply = h.handle(q.pack(), proto, 1, box.append)
    reply = reply if reply is not None else box[0]
    return DNSRecord.parse(reply), reply


def names(rrs):
    return [(str(rr.rname), QTYPE[rr.rtype], str(rr.rdata)) for rr in rrs]


# -- case (handler_case_test.go) ----------------------------------------------

def test_srv_target_and_glue_keep_the_zone_in_the_querys_case():
    h = QueryHandler(state(), Config(ttl=5))
    rec, _ = ask(h, "_HtTp._TcP.sVc1.TeStNs.SvC.cLuStEr.LoCaL.", "SRV")
    assert names(rec.rr) == [("_HtTp._TcP.sVc1.TeStNs.SvC.cLuStEr.LoCaL.", "SRV",
                              "0 100 80 svc1.testns.svc.cLuStEr.LoCaL.")]
    assert names(rec.ar) == [("svc1.testns.svc.cLuStEr.LoCaL.", "A", "10.0.0.1")]
    # the same question in lower case is its own prepared entry
    rec, _ = ask(h, "_http._tcp.svc1.testns.svc.cluster.local.", "SRV")
    assert names(rec.rr)[0][2] == "0 100 80 svc1.testns.svc.cluster.local."
    assert names(rec.ar) == [("svc1.testns.svc.cluster.local.", "A", "10.0.0.1")]
    # the service's own labels in upper case do not leak into the target (objects' spelling)
    rec, _ = ask(h, "_http._tcp.SVC1.TESTNS.svc.cluster.local.", "SRV")
    assert names(rec.rr) == [("_http._tcp.SVC1.TESTNS.svc.cluster.local.", "SRV",
                              "0 100 80 svc1.testns.svc.cluster.local.")]
    assert names(rec.ar) == [("svc1.testns.svc.cluster.local.", "A", "10.0.0.1")]


def test_headless_srv_targets_in_the_querys_zone_case():
    h = QueryHandler(state(), Config(ttl=5))
    rec, _ = ask(h, "HDLS.testns.svc.Cluster.Local.", "SRV")
    assert [str(rr.rdata).split()[-1] for rr in rec.rr] == [f"h{i}.hdls.testns.svc.Cluster.Local." for i in range(3)]
    assert [str(rr.rname) for rr in rec.ar] == [f"h{i}.hdls.testns.svc.Cluster.Local." for i in range(3)]


def test_negative_answer_and_soa_in_the_querys_case():
    h = QueryHandler(state(), Config(ttl=5))
    rec, _ = ask(h, "not-a-service.testns.svc.ClUsTeR.lOcAl.")
    assert rec.header.rcode == RCODE.NXDOMAIN
    (soa,) = rec.auth
    assert (str(soa.rname), str(soa.rdata.mname), str(soa.rdata.rname)) == (
        "ClUsTeR.lOcAl.", "ns.dns.ClUsTeR.lOcAl.", "hostmaster.ClUsTeR.lOcAl.")
    rec, _ = ask(h, "Cluster.local.", "SOA")
    assert str(rec.rr[0].rname) == "Cluster.local." and str(rec.rr[0].rdata.mname) == "ns.dns.Cluster.local."
    rec, _ = ask(h, "SvC1.TeStNs.SvC.cLuStEr.LoCaL.")
    assert names(rec.rr) == [("SvC1.TeStNs.SvC.cLuStEr.LoCaL.", "A", "10.0.0.1")]


# -- before the first sync ----------------------------------------------------

def test_servfail_before_sync_is_authoritative_with_the_soa():
    h = QueryHandler(state(synced=False), Config(ttl=5))
    rec, _ = ask(h, "nosuch.testns.svc.cluster.local.")
    assert rec.header.rcode == RCODE.SERVFAIL and rec.header.aa == 1
    assert [QTYPE[rr.rtype] for rr in rec.auth] == ["SOA"] and str(rec.auth[0].rname) == "cluster.local."
    rec, _ = ask(h, "svc1.testns.svc.cluster.local.")  # known already: answered
    assert rec.header.rcode == RCODE.NOERROR and names(rec.rr) == [("svc1.testns.svc.cluster.local.", "A", "10.0.0.1")]


def test_zone_transfer_refusal_is_not_authoritative():
    rec, _ = ask(QueryHandler(state(), Config()), "cluster.local.", "AXFR")
    assert rec.header.rcode == RCODE.REFUSED and rec.header.aa == 0 and not rec.rr


# -- truncation (miekg/dns msg_truncate.go) ------------------------------------

def fits(reply_sections, question, budget):
    rec = DNSRecord(q=question)
    rec.rr, rec.auth, rec.ar = (list(s) for s in reply_sections)
    return len(rec.pack()) <= budget


def test_truncation_keeps_all_answers_then_as_much_glue_as_fits():
    h = QueryHandler(state(headless_endpoints=7), Config(ttl=5))
    full, raw = ask(h, "_http._tcp.hdls.testns.svc.cluster.local.", "SRV", proto="tcp")
    assert len(full.rr) == 7 and len(full.ar) == 7 and full.header.tc == 0 and len(raw) > 512
    rec, raw = ask(h, "_http._tcp.hdls.testns.svc.cluster.local.", "SRV")
    assert len(raw) <= 512 and rec.header.tc == 1
    assert len(rec.rr) == 7, "every answer fits in 512 bytes, so all are kept"
    kept = len(rec.ar)
    assert 0 < kept < 7 and names(rec.ar) == names(full.ar[:kept])
    # maximal: one more glue record would not have fitted
    assert not fits((full.rr, [], full.ar[:kept + 1]), full.q, 512)


def test_truncation_stops_at_the_first_record_left_out():
    h = QueryHandler(state(headless_endpoints=60), Config(ttl=5))
    rec, raw = ask(h, "_http._tcp.hdls.testns.svc.cluster.local.", "SRV", edns=600)
    full, _ = ask(h, "_http._tcp.hdls.testns.svc.cluster.local.", "SRV", proto="tcp")
    assert rec.header.tc == 1 and len(raw) <= 600
    assert 0 < len(rec.rr) < 60 and not rec.auth
    assert [rr.rtype for rr in rec.ar] == [QTYPE.OPT], "no glue after an answer was left out; the OPT stays"
    assert not fits((full.rr[:len(rec.rr) + 1], [], []), full.q, 600 - wire.OPT_SIZE)


def test_small_answers_are_untouched():
    rec, raw = ask(QueryHandler(state(), Config()), "svc1.testns.svc.cluster.local.")
    assert rec.header.tc == 0 and len(rec.rr) == 1


# -- TC from upstream on a chased CNAME ---------------------------------------

class Upstream:
    """A forwarder stand-in answering every question with 40 A records, TC set over UDP."""

    probes: dict = {}

    def __init__(self):
        self.tcp_asked = 0

    def _reply(self, data, truncated):
        q = DNSRecord.parse(data)
        reply = q.reply()
        for i in range(1 if truncated else 40):
            reply.add_answer(RR(q.q.qname, QTYPE.A, ttl=60, rdata=A(f"192.0.2.{i + 1}")))
        raw = bytearray(reply.pack())
        if truncated:
            struct.pack_into("!H", raw, 2, struct.unpack_from("!H", raw, 2)[0] | wire.FLAG_TC)
        return bytes(raw)

    def submit(self, q, data, done, upstream=None):
        done(self._reply(data, truncated=True), 0)

    def ask(self, q, data, timeout=None):
        return self._reply(data, truncated=True), 0

    def ask_tcp(self, data, index=None):
        self.tcp_asked += 1
        return self._reply(data, truncated=False)


def test_tc_from_upstream_is_kept_when_chasing_an_external_name():
    h = QueryHandler(state(), Config(), forwarder=Upstream())
    rec, _ = ask(h, "ext.testns.svc.cluster.local.")
    assert rec.header.tc == 1
    assert names(rec.rr) == [("ext.testns.svc.cluster.local.", "CNAME", "big.example.test."),
                             ("big.example.test.", "A", "192.0.2.1")]


def test_tcp_client_gets_the_whole_chased_answer():
    up = Upstream()
    h = QueryHandler(state(), Config(), forwarder=up)
    rec, _ = ask(h, "ext.testns.svc.cluster.local.", proto="tcp")
    assert rec.header.tc == 0 and len(rec.rr) == 41 and up.tcp_asked == 1
