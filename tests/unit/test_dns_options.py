"""The kubernetes block's options, case by case as CoreDNS 1.11's plugin/kubernetes answers them.

The tables follow CoreDNS's own tests (handler_pod_{disabled,insecure,verified}_test.go,
handler_ignore_emptyservice_test.go, reverse_test.go, kubernetes_test.go
TestEndpointHostname, setup_ttl_test.go) and coredns/ci's test/kubernetes cases
(pods_test.go, fallthrough_test.go, ptr_test.go, endpoints_test.go), rebuilt
over our own objects: {qname, qtype, rcode, answer}.
"""

import pytest
from dnslib import QTYPE, RCODE

from dns.cluster import ClusterState
from dns.names import labels_of
from dns.records import Config, resolve

NX, OK, SERVFAIL = RCODE.NXDOMAIN, RCODE.NOERROR, RCODE.SERVFAIL
HTTP = {"name": "http", "protocol": "TCP", "port": 80}
Z = "cluster.local."


def svc(ns, name, cluster_ip, ports=(HTTP,), type_="ClusterIP", **spec):
    body = {"type": type_, "clusterIP": cluster_ip, "ports": [dict(p) for p in ports], **spec}
    return {"kind": "Service", "metadata": {"namespace": ns, "name": name}, "spec": body}


def eps(ns, service, endpoints, name=None):
    return {"kind": "EndpointSlice", "metadata": {"namespace": ns, "name": name or f"{service}-abcde",
                                                  "labels": {"kubernetes.io/service-name": service}},
            "ports": [HTTP], "endpoints": endpoints}


def ep(ip, hostname=None, pod=None, ready=True):
    out = {"addresses": [ip], "conditions": {"ready": ready}}
    if hostname:
        out["hostname"] = hostname
    if pod:
        out["targetRef"] = {"kind": "Pod", "name": pod}
    return out


def pod(ns, name, ip):
    return {"kind": "Pod", "metadata": {"namespace": ns, "name": name}, "spec": {},
            "status": {"podIP": ip, "podIPs": [{"ip": ip}]}}


def state(synced=True) -> ClusterState:
    st = ClusterState()
    st.replace("Namespace", [{"metadata": {"name": n}} for n in ("podns", "svcns", "testns", "other")])
    st.replace("Service", [
        svc("testns", "svc1", "10.96.0.100"),
        svc("testns", "svcempty", "10.96.0.101"),
        svc("testns", "hdls1", "None"),
        svc("testns", "external", "", type_="ExternalName", externalName="ext.interwebs.test"),
        svc("other", "web", "10.96.0.120"),
    ])
    st.replace("EndpointSlice", [
        eps("testns", "svc1", [ep("10.244.0.10", hostname="ep1a"), ep("10.244.0.11", pod="svc1-pod-b")]),
        eps("testns", "svcempty", [ep("10.244.0.12", ready=False)]),
        eps("testns", "hdls1", [ep("10.244.0.20", pod="hdls1-0"), ep("10.244.0.21", hostname="named")]),
        eps("other", "web", [ep("10.244.0.30")]),
        # a slice whose Service is gone (deleted, or not yet seen): its PTRs stay (EpIndexReverse)
        eps("testns", "svc2", [ep("10.244.0.99", hostname="double-ep")]),
    ])
    st.replace("Pod", [pod("podns", "p1", "10.240.0.1"), pod("other", "p2", "10.240.0.2")])
    if synced:
        st.mark_synced()
    return st


VIEW = state().view()


def text(rrs):
    return [" ".join(str(rr).split()) for rr in rrs]


def check(cfg, qname, qtype, rcode, answer, view=VIEW):
    got = resolve(view, labels_of(qname), getattr(QTYPE, qtype), cfg)
    assert not got.forward, f"{qname} {qtype} fell through"
    assert (got.rcode, text(got.answer)) == (rcode, answer)
    if not answer:
        assert [rr.rtype for rr in got.authority] == [QTYPE.SOA]
    return got


