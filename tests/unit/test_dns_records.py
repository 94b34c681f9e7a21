"""Records as CoreDNS's kubernetes plugin answers them: tables of {qname, qtype, rcode, answer}.

The state is built from Kubernetes-shaped dicts through ClusterState, the way
the agent's watch feeds it.
"""

import pytest
from dnslib import QTYPE, RCODE

from dns.cluster import ClusterState
from dns.names import labels_of
from dns.records import Config, resolve

DNS_POD_IP = "10.244.0.5"


def svc(ns, name, cluster_ip="", ports=(), type_="ClusterIP", **spec):
    body = {"type": type_, "ports": [dict(p) for p in ports]}
    if cluster_ip:
        body["clusterIP"] = cluster_ip
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": ns, "name": name}, "spec": body}


def eps(ns, service, endpoints, ports=(), name=None):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": ns, "name": name or f"{service}-abcde",
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [dict(p) for p in ports], "endpoints": endpoints}


def ep(ip, ready=True, hostname=None, pod=None):
    out = {"addresses": [ip], "conditions": {"ready": ready}}
    if hostname:
        out["hostname"] = hostname
    if pod:
        out["targetRef"] = {"kind": "Pod", "name": pod, "namespace": "default"}
    return out


def pod(ns, name, ip, hostname=None, subdomain=None):
    spec = {}
    if hostname:
        spec["hostname"] = hostname
    if subdomain:
        spec["subdomain"] = subdomain
    return {"kind": "Pod", "metadata": {"namespace": ns, "name": name}, "spec": spec,
            "status": {"podIP": ip, "podIPs": [{"ip": ip}]}}


HTTP = {"name": "http", "protocol": "TCP", "port": 80}


def cluster() -> ClusterState:
    state = ClusterState()
    state.replace("Namespace", [{"metadata": {"name": n}} for n in ("default", "kube-system", "empty")])
    state.replace("Service", [
        svc("default", "kubernetes", "10.96.0.1", [{"name": "https", "protocol": "TCP", "port": 443}]),
        svc("kube-system", "kube-dns", "10.96.0.10", [{"name": "dns", "protocol": "UDP", "port": 53},
                                                      {"name": "dns-tcp", "protocol": "TCP", "port": 53},
                                                      {"name": "metrics", "protocol": "TCP", "port": 9153}]),
        svc("default", "web", "10.96.0.20", [HTTP]),
        svc("default", "headless", "None", [HTTP]),
        svc("default", "notready", "None", [HTTP]),
        svc("default", "publish", "None", [HTTP], publishNotReadyAddresses=True),
        svc("default", "ext", type_="ExternalName", externalName="web.default.svc.cluster.local"),
        svc("default", "extout", type_="ExternalName", externalName="example.com"),
        svc("default", "extip", type_="ExternalName", externalName="192.0.2.1"),
        svc("default", "noports", "10.96.0.30"),
        svc("default", "dual", "10.96.0.40", [HTTP], clusterIPs=["10.96.0.40", "fd00::40"]),
    ])
    state.replace("EndpointSlice", [
        eps("kube-system", "kube-dns", [ep(DNS_POD_IP)], [{"name": "dns", "protocol": "UDP", "port": 53}]),
        eps("default", "web", [ep("10.244.1.5", pod="web-1"), ep("10.244.1.6", ready=False)], [HTTP]),
        eps("default", "headless", [ep("10.244.2.1", hostname="db-0"), ep("10.244.2.2", pod="db-1"),
                                    ep("10.244.2.3", ready=False)], [HTTP]),
        eps("default", "notready", [ep("10.244.4.1", ready=False)], [HTTP]),
        eps("default", "publish", [ep("10.244.3.1", ready=False)], [HTTP]),
    ])
    state.replace("Pod", [pod("default", "db-1", "10.244.2.2", hostname="db-1", subdomain="headless"),
                          pod("default", "web-1", "10.244.1.5")])
    state.mark_synced()
    return state


