"""Live cluster state for DNS: what the watch feeds in, and the read-only view answers come from.

`ClusterState` is written by one watch thread (`apply`, `replace`,
`mark_synced`) and read by the server threads. A write only swaps one dict
entry and bumps a generation counter, so it is O(1) whatever the cluster size;
it never renders answers (kube-proxy's rule: watch callbacks only record).

Readers call `view()`: an immutable `ClusterView` with the indexes records
need (services by name and ClusterIP, ready endpoints per Service and by IP,
namespaces). It is built lazily, once per generation, under the state lock,
and then shared by every reader until the next change.

`serial` follows CoreDNS: the Unix time of the last change, used as the SOA
serial.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass, field

from dns import objects
from dns.objects import EndpointSlice, Pod, Service

log = logging.getLogger(__name__)

EVENTS = ("ADDED", "MODIFIED", "DELETED")


@dataclass(frozen=True, slots=True)
class Address:
    """One ready endpoint address of a Service, with its DNS hostname labels.

    `hostname` is CoreDNS's endpointHostname: the endpoint's hostname, else its
    IP with dashes; `pod_hostname` is the same under `endpoint_pod_names`,
    where the target pod's name comes before the IP.
    """

    ip: str
    hostname: str
    pod_hostname: str = ""

    def label(self, endpoint_pod_names: bool) -> str:
        return self.pod_hostname if endpoint_pod_names and self.pod_hostname else self.hostname


@dataclass(frozen=True, slots=True)
class Subset:
    """The ready addresses of one EndpointSlice and the ports they all share."""

    addresses: tuple[Address, ...]
    ports: tuple[objects.Port, ...]


@dataclass(frozen=True)
class ClusterView:
    """Immutable indexes over one generation of the cluster state."""

    generation: int = 0
    synced: bool = False
    serial: int = 0
    services: dict[tuple[str, str], Service] = field(default_factory=dict)
    subsets: dict[tuple[str, str], tuple[Subset, ...]] = field(default_factory=dict)
    services_by_ip: dict[str, tuple[Service, ...]] = field(default_factory=dict)
    # ip -> (namespace, service name, Address) of every ready endpoint, from the
    # EndpointSlices alone (CoreDNS's EpIndexReverse): PTRs outlive the Service.
    endpoints_by_ip: dict[str, tuple[tuple[str, str, Address], ...]] = field(default_factory=dict)
    pods_by_ip: dict[str, frozenset[str]] = field(default_factory=dict)   # pod IP -> namespaces
    namespaces: frozenset[str] = frozenset()

    def service(self, namespace: str, name: str) -> Service | None:
        return self.services.get((namespace, name))

    def namespace_exists(self, namespace: str) -> bool:
        return namespace in self.namespaces

    def pod_namespace(self, ip: str) -> str | None:
        """The namespace of the pod whose status.podIP is `ip` (CoreDNS's podWithIP, which
        autopath asks), or None; the first in order when pods of several namespaces share it."""
        found = self.pods_by_ip.get(normalize_ip(ip))
        return min(found) if found else None


def normalize_ip(ip: str) -> str:
    """Canonical text form, so '10.0.0.1' and a reverse-name IPv6 compare equal."""
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip


def endpoint_hostname(ip: str, hostname: str) -> str:
    """CoreDNS's endpointHostname: the hostname, else the IP with dashes."""
    if hostname:
        return hostname
    if "." in ip:
        return ip.replace(".", "-")
    dashed = ip.replace(":", "-")
    return dashed + "0" if dashed.endswith("-") else dashed