P1 = "10-240-0-1.podns.pod.cluster.local."
POD_CASES = {
    "disabled": [
        (P1, "A", NX, []),
        ("172-0-0-2.podns.pod.cluster.local.", "A", NX, []),
        ("podns.pod.cluster.local.", "A", NX, []),
    ],
    "insecure": [
        (P1, "A", OK, [f"{P1} 5 IN A 10.240.0.1"]),
        ("172-0-0-2.podns.pod.cluster.local.", "A", OK, ["172-0-0-2.podns.pod.cluster.local. 5 IN A 172.0.0.2"]),
        ("blah.podns.pod.cluster.local.", "A", NX, []),
        ("blah.podns.pod.cluster.local.", "AAAA", NX, []),
        ("blah.podns.pod.cluster.local.", "HINFO", NX, []),
        ("blah.pod-nons.pod.cluster.local.", "A", NX, []),
        ("podns.pod.cluster.local.", "A", OK, []),
        (P1, "SRV", OK, [f"{P1} 5 IN SRV 0 100 0 {P1}"]),
    ],
    "verified": [
        (P1, "A", OK, [f"{P1} 5 IN A 10.240.0.1"]),
        ("podns.pod.cluster.local.", "A", OK, []),
        ("svcns.svc.cluster.local.", "A", OK, []),
        ("pod-nons.pod.cluster.local.", "A", NX, []),
        ("172-0-0-2.podns.pod.cluster.local.", "A", NX, []),
        # the pod exists, but in another namespace
        ("10-240-0-2.podns.pod.cluster.local.", "A", NX, []),
        ("10-240-0-2.other.pod.cluster.local.", "A", OK, ["10-240-0-2.other.pod.cluster.local. 5 IN A 10.240.0.2"]),
    ],
}


@pytest.mark.parametrize("mode,case", [(m, c) for m, cs in POD_CASES.items() for c in cs],
                         ids=[f"{m} {c[1]} {c[0]}" for m, cs in POD_CASES.items() for c in cs])
def test_pods_modes(mode, case):
    check(Config(ttl=5, pods=mode, fallthrough=None), *case)


def test_pods_verified_follows_the_pod_index():
    st = state()
    cfg = Config(ttl=5, pods="verified", fallthrough=None)
    name = labels_of("10-240-0-9.podns.pod.cluster.local.")
    assert resolve(st.view(), name, QTYPE.A, cfg).rcode == NX
    st.apply("Pod", "ADDED", pod("podns", "p9", "10.240.0.9"))
    assert text(resolve(st.view(), name, QTYPE.A, cfg).answer) == [
        "10-240-0-9.podns.pod.cluster.local. 5 IN A 10.240.0.9"]
    st.apply("Pod", "DELETED", pod("podns", "p9", "10.240.0.9"))
    assert resolve(st.view(), name, QTYPE.A, cfg).rcode == NX


def test_ignore_empty_service():
    cfg = Config(ttl=5, ignore_empty_service=True, fallthrough=None)
    check(cfg, "svcempty.testns.svc.cluster.local.", "A", NX, [])
    check(cfg, "_http._tcp.svcempty.testns.svc.cluster.local.", "SRV", NX, [])
    check(cfg, "external.testns.svc.cluster.local.", "CNAME", OK,
          ["external.testns.svc.cluster.local. 5 IN CNAME ext.interwebs.test."])
    check(cfg, "svc1.testns.svc.cluster.local.", "A", OK, ["svc1.testns.svc.cluster.local. 5 IN A 10.96.0.100"])
    # without the option the empty Service still has its ClusterIP
    check(Config(ttl=5), "svcempty.testns.svc.cluster.local.", "A", OK,
          ["svcempty.testns.svc.cluster.local. 5 IN A 10.96.0.101"])


