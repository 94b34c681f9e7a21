"""`nsplane trace`'s nftables half (agent/cli/trace/nftpath.py) on the table
captured from the kernel (nft_captured_table.json, see
test_nft_listing_walk.py): the numgen branch is the conntrack entry's
endpoint, stops are named in Kubernetes terms, and the hops print in the
same shape as iptables mode's."""
import json
import os

import pytest

from agent.cli.trace import nftpath, path
from agent.cli.trace.command import render
from dataplane.nft import listing

HERE = os.path.dirname(__file__)
NODE = ["172.28.0.11", "10.244.0.1"]


@pytest.fixture(scope="module")
def table():
    with open(os.path.join(HERE, "nft_captured_table.json")) as f:
        return listing.parse(json.load(f))


def test_the_branch_is_the_conntrack_endpoint(table):
    for endpoint in ("10.244.0.5:8080", "10.244.1.2:8080"):
        hops, out, note = nftpath.hops(table, "10.244.0.9", "10.96.31.254", 80, "tcp", NODE, endpoint)
        assert out == endpoint and note == ""
        assert hops[-3]["chain"].startswith("endpoint-") and hops[-3]["rule"] == f"meta l4proto tcp dnat to {endpoint}"
        assert hops[2]["meaning"].startswith("numgen random ")
        assert hops[-1]["meaning"] == "not marked for masquerade: the source address stays"
    hops, out, note = nftpath.hops(table, "10.244.0.9", "10.96.31.254", 80, "tcp", NODE, None)
    assert "may go to any of 10.244.0.5:8080, 10.244.1.2:8080" in note
    hops, out, note = nftpath.hops(table, "10.244.0.9", "10.96.31.254", 80, "tcp", NODE, "10.244.9.9:80")
    assert hops == [] and "no rule of table ip kube-proxy leads to" in note


def test_stops_say_why(table):
    hops, out, _ = nftpath.hops(table, "10.244.0.9", "10.96.7.7", 80, "tcp", NODE, None)
    assert out == "REJECT" and hops[-1]["stop"] == "reject"
    assert hops[-1]["meaning"] == "reject: the Service has no endpoints (10.96.7.7 . tcp . 80 in @no-endpoint-services: goto reject-chain)"
    assert path.verdict(hops, None, False).startswith("rejected by ip kube-proxy reject-chain: reject: the Service")
    hops, out, _ = nftpath.hops(table, "10.9.9.9", "172.28.0.200", 80, "tcp", NODE, None)
    assert out == "DROP" and "loadBalancerSourceRanges" in hops[-1]["meaning"]
    hops, out, _ = nftpath.hops(table, "172.28.0.1", "172.28.0.11", 30110, "tcp", NODE, None)
    assert out == "DROP" and hops[-1]["meaning"].startswith("drop: externalTrafficPolicy Local")
    hops, out, _ = nftpath.hops(table, "10.244.0.9", "10.100.0.1", 80, "tcp", NODE, None)
    assert hops[-1]["meaning"] == "drop: Drop traffic to unallocated ClusterIPs"


def test_no_service_verdict_names_the_map():
    text = path.verdict([], None, False, "10.96.31.254:81", "timeout", "", "nftables")
    assert text.startswith("no Service has 10.96.31.254:81: no element of @service-ips matches")


def test_hops_print_in_iptables_modes_shape(table):
    hops, _, _ = nftpath.hops(table, "10.244.0.9", "10.96.31.254", 80, "tcp", NODE, "10.244.1.2:8080")
    rep = {"from": "default/client", "node": "node-1", "url": "http://web/", "hops": hops, "verdict": "answered"}
    lines = render(rep).splitlines()
    assert ("  node-1 ip kube-proxy services  ip daddr . meta l4proto . th dport vmap @service-ips  => "
            "10.96.31.254 . tcp . 80 in @service-ips: goto service-SUSTUHLJ-default/web/tcp/http") in lines


def test_local_addresses_from_ip_json():
    text = json.dumps([{"ifname": "lo", "addr_info": [{"local": "127.0.0.1"}]},
                       {"ifname": "eth0", "addr_info": [{"local": "172.28.0.11", "prefixlen": 24}]}])
    assert path.local_addresses(text) == ["127.0.0.1", "172.28.0.11"]
    assert path.local_addresses("not json") == []
