"""dataplane.nft's rendered table is what the real nft accepts and keeps.

Each ruleset is loaded with `nft -f` into a throwaway network namespace
(nsplane-nftr-*), read back with `nft -j list table ip kube-proxy`, and
compared: every chain, set and map is there and every rule was kept. Loading
the same text again with `replace` swaps the table in one transaction.
Namespaces are removed on every exit path; nothing touches the root
namespace.
"""
from __future__ import annotations

import json
import os
import subprocess
from contextlib import contextmanager

import pytest

from dataplane.model import Endpoint, NodeInfo, ServicePort
from dataplane.nft.render import render

pytestmark = pytest.mark.kernel

if os.geteuid() != 0:
    pytest.skip("kernel tests need root", allow_module_level=True)

NODE = NodeInfo("test-node", "10.0.0.0/8", ("192.168.0.2",))


def sh(*argv: str, text_in: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, input=text_in, capture_output=True, text=True, check=check, timeout=60)


@contextmanager
def scratch_netns():
    name = f"nsplane-nftr-{os.getpid()}"
    sh("ip", "netns", "add", name)
    try:
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


def services() -> dict[ServicePort, list[Endpoint]]:
    """Every kind of Service port the render writes."""
    eps = [Endpoint("10.180.0.1", 8080, node_name="test-node"), Endpoint("10.180.1.1", 8080, node_name="other")]
    return {
        ServicePort("ns1", "clusterip", "http", "TCP", "172.30.0.41", 80): eps,
        ServicePort("ns1", "dns", "dns", "UDP", "172.30.0.10", 53): eps,
        ServicePort("ns1", "sctp", "", "SCTP", "172.30.0.12", 9999): eps,
        ServicePort("ns1", "nodeport", "http", "TCP", "172.30.0.42", 80, node_port=30080): eps,
        ServicePort("ns1", "lb-local", "http", "TCP", "172.30.0.43", 80, node_port=30081, external_ips=("192.168.99.1",),
                    load_balancer_ips=("1.2.3.4",), load_balancer_source_ranges=("192.168.0.0/24", "203.0.113.0/25"),
                    external_policy_local=True, health_check_node_port=30000, affinity_timeout=10800): eps,
        ServicePort("ns1", "itp-local", "http", "TCP", "172.30.0.44", 80, internal_policy_local=True): eps[1:],
        ServicePort("ns1", "empty", "http", "TCP", "172.30.0.45", 80, node_port=30082, load_balancer_ips=("5.6.7.8",)): [],
    }


@pytest.mark.parametrize("node", [
    NODE,
    NodeInfo("test-node", "10.0.0.0/8", ("192.168.0.2",), masquerade_all=True, node_port_ips=("192.168.0.2", "127.0.0.1")),
    NodeInfo("test-node", "", ("192.168.0.2",), detect_local="-i veth+"),
    NodeInfo("test-node", "", (), detect_local="-i lo"),  # no node IP: NodePorts on every local address
], ids=["cidr", "masquerade-all", "interface-prefix", "bridge-match-all"])
def test_rendered_table_loads(node):
    ruleset = render(services(), node, service_cidrs=("172.30.0.0/16",))
    with scratch_netns() as ns:
        sh("ip", "netns", "exec", ns, "nft", "-c", "-f", "-", text_in=ruleset.text())
        sh("ip", "netns", "exec", ns, "nft", "-f", "-", text_in=ruleset.text())
        sh("ip", "netns", "exec", ns, "nft", "-f", "-", text_in=ruleset.text(replace=True))
        listed = json.loads(sh("ip", "netns", "exec", ns, "nft", "-j", "list", "table", "ip", "kube-proxy").stdout)
    objects = [next(iter(o.items())) for o in listed["nftables"] if "metainfo" not in o]
    chains = {o["name"] for kind, o in objects if kind == "chain"}
    rules = [o for kind, o in objects if kind == "rule"]
    sets = {o["name"]: o for kind, o in objects if kind == "set"}
    maps = {o["name"]: o for kind, o in objects if kind == "map"}
    assert chains == set(ruleset.chains)
    assert len(rules) == ruleset.rules()
    assert set(sets) == set(ruleset.sets) and set(maps) == set(ruleset.maps)
    for name, (_, elements) in ruleset.maps.items():
        assert len(maps[name].get("elem", [])) == len(elements), name
    assert len(sets["cluster-ips"]["elem"]) == 7
