"""The nftables applier's netlink path writes what nft writes.

Two throwaway namespaces get the same rulesets, one through netlink batches
(`NftApplier()`, the default) and one through nft alone
(`NftApplier(netlink=False)`): after a full sync and after each partial
sync (the netlink side rendering with a cache, so its partial syncs come
from the render's Delta), the kernel must hold the same expressions in both, as `nft
--debug=netlink list table` prints them (anonymous maps' names and rule
handles left out), and `nft list table` must read the same. Then
LoadBalancer source ranges, as an interval set, and the fallback: ranges
nft would merge are left to nft, and the table is still complete. The
namespaces go on every exit path.
"""
from __future__ import annotations

import os
import re
import subprocess
from contextlib import ExitStack, contextmanager

import pytest

from dataplane import netns
from dataplane.model import Endpoint, NodeInfo, ServicePort
from dataplane.nft import netlink
from dataplane.nft.applier import NftApplier
from dataplane.nft.render import NftRenderCache, render

pytestmark = [pytest.mark.kernel]
PREFIX = "nsplane-nfl"

if os.geteuid() != 0:
    pytest.skip("kernel tests need root", allow_module_level=True)


def sh(*argv: str, check: bool = True) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=60).stdout


@contextmanager
def namespaces(*names: str):
    with ExitStack() as stack:
        for name in names:
            assert name.startswith(PREFIX)
            sh("ip", "netns", "add", name)
            stack.callback(sh, "ip", "netns", "del", name, check=False)
        yield names


def held(ns: str) -> tuple[str, dict[str, list[str]]]:
    """(`nft list table`'s blocks, {chain: its rules' expressions in order}) in
    `ns`. The blocks (each chain, map, set) are sorted: chains made in one
    transaction are listed in the order they were made, which is not part
    of what either path promises."""
    listing = sh("ip", "netns", "exec", ns, "nft", "list", "table", "ip", "kube-proxy")
    text = "\n\n".join(sorted(block.strip() for block in listing.rstrip().removesuffix("}").split("\n\n")))
    debug = sh("ip", "netns", "exec", ns, "nft", "--debug=netlink", "list", "table", "ip", "kube-proxy")
    rules: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in debug.splitlines():
        head = re.match(r"^ip kube-proxy (\S+) \d+( \d+)?$", line)
        if head:  # a rule: chain, handle, the previous rule's handle
            current = rules.setdefault(head.group(1), [])
            current.append("")
        elif current is not None and line.startswith(("  [", "  userdata")):
            current[-1] += re.sub(r"(__map|__set)\S+", r"\1", line) + "\n"
        else:
            current = None
    return text, rules


def eps(*ips: str, node: str = "other") -> list[Endpoint]:
    return [Endpoint(ip, 8080, node_name=node) for ip in ips]


def services(step: int) -> dict[ServicePort, list[Endpoint]]:
    """Every kind of Service port the netlink path writes, changing with `step`."""
    out = {
        ServicePort("ns1", "clusterip", "http", "TCP", "172.30.0.41", 80): eps("10.180.0.1", "10.180.1.1")[:1 + step % 2],
        ServicePort("ns1", "dns", "dns", "UDP", "172.30.0.10", 53): eps("10.180.0.2", "10.180.1.2"),
        ServicePort("ns1", "sctp", "", "SCTP", "172.30.0.12", 9999): eps("10.180.0.3"),
        ServicePort("ns1", "nodeport", "http", "TCP", "172.30.0.42", 80, node_port=30080):
            eps("10.180.0.4", node="test-node") + eps("10.180.1.4"),
        ServicePort("ns1", "lb-local", "http", "TCP", "172.30.0.43", 80, node_port=30081,
                    external_ips=("192.168.99.1",), load_balancer_ips=("1.2.3.4",), external_policy_local=True,
                    health_check_node_port=30000, affinity_timeout=10800 if step < 2 else 0):
            eps("10.180.0.5", node="test-node") + eps("10.180.1.5"),
        ServicePort("ns1", "itp-local", "http", "TCP", "172.30.0.44", 80, internal_policy_local=True): eps("10.180.1.6"),
        ServicePort("ns1", "empty", "http", "TCP", "172.30.0.45", 80, node_port=30082, load_balancer_ips=("5.6.7.8",)):
            eps("10.180.0.7") if step == 1 else [],
    }
    if step == 3:
        del out[ServicePort("ns1", "dns", "dns", "UDP", "172.30.0.10", 53)]
    return out


