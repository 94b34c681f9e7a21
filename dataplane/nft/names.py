"""What kube-proxy's nftables mode calls its per-Service chains and sets.

pkg/proxy/nftables/proxier.go names a Service port's chains
`<prefix><HASH>-<namespace>/<service>/<protocol>/<port name>` and an
endpoint's `<prefix><HASH>-<...>__<ip>/<port>`, where HASH is the first 8
characters of base32(sha256(the rest of the name)) and the whole base is cut
to 240 characters with "..." (hashAndTruncate). Same names here, so the
chain a user reads about for `ns1/svc1:p80` is the one `nft list table ip
kube-proxy` shows. Pure.
"""
from __future__ import annotations

import functools
import hashlib

SERVICE_PREFIX = "service-"  # Cluster traffic policy chain
LOCAL_PREFIX = "local-"  # Local traffic policy chain
EXTERNAL_PREFIX = "external-"
ENDPOINT_PREFIX = "endpoint-"
AFFINITY_PREFIX = "affinity-"  # an endpoint's session-affinity set
FIREWALL_PREFIX = "firewall-"

NAME_LENGTH_MAX = 256  # knftables.NameLengthMax
BASE_LENGTH_MAX = NAME_LENGTH_MAX - 16  # minus the longest prefix kube-proxy allows


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # base32.StdEncoding's alphabet


# Small on purpose: a Service port is rendered again only when it changes
# (NftRenderCache), and a cache as large as a 10,000-Service table held
# 10 MB of names twice over (measured with tracemalloc).
@functools.lru_cache(maxsize=4096)
def hash_and_truncate(name: str) -> str:
    """kube-proxy's hashAndTruncate: "HASH8-name", cut to 240 characters.
    HASH8 is base32(sha256(name))[:8], i.e. the digest's first 40 bits, five
    at a time (as base64.b32encode(digest)[:8], without encoding the rest)."""
    n = int.from_bytes(hashlib.sha256(name.encode()).digest()[:5], "big")
    a = _B32
    out = (a[n >> 35] + a[(n >> 30) & 31] + a[(n >> 25) & 31] + a[(n >> 20) & 31] + a[(n >> 15) & 31]
           + a[(n >> 10) & 31] + a[(n >> 5) & 31] + a[n & 31] + "-" + name)
    if len(out) > BASE_LENGTH_MAX:
        out = out[:BASE_LENGTH_MAX - 3] + "..."
    return out


def service_base(namespace: str, name: str, protocol: str, port_name: str) -> str:
    """servicePortChainNameBase: "HASH-ns/name/proto/port" (protocol lower-case)."""
    return hash_and_truncate(f"{namespace}/{name}/{protocol}/{port_name}")


def endpoint_base(namespace: str, name: str, protocol: str, port_name: str, ip: str, port: int) -> str:
    """servicePortEndpointChainNameBase: "HASH-ns/name/proto/port__ip/port"
    (an IPv6 address's colons become dots)."""
    return hash_and_truncate(f"{namespace}/{name}/{protocol}/{port_name}__{ip.replace(':', '.')}/{port}")


def is_service_chain(name: str) -> bool:
    """kube-proxy's isServiceChainName: per-Service and per-endpoint chains
    contain a "/", none of the fixed chains does."""
    return "/" in name


def is_affinity_set(name: str) -> bool:
    return name.startswith(AFFINITY_PREFIX)