class ClusterState:
    """The watch-fed store of Services, EndpointSlices, Pods and Namespaces."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, dict[tuple[str, str], object]] = {k: {} for k in objects.KINDS}
        self._generation = 0
        self._synced = False
        self._serial = int(time.time())
        self._view = ClusterView()
        self._listeners: list = []

    # -- writes (the watch thread) -------------------------------------

    def apply(self, kind: str, event: str, obj: dict) -> None:
        """Record one watch event. `kind` is Service, EndpointSlice, Pod or Namespace."""
        if event not in EVENTS:
            raise ValueError(f"watch event {event!r} for {kind}: expected one of {', '.join(EVENTS)}")
        key = objects.object_key(kind, obj)
        new = None if event == "DELETED" else objects.convert(kind, obj)
        with self._lock:
            store = self._objects[kind]
            if store.get(key) == new:
                return  # a no-op update (status churn, resourceVersion only)
            if new is None:
                store.pop(key, None)
            else:
                store[key] = new
            self._changed()

    def replace(self, kind: str, objs: list[dict]) -> None:
        """A full re-list of `kind`: afterwards exactly `objs` are known."""
        converted = {objects.object_key(kind, o): objects.convert(kind, o) for o in objs}
        with self._lock:
            if kind not in self._objects:
                raise ValueError(f"unknown kind {kind!r}: DNS watches only {', '.join(objects.KINDS)}")
            if self._objects[kind] == converted:
                return
            self._objects[kind] = converted
            self._changed()

    def mark_synced(self) -> None:
        """The first list of every kind is in: stop answering SERVFAIL."""
        with self._lock:
            if not self._synced:
                self._synced = True
                self._changed()

    def add_listener(self, fn) -> None:
        """fn() is called (with the lock held, so keep it O(1)) after every change."""
        with self._lock:
            self._listeners.append(fn)

    def remove_listener(self, fn) -> None:
        """fn is no longer called (a reloaded Corefile drops the old one's tables); absent: no-op."""
        with self._lock:
            if fn in self._listeners:
                self._listeners.remove(fn)

    def _changed(self) -> None:
        self._generation += 1
        self._serial = int(time.time())
        for fn in self._listeners:
            fn()

    # -- reads (the server threads) ------------------------------------

    @property
    def synced(self) -> bool:
        return self._synced

    @property
    def generation(self) -> int:
        return self._generation

    def view(self) -> ClusterView:
        """The indexes for the current generation (built at most once per generation)."""
        view = self._view
        if view.generation == self._generation:
            return view
        with self._lock:
            if self._view.generation != self._generation:
                started = time.perf_counter()
                self._view = build_view(self._generation, self._synced, self._serial, self._objects)
                log.debug("dns view generation %d built in %.1f ms", self._generation,
                          (time.perf_counter() - started) * 1000)
            return self._view


def _pod_hostname(sl: EndpointSlice, pods: dict, ep: objects.Endpoint) -> str:
    """The endpoint's hostname; else, as the EndpointSlice controller does, the
    target pod's spec.hostname when its spec.subdomain names this Service."""
    if ep.hostname:
        return ep.hostname
    pod: Pod | None = pods.get((sl.namespace, ep.pod_name)) if ep.pod_name else None
    if pod and pod.hostname and pod.subdomain == sl.service_name:
        return pod.hostname
    return ""


def _subset(svc: Service | None, sl: EndpointSlice, pods: dict) -> Subset:
    addrs = []
    for ep in sl.endpoints:
        if not (ep.ready or (svc is not None and svc.publish_not_ready)):
            continue
        host = _pod_hostname(sl, pods, ep)
        for ip in ep.addresses:
            ip = normalize_ip(ip)
            addrs.append(Address(ip, endpoint_hostname(ip, host), endpoint_hostname(ip, host or ep.pod_name)))
    return Subset(tuple(addrs), sl.ports)


def build_view(generation: int, synced: bool, serial: int, objs: dict) -> ClusterView:
    """Pure: the stored objects -> the indexes records are answered from."""
    services: dict[tuple[str, str], Service] = objs["Service"]
    pods = objs["Pod"]
    subsets: dict[tuple[str, str], list[Subset]] = {}
    by_ip: dict[str, list[Service]] = {}
    ep_by_ip: dict[str, list[tuple[str, str, Address]]] = {}
    for sl in sorted(objs["EndpointSlice"].values(), key=lambda s: (s.namespace, s.name)):
        if not sl.service_name:
            continue  # not a Service's slice: no name to give its addresses
        sub = _subset(services.get((sl.namespace, sl.service_name)), sl, pods)
        subsets.setdefault((sl.namespace, sl.service_name), []).append(sub)
        for addr in sub.addresses:
            ep_by_ip.setdefault(addr.ip, []).append((sl.namespace, sl.service_name, addr))
    pods_by_ip: dict[str, set[str]] = {}
    for p in pods.values():
        if p.ips:  # status.podIP, as CoreDNS's pod index has it
            pods_by_ip.setdefault(normalize_ip(p.ips[0]), set()).add(p.namespace)
    for key in sorted(services):
        svc = services[key]
        for ip in svc.cluster_ips:
            if ip and ip != "None":
                by_ip.setdefault(normalize_ip(ip), []).append(svc)
    namespaces = {ns.name for ns in objs["Namespace"].values()}
    for kind in ("Service", "Pod", "EndpointSlice"):
        namespaces.update(ns for ns, _ in objs[kind])
    return ClusterView(
        generation=generation, synced=synced, serial=serial,
        services=dict(services),
        subsets={k: tuple(v) for k, v in subsets.items()},
        services_by_ip={k: tuple(v) for k, v in by_ip.items()},
        endpoints_by_ip={k: tuple(v) for k, v in ep_by_ip.items()},
        pods_by_ip={k: frozenset(v) for k, v in pods_by_ip.items()},
        namespaces=frozenset(namespaces),
    )
