"""dataplane.nft's applier on the real kernel, in a throwaway netns.

Hand-made rulesets in kube-proxy's nftables layout (tests/nft_sample.py) are
written in full and partially, read back (`nft -j list table ip
kube-proxy`, verify mode raising on any difference), broken by "someone
else" (a stray chain in our table, the table deleted) and repaired; then
real TCP crosses the table: a ClusterIP DNATed to the endpoint a partial
sync chose, and refused once the Service has no endpoints.

The applier runs on this thread inside the namespace (`netns.entered`); the
nft processes it starts inherit that namespace, and the test's sockets are
made there too. The namespace goes on every exit path.
"""
from __future__ import annotations

import os
import socket
import subprocess
import threading
from contextlib import contextmanager

import pytest

from dataplane import netns
from dataplane.nft.applier import NftApplier, NftVerifyError
from dataplane.nft.kernel import Nft, NftError
from dataplane.nft.ruleset import NftRuleset
from tests import nft_sample

pytestmark = [pytest.mark.kernel]
PREFIX = "nsplane-nfa"

if os.geteuid() != 0:
    pytest.skip("kernel tests need root", allow_module_level=True)


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=30)


@contextmanager
def scratch(name: str, enter: bool = True):
    assert name.startswith(PREFIX)
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        if not enter:
            yield name
            return
        with netns.entered(name):
            yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


EPS = {0: [("10.244.0.6", 8080), ("10.244.0.7", 8080)], 1: [("10.244.0.7", 8080)], 2: []}


def chains() -> set[str]:
    return {item["chain"]["name"] for item in Nft().read_table()["nftables"] if "chain" in item}


def test_full_partial_stale_canary_and_cleanup():
    with scratch(f"{PREFIX}-a"):
        applier = NftApplier(verify="raise")
        first = nft_sample.ruleset(EPS, affinity=True)
        applier.apply(first)
        assert chains() == set(first.chains)
        assert not applier.canary_missing()
        # partial: Service 0 loses an endpoint, Service 2 gets one
        second = nft_sample.ruleset({**EPS, 0: [("10.244.0.6", 8080)], 2: [("10.244.0.8", 80)]}, affinity=True)
        applier.apply(second)
        assert not applier.last.full  # it was partial
        assert nft_sample.endpoint_chain(0, "10.244.0.7", 8080) not in chains()
        assert chains() == set(second.chains)
        # someone adds a chain to our table: the next full sync removes it
        sh("nft", "add", "chain", "ip", "kube-proxy", "stray")
        applier.apply(second, full=True)
        assert "stray" not in chains()
        # someone deletes the table: the canary says so, a full sync brings it back
        sh("nft", "delete", "table", "ip", "kube-proxy")
        assert applier.canary_missing()
        sh("nft", "add", "table", "ip", "kube-proxy")  # made again by someone else: another handle
        assert applier.canary_missing()
        applier.apply(second, full=True)
        assert not applier.canary_missing() and chains() == set(second.chains)
        assert "table ip kube-proxy" in Nft().list_text()
        assert applier.cleanup() and Nft().table_handle() is None
        assert not applier.cleanup()


def test_a_rejected_transaction_names_the_line_and_changes_nothing():
    with scratch(f"{PREFIX}-b"):
        applier = NftApplier()
        good = nft_sample.ruleset(EPS)
        applier.apply(good)
        bad = NftRuleset(good.base_chains, {**good.chains, "services": ("jump no-such-chain",)},
                         good.maps, good.sets)
        with pytest.raises(NftError) as err:
            applier.apply(bad)
        assert err.value.line == "add rule ip kube-proxy services jump no-such-chain"
        assert "no-such-chain" in str(err.value) and applier.written is None
        assert chains() == set(good.chains)  # all or nothing
        applier.apply(good)  # the next apply is full and succeeds
        assert applier.last.full


