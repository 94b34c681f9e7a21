"""Service allocation: which ClusterIP, nodePorts, healthCheckNodePort and
requested loadBalancerIP a Service holds, as kube-apiserver's Service REST
storage (alloc.go) hands them out on create and update.

What other Services hold is read from three store indexes (`clusterIPs`,
`nodePorts`, `loadBalancerIPs`, registered here) through `Taken` views, so an
allocation never scans every Service; the ranges themselves and how a free
value is picked are the pure allocators of agent/apiserver/allocator.py.
Call `ServiceAllocation.allocate` under the store's transaction: the check
and the write that follows must see no other writer in between.

A refusal is an `AllocationRefused` carrying the 422 cause kube answers with
("spec.ports[0].nodePort: Invalid value: 30080: provided port is already
allocated"). `drop_type_dependent_fields` is the strategy's cleanup when an
update changes a Service's type.
"""
from __future__ import annotations

from contextlib import contextmanager

from agent.apiserver.allocator import (
    AllocationError,
    ClusterIPRange,
    LoadBalancerPool,
    NodePortRange,
)
from agent.apiserver.store import Store
from agent.apiserver.validation import Cause


class AllocationRefused(Exception):
    """An allocation that cannot be made, as the field cause of a 422."""

    def __init__(self, cause: Cause):
        super().__init__(str(cause))
        self.cause = cause


class Taken:
    """Values that objects other than `exclude` hold, read from a store index
    without copying it: `in`, `get` (-> "ns/name" of the holder) and `add`
    (values taken during this allocation)."""

    def __init__(self, index: dict[str, set[tuple[str, str]]], exclude: tuple[str, str]):
        self.index, self.exclude, self.extra = index, exclude, set()

    def _holders(self, value) -> list[tuple[str, str]]:
        return [k for k in self.index.get(str(value), ()) if k != self.exclude]

    def __contains__(self, value) -> bool:
        return value in self.extra or bool(self._holders(value))

    def add(self, value) -> None:
        self.extra.add(value)

    def get(self, value, default=None):
        holders = self._holders(value)
        return "/".join(min(holders)) if holders else default


class ServiceAllocation:
    """The cluster's Service ranges and what is taken of them."""

    def __init__(self, store: Store, service_cidr: str = "10.96.0.0/12",
                 node_ports: tuple[int, int] = (30000, 32767), lb_pool: str = "none"):
        self.store = store        # read only: its indexes
        self.cluster_ips = ClusterIPRange(service_cidr)
        self.node_ports = NodePortRange(*node_ports)
        self.lb_pool = LoadBalancerPool(lb_pool)
        store.add_index("services", "clusterIPs", cluster_ips)
        store.add_index("services", "nodePorts", node_ports_of)
        store.add_index("services", "loadBalancerIPs", load_balancer_ips)

    @property
    def node_port_range(self) -> tuple[int, int]:
        return self.node_ports.first, self.node_ports.last

    def used(self, svc: dict) -> tuple[Taken, Taken, Taken]:
        """ClusterIPs, node ports and load-balancer addresses held by Services other
        than `svc`, as views of the store's indexes (call under the store's transaction)."""
        me = (svc["metadata"].get("namespace", ""), svc["metadata"]["name"])
        return tuple(Taken(self.store.index("services", name), me)
                     for name in ("clusterIPs", "nodePorts", "loadBalancerIPs"))

    def allocate(self, svc: dict, old: dict | None) -> None:
        """Fill in `svc`'s clusterIP(s), nodePorts and healthCheckNodePort, keeping
        what `old` (the stored Service, on update) already holds; check a
        requested loadBalancerIP. Raises AllocationRefused."""
        spec = svc["spec"]
        stype = spec.get("type", "ClusterIP")
        ospec = (old or {}).get("spec", {})
        used_ips, used_ports, used_lb = self.used(svc)
        with _refusal("spec.clusterIPs", f'Invalid value: []string{{"{spec.get("clusterIP")}"}}: '):
            self._cluster_ip(spec, stype, ospec, used_ips)
        self._node_ports(spec, stype, ospec, used_ports)
        if stype == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local":
            kept = ospec.get("healthCheckNodePort")
            if not spec.get("healthCheckNodePort") or spec["healthCheckNodePort"] != kept:
                with _refusal("spec.healthCheckNodePort"):
                    spec["healthCheckNodePort"] = self.node_ports.allocate(used_ports, spec.get("healthCheckNodePort"))
        if stype == "LoadBalancer" and spec.get("loadBalancerIP"):
            ip = spec["loadBalancerIP"]
            with _refusal("spec.loadBalancerIP", f'Invalid value: "{ip}": '):
                self.lb_pool.check(ip, used_lb, f"{svc['metadata']['namespace']}/{svc['metadata']['name']}")

    def _cluster_ip(self, spec: dict, stype: str, ospec: dict, used: Taken) -> None:
        if stype == "ExternalName":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        elif spec.get("clusterIP") != "None":
            old_ip = ospec.get("clusterIP")
            want = spec.get("clusterIP") or (old_ip if old_ip not in (None, "", "None") else None)
            ip = want if want and old_ip == want else self.cluster_ips.allocate(used, want)
            spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
        else:
            spec["clusterIPs"] = ["None"]

    def _node_ports(self, spec: dict, stype: str, ospec: dict, used: Taken) -> None:
        """Keep, share or allocate each port's nodePort, or drop it where the type has none."""
        wants = stype == "NodePort" or (stype == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True))
        kept_of = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in ospec.get("ports", [])}
        mine: dict[int, str] = {}    # nodePort -> protocol, within this Service
        for i, p in enumerate(spec.get("ports", [])):
            if not wants:
                if stype != "LoadBalancer":
                    p.pop("nodePort", None)
                continue
            proto = p.get("protocol", "TCP")
            kept = kept_of.get((p.get("port"), proto))
            if p.get("nodePort") and (p["nodePort"] == kept or mine.get(p["nodePort"], proto) != proto):
                pass   # kept, or shared by the same Service's port of another protocol (as kube allows)
            else:
                with _refusal(f"spec.ports[{i}].nodePort"):
                    p["nodePort"] = self.node_ports.allocate(used, p.get("nodePort") or kept)
            used.add(p["nodePort"])
            mine[p["nodePort"]] = proto


