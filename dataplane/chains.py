"""What our iptables chains are called, and which chains are ours.

kube-proxy's names, computed the same way (pkg/proxy/iptables/proxier.go):
the top-level chains it declares, and the per-Service chains named
KUBE-SVC-/SVL-/EXT-/FW-/SEP- + base32(sha256(...))[:16], so the chain a
user reads about for `default/web:http` is the chain they find in
`iptables -t nat -S`. Pure; `dataplane.rules` renders into these chains,
`dataplane.iptables` uses `is_service_chain` to know what it may delete.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from dataplane.dispatch import TREE_CHAIN_PREFIXES

# Top-level chains, in the order kube-proxy declares them.
FILTER_CHAINS = ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-NODEPORTS", "KUBE-PROXY-FIREWALL")
NAT_CHAINS = ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ")
KUBELET_FIREWALL_CHAIN = "KUBE-FIREWALL"
MARK_MASQ = "KUBE-MARK-MASQ"

# Per-service nat chains; any chain with one of these prefixes is ours.
SERVICE_CHAIN_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-", *TREE_CHAIN_PREFIXES)


def is_service_chain(name: str) -> bool:
    """True for KUBE-SVC-/SVL-/EXT-/FW-/SEP- chains (kube-proxy's isServiceChainName)
    and our dispatch-tree chains (KUBE-SVCS-, KUBE-NP-)."""
    return name.startswith(SERVICE_CHAIN_PREFIXES)


_B32_PAIRS = [a + b for a in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" for b in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"]


@functools.lru_cache(maxsize=1 << 17)
def _hash16(text: str) -> str:
    """base32.StdEncoding(sha256(text))[:16]: the first 80 bits, 10 bits (two
    base32 digits) at a time; equal to base64.b32encode(digest)[:16], faster."""
    n = int.from_bytes(hashlib.sha256(text.encode()).digest()[:10], "big")
    t = _B32_PAIRS
    return (
        t[n >> 70] + t[(n >> 60) & 1023] + t[(n >> 50) & 1023] + t[(n >> 40) & 1023]
        + t[(n >> 30) & 1023] + t[(n >> 20) & 1023] + t[(n >> 10) & 1023] + t[n & 1023]
    )


def port_proto_hash(spn: str, protocol: str) -> str:
    """kube-proxy's portProtoHash: base32(sha256(spn + lowercase protocol))[:16]."""
    return _hash16(spn + protocol.lower())


def endpoint_chain_name(spn: str, protocol: str, address: str) -> str:
    """kube-proxy's servicePortEndpointChainName: KUBE-SEP- + hash(spn+proto+"ip:port")."""
    return "KUBE-SEP-" + _hash16(spn + protocol.lower() + address)


@dataclass(frozen=True)
class ServiceChains:
    svc: str  # KUBE-SVC-: Cluster traffic policy dispatch
    svl: str  # KUBE-SVL-: Local traffic policy dispatch
    ext: str  # KUBE-EXT-: external destinations
    fw: str  # KUBE-FW-: loadBalancerSourceRanges firewall


@functools.lru_cache(maxsize=1 << 16)
def service_chains(spn: str, protocol: str) -> ServiceChains:
    h = port_proto_hash(spn, protocol)
    return ServiceChains("KUBE-SVC-" + h, "KUBE-SVL-" + h, "KUBE-EXT-" + h, "KUBE-FW-" + h)
