"""The node's kube-proxy: change tracking and the rate-limited sync loop.

As in kube-proxy (servicechangetracker.go, endpointschangetracker.go and
iptables/proxier.go): informer callbacks (`on_service`, `on_endpointslice`)
only convert the object and record {previous, current} per key, dropping
no-ops; they never touch the kernel. One loop (`run`) drains the changes at
most every `min_sync_period`, updates the Service-port -> endpoints map for
the Services that changed, renders with `dataplane.rules.render` (which
reuses the rules of unchanged Service ports from its cache), applies it
atomically, clears stale UDP conntrack entries and logs what changed and how
long it took. Like kube-proxy >= 1.28 most syncs are partial: only chains
whose rules changed are written (`dataplane.iptables.apply(ruleset,
previous)`). A full sync rewrites every chain: the first one, every
`full_sync_period` (kube-proxy's FullSyncPeriod, an hour), after a failed
sync and whenever the KUBE-PROXY-CANARY chains disappear (checked about once
a second, nearly free while nobody else writes the tables).

Service (v1) and EndpointSlice (discovery.k8s.io/v1) JSON dicts are turned
into `dataplane.model` objects here and nowhere else (`service_ports`,
`slice_endpoints`). IPv4 only, like the rest of nsplane.
"""
from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable

import dataplane.conntrack
import dataplane.iptables
from dataplane.dispatch import TREE_THRESHOLD
from dataplane.model import Endpoint, NodeInfo, ServicePort
from dataplane.rules import (
    LARGE_CLUSTER_ENDPOINTS,
    RenderCache,
    Ruleset,
    categorize,
    render,
    unique_endpoints,
)

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


@dataclass(frozen=True)
class SyncResult:
    service_ports: int
    endpoints: int
    services_changed: int
    slices_changed: int
    render_seconds: float
    apply_seconds: float
    full: bool = True
    chains_written: int = 0


# ---------------------------------------------------------------- the proxier


