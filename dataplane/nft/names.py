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

import base64
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


@functools.lru_cache(maxsize=1 << 17)
def hash_and_truncate(name: str) -> str:
    """kube-proxy's hashAndTruncate: "HASH8-name", cut to 240 characters."""
    digest = hashlib.sha256(name.encode()).digest()
    out = base64.b32encode(digest[:5]).decode() + "-" + name  # 40 bits = the first 8 base32 digits
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
