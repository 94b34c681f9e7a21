"""The node's kube-proxy: the rate-limited sync loop over the recorded changes.

As in kube-proxy (servicechangetracker.go, endpointschangetracker.go and
iptables/proxier.go): informer callbacks (`on_service`, `on_endpointslice`)
only convert the object and record {previous, current} per key, dropping
no-ops; they never touch the kernel. One loop (`run`) drains the changes at
most every `min_sync_period`, updates the Service-port -> endpoints map for
the Services that changed, renders with `dataplane.rules.render` (which
reuses the rules of unchanged Service ports from its cache) and has the
node's `dataplane.applier.Applier` write it atomically; in nftables mode
`dataplane.nft.render` and `dataplane.nft.applier.NftApplier` do
(`backends`: the mode's render and applier). Like kube-proxy >=
1.28 most syncs are partial: only chains whose rules changed are written. A
full sync rewrites every chain: the first one, every `full_sync_period`
(kube-proxy's FullSyncPeriod, an hour), after a failed sync and whenever the
KUBE-PROXY-CANARY chains disappear (checked about once a second, nearly free
while nobody else writes the tables; in nftables mode: whenever `table ip
kube-proxy` is gone or is another one).

Switching modes (`set_mode`, KubeProxyConfiguration `mode`): the next sync
is a full one in the new mode, and only after it succeeded are the old
mode's rules removed (`cleanup`, normally `backends.cleanup_other`), so
every Service is programmed by one mode or the other throughout. The same
cleanup runs after the first sync of a starting proxier, as kube-proxy
removes other modes' leftovers at start.

After a successful sync, as kube-proxy's syncProxyRules ends: the health
servers (`healthcheck`) learn that the rules are current, which Services
have a healthCheckNodePort and how many ready endpoints each has on this
node; stale UDP conntrack entries are cleared for the endpoints the render
chose (`reachable`, `staleconntrack`), so nothing is chosen twice. The sync logs what
changed and how long it took.

The informers' objects arrive converted into `dataplane.model` objects and
recorded by `changes` (the one place that reads Service and EndpointSlice
JSON).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Protocol

import dataplane.conntrack
from agent.node.proxy import backends
from agent.node.proxy.changes import ChangeTracker, PortKey, ServiceKey, service_ports, slice_endpoints
from agent.node.proxy.metrics import ProxyMetrics, trigger_time
from agent.node.proxy.staleconntrack import StaleConntrack
from dataplane.dispatch import TREE_THRESHOLD
from dataplane.model import Endpoint, NodeInfo, ServicePort
from dataplane.rules import LARGE_CLUSTER_ENDPOINTS, unique_endpoints

__all__ = ["ChangeTracker", "Proxier", "SyncResult", "service_ports", "slice_endpoints"]


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


class ProxierHealth(Protocol):
    """What the sync tells kube-proxy's /healthz (`healthcheck.ProxierHealthServer`)."""

    def queued_update(self) -> None: ...
    def updated(self) -> None: ...


class ServiceHealth(Protocol):
    """What the sync tells the healthCheckNodePort servers (`healthcheck.ServiceHealthServer`)."""

    def sync_services(self, ports: dict[ServiceKey, int]) -> None: ...
    def sync_endpoints(self, counts: dict[ServiceKey, int]) -> None: ...


# ---------------------------------------------------------------- the proxier