NODES = {
    "cidr": NodeInfo("test-node", "10.0.0.0/8", ("192.168.0.2",)),
    "odd-prefix": NodeInfo("test-node", "10.96.0.0/12", ("192.168.0.2",)),
    "interface": NodeInfo("test-node", "10.0.0.0/8", ("192.168.0.2",), detect_local="-i veth+"),
    "masquerade-all": NodeInfo("test-node", "10.0.0.0/8", ("192.168.0.2",), masquerade_all=True),
}


@pytest.mark.parametrize("node", NODES.values(), ids=NODES.keys())
@pytest.mark.parametrize("binds", [netlink.BINDS_PER_BATCH, 2], ids=["one-transaction", "split"])
def test_netlink_writes_what_nft_writes_full_and_partial(node, binds, monkeypatch):
    monkeypatch.setattr(netlink, "BINDS_PER_BATCH", binds)  # 2: every full and partial sync is split
    with namespaces(f"{PREFIX}-n-{os.getpid()}", f"{PREFIX}-t-{os.getpid()}") as (via_netlink, via_nft):
        appliers = {via_netlink: NftApplier(), via_nft: NftApplier(netlink=False)}
        cache = NftRenderCache()  # the netlink side gets patched rulesets and their Delta, as in the proxier
        for step in range(4):
            rulesets = {via_netlink: render(services(step), node, cache, service_cidrs=("172.30.0.0/16",)),
                        via_nft: render(services(step), node, service_cidrs=("172.30.0.0/16",))}
            for ns, applier in appliers.items():
                with netns.entered(ns):
                    applier.apply(rulesets[ns], full=step == 0)
            assert appliers[via_netlink].via_nft == 0, "the netlink path fell back to nft"
            text_a, rules_a = held(via_netlink)
            text_b, rules_b = held(via_nft)
            assert rules_a == rules_b, f"step {step}: the kernel holds other expressions"
            assert text_a == text_b, f"step {step}: nft lists the tables differently"
        assert appliers[via_netlink].last.chains_written  # the last step was a real partial sync


def lb(name: str, ip: str, *ranges: str) -> ServicePort:
    return ServicePort("ns1", name, "http", "TCP", ip, 80, node_port=30083 + int(ip.rsplit(".", 1)[1]) % 50,
                       load_balancer_ips=(f"1.2.3.{ip.rsplit('.', 1)[1]}",), load_balancer_source_ranges=ranges)


def test_source_ranges_and_what_netlink_leaves_to_nft():
    """LoadBalancer source ranges (an interval set, the node's own LB IP in
    it) go through netlink; ranges nft would merge go through nft."""
    node = NODES["cidr"]
    ranged = lb("ranged", "172.30.0.46", "192.168.0.0/24", "203.0.113.0/25", "198.51.100.7/32")
    single = lb("single", "172.30.0.47", "203.0.113.0/25")
    merged = lb("merged", "172.30.0.48", "10.0.0.0/8", "10.1.0.0/16")
    with namespaces(f"{PREFIX}-f-{os.getpid()}", f"{PREFIX}-g-{os.getpid()}") as (via_netlink, via_nft):
        appliers = {via_netlink: NftApplier(), via_nft: NftApplier(netlink=False)}
        second = {ranged: eps("10.180.0.8"), single: eps("10.180.0.9")}
        steps = ({}, second, {**second, merged: eps("10.180.0.10")})
        for step, extra in enumerate(steps):
            ruleset = render({**services(0), **extra}, node, service_cidrs=("172.30.0.0/16",))
            for ns, applier in appliers.items():
                with netns.entered(ns):
                    applier.apply(ruleset)
            assert held(via_netlink) == held(via_nft), f"step {step}"
            assert appliers[via_netlink].via_nft == (step == 2)  # only the ranges nft merges
        listing = held(via_netlink)[0]
        assert "ip saddr != { 1.2.3.46, 192.168.0.0/24, 198.51.100.7, 203.0.113.0/25 } drop" in listing
        assert "ip saddr != { 10.0.0.0/8 } drop" in listing  # nft merged the two
