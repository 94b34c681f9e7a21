"""dataplane.nft.listing and dataplane.nft.trace on a table read back from
the kernel: nft_captured_table.json / .txt are `nft -j list table ip
kube-proxy` and `nft list table ip kube-proxy` (nft 1.0.6) of a rendered
ruleset loaded into a throwaway namespace: default/web (ClusterIP 10.96.31.254,
nodePort 30080, LB 172.28.0.200 with loadBalancerSourceRanges 172.28.0.0/16,
endpoints 10.244.0.5 and 10.244.1.2:8080), default/loc (eTP Local, its one
endpoint on another node), default/sticky (ClientIP affinity),
default/nobody (no endpoints) and kube-dns 53/UDP; node IP 172.28.0.11,
cluster CIDR 10.244.0.0/16, service CIDR 10.96.0.0/12."""
import json
import os

import pytest

from dataplane.model import Endpoint, NodeInfo, ServicePort
from dataplane.nft import listing
from dataplane.nft.render import render
from dataplane.nft.trace import UnknownRule, outcome, walk

HERE = os.path.dirname(__file__)
NODE_IP = "172.28.0.11"
WEB_SVC = "service-SUSTUHLJ-default/web/tcp/http"


@pytest.fixture(scope="module")
def table():
    with open(os.path.join(HERE, "nft_captured_table.json")) as f:
        return listing.parse(json.load(f))


def test_every_rule_prints_as_nft_list_prints_it(table):
    with open(os.path.join(HERE, "nft_captured_table.txt")) as f:
        lines = {line.strip() for line in f}
    rules = [r for chain in table.chains.values() for r in chain]
    assert len(rules) > 40
    assert [r for r in rules if r not in lines] == []
    assert "meta mark & 0x00004000 == 0x00000000 return" in table.chains["masquerading"]
    assert table.chains["firewall-SUSTUHLJ-default/web/tcp/http"] == ("ip saddr != { 172.28.0.0/16 } drop",)


def test_maps_sets_and_base_chains_as_the_render_writes_them(table):
    assert table.maps["no-endpoint-services"][1] == {'10.96.7.7 . tcp . 80 comment "default/nobody"': "goto reject-chain"}
    assert table.maps["service-nodeports"][1]["tcp . 30080"] == "goto external-SUSTUHLJ-default/web/tcp/http"
    assert table.sets["nodeport-ips"][1] == frozenset({NODE_IP})
    assert table.base_chains["nat-prerouting"] == "type nat hook prerouting priority -100 ;"
    assert table.chains["services"][0] == "ip daddr . meta l4proto . th dport vmap @service-ips"


def test_pod_to_cluster_ip_walks_service_numgen_endpoint_dnat(table):
    paths = walk(table, "10.244.0.9", "10.96.31.254", 80, "tcp", [NODE_IP])
    assert outcome(paths) == ("10.244.0.5:8080, 10.244.1.2:8080", False)
    path = next(p for p in paths if p.outcome == "10.244.1.2:8080")
    chains = [h.chain for h in path.hops]
    assert chains == ["nat-prerouting", "services", WEB_SVC,
                      "endpoint-SVLGPL42-default/web/tcp/http__10.244.1.2/8080", "nat-postrouting", "masquerading"]
    assert path.hops[1].did == f"10.96.31.254 . tcp . 80 in @service-ips: goto {WEB_SVC}"
    assert path.hops[2].rule.startswith("numgen random mod 2 vmap { 0 : goto endpoint-4VJT4MCW")
    assert path.hops[2].did.startswith("picks 1 of 2 at random: goto endpoint-SVLGPL42")
    assert path.hops[3].did == "DNAT to 10.244.1.2:8080"