CFG = Config(local_ips=(DNS_POD_IP,))
NX, OK, REFUSED, SERVFAIL = RCODE.NXDOMAIN, RCODE.NOERROR, RCODE.REFUSED, RCODE.SERVFAIL
W = "web.default.svc.cluster.local."
H = "headless.default.svc.cluster.local."

CASES = [
    # ClusterIP Services
    (W, "A", OK, [f"{W} 30 IN A 10.96.0.20"]),
    (W, "AAAA", OK, []),
    ("dual.default.svc.cluster.local.", "AAAA", OK, ["dual.default.svc.cluster.local. 30 IN AAAA fd00::40"]),
    ("kubernetes.default.svc.cluster.local.", "A", OK, ["kubernetes.default.svc.cluster.local. 30 IN A 10.96.0.1"]),
    ("noports.default.svc.cluster.local.", "A", OK, ["noports.default.svc.cluster.local. 30 IN A 10.96.0.30"]),
    ("noports.default.svc.cluster.local.", "SRV", OK, []),
    # SRV per named port
    ("_http._tcp." + W, "SRV", OK, [f"_http._tcp.{W} 30 IN SRV 0 100 80 {W}"]),
    (W, "SRV", OK, [f"{W} 30 IN SRV 0 100 80 {W}"]),
    ("_https._tcp." + W, "SRV", NX, []),
    ("_http._udp." + W, "SRV", NX, []),
    ("_dns._udp.kube-dns.kube-system.svc.cluster.local.", "SRV", OK,
     ["_dns._udp.kube-dns.kube-system.svc.cluster.local. 30 IN SRV 0 100 53 kube-dns.kube-system.svc.cluster.local."]),
    # endpoint names work for ClusterIP Services too (CoreDNS), ready only
    ("10-244-1-5." + W, "A", OK, [f"10-244-1-5.{W} 30 IN A 10.244.1.5"]),
    ("10-244-1-6." + W, "A", NX, []),
    # headless: ready endpoints, hostnames, pod hostname+subdomain, SRV per endpoint
    (H, "A", OK, [f"{H} 30 IN A 10.244.2.1", f"{H} 30 IN A 10.244.2.2"]),
    ("db-0." + H, "A", OK, [f"db-0.{H} 30 IN A 10.244.2.1"]),
    ("db-1." + H, "A", OK, [f"db-1.{H} 30 IN A 10.244.2.2"]),
    ("10-244-2-3." + H, "A", NX, []),
    ("_http._tcp." + H, "SRV", OK, [f"_http._tcp.{H} 30 IN SRV 0 50 80 db-0.{H}",
                                    f"_http._tcp.{H} 30 IN SRV 0 50 80 db-1.{H}"]),
    ("notready.default.svc.cluster.local.", "A", NX, []),
    ("publish.default.svc.cluster.local.", "A", OK, ["publish.default.svc.cluster.local. 30 IN A 10.244.3.1"]),
    # ExternalName
    ("ext.default.svc.cluster.local.", "A", OK, [f"ext.default.svc.cluster.local. 30 IN CNAME {W}",
                                                 f"{W} 30 IN A 10.96.0.20"]),
    ("ext.default.svc.cluster.local.", "CNAME", OK, [f"ext.default.svc.cluster.local. 30 IN CNAME {W}"]),
    ("ext.default.svc.cluster.local.", "SRV", OK, []),
    ("_http._tcp.ext.default.svc.cluster.local.", "SRV", NX, []),
    ("extout.default.svc.cluster.local.", "A", OK, ["extout.default.svc.cluster.local. 30 IN CNAME example.com."]),
    ("extip.default.svc.cluster.local.", "A", NX, []),
    # pods insecure
    ("10-244-1-5.default.pod.cluster.local.", "A", OK, ["10-244-1-5.default.pod.cluster.local. 30 IN A 10.244.1.5"]),
    ("10-244-1-5.default.pod.cluster.local.", "AAAA", OK, []),
    ("10-244-1-5.nosuchns.pod.cluster.local.", "A", NX, []),
    ("web.default.pod.cluster.local.", "A", NX, []),
    ("default.pod.cluster.local.", "A", OK, []),
    # reverse
    ("20.0.96.10.in-addr.arpa.", "PTR", OK, [f"20.0.96.10.in-addr.arpa. 30 IN PTR {W}"]),
    ("1.2.244.10.in-addr.arpa.", "PTR", OK, [f"1.2.244.10.in-addr.arpa. 30 IN PTR db-0.{H}"]),
    ("5.1.244.10.in-addr.arpa.", "PTR", OK, [f"5.1.244.10.in-addr.arpa. 30 IN PTR 10-244-1-5.{W}"]),
    ("0.4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", "PTR", OK,
     ["0.4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. 30 IN PTR "
      "dual.default.svc.cluster.local."]),
    (W, "PTR", OK, []),
    # NXDOMAIN versus NODATA, as CoreDNS decides
    ("nosuch.default.svc.cluster.local.", "A", NX, []),
    ("default.svc.cluster.local.", "A", OK, []),
    ("empty.svc.cluster.local.", "A", OK, []),
    ("nosuchns.svc.cluster.local.", "A", NX, []),
    ("svc.cluster.local.", "A", OK, []),
    ("cluster.local.", "A", OK, []),
    ("foo.cluster.local.", "A", NX, []),
    ("a.b.c.web.default.svc.cluster.local.", "A", NX, []),
    ("google.com.default.svc.cluster.local.", "A", NX, []),
    ("www.google.com.svc.cluster.local.", "A", NX, []),
    (W, "MX", OK, []),
    ("nosuch.default.svc.cluster.local.", "MX", NX, []),
    (W, "HINFO", OK, []),
    ("nosuch.default.svc.cluster.local.", "HINFO", NX, []),
    ("nosuch.default.svc.cluster.local.", "SOA", OK, []),
    # TXT: dns-version only; other names NODATA if they exist
    ("dns-version.cluster.local.", "TXT", OK, ['dns-version.cluster.local. 28800 IN TXT "1.1.0"']),
    (W, "TXT", OK, []),
    ("nosuch.default.svc.cluster.local.", "TXT", NX, []),
    ("default.svc.cluster.local.", "TXT", NX, []),
    # apex SOA and NS; ns.dns answers with the kube-dns ClusterIP
    ("cluster.local.", "NS", OK, ["cluster.local. 30 IN NS kube-dns.kube-system.svc.cluster.local."]),
    ("ns.dns.cluster.local.", "A", OK, ["ns.dns.cluster.local. 30 IN A 10.96.0.10"]),
    ("cluster.local.", "AXFR", REFUSED, []),
    ("cluster.local.", "IXFR", REFUSED, []),
]


