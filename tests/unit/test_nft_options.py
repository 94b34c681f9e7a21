"""dataplane.nft: the render's options that kube-proxy's expected dumps do not cover.

nodePortAddresses (nftables mode's "primary" default, loopback, MatchAll),
the Service CIDR drop rule, every detectLocalMode, loadBalancerSourceRanges
with invalid entries, internalTrafficPolicy Local with session affinity,
the render cache, headless Services and `text(replace=True)`.
"""
from __future__ import annotations

import pytest

from dataplane.model import Endpoint, NodeInfo, ServicePort
from dataplane.nft.render import NftRenderCache, render

NODE = NodeInfo("test-node", "10.0.0.0/8", ("192.168.0.2",), node_port_ips=("192.168.0.2",))


def sp(ns, name, port_name="p80", protocol="TCP", cluster_ip="172.30.0.41", port=80, **kw) -> ServicePort:
    return ServicePort(ns, name, port_name, protocol, cluster_ip, port, **kw)


def ep(ip, port=80, node=None) -> Endpoint:
    return Endpoint(ip, port, node_name=node)


def chain_rules(ruleset, prefix: str) -> tuple[str, ...]:
    (name,) = [c for c in ruleset.chains if c.startswith(prefix) and "/" in c]
    return ruleset.chains[name]


def test_node_port_addresses():
    """Unset: the primary node IP (nftables mode's default); loopback never;
    no node IP at all: every local address but 127.0.0.0/8 (MatchAll)."""
    svc = {sp("ns1", "svc1", node_port=3001): [ep("10.0.1.1")]}
    primary = render(svc, NodeInfo("n", "10.0.0.0/8", ("192.168.0.2", "192.168.1.2")))
    assert primary.sets["nodeport-ips"][1] == {"192.168.0.2"}
    chosen = render(svc, NodeInfo("n", "10.0.0.0/8", ("192.168.0.2",), node_port_ips=("127.0.0.1", "192.168.1.2")))
    assert chosen.sets["nodeport-ips"][1] == {"192.168.1.2"}
    every = render(svc, NodeInfo("n", "10.0.0.0/8"))
    assert "nodeport-ips" not in every.sets
    assert every.chains["services"][1] == ("fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport "
                                           "vmap @service-nodeports")
    assert every.chains["nodeport-endpoints-check"] == (
        "ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports",)


def test_without_service_cidrs_nothing_is_dropped_as_unallocated():
    ruleset = render({}, NODE)
    assert ruleset.chains["cluster-ips-check"] == (
        'ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"',)
    two = render({}, NODE, service_cidrs=("10.96.0.0/16", "10.97.0.0/16"))
    assert two.chains["cluster-ips-check"][1].startswith("ip daddr { 10.96.0.0/16,10.97.0.0/16 } drop")


@pytest.mark.parametrize("detect, if_local, if_not_local", [
    (None, "ip saddr 10.0.0.0/8", "ip saddr != 10.0.0.0/8"),
    ("-s 10.0.5.0/24", "ip saddr 10.0.5.0/24", "ip saddr != 10.0.5.0/24"),
    ("-i cbr0", "iif cbr0", "iif != cbr0"),
    ("-i veth+", "iifname veth*", "iifname != veth*"),
])
def test_detect_local_modes(detect, if_local, if_not_local):
    node = NodeInfo("test-node", "10.0.0.0/8", ("192.168.0.2",), detect_local=detect)
    ruleset = render({sp("ns1", "svc1", node_port=3001, external_policy_local=True): [ep("10.0.1.1", node="test-node")]},
                     node)
    assert chain_rules(ruleset, "service-")[0] == f"ip daddr 172.30.0.41 tcp dport 80 {if_not_local} jump mark-for-masquerade"
    assert chain_rules(ruleset, "external-")[0].startswith(f"{if_local} goto service-")


def test_no_local_detector_and_bad_detector():
    ruleset = render({sp("ns1", "svc1"): [ep("10.0.1.1")]}, NodeInfo("n", ""))
    assert chain_rules(ruleset, "service-")[0].startswith("numgen random mod 1 vmap")
    with pytest.raises(ValueError, match="detectLocal match"):
        render({}, NodeInfo("n", "", detect_local="-x y"))


def test_source_ranges_invalid_entries_and_node_outside():
    """Invalid ranges are left out as kube-proxy does; the LB IPs are allowed
    as sources only when a range holds the node IP; all invalid: no firewall."""
    svc = sp("ns1", "svc1", load_balancer_ips=("1.2.3.4",), load_balancer_source_ranges=("nonsense", "203.0.113.7/25"))
    ruleset = render({svc: [ep("10.0.1.1")]}, NODE)
    assert chain_rules(ruleset, "firewall-") == ("ip saddr != { 203.0.113.0/25 } drop",)
    bad = sp("ns1", "svc1", load_balancer_ips=("1.2.3.4",), load_balancer_source_ranges=("nonsense",))
    ruleset = render({bad: [ep("10.0.1.1")]}, NODE)
    assert not [c for c in ruleset.chains if c.startswith("firewall-") and "/" in c] and not ruleset.maps["firewall-ips"][1]


def test_internal_traffic_policy_local_with_affinity():
    """iTP:Local dispatches from the `local-` chain, with affinity lookups for
    the local endpoints only; a port without local endpoints drops."""
    svc = sp("ns1", "svc1", internal_policy_local=True, affinity_timeout=60)
    ruleset = render({svc: [ep("10.0.1.1", node="test-node"), ep("10.0.1.2", node="other")]}, NODE)
    local = chain_rules(ruleset, "local-")
    assert local[0] == "ip daddr 172.30.0.41 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade"
    assert local[1].startswith("ip saddr @affinity-") and "10.0.1.1/80 goto endpoint-" in local[1]
    assert local[2].startswith("numgen random mod 1 vmap")
    assert [s for s in ruleset.sets if s.startswith("affinity-")] == [local[1].split()[2][1:]]
    assert ruleset.sets[local[1].split()[2][1:]][0] == "type ipv4_addr ; flags dynamic,timeout ; timeout 60s ;"
    assert ruleset.reachable(svc) == (ep("10.0.1.1", node="test-node"),)
    none_here = render({svc: [ep("10.0.1.2", node="other")]}, NODE)
    assert none_here.maps["no-endpoint-services"][1] == {'172.30.0.41 . tcp . 80 comment "ns1/svc1:p80"': "drop"}
    assert none_here.reachable(svc) == ()


def test_cache_reuses_unchanged_ports_and_resets_for_another_node():
    cache = NftRenderCache()
    services = {sp("ns1", "svc1"): [ep("10.0.1.1")], sp("ns1", "svc2", cluster_ip="172.30.0.42"): [ep("10.0.1.2")]}
    first = render(services, NODE, cache).text()
    assert render(services, NODE, cache).text() == first and cache.hits == 2
    render(services, NodeInfo("other", "10.0.0.0/8", ("192.168.0.3",)), cache)
    assert cache.hits == 0


def test_text_replace_and_headless():
    ruleset = render({sp("ns1", "headless", cluster_ip=None): [ep("10.0.1.1")]}, NODE)
    assert ruleset.service_ports == 1 and ruleset.endpoints == 1 and ruleset.maps["service-ips"][1] == {}
    first = ruleset.text(replace=True).splitlines()[:3]
    assert first == ["add table ip kube-proxy", "delete table ip kube-proxy",
                     'add table ip kube-proxy { comment "rules for kube-proxy" ; }']