def test_outside_to_node_port_is_masqueraded(table):
    paths = walk(table, "172.28.0.1", NODE_IP, 30080, "tcp", [NODE_IP])
    assert outcome(paths) == ("10.244.0.5:8080, 10.244.1.2:8080", True)
    hops = paths[0].hops
    assert hops[1].rule == "ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports"
    assert any(h.chain == "mark-for-masquerade" for h in hops)
    assert hops[-1].rule == "masquerade fully-random"


def test_load_balancer_source_ranges_drop_in_the_firewall_chain(table):
    paths = walk(table, "10.1.2.3", "172.28.0.200", 80, "tcp", [NODE_IP])
    assert outcome(paths) == ("DROP", False)
    assert paths[0].hops[-1].chain == "firewall-SUSTUHLJ-default/web/tcp/http"
    assert outcome(walk(table, "172.28.0.1", "172.28.0.200", 80, "tcp", [NODE_IP]))[1] is True


def test_no_endpoints_rejected_by_reject_chain(table):
    paths = walk(table, "10.244.0.9", "10.96.7.7", 80, "tcp", [NODE_IP])
    assert outcome(paths) == ("REJECT", False)
    assert [h.chain for h in paths[0].hops][-2:] == ["service-endpoints-check", "reject-chain"]
    assert paths[0].stopped_in == "filter-forward"


def test_etp_local_without_local_endpoint_drops_external_and_serves_pods(table):
    assert outcome(walk(table, "172.28.0.1", NODE_IP, 30110, "tcp", [NODE_IP])) == ("DROP", False)
    assert outcome(walk(table, "10.244.0.9", "10.96.5.5", 80, "tcp", [NODE_IP])) == ("10.244.1.7:8080", False)


def test_from_the_node_itself_goes_through_output_and_is_masqueraded(table):
    paths = walk(table, NODE_IP, "10.96.0.10", 53, "udp", [NODE_IP])
    assert outcome(paths) == ("10.244.0.3:53", True)
    assert paths[0].hops[0].chain == "nat-output"


def test_wrong_port_of_a_cluster_ip_rejected_unallocated_dropped(table):
    assert outcome(walk(table, "10.244.0.9", "10.96.31.254", 81, "tcp", [NODE_IP])) == ("REJECT", False)
    assert outcome(walk(table, "10.244.0.9", "10.100.0.1", 80, "tcp", [NODE_IP])) == ("DROP", False)
    assert outcome(walk(table, "10.244.0.9", "8.8.8.8", 80, "tcp", [NODE_IP])) == ("", False)


def test_rendered_and_listed_tables_walk_alike(table):
    """The render's own syntax (" , ", "mark set mark or") walks as nft's listing does."""
    node = NodeInfo("node-1", "10.244.0.0/16", (NODE_IP,))
    web = ServicePort("default", "web", "http", "TCP", "10.96.31.254", 80, node_port=30080)
    rs = render({web: [Endpoint("10.244.1.2", 8080, node_name="node-2"),
                       Endpoint("10.244.0.5", 8080, node_name="node-1")]}, node, service_cidrs=("10.96.0.0/12",))
    for src, dst, port in (("10.244.0.9", "10.96.31.254", 80), ("172.28.0.1", NODE_IP, 30080)):
        assert outcome(walk(rs, src, dst, port, "tcp", [NODE_IP])) == outcome(walk(table, src, dst, port, "tcp", [NODE_IP]))


def test_a_rule_outside_kube_proxys_vocabulary_is_refused_by_name(table):
    doc = {"nftables": [{"chain": {"family": "ip", "table": "kube-proxy", "name": "nat-prerouting", "type": "nat",
                                   "hook": "prerouting", "prio": -100}},
                        {"rule": {"family": "ip", "table": "kube-proxy", "chain": "nat-prerouting",
                                  "expr": [{"queue": {"num": 1}}]}}]}
    rs = listing.parse(doc)
    assert rs.chains["nat-prerouting"] == ('{"queue": {"num": 1}}',)
    with pytest.raises(UnknownRule, match="nat-prerouting"):
        walk(rs, "10.244.0.9", "10.96.0.1", 443)
