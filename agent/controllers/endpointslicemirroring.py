"""The EndpointSliceMirroring controller, as kube-controller-manager's
(pkg/controller/endpointslicemirroring): the Endpoints a user writes for a
Service without a selector are mirrored into EndpointSlices, so that
everything reading slices (the proxier, DNS) sees them.

Mirrored: Endpoints whose Service exists and has no selector, unless the
Endpoints carry `endpointslice.kubernetes.io/skip-mirror: "true"` (the
`kubernetes` Service's do) or a leader-election annotation. The subsets are
first repacked (RepackSubsets: one subset per set of addresses, not-ready
winning over ready); each subset's ports and address family give one slice
of at most 1000 endpoints (more are skipped, with a warning Event), whose
endpoints are the addresses (`ready: true`) and notReadyAddresses
(`ready: false`), with hostname, nodeName and targetRef. A slice carries the
Endpoints' labels plus `kubernetes.io/service-name` and
`endpointslice.kubernetes.io/managed-by: endpointslicemirroring-controller.k8s.io`,
its annotations but `endpoints.kubernetes.io/last-change-trigger-time` and
`kubectl.kubernetes.io/last-applied-configuration`, and a controller
ownerReference to the Endpoints. The slices go when the Endpoints or the
Service go, or when the Service gains a selector.

`repack_subsets`, `desired_slices` and `plan` are pure; the controller
applies a plan through the registry.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from agent.api.kinds import BY_RESOURCE
from agent.api.syntax import dns1123_subdomain_errors
from agent.apiserver.registry import APIError
from agent.apiserver.store import NotFound
from agent.controllers.base import Controller, ns_name, record_event
from agent.controllers.endpointslice import MANAGED_BY, SERVICE_NAME, add_service_index

CONTROLLER = "endpointslicemirroring-controller.k8s.io"
COMPONENT = "endpoint-slice-mirroring-controller"
SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"
LEADER_ELECTION = "control-plane.alpha.kubernetes.io/leader"
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MAX_PER_SUBSET = 1000
SLICES = BY_RESOURCE["endpointslices"]


# ---- pure: Endpoints -> desired slices ------------------------------------------------

def should_mirror(endpoints: dict) -> bool:
    md = endpoints.get("metadata") or {}
    return (md.get("labels") or {}).get(SKIP_MIRROR) != "true" and LEADER_ELECTION not in (md.get("annotations") or {})


def _port_id(port: dict) -> tuple:
    return port.get("name", ""), port.get("port"), port.get("protocol", "TCP"), port.get("appProtocol")


def _address_id(addr: dict) -> tuple:
    return addr.get("ip", ""), (addr.get("targetRef") or {}).get("uid", "")


def repack_subsets(subsets: list[dict] | None) -> list[dict]:
    """endpoints.RepackSubsets: one subset per distinct set of (address,
    readiness), listing every port that set serves; an address that is not
    ready for a port in any subset is not ready there. Addresses sort by IP,
    subsets by their ports (kube orders both by hashes; the order carries no
    meaning)."""
    first: dict[tuple, dict] = {}
    by_port: dict[tuple, dict[tuple, bool]] = {}
    ports: dict[tuple, dict] = {}
    for subset in subsets or []:
        for port in subset.get("ports") or [None]:
            pid = _port_id(port) if port else None
            if port:
                ports[pid] = port
            ready_of = by_port.setdefault(pid, {})
            for key, ready in (("addresses", True), ("notReadyAddresses", False)):
                for addr in subset.get(key) or []:
                    aid = _address_id(addr)
                    first.setdefault(aid, addr)
                    ready_of[aid] = ready_of.get(aid, True) and ready
    groups: dict[frozenset, list] = {}
    for pid, ready_of in by_port.items():
        members = groups.setdefault(frozenset(ready_of.items()), [])
        if pid is not None:
            members.append(ports[pid])
    out = []
    for members, port_list in groups.items():
        ready = sorted(aid for aid, r in members if r)
        not_ready = sorted(aid for aid, r in members if not r)
        subset = {}
        if ready:
            subset["addresses"] = [first[a] for a in ready]
        if not_ready:
            subset["notReadyAddresses"] = [first[a] for a in not_ready]
        subset["ports"] = port_list
        out.append(subset)
    return sorted(out, key=lambda s: sorted(str(_port_id(p)) for p in s["ports"]))


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """netutils.ParseIPSloppy: IPv4 parts may have leading zeros (decimal);
    an IPv4-mapped IPv6 address is its IPv4 address."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        parts = text.split(".")
        if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 for p in parts):
            return None
        try:
            ip = ipaddress.IPv4Address(".".join(str(int(p)) for p in parts))
        except ValueError:
            return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return ip.ipv4_mapped
    return ip


