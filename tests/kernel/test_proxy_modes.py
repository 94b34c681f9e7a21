"""Switching proxy modes on the real kernel, in a throwaway netns: a proxier
writes a Service in iptables mode, switches to nftables (the table appears,
every KUBE-* chain and jump of ours leaves iptables, others' rules stay),
and back (the table goes). The proxier runs on this thread inside the
namespace; the namespace goes on every exit path."""
from __future__ import annotations

import os
import subprocess

import pytest

from agent.node.proxy.backends import cleanup_other
from agent.node.proxy.proxier import Proxier
from dataplane import iptables, netns
from dataplane.model import NodeInfo
from dataplane.nft.kernel import Nft

pytestmark = [pytest.mark.kernel,
              pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")]
NS = "nsplane-nfa-modes"

if os.geteuid() != 0:
    pytest.skip("kernel tests need root", allow_module_level=True)


class NoConntrack:
    def __getattr__(self, name):
        return lambda *a, **k: 0


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=30)


def kube_chains() -> set[str]:
    return {c for table in iptables.read_tables().values() for c in table.chains if c.startswith("KUBE-")}


def test_switching_modes_cleans_the_other_modes_rules():
    sh("ip", "netns", "add", NS)
    try:
        with netns.entered(NS):
            sh("iptables-legacy", "-t", "nat", "-N", "NSPLANE-OTHERS")  # someone else's: must stay
            p = Proxier(NodeInfo("node-a", "10.244.0.0/16", ("192.168.50.2",)), conntrack=NoConntrack(),
                        verify="raise", cleanup=cleanup_other)
            p.on_service(None, {"metadata": {"name": "web", "namespace": "default"},
                                "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.20",
                                         "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
            p.on_endpointslice(None, {
                "metadata": {"name": "web-1", "namespace": "default",
                             "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": True}}]})
            p.sync_once()
            assert "KUBE-SERVICES" in kube_chains() and Nft().table_handle() is None
            p.set_mode("nftables")
            p.sync_once()
            assert kube_chains() == set() and Nft().table_handle() is not None
            assert "10.96.0.20 . tcp . 80" in Nft().list_text()
            assert "NSPLANE-OTHERS" in iptables.read_tables()["nat"].chains
            assert not p._applier.canary_missing()
            p.set_mode("iptables")
            p.sync_once()
            assert "KUBE-SERVICES" in kube_chains() and Nft().table_handle() is None
            iptables.cleanup()
            release = __import__("iptc")  # python-iptables keeps handles on the namespace: let go
            for table in iptables.CANARY_TABLES:
                release.Table(table).close()
    finally:
        sh("ip", "netns", "del", NS, check=False)
