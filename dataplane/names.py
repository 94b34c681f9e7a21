"""Names of everything nsplane creates in the kernel.

One place decides how a cluster's nodes, pods, links and bridges are called,
so that creation and cleanup agree exactly: `cleanup.sweep` removes only names
this module can produce for the cluster. Pure functions, no kernel access.

Kernel limits shape the rules: a network namespace name is a file under
/run/netns (we keep it <= 200 characters) and an interface name is at most 15
characters (IFNAMSIZ - 1), so interface names are the prefix plus a hash.
"""

from __future__ import annotations

import hashlib

PREFIX = "nsplane"
DEFAULT_CLUSTER = PREFIX
DEFAULT_BRIDGE = "nsplane0"

NETNS_MAX = 200
IFNAME_MAX = 15
_HASH_LEN = 8


def _digest(*parts: str) -> str:
    """Short stable hex digest of the parts (order matters, no ambiguity)."""
    joined = "\0".join(parts).encode()
    return hashlib.sha256(joined).hexdigest()[:_HASH_LEN]


def check_cluster(cluster: str) -> str:
    """Return `cluster` if it is a valid nsplane cluster name, else raise."""
    if not cluster.startswith(PREFIX):
        raise ValueError(
            f'cluster name "{cluster}" must start with "{PREFIX}" so that '
            f"everything it creates carries the nsplane prefix"
        )
    if "/" in cluster or "\0" in cluster or len(cluster) > 64:
        raise ValueError(
            f'cluster name "{cluster}" must be at most 64 characters with no "/"'
        )
    return cluster


def _bounded(name: str, limit: int = NETNS_MAX) -> str:
    """Keep `name` within `limit` characters: truncate and add a hash."""
    if len(name) <= limit:
        return name
    keep = limit - _HASH_LEN - 1
    return f"{name[:keep]}-{_digest(name)}"


def netns_prefix(cluster: str) -> str:
    """Every network namespace of `cluster` starts with this string."""
    return f"{check_cluster(cluster)}-"


def node_netns(cluster: str, node: str) -> str:
    """Network namespace of a node: "nsplane" + "node-1" -> "nsplane-node-1"."""
    return _bounded(f"{netns_prefix(cluster)}{node}")


def is_node_netns(cluster: str, name: str) -> bool:
    """True if `name` is what `node_netns` gives for `cluster` and some "node-<n>"."""
    rest = name[len(netns_prefix(cluster)):] if name.startswith(netns_prefix(cluster)) else ""
    return rest.startswith("node-") and rest[5:].isdigit()


def pod_netns(cluster: str, namespace: str, pod: str) -> str:
    """Network namespace of a pod: "nsplane-default-web-abc12-xyz".

    Names longer than 200 characters are truncated and end in a hash of the
    full name, so distinct pods keep distinct namespaces.
    """
    return _bounded(f"{netns_prefix(cluster)}{namespace}-{pod}")


def ifname(cluster: str, key: str) -> str:
    """A 15-character interface name: "nsplane" + 8 hex of hash(cluster, key).

    `key` says what the link is for, e.g. "node/node-1" for a node's veth in
    the host namespace or "pod/default/web-1" for a pod's veth in its node.
    """
    return f"{PREFIX}{_digest(check_cluster(cluster), key)}"


def node_ifname(cluster: str, node: str) -> str:
    """Host-side veth of a node (it sits on the underlay bridge)."""
    return ifname(cluster, f"node/{node}")


def pod_ifname(cluster: str, namespace: str, pod: str) -> str:
    """Node-side veth of a pod (the pod's eth0 is its peer)."""
    return ifname(cluster, f"pod/{namespace}/{pod}")


def bridge_name(cluster: str) -> str:
    """Underlay bridge: "nsplane0" for the default cluster, else a hash name."""
    if check_cluster(cluster) == DEFAULT_CLUSTER:
        return DEFAULT_BRIDGE
    return ifname(cluster, "bridge")


def owns_netns(cluster: str, name: str) -> bool:
    """True if network namespace `name` belongs to `cluster` by its name."""
    return name.startswith(netns_prefix(cluster))
