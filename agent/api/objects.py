"""Small facts about API objects that every program reads the same way:
the timestamp format of metadata and conditions, and a Node's addresses and
the pod-CIDR routes they imply."""
from __future__ import annotations

from datetime import datetime, timezone


def now_iso() -> str:
    """Now, as Kubernetes writes metav1.Time: RFC 3339 in UTC, whole seconds."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def internal_ip(node: dict) -> str | None:
    return next((a["address"] for a in node.get("status", {}).get("addresses", []) or []
                 if a.get("type") == "InternalIP"), None)


def pod_cidr_routes(nodes: list[dict], skip: str | None = None) -> dict[str, str]:
    """{podCIDR: InternalIP} for every node that has both, but node `skip`
    (a node does not route its own pod CIDR over the underlay)."""
    want = {}
    for n in nodes:
        cidr, ip = n.get("spec", {}).get("podCIDR"), internal_ip(n)
        if n["metadata"]["name"] != skip and cidr and ip:
            want[cidr] = ip
    return want