class Proxier:
    """kube-proxy (iptables mode) for one node: see the module docstring."""

    def __init__(
        self,
        node: NodeInfo,
        apply: Callable[[Ruleset, Ruleset | None], Any] = dataplane.iptables.apply,
        min_sync_period: float = 0.05,
        sync_period: float = 30.0,
        full_sync_period: float = 3600.0,
        log: logging.Logger = logging.getLogger("nsplane.proxier"),
        canary_missing: Callable[[], bool] = dataplane.iptables.canary_missing,
        conntrack: Any = dataplane.conntrack,
        wait_for_initial_sync: bool = False,
        tree_threshold: int = TREE_THRESHOLD,
        large_threshold: int = LARGE_CLUSTER_ENDPOINTS,
    ) -> None:
        self._node = node
        self._apply = apply
        self._min_sync_period = min_sync_period
        self._sync_period = sync_period
        self._full_sync_period = full_sync_period
        self._log = log
        self._canary_missing = canary_missing
        self._conntrack = conntrack
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._services = ChangeTracker()
        self._slices = ChangeTracker()
        self._need_full = True
        self._synced = {"services": not wait_for_initial_sync, "endpointslices": not wait_for_initial_sync}
        self._last_endpoints: dict[ServicePort, frozenset[str]] = {}
        self._tree_threshold = tree_threshold
        self._large_threshold = large_threshold
        self._render_cache = RenderCache()
        self._port_map: dict[ServicePort, list[Endpoint]] = {}
        self._ports_of: dict[ServiceKey, tuple[ServicePort, ...]] = {}
        self._slices_of: dict[ServiceKey, set[Hashable]] = {}
        self.last_ruleset: Ruleset | None = None

    # -- informer callbacks: record only

    def on_service(self, old: dict | None, new: dict | None) -> None:
        obj = new if new is not None else old
        if obj is None:
            return
        meta = obj.get("metadata", {})
        key = (meta.get("namespace") or "default", meta["name"])
        value = service_ports(new) if new is not None else ()
        self._record(self._services, key, value or None)

    def on_endpointslice(self, old: dict | None, new: dict | None) -> None:
        obj = new if new is not None else old
        if obj is None:
            return
        meta = obj.get("metadata", {})
        key = (meta.get("namespace") or "default", meta["name"])
        self._record(self._slices, key, slice_endpoints(new) if new is not None else None)

    def services_synced(self) -> None:
        """The initial Service list has been delivered (kube-proxy's OnServiceSynced)."""
        self._mark_synced("services")

    def endpointslices_synced(self) -> None:
        self._mark_synced("endpointslices")

    def set_node(self, node: NodeInfo) -> None:
        with self._lock:
            if node != self._node:
                self._node, self._need_full = node, True
                self._changed.set()

    def _record(self, tracker: ChangeTracker, key: Hashable, value: Any) -> None:
        with self._lock:
            if tracker.update(key, value):
                self._changed.set()

    def _mark_synced(self, kind: str) -> None:
        with self._lock:
            self._synced[kind] = True
            self._need_full = True
            self._changed.set()

    # -- the sync

    def has_pending_changes(self) -> bool:
        with self._lock:
            if not all(self._synced.values()):
                return False
            return bool(self._services.pending() or self._slices.pending() or self._need_full)

    def sync_once(self) -> SyncResult | None:
        """Drain changes, render, apply (partially unless a full sync is due),
        clear stale UDP conntrack. Returns None (and does nothing) until the
        initial lists have arrived."""
        start = time.monotonic()
        with self._lock:
            if not all(self._synced.values()):
                self._log.debug("not syncing until Services and EndpointSlices have been listed")
                return None
            svc_changes, slice_changes = self._services.checkout(), self._slices.checkout()
            full, self._need_full = self._need_full or self.last_ruleset is None, False
            node = self._node
            services = self._update_port_map(svc_changes, slice_changes, full)
        ruleset = render(services, node, self._render_cache, self._tree_threshold, self._large_threshold)
        rendered = time.monotonic()
        try:
            written = self._apply(ruleset, None if full else self.last_ruleset)
        except Exception:
            with self._lock:
                self._need_full = True
            raise
        applied = time.monotonic()
        self.last_ruleset = ruleset
        self._clear_stale_udp(services, node)
        result = SyncResult(len(services), ruleset.endpoints, len(svc_changes), len(slice_changes),
                            rendered - start, applied - rendered, full, written if isinstance(written, int) else 0)
        self._log.info(
            "synced %d service ports, %d endpoints (%d services, %d endpointslices changed; %s sync, "
            "%d chains written) in %.1f ms (render %.1f ms, apply %.1f ms)",
            result.service_ports, result.endpoints, result.services_changed, result.slices_changed,
            "full" if full else "partial", result.chains_written,
            (time.monotonic() - start) * 1000, result.render_seconds * 1000, result.apply_seconds * 1000,
        )
        return result

    def _update_port_map(self, svc_changes: dict, slice_changes: dict, full: bool) -> dict[ServicePort, list[Endpoint]]:
        """Every Service port with the merged endpoints of all its slices,
        recomputed only for the Services that changed (all of them on a full
        sync). Unchanged ports keep the same endpoint list object, which is
        how the render cache recognises them cheaply. Called with the lock held."""
        for key, (previous, current) in slice_changes.items():
            if previous is not None:
                self._slices_of.get(previous[0], set()).discard(key)
            if current is not None:
                self._slices_of.setdefault(current[0], set()).add(key)
        if full:
            touched = set(self._ports_of) | set(self._services.applied)
        else:
            touched = set(svc_changes)
            touched.update(v[0] for pair in slice_changes.values() for v in pair if v is not None)
        for service_key in touched:
            for sp in self._ports_of.pop(service_key, ()):
                self._port_map.pop(sp, None)
            ports = self._services.applied.get(service_key) or ()
            if not ports:
                continue
            merged: dict[PortKey, list[Endpoint]] = {}
            for slice_key in self._slices_of.get(service_key, ()):
                for port_key, endpoints in self._slices.applied[slice_key][1]:
                    merged.setdefault(port_key, []).extend(endpoints)
            self._ports_of[service_key] = ports
            for sp in ports:
                self._port_map[sp] = unique_endpoints(merged.get((sp.port_name, sp.protocol), []))
        return dict(self._port_map)

    # -- conntrack (kube-proxy's CleanStaleEntries, for UDP)

    def _clear_stale_udp(self, services: dict[ServicePort, list[Endpoint]], node: NodeInfo) -> None:
        current: dict[ServicePort, frozenset[str]] = {}
        for sp, endpoints in services.items():
            if sp.protocol == "UDP":
                current[sp] = frozenset(ep.ip for ep in categorize(sp, endpoints, node.name).reachable)
        previous, self._last_endpoints = self._last_endpoints, current
        for sp, ips in current.items():
            before = previous.get(sp, frozenset())
            try:
                if ips and not before:
                    self._clear_service(sp, None)
                for gone in before - ips:
                    self._clear_service(sp, gone)
            except Exception as err:  # a failed cleanup must not fail the sync
                self._log.warning("clearing UDP conntrack entries for %s failed: %s", sp.spn, err)
        for sp in previous.keys() - current.keys():
            for gone in previous[sp]:
                try:
                    self._clear_service(sp, gone)
                except Exception as err:
                    self._log.warning("clearing UDP conntrack entries for %s failed: %s", sp.spn, err)

    def _clear_service(self, sp: ServicePort, endpoint_ip: str | None) -> None:
        for ip in (sp.cluster_ip, *sp.external_ips, *sp.load_balancer_ips):
            if ip:
                self._conntrack.clear_udp(ip, sp.port, endpoint_ip)
        if sp.node_port:
            self._conntrack.clear_udp_node_port(sp.node_port, endpoint_ip)

    # -- the loop

    def run(self, stop: threading.Event) -> None:
        """Sync on changes (at most every min_sync_period), fully every
        full_sync_period and when the canary is gone (checked about once a
        second), retrying failures with a backoff up to sync_period, until `stop`."""
        last_sync = float("-inf")
        next_full = time.monotonic()
        next_canary = time.monotonic() + 1.0
        retry_at = float("inf")
        backoff = 1.0
        while not stop.is_set():
            now = time.monotonic()
            self._changed.wait(max(0.0, min(0.2, next_full - now, next_canary - now, retry_at - now)))
            if stop.is_set():
                break
            now = time.monotonic()
            if now >= next_canary:
                took = self._check_canary()
                # About once a second, but never more than ~10% of a CPU: reading a
                # nat table with 100k rules back takes a good fraction of a second.
                next_canary = time.monotonic() + max(1.0, 10 * took)
            if now >= next_full or now >= retry_at:
                with self._lock:
                    self._need_full = True
            if not (self._changed.is_set() or self.has_pending_changes()):
                continue
            if now - last_sync < self._min_sync_period:
                stop.wait(self._min_sync_period - (now - last_sync))
                continue
            self._changed.clear()
            last_sync = time.monotonic()
            try:
                result = self.sync_once()
            except Exception as err:
                self._log.error("sync failed, retrying in %.0f s: %s", backoff, err)
                retry_at = time.monotonic() + backoff
                backoff = min(backoff * 2, self._sync_period)
            else:
                if result is not None and result.full:
                    next_full = time.monotonic() + self._full_sync_period
                retry_at, backoff = float("inf"), 1.0

    def _check_canary(self) -> float:
        """Resync if the canary chains are gone; returns how long the check took."""
        if self.last_ruleset is None:
            return 0.0  # nothing applied yet
        start = time.monotonic()
        try:
            missing = self._canary_missing()
        except Exception as err:
            self._log.warning("cannot read the KUBE-PROXY-CANARY chains: %s", err)
            return time.monotonic() - start
        if missing:
            self._log.warning("KUBE-PROXY-CANARY is gone (iptables flushed?); resyncing all rules")
            with self._lock:
                self._need_full = True
                self._changed.set()
        return time.monotonic() - start
