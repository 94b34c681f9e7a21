"""The pure half of `nsplane trace`: targets, the resolver's search order,
counter deltas in a packet's order, conntrack lines, the Service an
address means, and the verdict."""
import pytest

from agent.cli.trace.path import (
    candidates,
    hit,
    parse_conntrack,
    parse_counters,
    parse_resolv,
    parse_target,
    service_for,
    verdict,
)


def test_parse_target():
    assert parse_target("http://web") == ("web", 80, "http://web")
    assert parse_target("web:8080") == ("web", 8080, "http://web:8080")
    assert parse_target("https://10.96.0.1/x") == ("10.96.0.1", 443, "https://10.96.0.1/x")
    for bad in ("ftp://web", "http://web:99999", "http://"):
        with pytest.raises(ValueError):
            parse_target(bad)


def test_resolver_search_order_follows_ndots():
    servers, search, ndots = parse_resolv(
        "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n")
    assert (servers, ndots) == (["10.96.0.10"], 5)
    assert candidates("web", search, ndots)[0] == "web.default.svc.cluster.local"
    assert candidates("web", search, ndots)[-1] == "web"
    assert candidates("a.b.c.d.e.f", search, ndots)[0] == "a.b.c.d.e.f"
    assert candidates("web.default.svc.cluster.local.", search, ndots) == ["web.default.svc.cluster.local"]


SAVE = """*nat
:KUBE-SERVICES - [0:0]
[0:0] -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
[3:180] -A KUBE-SEP-A -p tcp -m comment --comment "default/web" -m tcp -j DNAT --to-destination 10.244.1.2:80
[5:300] -A KUBE-SERVICES -d 10.96.5.5/32 -p tcp -m comment --comment "default/web cluster IP" -m tcp --dport 80 -j KUBE-SVC-X
[4:240] -A KUBE-SVC-X -m comment --comment "default/web -> 10.244.1.2:80" -j KUBE-SEP-A
COMMIT
"""


def test_counter_deltas_in_a_packets_order():
    before = parse_counters(SAVE)
    after = parse_counters(SAVE.replace("[0:0] -A KUBE-POST", "[1:60] -A KUBE-POST").replace("[3:180]", "[4:240]")
                           .replace("[5:300]", "[6:360]").replace("[4:240] -A KUBE-SVC", "[5:300] -A KUBE-SVC"))
    rows = hit(before, after, lambda t, c, r: True)
    assert [r["chain"] for r in rows] == ["KUBE-SERVICES", "KUBE-SVC-X", "KUBE-SEP-A", "KUBE-POSTROUTING"]
    assert all(r["packets"] == 1 for r in rows)
    assert rows[-1]["meaning"].startswith("not marked 0x4000")
    assert hit(before, before, lambda t, c, r: True) == []


def test_parse_conntrack():
    e = parse_conntrack("tcp      6 119 TIME_WAIT src=10.244.1.4 dst=10.96.5.5 sport=57638 dport=80 "
                        "src=10.244.1.2 dst=10.244.1.4 sport=80 dport=57638 [ASSURED] mark=0 use=1")
    assert e["state"] == "TIME_WAIT"
    assert e["orig"] == {"src": "10.244.1.4", "dst": "10.96.5.5", "sport": "57638", "dport": "80"}
    assert e["reply"]["src"] == "10.244.1.2" and e["reply"]["dst"] == "10.244.1.4"


def test_service_for_cluster_ip_lb_ip_and_node_port():
    svc = {"spec": {"clusterIP": "10.96.5.5", "ports": [{"port": 80, "nodePort": 30080}]},
           "status": {"loadBalancer": {"ingress": [{"ip": "172.28.0.200"}]}}}
    assert service_for([svc], "10.96.5.5", 80, set())[1]["port"] == 80
    assert service_for([svc], "172.28.0.200", 80, set()) is not None
    assert service_for([svc], "172.28.0.11", 30080, {"172.28.0.11"}) is not None
    assert service_for([svc], "10.96.5.5", 81, set()) is None


def test_verdicts():
    reject = {"table": "filter", "chain": "KUBE-SERVICES", "meaning": "reject: the Service has no endpoints",
              "rule": "-A KUBE-SERVICES -j REJECT --reject-with icmp-port-unreachable"}
    assert verdict([reject], None, False).startswith("rejected by filter KUBE-SERVICES")
    entry = {"reply": {"src": "10.244.1.2", "sport": "80"}}
    assert verdict([], entry, True) == "answered by 10.244.1.2:80"
    assert verdict([], None, False, "10.96.5.5:81", "timed out").startswith("no Service has 10.96.5.5:81")