@pytest.fixture(scope="module")
def view():
    return cluster().view()


def text(rrs):
    return [" ".join(str(rr).split()) for rr in rrs]


@pytest.mark.parametrize("qname,qtype,rcode,answer", CASES, ids=[f"{c[1]} {c[0]}" for c in CASES])
def test_record(view, qname, qtype, rcode, answer):
    got = resolve(view, labels_of(qname), getattr(QTYPE, qtype), CFG)
    assert not got.forward
    assert (RCODE.get(got.rcode), text(got.answer)) == (RCODE.get(rcode), answer)
    if rcode in (NX, OK) and not answer:
        assert [rr.rtype for rr in got.authority] == [QTYPE.SOA]  # NODATA / NXDOMAIN carry the SOA


def test_srv_glue_in_additional(view):
    got = resolve(view, labels_of("_http._tcp." + H), QTYPE.SRV, CFG)
    assert text(got.additional) == [f"db-0.{H} 30 IN A 10.244.2.1", f"db-1.{H} 30 IN A 10.244.2.2"]


def test_ns_glue_is_kube_dns_cluster_ip(view):
    got = resolve(view, labels_of("cluster.local."), QTYPE.NS, CFG)
    assert text(got.additional) == ["kube-dns.kube-system.svc.cluster.local. 30 IN A 10.96.0.10"]