@contextmanager
def _refusal(field: str, prefix: str = ""):
    """Turn the allocator's AllocationError into the 422 cause for `field`."""
    try:
        yield
    except AllocationError as e:
        raise AllocationRefused(Cause(field, "FieldValueInvalid", prefix + str(e))) from None


# ---- the store indexes ---------------------------------------------------------

def cluster_ips(svc: dict) -> list[str]:
    spec = svc.get("spec", {})
    return [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and ip != "None"]


def node_ports_of(svc: dict) -> list[str]:
    spec = svc.get("spec", {})
    ports = {str(p["nodePort"]) for p in spec.get("ports") or [] if p.get("nodePort")}
    if spec.get("healthCheckNodePort"):
        ports.add(str(spec["healthCheckNodePort"]))
    return sorted(ports)


def load_balancer_ips(svc: dict) -> list[str]:
    """The addresses a Service holds from the load-balancer pool: its ingress and its request."""
    ips = [i["ip"] for i in (svc.get("status", {}).get("loadBalancer", {}) or {}).get("ingress", []) or []
           if i.get("ip")]
    spec = svc.get("spec", {})
    if spec.get("type") == "LoadBalancer" and spec.get("loadBalancerIP"):
        ips.append(spec["loadBalancerIP"])
    return ips


# ---- type changes --------------------------------------------------------------

def drop_type_dependent_fields(old: dict, new: dict) -> None:
    """kube-apiserver's dropTypeDependentFields: when an update changes the type
    and leaves a field the new type can't have as it was, the field goes
    (instead of failing validation), e.g. nodePorts on NodePort -> ClusterIP."""
    ospec, spec = old.get("spec", {}), new.setdefault("spec", {})
    otype, stype = ospec.get("type", "ClusterIP"), spec.get("type", "ClusterIP")
    if otype == stype:
        return
    if stype not in ("NodePort", "LoadBalancer"):
        oports = [p.get("nodePort") for p in ospec.get("ports", [])]
        if [p.get("nodePort") for p in spec.get("ports", [])][:len(oports)] == oports[:len(spec.get("ports", []))]:
            for p in spec.get("ports", []):
                p.pop("nodePort", None)
    unchanged = lambda f: spec.get(f) == ospec.get(f)  # noqa: E731
    if not (stype == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local") \
            and unchanged("healthCheckNodePort"):
        spec.pop("healthCheckNodePort", None)
    if stype != "LoadBalancer":
        for f in ("allocateLoadBalancerNodePorts", "loadBalancerClass"):
            if unchanged(f):
                spec.pop(f, None)
    accessible = stype in ("NodePort", "LoadBalancer") or bool(spec.get("externalIPs"))
    if not accessible and unchanged("externalTrafficPolicy"):
        spec.pop("externalTrafficPolicy", None)
    if stype == "ExternalName":          # needsClusterIP and needsInternalTrafficPolicy turn false
        if unchanged("clusterIP"):
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        for f in ("ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy"):
            if unchanged(f):
                spec.pop(f, None)
    if otype == "ExternalName" and unchanged("externalName"):
        spec.pop("externalName", None)