def test_namespaces_limit_what_is_exposed():
    cfg = Config(ttl=5, namespaces=frozenset({"testns"}), fallthrough=None)
    check(cfg, "svc1.testns.svc.cluster.local.", "A", OK, ["svc1.testns.svc.cluster.local. 5 IN A 10.96.0.100"])
    check(cfg, "web.other.svc.cluster.local.", "A", NX, [])
    check(cfg, "other.svc.cluster.local.", "A", NX, [])
    check(cfg, "10-240-0-2.other.pod.cluster.local.", "A", NX, [])
    # reverse.go skips Services and endpoints of namespaces not exposed
    check(cfg, "120.0.96.10.in-addr.arpa.", "PTR", NX, [])
    check(cfg, "30.0.244.10.in-addr.arpa.", "PTR", NX, [])
    check(cfg, "100.0.96.10.in-addr.arpa.", "PTR", OK,
          ["100.0.96.10.in-addr.arpa. 5 IN PTR svc1.testns.svc.cluster.local."])


@pytest.mark.parametrize("pod_names,qname,rcode,answer", [
    (False, "10-244-0-20.hdls1.testns.svc.cluster.local.", OK,
     ["10-244-0-20.hdls1.testns.svc.cluster.local. 5 IN A 10.244.0.20"]),
    (False, "hdls1-0.hdls1.testns.svc.cluster.local.", NX, []),
    (True, "hdls1-0.hdls1.testns.svc.cluster.local.", OK, ["hdls1-0.hdls1.testns.svc.cluster.local. 5 IN A 10.244.0.20"]),
    (True, "10-244-0-20.hdls1.testns.svc.cluster.local.", NX, []),
    (True, "named.hdls1.testns.svc.cluster.local.", OK, ["named.hdls1.testns.svc.cluster.local. 5 IN A 10.244.0.21"]),
])
def test_endpoint_pod_names(pod_names, qname, rcode, answer):
    check(Config(ttl=5, endpoint_pod_names=pod_names, fallthrough=None), qname, "A", rcode, answer)


def test_endpoint_pod_names_in_srv_and_ptr():
    cfg = Config(ttl=5, endpoint_pod_names=True, fallthrough=None)
    h = "hdls1.testns.svc.cluster.local."
    check(cfg, f"_http._tcp.{h}", "SRV", OK, [f"_http._tcp.{h} 5 IN SRV 0 50 80 hdls1-0.{h}",
                                              f"_http._tcp.{h} 5 IN SRV 0 50 80 named.{h}"])
    check(cfg, "20.0.244.10.in-addr.arpa.", "PTR", OK, [f"20.0.244.10.in-addr.arpa. 5 IN PTR hdls1-0.{h}"])
    check(Config(ttl=5), "20.0.244.10.in-addr.arpa.", "PTR", OK, [f"20.0.244.10.in-addr.arpa. 5 IN PTR 10-244-0-20.{h}"])


def test_noendpoints():
    cfg = Config(ttl=5, noendpoints=True, fallthrough=None)
    check(cfg, "svc1.testns.svc.cluster.local.", "A", OK, ["svc1.testns.svc.cluster.local. 5 IN A 10.96.0.100"])
    check(cfg, "hdls1.testns.svc.cluster.local.", "A", NX, [])
    check(cfg, "ep1a.svc1.testns.svc.cluster.local.", "A", NX, [])
    check(cfg, "10.0.244.10.in-addr.arpa.", "PTR", NX, [])
    check(cfg, "100.0.96.10.in-addr.arpa.", "PTR", OK,
          ["100.0.96.10.in-addr.arpa. 5 IN PTR svc1.testns.svc.cluster.local."])
    # with ignore empty_service too, every ClusterIP Service is empty (no endpoint cache)
    both = Config(ttl=5, noendpoints=True, ignore_empty_service=True, fallthrough=None)
    check(both, "svc1.testns.svc.cluster.local.", "A", NX, [])