def test_verify_mode_reports_what_the_kernel_holds_differently(caplog):
    with scratch(f"{PREFIX}-c"):
        applier = NftApplier(verify="raise")
        rs = nft_sample.ruleset(EPS)
        applier.apply(rs)
        # the kernel holds a rule the ruleset does not have: rewriting it in full changes the chain
        applier.nft.run("add rule ip kube-proxy services counter\n")
        with pytest.raises(NftVerifyError) as err:
            applier._verify(rs)
        assert err.value.problems == ["chain services: changed by a full rewrite of the same ruleset"]
        # a ruleset claiming more rules than the kernel holds after a full write
        lying = NftRuleset(rs.base_chains, rs.chains, rs.maps, rs.sets)
        applier.nft.run("add rule ip kube-proxy services counter\n")
        from dataplane.nft.applier import held_differently, summarize
        problems = held_differently(rs, summarize(applier.nft.read_table()))
        assert problems == ["chain services: 1 rules written, the kernel holds 2"]
        applier.verify = "log"
        applier._verify(lying)
        assert "changed by a full rewrite" in caplog.text


def _serve(ip: str, port: int, stop: threading.Event) -> threading.Thread:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((ip, port))
    sock.listen(16)
    sock.settimeout(0.2)

    def run():
        with sock:
            while not stop.is_set():
                try:
                    conn, _ = sock.accept()
                except socket.timeout:
                    continue
                with conn:
                    conn.sendall(ip.encode())
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _ask(ip: str, port: int, client: str) -> str:
    with netns.entered(client):
        sock = socket.create_connection((ip, port), timeout=3)
    with sock:
        return sock.recv(64).decode()


def test_traffic_follows_partial_syncs():
    """The node namespace holds the table and the endpoints (addresses on
    lo); a "pod" namespace behind a veth is the client."""
    client = f"{PREFIX}-pod"
    with scratch(f"{PREFIX}-d") as node, scratch(client, enter=False):
        sh("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # where Service IPs route to (no dummy module here: a veth pair)
        sh("ip", "-n", node, "link", "add", "nsplane-nfa1", "type", "veth", "peer", "name", "nsplane-nfa2")
        sh("ip", "-n", node, "link", "set", "nsplane-nfa1", "up")
        sh("ip", "-n", node, "link", "set", "nsplane-nfa2", "up")
        sh("ip", "-n", node, "route", "add", "10.96.0.0/16", "dev", "nsplane-nfa1")
        sh("ip", "-n", node, "link", "add", "nsplane-nfa0", "type", "veth", "peer", "name", "eth0", "netns", client)
        sh("ip", "-n", node, "addr", "add", "10.244.0.1/24", "dev", "nsplane-nfa0")
        sh("ip", "-n", node, "link", "set", "nsplane-nfa0", "up")
        sh("ip", "-n", client, "addr", "add", "10.244.0.5/24", "dev", "eth0")
        sh("ip", "-n", client, "link", "set", "eth0", "up")
        sh("ip", "-n", client, "route", "add", "default", "via", "10.244.0.1")
        for ip in ("10.244.0.6", "10.244.0.7"):
            sh("ip", "-n", node, "addr", "add", f"{ip}/32", "dev", "lo")
        stop = threading.Event()
        threads = [_serve(ip, 8080, stop) for ip in ("10.244.0.6", "10.244.0.7")]
        try:
            applier = NftApplier(verify="raise")
            applier.apply(nft_sample.ruleset({0: [("10.244.0.6", 8080)]}))
            vip = nft_sample.cluster_ip(0)
            assert _ask(vip, 80, client) == "10.244.0.6"
            applier.apply(nft_sample.ruleset({0: [("10.244.0.7", 8080)]}))
            assert not applier.last.full
            assert _ask(vip, 80, client) == "10.244.0.7"
            applier.apply(nft_sample.ruleset({0: []}))
            with pytest.raises(ConnectionRefusedError):
                _ask(vip, 80, client)
            applier.apply(nft_sample.ruleset({0: [("10.244.0.6", 8080)]}))
            assert _ask(vip, 80, client) == "10.244.0.6"
        finally:
            stop.set()
            for t in threads:
                t.join(5)


@pytest.fixture(autouse=True)
def no_leftovers():
    yield
    left = [ns for ns in sh("ip", "netns", "list").stdout.split() if ns.startswith(PREFIX)]
    assert not left, f"namespaces left behind: {left}"
