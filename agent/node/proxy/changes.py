"""What the informers hand the proxier, as kube-proxy's change trackers keep it.

Service (v1) and EndpointSlice (discovery.k8s.io/v1) JSON dicts become
`dataplane.model` objects here and nowhere else (`service_ports`,
`slice_endpoints`, what kube-proxy's servicechangetracker.go and
endpointslicecache.go convert), and `ChangeTracker` records {previous,
current} per key between syncs, dropping changes that return to the synced
value. Pure; IPv4 only, like the rest of nsplane.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Hashable

from dataplane.model import Endpoint, ServicePort

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_AFFINITY_TIMEOUT = 10800  # the apiserver's default for sessionAffinityConfig.clientIP.timeoutSeconds

ServiceKey = tuple[str, str]  # (namespace, name)
PortKey = tuple[str, str]  # (port name, protocol)
SliceValue = tuple[ServiceKey, tuple[tuple[PortKey, tuple[Endpoint, ...]], ...]]


# ---------------------------------------------------------------- API object -> model (the one place)


def service_ports(service: dict[str, Any]) -> tuple[ServicePort, ...]:
    """The Service ports kube-proxy would proxy; () for ExternalName and headless."""
    meta, spec = service.get("metadata", {}), service.get("spec", {}) or {}
    svc_type = spec.get("type") or "ClusterIP"
    cluster_ip = spec.get("clusterIP") or ""
    if svc_type == "ExternalName" or cluster_ip in ("", "None") or not _is_ipv4(cluster_ip):
        return ()
    external_ips = tuple(ip for ip in (spec.get("externalIPs") or []) if _is_ipv4(ip))
    accessible = svc_type in ("NodePort", "LoadBalancer") or (svc_type == "ClusterIP" and bool(external_ips))
    external_local = accessible and spec.get("externalTrafficPolicy") == "Local"
    affinity = 0
    if spec.get("sessionAffinity") == "ClientIP":
        config = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
        affinity = int(config.get("timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT)
    common = dict(
        cluster_ip=cluster_ip,
        external_ips=external_ips,
        load_balancer_ips=_load_balancer_ips(service),
        load_balancer_source_ranges=_source_ranges(spec.get("loadBalancerSourceRanges") or []),
        external_policy_local=external_local,
        internal_policy_local=spec.get("internalTrafficPolicy") == "Local",
        health_check_node_port=int(spec.get("healthCheckNodePort") or 0)
        if svc_type == "LoadBalancer" and external_local else 0,
        affinity_timeout=affinity,
    )
    return tuple(
        ServicePort(
            namespace=meta.get("namespace") or "default",
            name=meta["name"],
            port_name=port.get("name") or "",
            protocol=port.get("protocol") or "TCP",
            port=int(port["port"]),
            node_port=int(port.get("nodePort") or 0),
            **common,
        )
        for port in spec.get("ports") or []
    )


def slice_endpoints(endpoint_slice: dict[str, Any]) -> SliceValue | None:
    """(owning Service, endpoints per (port name, protocol)) of an EndpointSlice,
    or None when kube-proxy would ignore it (no service-name label, not IPv4)."""
    meta = endpoint_slice.get("metadata", {})
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not service or endpoint_slice.get("addressType", "IPv4") != "IPv4":
        return None
    ports = []
    for port in endpoint_slice.get("ports") or []:
        number = int(port.get("port") or 0)
        if not number:
            continue  # kube-proxy ignores ports without a number
        endpoints = tuple(_endpoint(ep, number) for ep in endpoint_slice.get("endpoints") or [] if ep.get("addresses"))
        ports.append(((port.get("name") or "", port.get("protocol") or "TCP"), endpoints))
    return (meta.get("namespace") or "default", service), tuple(sorted(ports, key=lambda p: p[0]))


def _endpoint(ep: dict[str, Any], port: int) -> Endpoint:
    cond = ep.get("conditions") or {}
    return Endpoint(
        ip=ep["addresses"][0],
        port=port,
        ready=cond.get("ready") is not False,  # missing means ready
        serving=cond.get("serving") is not False,
        terminating=cond.get("terminating") is True,
        node_name=ep.get("nodeName"),
    )


def _load_balancer_ips(service: dict[str, Any]) -> tuple[str, ...]:
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return tuple(
        ing["ip"] for ing in ingress
        if ing.get("ip") and _is_ipv4(ing["ip"]) and ing.get("ipMode", "VIP") == "VIP"
    )


def _source_ranges(ranges: list[str]) -> tuple[str, ...]:
    result = []
    for cidr in ranges:
        try:
            net = ipaddress.ip_network(cidr.strip(), strict=False)
        except ValueError:
            continue  # kube-proxy skips unparsable ranges too
        if net.version == 4:
            result.append(str(net))
    return tuple(result)


def _is_ipv4(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).version == 4
    except ValueError:
        return False


# ---------------------------------------------------------------- change tracking


class ChangeTracker:
    """{key: (previous, current)} since the last sync; a change that returns to
    the synced value disappears (kube-proxy's no-op dropping)."""

    def __init__(self) -> None:
        self.applied: dict[Hashable, Any] = {}
        self._pending: dict[Hashable, tuple[Any, Any]] = {}

    def update(self, key: Hashable, current: Any) -> bool:
        """Record `current` (None = deleted); True if something is now pending for key."""
        previous = self._pending[key][0] if key in self._pending else self.applied.get(key)
        if current == previous:
            self._pending.pop(key, None)
            return False
        self._pending[key] = (previous, current)
        return True

    def latest(self, key: Hashable) -> Any:
        """What was last recorded for `key` (pending or synced)."""
        return self._pending[key][1] if key in self._pending else self.applied.get(key)

    def pending(self) -> int:
        return len(self._pending)

    def checkout(self) -> dict[Hashable, tuple[Any, Any]]:
        """Apply pending changes to `applied` and return them."""
        changes, self._pending = self._pending, {}
        for key, (_, current) in changes.items():
            if current is None:
                self.applied.pop(key, None)
            else:
                self.applied[key] = current
        return changes