def test_ns_falls_back_to_ns_dns_when_not_behind_a_service(view):
    got = resolve(view, labels_of("cluster.local."), QTYPE.NS, Config(local_ips=("192.0.2.9",)))
    assert text(got.answer) == ["cluster.local. 30 IN NS ns.dns.cluster.local."]
    assert text(got.additional) == ["ns.dns.cluster.local. 30 IN A 192.0.2.9"]


def test_soa_fields_follow_coredns(view):
    got = resolve(view, labels_of("cluster.local."), QTYPE.SOA, CFG)
    (soa,) = got.answer
    assert str(soa.rname) == "cluster.local." and soa.ttl == 30
    assert str(soa.rdata.mname) == "ns.dns.cluster.local." and str(soa.rdata.rname) == "hostmaster.cluster.local."
    assert soa.rdata.times[1:] == (7200, 1800, 86400, 30)
    assert soa.rdata.times[0] == view.serial


def test_out_of_cluster_cname_is_chased_upstream(view):
    got = resolve(view, labels_of("extout.default.svc.cluster.local."), QTYPE.A, CFG)
    assert got.chase == (("example", "com"), QTYPE.A)


@pytest.mark.parametrize("qname,qtype", [("www.example.com.", "A"), ("9.9.9.9.in-addr.arpa.", "PTR"),
                                          ("10.in-addr.arpa.", "PTR"), ("5.1.244.10.in-addr.arpa.", "A")])
def test_names_we_do_not_own_are_forwarded(view, qname, qtype):
    assert resolve(view, labels_of(qname), getattr(QTYPE, qtype), CFG).forward


def test_servfail_until_first_sync():
    """handler.go: before HasSynced only a name error turns into SERVFAIL, written by
    BackendError with the zone's SOA; what is already known is answered."""
    state = ClusterState()
    state.replace("Service", [svc("default", "web", "10.96.0.20", [HTTP])])
    assert text(resolve(state.view(), labels_of(W), QTYPE.A, CFG).answer) == [f"{W} 30 IN A 10.96.0.20"]
    got = resolve(state.view(), labels_of("nosuch.default.svc.cluster.local."), QTYPE.A, CFG)
    assert got.rcode == SERVFAIL and text(got.authority)[0].startswith("cluster.local. 30 IN SOA ns.dns.cluster.local.")
    assert resolve(state.view(), labels_of("default.svc.cluster.local."), QTYPE.A, CFG).rcode == OK
    state.mark_synced()
    assert resolve(state.view(), labels_of("nosuch.default.svc.cluster.local."), QTYPE.A, CFG).rcode == NX


def test_watch_events_change_answers():
    state = cluster()
    q = labels_of("ext.default.svc.cluster.local.")
    state.apply("Service", "MODIFIED", svc("default", "ext", "10.96.0.50", [{"name": "web", "port": 8080}]))
    assert text(resolve(state.view(), q, QTYPE.A, CFG).answer) == ["ext.default.svc.cluster.local. 30 IN A 10.96.0.50"]
    assert resolve(state.view(), labels_of("_web._tcp.ext.default.svc.cluster.local."), QTYPE.SRV, CFG).answer
    state.apply("Service", "DELETED", svc("default", "ext"))
    assert resolve(state.view(), q, QTYPE.A, CFG).rcode == NX
    # a restarted pod's new IP shows in headless answers at once
    state.apply("EndpointSlice", "MODIFIED", eps("default", "headless", [ep("10.244.9.9", hostname="db-0")], [HTTP]))
    assert text(resolve(state.view(), labels_of(H), QTYPE.A, CFG).answer) == [f"{H} 30 IN A 10.244.9.9"]


def test_no_op_updates_do_not_invalidate_and_replace_drops_missing():
    state = cluster()
    gen = state.generation
    state.apply("Service", "MODIFIED", svc("default", "web", "10.96.0.20", [HTTP]))
    assert state.generation == gen  # same slim object: prepared answers stay valid
    state.replace("Service", [svc("default", "web", "10.96.0.20", [HTTP])])
    assert state.generation == gen + 1
    assert resolve(state.view(), labels_of("kubernetes.default.svc.cluster.local."), QTYPE.A, CFG).rcode == NX