def slice_endpoint(addr: dict, ready: bool) -> tuple[str, dict] | None:
    """addressToEndpoint: (address type, endpoint), or None for an invalid IP."""
    ip = parse_ip(addr.get("ip", ""))
    if ip is None:
        return None
    ep: dict = {"addresses": [str(ip)], "conditions": {"ready": ready}}
    if addr.get("hostname"):
        ep["hostname"] = addr["hostname"]
    if addr.get("targetRef"):
        ep["targetRef"] = addr["targetRef"]
    if addr.get("nodeName"):
        ep["nodeName"] = addr["nodeName"]
    return ("IPv4" if ip.version == 4 else "IPv6"), ep


def endpoint_key(ep: dict) -> tuple:
    """The identity of an endpoint in a set (endpointsliceutil's hash):
    its addresses, hostname and targetRef namespace/name."""
    ref = ep.get("targetRef") or {}
    return tuple(sorted(ep.get("addresses") or [])), ep.get("hostname") or "", ref.get("namespace", ""), \
        ref.get("name", "")


def slice_ports(ports: list[dict]) -> list[dict] | None:
    """epPortsToEpsPorts; no ports is null, as the API returns it."""
    out = []
    for p in ports:
        sp = {"name": p.get("name", ""), "port": p.get("port"), "protocol": p.get("protocol", "TCP")}
        if p.get("appProtocol"):
            sp["appProtocol"] = p["appProtocol"]
        out.append(sp)
    return out or None


def port_key(address_type: str, ports: list[dict] | None) -> tuple:
    return address_type, tuple(sorted(_port_id(p) for p in ports or []))


@dataclass
class Desired:
    """What the Endpoints ask for: endpoints by (address type, ports) key,
    and what was skipped (invalid IPs, over the per-subset maximum)."""
    groups: dict = field(default_factory=dict)      # key -> (address type, ports, {endpoint_key: endpoint})
    invalid: int = 0
    skipped: int = 0


def desired_slices(endpoints: dict, max_per_subset: int = MAX_PER_SUBSET) -> Desired:
    """The reconciler's desired state: one group per subset and address
    family, at most `max_per_subset` addresses per subset (ready first)."""
    d = Desired()
    for subset in repack_subsets(endpoints.get("subsets")):
        ports = slice_ports(subset.get("ports") or [])
        keys = {}
        for family in ("IPv4", "IPv6"):
            keys[family] = port_key(family, ports)
            d.groups.setdefault(keys[family], (family, ports, {}))
        total = len(subset.get("addresses") or []) + len(subset.get("notReadyAddresses") or [])
        added = 0
        for key, ready in (("addresses", True), ("notReadyAddresses", False)):
            for addr in subset.get(key) or []:
                if added >= max_per_subset:
                    break
                found = slice_endpoint(addr, ready)
                if found is None:
                    d.invalid += 1
                    continue
                family, ep = found
                d.groups[keys[family]][2][endpoint_key(ep)] = ep
                added += 1
        d.skipped += total - added
    return d


def new_slice(endpoints: dict, address_type: str, ports: list[dict] | None, eps: list[dict],
              name: str | None = None) -> dict:
    """newEndpointSlice: the Endpoints' labels and annotations (less two),
    owned by the Endpoints, named `name` or generated from the Endpoints'."""
    md = endpoints["metadata"]
    labels = {**(md.get("labels") or {}), SERVICE_NAME: md["name"], MANAGED_BY: CONTROLLER}
    annotations = {k: v for k, v in (md.get("annotations") or {}).items() if k not in (TRIGGER_TIME, LAST_APPLIED)}
    meta: dict = {"namespace": md["namespace"], "labels": labels}
    if annotations:
        meta["annotations"] = annotations
    meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Endpoints", "name": md["name"], "uid": md["uid"],
                                "controller": True, "blockOwnerDeletion": True}]
    if name:
        meta["name"] = name
    else:
        prefix = f"{md['name']}-"
        meta["generateName"] = prefix if not dns1123_subdomain_errors(prefix[:-1] + "a") else md["name"]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta,
            "addressType": address_type, "endpoints": eps, "ports": ports}


def _same_endpoint(a: dict, b: dict) -> bool:
    """EndpointsEqualBeyondHash."""
    for k in ("nodeName", "zone", "hints", "targetRef"):
        if (a.get(k) or None) != (b.get(k) or None):
            return False
    ca, cb = a.get("conditions") or {}, b.get("conditions") or {}
    return all(ca.get(k) == cb.get(k) for k in ("ready", "serving", "terminating"))


def _unchanged(endpoints: dict, current: dict, want: dict) -> bool:
    """The early return of reconcileByPortMapping: same endpoints, labels and annotations."""
    have = {endpoint_key(ep): ep for ep in current.get("endpoints") or []}
    if have.keys() != want.keys() or not all(_same_endpoint(have[k], want[k]) for k in want):
        return False
    md, cmd = endpoints["metadata"], current["metadata"]
    labels = {k: v for k, v in (cmd.get("labels") or {}).items() if k not in (MANAGED_BY, SERVICE_NAME)}
    annotations = {k: v for k, v in (md.get("annotations") or {}).items() if k not in (TRIGGER_TIME, LAST_APPLIED)}
    return labels == (md.get("labels") or {}) and annotations == (cmd.get("annotations") or {})