def test_ttl_is_every_records_and_the_soa_minimum():
    for ttl in (0, 56, 3600):
        got = check(Config(ttl=ttl), "svc1.testns.svc.cluster.local.", "A", OK,
                    [f"svc1.testns.svc.cluster.local. {ttl} IN A 10.96.0.100"])
        soa = resolve(VIEW, labels_of(Z), QTYPE.SOA, Config(ttl=ttl)).answer[0]
        assert soa.ttl == min(ttl, 300) and soa.rdata.times[-1] == ttl
        assert got.rcode == OK


@pytest.mark.parametrize("kwargs,message", [
    ({"ttl": -1}, "ttl must be in range [0, 3600]: -1"),
    ({"ttl": 3601}, "ttl must be in range [0, 3600]: 3601"),
    ({"pods": "sometimes"}, "wrong value for pods: sometimes,  must be one of: disabled, verified, insecure"),
    ({"reverse_zones": (("example", "org"),)}, "reverse_zones must be under in-addr.arpa or ip6.arpa"),
])
def test_bad_options_are_refused_with_corednss_words(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Config(**kwargs)


# -- reverse zones given as CIDRs (reverse_test.go, ci ptr_test.go) ------------

REV = Config(ttl=5, fallthrough=None,
             reverse_zones=(labels_of("0.96.10.in-addr.arpa."), labels_of("0.244.10.in-addr.arpa.")))
REVERSE_CASES = [
    ("100.0.96.10.in-addr.arpa.", "PTR", OK, ["100.0.96.10.in-addr.arpa. 5 IN PTR svc1.testns.svc.cluster.local."]),
    ("10.0.244.10.in-addr.arpa.", "PTR", OK, ["10.0.244.10.in-addr.arpa. 5 IN PTR ep1a.svc1.testns.svc.cluster.local."]),
    ("11.0.244.10.in-addr.arpa.", "PTR", OK,
     ["11.0.244.10.in-addr.arpa. 5 IN PTR 10-244-0-11.svc1.testns.svc.cluster.local."]),
    # the Service svc2 is gone; its EndpointSlice still names the address
    ("99.0.244.10.in-addr.arpa.", "PTR", OK, ["99.0.244.10.in-addr.arpa. 5 IN PTR double-ep.svc2.testns.svc.cluster.local."]),
    ("200.0.96.10.in-addr.arpa.", "PTR", NX, []),
    ("svc1.testns.svc.0.96.10.in-addr.arpa.", "A", NX, []),
    ("0.96.10.in-addr.arpa.", "PTR", OK, []),
    ("100.0.0.10.cluster.local.", "PTR", NX, []),
    ("example.org.cluster.local.", "PTR", NX, []),
    ("svc1.testns.svc.cluster.local.", "PTR", OK, []),
]


@pytest.mark.parametrize("qname,qtype,rcode,answer", REVERSE_CASES, ids=[f"{c[1]} {c[0]}" for c in REVERSE_CASES])
def test_reverse_zones_from_cidrs(qname, qtype, rcode, answer):
    got = check(REV, qname, qtype, rcode, answer)
    if rcode == NX and qname.endswith("in-addr.arpa."):
        zone = "0.96.10.in-addr.arpa." if ".0.96.10." in qname else "0.244.10.in-addr.arpa."
        assert text(got.authority)[0].startswith(f"{zone} 5 IN SOA ns.dns.{zone} hostmaster.{zone}")


def test_ptr_outside_the_reverse_zones_is_not_ours():
    # 10.97.0.5 is outside 10.96.0.0/24 and 10.244.0.0/24: the next plugin's
    assert resolve(VIEW, labels_of("5.0.97.10.in-addr.arpa."), QTYPE.PTR, REV).forward
    assert resolve(VIEW, labels_of("100.0.96.10.in-addr.arpa."), QTYPE.PTR, REV).answer


# -- fallthrough (ci fallthrough_test.go) -------------------------------------

@pytest.mark.parametrize("fallthrough,qname,qtype,forwarded", [
    ((), "foo.cluster.local.", "A", True),
    ((), "nosuch.testns.svc.cluster.local.", "A", True),
    ((), "svc1.testns.svc.cluster.local.", "A", False),
    ((), "svc1.testns.svc.cluster.local.", "AAAA", False),          # NODATA never falls through
    ((labels_of("svc.cluster.local."),), "nosuch.testns.svc.cluster.local.", "A", True),
    ((labels_of("svc.cluster.local."),), "foo.cluster.local.", "A", False),
    (None, "nosuch.testns.svc.cluster.local.", "A", False),
    (None, "9.9.9.9.in-addr.arpa.", "PTR", False),
    (Config().fallthrough, "9.9.9.9.in-addr.arpa.", "PTR", True),    # kubeadm's in-addr.arpa ip6.arpa
    (Config().fallthrough, "nosuch.testns.svc.cluster.local.", "A", False),
])
def test_fallthrough_zones(fallthrough, qname, qtype, forwarded):
    got = resolve(VIEW, labels_of(qname), getattr(QTYPE, qtype), Config(fallthrough=fallthrough))
    assert got.forward is forwarded
    if not forwarded:
        assert got.rcode in (NX, OK) and (got.answer or got.authority)


def test_fallthrough_before_sync_and_servfail_with_soa():
    """handler.go checks fallthrough first, then HasSynced: an unsynced name error is
    SERVFAIL with the SOA, unless it falls through."""
    view = state(synced=False).view()
    got = resolve(view, labels_of("nosuch.testns.svc.cluster.local."), QTYPE.A, Config(fallthrough=None))
    assert got.rcode == SERVFAIL and [rr.rtype for rr in got.authority] == [QTYPE.SOA]
    assert resolve(view, labels_of("nosuch.testns.svc.cluster.local."), QTYPE.A, Config(fallthrough=())).forward
    assert resolve(view, labels_of("svc1.testns.svc.cluster.local."), QTYPE.A, Config()).answer


def test_endpoint_hostname_table():
    """kubernetes_test.go TestEndpointHostname, through the view's addresses."""
    st = ClusterState()
    st.replace("EndpointSlice", [eps("ns", "s", [ep("10.11.12.13"), ep("10.11.12.14", hostname="epname"),
                                                 ep("10.11.12.15", pod="hello-abcde"),
                                                 ep("10.11.12.16", hostname="epname", pod="hello-abcde")])])
    addrs = {a.ip: a for sub in st.view().subsets[("ns", "s")] for a in sub.addresses}
    assert [(addrs[ip].label(False), addrs[ip].label(True)) for ip in sorted(addrs)] == [
        ("10-11-12-13", "10-11-12-13"), ("epname", "epname"),
        ("10-11-12-15", "hello-abcde"), ("epname", "epname")]


def test_ns_records_follow_the_endpoint_cache():
    """ns.go: the Service whose endpoint is this server's IP; with `noendpoints` there is
    no endpoint to find, so ns.dns.<zone> with the server's own address."""
    local = ("10.244.0.10",)   # svc1's endpoint ep1a
    got = resolve(VIEW, labels_of(Z), QTYPE.NS, Config(ttl=5, local_ips=local))
    assert text(got.answer) == ["cluster.local. 5 IN NS svc1.testns.svc.cluster.local."]
    assert text(got.additional) == ["svc1.testns.svc.cluster.local. 5 IN A 10.96.0.100"]
    got = resolve(VIEW, labels_of(Z), QTYPE.NS, Config(ttl=5, local_ips=local, noendpoints=True))
    assert text(got.answer) == ["cluster.local. 5 IN NS ns.dns.cluster.local."]
    assert text(got.additional) == ["ns.dns.cluster.local. 5 IN A 10.244.0.10"]
