"""Node controllers: pod-CIDR allocation (one /24 per node out of the cluster
CIDR, lowest free first, like kube-controller-manager's range allocator),
node lifecycle (a node whose agent stopped heart-beating turns Ready=Unknown),
and the host's routes to every node's pod CIDR over the underlay, so the API
server answers pods (the `kubernetes` Service keeps their source address)."""
from __future__ import annotations

import ipaddress
import time
from datetime import datetime, timezone

from agent.api.kinds import BY_RESOURCE
from agent.api.objects import pod_cidr_routes
from agent.controllers.base import Controller, ns_name
from dataplane import node as nodenet

NODES = BY_RESOURCE["nodes"]


def next_pod_cidr(cluster_cidr: str, used: set[str], prefix: int = 24) -> str:
    for sub in ipaddress.ip_network(cluster_cidr).subnets(new_prefix=prefix):
        if str(sub) not in used:
            return str(sub)
    raise ValueError(f"no pod CIDR left in {cluster_cidr}")


def _age(stamp: str | None) -> float:
    if not stamp:
        return 1e9
    t = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return time.time() - t.timestamp()


class NodeController(Controller):
    name = "node-controller"
    watches = {"nodes": lambda self, o: [ns_name(o)]}
    grace = 40.0

    def __init__(self, store, registry, cluster_cidr: str = "10.244.0.0/16"):
        super().__init__(store, registry)
        self.cluster_cidr = cluster_cidr

    def sync(self, key):
        _, name = key
        self._host_routes()
        node = self.live("nodes", "", name)
        if node is None:
            return None
        if not node.get("spec", {}).get("podCIDR"):
            used = {n.get("spec", {}).get("podCIDR") for n in self.store.list("nodes")[0]}
            cidr = next_pod_cidr(self.cluster_cidr, used)

            def assign(cur):
                if cur.setdefault("spec", {}).get("podCIDR"):
                    return None
                cur["spec"]["podCIDR"], cur["spec"]["podCIDRs"] = cidr, [cidr]
                return cur
            self.registry.guaranteed_update(NODES, None, name, assign)
            self._host_routes()
        ready = next((c for c in node.get("status", {}).get("conditions", []) or []
                      if c.get("type") == "Ready"), None)
        if ready and ready.get("status") == "True":
            left = self.grace - _age(ready.get("lastHeartbeatTime"))
            if left > 0:
                return left + 0.5

            def unknown(cur):
                for c in cur.get("status", {}).get("conditions", []):
                    if c.get("type") == "Ready" and c.get("status") == "True":
                        c.update(status="Unknown", reason="NodeStatusUnknown",
                                 message="Kubelet stopped posting node status.")
                        return cur
                return None
            self.registry.guaranteed_update(NODES, None, name, unknown, subresource="status")
        return None

    def _host_routes(self) -> None:
        nodenet.sync_pod_routes(None, pod_cidr_routes(self.store.list("nodes", copy_items=False)[0]),
                                what="host routes to pod CIDRs")
