"""The load-balancer controller: what MetalLB's controller does for a bare-metal
cluster, with nsplane's built-in pool (`nsplane up --lb-pool`).

Every Service of type LoadBalancer (without a loadBalancerClass, which would
name another implementation) gets one address from the pool in
status.loadBalancer.ingress: the one it asked for in spec.loadBalancerIP
(admission already checked it is in the pool and free), the one it already
has, or the lowest free one. A Service that leaves type LoadBalancer gives its
address back. When the pool is exhausted or disabled the Service stays
`<pending>` with a Warning Event saying why, and is retried whenever another
Service releases an address. Which node answers ARP for the address is the
node agents' business (agent/node/speaker.py), as with MetalLB's speakers.
"""
from __future__ import annotations

from agent.api.kinds import BY_RESOURCE
from agent.apiserver.store import NotFound
from agent.controllers.base import Controller, ns_name, record_event

COMPONENT = "nsplane-lb-controller"


def wants_address(svc: dict) -> bool:
    spec = svc.get("spec", {})
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass") \
        and not svc["metadata"].get("deletionTimestamp")


def ingress_ips(svc: dict) -> list[str]:
    return [i["ip"] for i in (svc.get("status", {}).get("loadBalancer") or {}).get("ingress", []) or []
            if i.get("ip")]


class LoadBalancerController(Controller):
    name = "load-balancer-controller"
    watches = {"services": lambda self, o: [ns_name(o), *self.pending]}

    def __init__(self, store, registry):
        super().__init__(store, registry)
        self.pool = registry.allocation.lb_pool
        self.pending: set[tuple[str, str]] = set()

    def sync(self, key):
        ns, name = key
        with self.store.transaction():
            try:
                svc = self.store.get("services", ns, name)
            except NotFound:
                self.pending.discard(key)
                return None
            have = ingress_ips(svc)
            if not wants_address(svc):
                self.pending.discard(key)
                if have and any(self.pool.contains(ip) for ip in have):
                    self._set_ingress(ns, name, None)
                return None
            used = self.registry.allocation.used(svc)[2]
            want = svc["spec"].get("loadBalancerIP") or next(
                (ip for ip in have if self.pool.contains(ip) and ip not in used), None) or self.pool.allocate(used)
            if want is None:
                self.pending.add(key)
                why = ("no available IPs" if self.pool.enabled
                       else "no load-balancer pool is configured (nsplane up --lb-pool)")
            elif have == [want]:
                self.pending.discard(key)
                return None
            else:
                self.pending.discard(key)
                self._set_ingress(ns, name, want)
        if want is None:
            record_event(self.registry, svc, "AllocationFailed", f'Failed to allocate IP for "{ns}/{name}": {why}',
                          "Warning", COMPONENT)
        else:
            record_event(self.registry, svc, "IPAllocated", f'Assigned IP ["{want}"]', component=COMPONENT)
        return None

    def _set_ingress(self, ns: str, name: str, ip: str | None) -> None:
        def mutate(cur):
            lb = cur.setdefault("status", {}).setdefault("loadBalancer", {})
            if ip is None:
                lb.pop("ingress", None)
            else:
                lb["ingress"] = [{"ip": ip, "ipMode": "VIP"}]
            return cur
        self.registry.guaranteed_update(BY_RESOURCE["services"], ns, name, mutate, subresource="status")