class Proxier:
    """kube-proxy for one node: see the module docstring. `applier` writes
    the node namespace's tables (one per namespace, made here for `mode`
    unless given); `healthz` and `service_health` are told about syncs;
    `cleanup(mode)` removes the other modes' rules (None: never);
    `appliers` ({mode: applier}) are used on a switch instead of new ones."""

    def __init__(
        self,
        node: NodeInfo,
        applier: Any = None,
        min_sync_period: float = 0.05,
        sync_period: float = 30.0,
        full_sync_period: float = 3600.0,
        log: logging.Logger = logging.getLogger("nsplane.proxier"),
        conntrack: Any = dataplane.conntrack,
        wait_for_initial_sync: bool = False,
        tree_threshold: int = TREE_THRESHOLD,
        large_threshold: int = LARGE_CLUSTER_ENDPOINTS,
        healthz: ProxierHealth | None = None,
        service_health: ServiceHealth | None = None,
        metrics: ProxyMetrics | None = None,
        mode: str = "iptables",
        cleanup: Callable[[str], str] | None = None,
        verify: str = "off",
        appliers: dict[str, Any] | None = None,
    ) -> None:
        self._node = node
        self._verify = verify
        self._backend = backends.make(mode, applier, verify, tree_threshold=tree_threshold,
                                      large_threshold=large_threshold)
        self._applier = self._backend.applier
        self._cleanup = cleanup
        self._cleanup_due = cleanup is not None  # after the first successful sync, as kube-proxy at start
        self._next_mode: str | None = None
        self._appliers = appliers or {}
        self._min_sync_period = min_sync_period
        self._sync_period = sync_period
        self._full_sync_period = full_sync_period
        self._log = log
        self._healthz = healthz
        self._service_health = service_health
        self._metrics = metrics
        if metrics is not None:
            metrics.mode = mode
        self._trigger_times: list[float] = []  # EndpointSlice last-change-trigger-times not yet written
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._services = ChangeTracker()
        self._slices = ChangeTracker()
        self._need_full = True
        self._synced = {"services": not wait_for_initial_sync, "endpointslices": not wait_for_initial_sync}
        self._tree_threshold = tree_threshold
        self._large_threshold = large_threshold
        self._port_map: dict[ServicePort, list[Endpoint]] = {}
        self._ports_of: dict[ServiceKey, tuple[ServicePort, ...]] = {}
        self._slices_of: dict[ServiceKey, set[Hashable]] = {}
        self._udp_ports: set[ServicePort] = set()  # of the port map, for conntrack cleanup
        self._health_check_ports: set[ServicePort] = set()  # of the port map, with a healthCheckNodePort
        self._stale = StaleConntrack(conntrack, log)  # what the last sync rendered for the UDP ports
        self._left_tcp: list[tuple[ServicePort, frozenset[str]]] = []  # endpoints that left a TCP port, to clear

    # -- informer callbacks: record only

    def on_service(self, old: dict | None, new: dict | None) -> None:
        self._record(self._services, old, new, lambda obj: service_ports(obj) or None, "service")

    def on_endpointslice(self, old: dict | None, new: dict | None) -> None:
        self._record(self._slices, old, new, slice_endpoints, "endpoint")

    def services_synced(self) -> None:
        """The initial Service list has been delivered (kube-proxy's OnServiceSynced)."""
        self._mark_synced("services")

    def endpointslices_synced(self) -> None:
        self._mark_synced("endpointslices")

    def set_node(self, node: NodeInfo) -> None:
        with self._lock:
            if node != self._node:
                self._node, self._need_full = node, True
                self._queued()

    @property
    def mode(self) -> str:
        return self._backend.mode

    def set_mode(self, mode: str) -> None:
        """Switch to proxy mode `mode` ("iptables" or "nftables") from the next
        sync on (a full one); the old mode's rules go once it succeeded."""
        if mode not in backends.MODES:
            raise ValueError(f'unsupported proxy mode "{mode}": supported values: "iptables", "nftables"')
        with self._lock:
            if mode == (self._next_mode or self._backend.mode):
                return
            self._next_mode, self._need_full = mode, True
            self._queued()

    def set_periods(self, min_sync_period: float, sync_period: float) -> None:
        """KubeProxyConfiguration iptables.minSyncPeriod / syncPeriod (the
        retry backoff's ceiling), from the next sync on."""
        with self._lock:
            self._min_sync_period, self._sync_period = min_sync_period, sync_period
            self._changed.set()

    def _record(self, tracker: ChangeTracker, old: dict | None, new: dict | None,
                convert: Callable[[dict], Any], kind: str) -> None:
        """Record `new` (None: deleted), converted, under its namespace/name;
        count it in the metrics (`kind`: "service" or "endpoint")."""
        obj = new if new is not None else old
        if obj is None:
            return
        meta = obj.get("metadata", {})
        key = (meta.get("namespace") or "default", meta["name"])
        value = convert(new) if new is not None else None
        with self._lock:
            changed = self._metrics is not None and tracker.latest(key) != value
            if tracker.update(key, value):
                self._queued()
            if changed:
                self._metrics.changed(kind, tracker.pending())
                trigger = trigger_time(new) if new is not None and kind == "endpoint" else None
                if trigger is not None:
                    self._trigger_times.append(trigger)

    def _queued(self) -> None:
        """A change to write (kube-proxy's Sync()); called with the lock held."""
        self._changed.set()
        if self._healthz is not None and all(self._synced.values()):
            self._healthz.queued_update()

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
        then update the health servers and clear stale UDP conntrack entries.
        Returns None (and does nothing) until the initial lists have arrived."""
        start = time.monotonic()
        with self._lock:
            if not all(self._synced.values()):
                self._log.debug("not syncing until Services and EndpointSlices have been listed")
                return None
            if self._next_mode is not None:
                self._backend = backends.make(self._next_mode, self._appliers.get(self._next_mode), self._verify,
                                              tree_threshold=self._tree_threshold,
                                              large_threshold=self._large_threshold)
                self._applier, self._next_mode = self._backend.applier, None
                self._cleanup_due = self._cleanup is not None
                self._log.info("proxy mode %s: writing every rule, then removing the other mode's", self.mode)
            backend = self._backend
            svc_changes, slice_changes = self._services.checkout(), self._slices.checkout()
            full, self._need_full = self._need_full or self._applier.written is None, False
            node = self._node
            services = self._update_port_map(svc_changes, slice_changes, full)
            udp_ports = list(self._udp_ports)
            left_tcp, self._left_tcp = self._left_tcp, []
            health = self._health_check_state(node.name) if self._service_health is not None else None
            triggers, self._trigger_times = self._trigger_times, []
        ruleset = backend.render(services, node)
        rendered = time.monotonic()
        try:
            written = backend.applier.apply(ruleset, full=full)
        except Exception:
            with self._lock:
                self._need_full = True
                self._trigger_times[:0] = triggers
            if self._metrics is not None:
                self._metrics.restore_failed()
            raise
        applied = time.monotonic()
        if self._metrics is not None:
            self._metrics.synced(applied - start, full, backend.rule_counts(ruleset), triggers, backend.mode)
        if self._cleanup_due and backend is self._backend:
            self._cleanup_other(backend.mode)
        self._report_health(health)
        self._stale.clear_udp(ruleset, udp_ports)
        self._stale.clear_closed_tcp(left_tcp)
        result = SyncResult(len(services), ruleset.endpoints, len(svc_changes), len(slice_changes),
                            rendered - start, applied - rendered, full, written)
        self._log.info(
            "synced %d service ports, %d endpoints (%d services, %d endpointslices changed; %s sync, "
            "%d chains written) in %.1f ms (render %.1f ms, apply %.1f ms)",
            result.service_ports, result.endpoints, result.services_changed, result.slices_changed,
            "full" if full else "partial", result.chains_written,
            (time.monotonic() - start) * 1000, result.render_seconds * 1000, result.apply_seconds * 1000,
        )
        return result

    def _cleanup_other(self, mode: str) -> None:
        """The other modes' rules go (kube-proxy's CleanupLeftovers); a failure is
        logged and counted, and tried again after the next sync."""
        try:
            done = self._cleanup(mode)
        except Exception as err:
            self._log.warning("removing the other proxy mode's rules failed: %s", err)
            if self._metrics is not None:
                self._metrics.cleanup_failed()
            return
        self._cleanup_due = False
        if done:
            self._log.info("proxy mode %s: %s", mode, done)

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
            before = {(sp.port_name, sp.protocol): (sp, frozenset(ep.ip for ep in self._port_map.get(sp, ())))
                      for sp in self._ports_of.get(service_key, ()) if sp.protocol == "TCP"}
            for sp in self._ports_of.pop(service_key, ()):
                self._port_map.pop(sp, None)
                self._udp_ports.discard(sp)
                self._health_check_ports.discard(sp)
            ports = self._services.applied.get(service_key) or ()
            if not ports:
                self._note_left_tcp(before, ports)
                continue
            merged: dict[PortKey, list[Endpoint]] = {}
            for slice_key in self._slices_of.get(service_key, ()):
                for port_key, endpoints in self._slices.applied[slice_key][1]:
                    merged.setdefault(port_key, []).extend(endpoints)
            self._ports_of[service_key] = ports
            for sp in ports:
                self._port_map[sp] = unique_endpoints(merged.get((sp.port_name, sp.protocol), []))
                if sp.protocol == "UDP":
                    self._udp_ports.add(sp)
                if sp.health_check_node_port:
                    self._health_check_ports.add(sp)
            self._note_left_tcp(before, ports)
        return dict(self._port_map)

    def _note_left_tcp(self, before: dict, ports) -> None:
        """Record the endpoints each TCP port of a Service had before this
        sync and has no more (the whole port when the Service is gone)."""
        for old_sp, ips in before.values():
            now = next((frozenset(ep.ip for ep in self._port_map[sp]) for sp in ports
                        if (sp.port_name, sp.protocol) == (old_sp.port_name, old_sp.protocol)), frozenset())
            if ips - now:
                self._left_tcp.append((old_sp, ips - now))

    # -- health (kube-proxy's HealthCheckNodePorts() and LocalReadyEndpoints())

    def _health_check_state(self, node_name: str) -> tuple[dict[ServiceKey, int], dict[ServiceKey, int]]:
        """({Service: healthCheckNodePort}, {Service: ready endpoint IPs on this
        node}) for the Services with a healthCheckNodePort, from the port map
        this sync renders. Called with the lock held."""
        ports: dict[ServiceKey, int] = {}
        local: dict[ServiceKey, set[str]] = {}
        for sp in self._health_check_ports:
            key = (sp.namespace, sp.name)
            ports[key] = sp.health_check_node_port
            local.setdefault(key, set()).update(
                ep.ip for ep in self._port_map[sp] if ep.ready and ep.node_name == node_name)
        return ports, {key: len(ips) for key, ips in local.items() if ips}

    def _report_health(self, health: tuple[dict[ServiceKey, int], dict[ServiceKey, int]] | None) -> None:
        if self._healthz is not None:
            self._healthz.updated()
        if self._service_health is not None and health is not None:
            ports, counts = health
            self._service_health.sync_services(ports)
            self._service_health.sync_endpoints(counts)

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
        if self._applier.written is None:
            return 0.0  # nothing applied yet, or the last apply failed: a full sync is due anyway
        start = time.monotonic()
        try:
            missing = self._applier.canary_missing()
        except Exception as err:
            self._log.warning("cannot read the %s: %s", self._backend.canary[0], err)
            return time.monotonic() - start
        if missing:
            self._log.warning("%s; resyncing all rules", self._backend.canary[1])
            with self._lock:
                self._need_full = True
                self._changed.set()
        return time.monotonic() - start