@dataclass
class Plan:
    create: list[dict] = field(default_factory=list)
    update: list[dict] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)


def plan(endpoints: dict, existing: list[dict], max_per_subset: int = MAX_PER_SUBSET) -> tuple[Plan, Desired]:
    """reconcile: which mirrored slices to create, update (full objects with
    their names) and delete, given the Endpoints and the slices mirrored so far."""
    desired = desired_slices(endpoints, max_per_subset)
    by_key: dict[tuple, list[dict]] = {}
    for s in sorted(existing, key=lambda s: s["metadata"]["name"]):
        by_key.setdefault(port_key(s.get("addressType", ""), s.get("ports")), []).append(s)
    p = Plan()
    for key, (family, ports, want) in desired.groups.items():
        have = by_key.get(key, [])
        if not want:
            p.delete += [s["metadata"]["name"] for s in have]
            continue
        p.delete += [s["metadata"]["name"] for s in have[1:]]
        if have and _unchanged(endpoints, have[0], want):
            continue
        eps = sorted(want.values(), key=endpoint_key)[:max_per_subset]
        body = new_slice(endpoints, family, ports, eps, have[0]["metadata"]["name"] if have else None)
        (p.update if have else p.create).append(body)
    for key, have in by_key.items():
        if key not in desired.groups:
            p.delete += [s["metadata"]["name"] for s in have]
    _recycle(p, {s["metadata"]["name"]: s.get("addressType") for s in existing})
    return p, desired


def _recycle(p: Plan, families: dict[str, str]) -> None:
    """recycleSlices: a create and a delete of the same address type become an update."""
    for body in list(p.create):
        name = next((n for n in p.delete if families.get(n) == body["addressType"]), None)
        if name is None:
            continue
        p.create.remove(body)
        p.delete.remove(name)
        body["metadata"].pop("generateName", None)
        body["metadata"]["name"] = name
        p.update.append(body)


# ---- the controller ----------------------------------------------------------------------

def _slice_keys(self, sl: dict) -> list:
    labels = sl["metadata"].get("labels") or {}
    if labels.get(MANAGED_BY) != CONTROLLER or not labels.get(SERVICE_NAME):
        return []
    return [(sl["metadata"]["namespace"], labels[SERVICE_NAME])]


class EndpointSliceMirroringController(Controller):
    name = "endpointslicemirroring-controller"
    watches = {"endpoints": lambda self, o: [ns_name(o)], "services": lambda self, o: [ns_name(o)],
               "endpointslices": _slice_keys}

    def __init__(self, store, registry, max_per_subset: int = MAX_PER_SUBSET):
        super().__init__(store, registry)
        self.max_per_subset = max_per_subset
        add_service_index(store)

    def sync(self, key):
        ns, name = key
        mirrored = [s for s in self.store.by_index("endpointslices", SERVICE_NAME, f"{ns}/{name}")
                    if (s["metadata"].get("labels") or {}).get(MANAGED_BY) == CONTROLLER]
        endpoints, svc = self._get("endpoints", ns, name), self._get("services", ns, name)
        if endpoints is None or not should_mirror(endpoints) or svc is None or svc.get("spec", {}).get("selector"):
            for s in mirrored:
                self._delete(ns, s["metadata"]["name"])
            return None
        p, desired = plan(endpoints, mirrored, self.max_per_subset)
        self._events(endpoints, desired)
        if not endpoints["metadata"].get("deletionTimestamp"):
            for body in p.create:
                self.registry.create(SLICES, ns, body)
        for body in p.update:
            self.registry.update(SLICES, ns, body["metadata"]["name"], body)
        for slice_name in p.delete:
            self._delete(ns, slice_name)
        return None

    def _get(self, resource: str, ns: str, name: str) -> dict | None:
        try:
            return self.store.get(resource, ns, name)
        except NotFound:
            return None

    def _events(self, endpoints: dict, desired: Desired) -> None:
        if desired.invalid:
            record_event(self.registry, endpoints, "InvalidIPAddress",
                         f"Skipped {desired.invalid} invalid IP addresses when mirroring to EndpointSlices",
                         "Warning", COMPONENT)
        if desired.skipped > desired.invalid:
            record_event(self.registry, endpoints, "TooManyAddressesToMirror",
                         f"A max of {self.max_per_subset} addresses can be mirrored to EndpointSlices per "
                         f"Endpoints subset. {desired.skipped} addresses were skipped", "Warning", COMPONENT)

    def _delete(self, ns: str, name: str) -> None:
        try:
            self.registry.delete(SLICES, ns, name)
        except APIError as e:
            if e.code != 404:
                raise
