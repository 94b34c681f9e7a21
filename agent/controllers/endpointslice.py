"""The EndpointSlice controller (and the Endpoints object mirrored from the
same pods), as kube-controller-manager's endpointslice and endpoints
controllers write them: Service selector ∩ pods that have an IP, with
ready / serving / terminating conditions, named targetPorts resolved per
pod (a pod without one is left out of that port), at most 100 endpoints per
slice. A Service that selects no pods has one placeholder slice with no
endpoints and no ports. Slices carry the Service's labels but the reserved
ones, `kubernetes.io/service-name`,
`endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`,
`service.kubernetes.io/headless` when the Service has no cluster IP, a
controller ownerReference to the Service, and the
`endpoints.kubernetes.io/last-change-trigger-time` annotation of the change
they answer. Services without a selector keep the slices the user writes
(or that agent/controllers/endpointslicemirroring.py mirrors).

`desired_slices` and `desired_endpoints` are pure; the controller diffs them
against the store and writes only what changed.
"""
from __future__ import annotations

from datetime import datetime

from agent.api import selectors
from agent.api.kinds import BY_RESOURCE
from agent.api.printers import parse_time
from agent.apiserver.registry import APIError
from agent.apiserver.store import NotFound
from agent.controllers.base import Controller, generated_name, ns_name, owner_ref
from agent.controllers.replicaset import pod_ready

MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER = "endpointslice-controller.k8s.io"
SERVICE_NAME = "kubernetes.io/service-name"
HEADLESS = "service.kubernetes.io/headless"
RESERVED_LABELS = (SERVICE_NAME, MANAGED_BY, HEADLESS)
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
MAX_PER_SLICE = 100
SLICES, ENDPOINTS = BY_RESOURCE["endpointslices"], BY_RESOURCE["endpoints"]


def selects(svc: dict) -> selectors.Selector | None:
    spec = svc.get("spec", {})
    if spec.get("type") == "ExternalName" or not spec.get("selector"):
        return None
    return selectors.from_map(spec["selector"])


def target_port(svc_port: dict, pod: dict) -> int | None:
    tp = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(tp, int):
        return tp
    if isinstance(tp, str) and tp.isdigit():
        return int(tp)
    proto = svc_port.get("protocol", "TCP")
    for c in pod.get("spec", {}).get("containers", []):
        for p in c.get("ports", []) or []:
            if p.get("name") == tp and p.get("protocol", "TCP") == proto:
                return p.get("containerPort")
    return None


def endpoint_for(svc: dict, pod: dict) -> dict:
    spec = svc.get("spec", {})
    publish = bool(spec.get("publishNotReadyAddresses"))
    terminating = bool(pod["metadata"].get("deletionTimestamp"))
    serving = publish or pod_ready(pod)
    ready = serving and (publish or not terminating)
    ep = {"addresses": [pod["status"]["podIP"]],
          "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
          "targetRef": {"kind": "Pod", "namespace": pod["metadata"]["namespace"],
                        "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}}
    if pod["spec"].get("nodeName"):
        ep["nodeName"] = pod["spec"]["nodeName"]
    pspec = pod.get("spec", {})
    if pspec.get("hostname") and pspec.get("subdomain") == svc["metadata"]["name"]:
        ep["hostname"] = pspec["hostname"]
    return ep


def selected_pods(svc: dict, pods: list[dict]) -> list[dict]:
    sel = selects(svc)
    if sel is None:
        return []
    return [p for p in pods
            if p.get("status", {}).get("podIP")
            and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
            and sel.matches(p["metadata"].get("labels") or {})]


def desired_slices(svc: dict, pods: list[dict]) -> list[tuple[tuple, list[dict]]]:
    """Pure: [(ports, endpoints)] — pods grouped by their resolved port set
    (a port whose named targetPort a pod lacks is left out for that pod, as
    getEndpointPorts does), chunked to MAX_PER_SLICE, sorted for stable output."""
    groups: dict[tuple, list[dict]] = {}
    for pod in selected_pods(svc, pods):
        ports = []
        for sp in svc["spec"].get("ports", []) or []:
            port = target_port(sp, pod)
            if port is not None:
                ports.append((sp.get("name", ""), sp.get("protocol", "TCP"), port, sp.get("appProtocol")))
        groups.setdefault(tuple(ports), []).append(endpoint_for(svc, pod))
    out = []
    for ports, eps in sorted(groups.items(), key=lambda kv: str(kv[0])):
        eps.sort(key=lambda e: _ip_key(e["addresses"][0]))
        for i in range(0, len(eps), MAX_PER_SLICE):
            out.append((ports, eps[i:i + MAX_PER_SLICE]))
    return out


def _ip_key(ip: str) -> tuple:
    return tuple(int(x) for x in ip.split(".")) if ip.count(".") == 3 else (ip,)


def slice_ports(ports: tuple) -> list[dict] | None:
    """A slice's ports; none is null, as the API returns an empty list."""
    out = []
    for name, proto, port, app in ports:
        p = {"name": name, "port": port, "protocol": proto}
        if app:
            p["appProtocol"] = app
        out.append(p)
    return out or None


def desired_endpoints(svc: dict, pods: list[dict]) -> dict:
    """Pure: the core/v1 Endpoints object for `svc` (its labels, plus
    `service.kubernetes.io/headless` when it has no cluster IP). Pods with
    none of the Service's ports are left out, but for a headless Service
    without ports."""
    portless_ok = not svc["spec"].get("ports") and not has_cluster_ip(svc)
    subsets: dict[tuple, dict] = {}
    for ports, eps in desired_slices(svc, pods):
        if not ports and not portless_ok:
            continue
        sub = subsets.setdefault(ports, {"addresses": [], "notReadyAddresses": []})
        for ep in eps:
            addr = {"ip": ep["addresses"][0], "targetRef": ep["targetRef"]}
            if ep.get("nodeName"):
                addr["nodeName"] = ep["nodeName"]
            if ep.get("hostname"):
                addr["hostname"] = ep["hostname"]
            if ep["conditions"]["ready"]:
                sub["addresses"].append(addr)
            elif not ep["conditions"]["terminating"]:
                sub["notReadyAddresses"].append(addr)
    out = []
    for ports, sub in subsets.items():
        sub = {k: v for k, v in sub.items() if v}
        if not sub:
            continue
        if ports:
            sub["ports"] = [_endpoint_port(*p) for p in ports]
        out.append(sub)
    md = svc["metadata"]
    labels = dict(md.get("labels") or {})
    if has_cluster_ip(svc):
        labels.pop(HEADLESS, None)
    else:
        labels[HEADLESS] = ""
    ep = {"apiVersion": "v1", "kind": "Endpoints",
          "metadata": {"name": md["name"], "namespace": md["namespace"], "labels": labels}}
    if out:
        ep["subsets"] = out
    return ep


def _endpoint_port(name: str, proto: str, port: int, app: str | None) -> dict:
    p = {"name": name, "port": port, "protocol": proto} if name else {"port": port, "protocol": proto}
    if app:
        p["appProtocol"] = app
    return p


def has_cluster_ip(svc: dict) -> bool:
    """helper.IsServiceIPSet."""
    return svc.get("spec", {}).get("clusterIP") not in (None, "", "None")


def slice_labels(svc: dict) -> dict:
    """setEndpointSliceLabels: the Service's labels but the reserved ones,
    `service.kubernetes.io/headless` without a cluster IP, the service name
    and managed-by."""
    labels = {k: v for k, v in (svc["metadata"].get("labels") or {}).items() if k not in RESERVED_LABELS}
    if not has_cluster_ip(svc):
        labels[HEADLESS] = ""
    labels.update({SERVICE_NAME: svc["metadata"]["name"], MANAGED_BY: CONTROLLER})
    return labels


def _pod_trigger_time(pod: dict) -> datetime | None:
    ready = next((c for c in pod.get("status", {}).get("conditions", []) or [] if c.get("type") == "Ready"), None)
    return parse_time((ready or {}).get("lastTransitionTime"))


class TriggerTimeTracker:
    """endpointsliceutil.TriggerTimeTracker: the time of the change a write of
    a Service's endpoints answers (the last-change-trigger-time annotation):
    the Service's creation for a Service not seen before, else the earliest
    of the Ready transitions and Service creation that are newer than at the
    last sync (None when nothing is)."""

    def __init__(self):
        self._states: dict[tuple, tuple[datetime | None, dict]] = {}

    def compute(self, svc: dict, pods: list[dict]) -> str | None:
        key = ns_name(svc)
        known = key in self._states
        last_svc, last_pods = self._states.get(key, (None, {}))
        changed: list[datetime] = []
        pod_times = {}
        for pod in pods:
            t = _pod_trigger_time(pod)
            if t is None:
                continue
            pod_times[pod["metadata"]["name"]] = t
            before = last_pods.get(pod["metadata"]["name"])
            if before is None or t > before:
                changed.append(t)
        svc_time = parse_time(svc["metadata"].get("creationTimestamp"))
        if svc_time is not None and (last_svc is None or svc_time > last_svc):
            changed.append(svc_time)
        self._states[key] = (svc_time, pod_times)
        when = svc_time if not known else (min(changed) if changed else None)
        return None if when is None else when.strftime("%Y-%m-%dT%H:%M:%SZ")

    def forget(self, key: tuple) -> None:
        self._states.pop(key, None)


def add_service_index(store) -> None:
    """EndpointSlices by `<namespace>/<kubernetes.io/service-name>`."""
    store.add_index("endpointslices", SERVICE_NAME, lambda s: [
        f"{s['metadata'].get('namespace', '')}/{n}" for n in [(s["metadata"].get("labels") or {}).get(SERVICE_NAME)]
        if n])


class EndpointSliceController(Controller):
    name = "endpointslice-controller"

    def _for_pod(self, pod: dict):
        ns = pod["metadata"]["namespace"]
        labels = pod["metadata"].get("labels") or {}
        now = {ns_name(s) for s in self.store.list("services", ns)[0]
               if (sel := selects(s)) is not None and sel.matches(labels)}
        key = ns_name(pod)
        before = self._pod_services.get(key, set())
        self._pod_services[key] = now
        return now | before

    watches = {
        "services": lambda self, o: [ns_name(o)],
        "pods": lambda self, o: self._for_pod(o),
        "endpointslices": lambda self, o: [(o["metadata"]["namespace"], n) for n in
                                           [(o["metadata"].get("labels") or {}).get(SERVICE_NAME)] if n],
    }

    def __init__(self, store, registry):
        super().__init__(store, registry)
        self._pod_services: dict = {}
        self.triggers = TriggerTimeTracker()
        add_service_index(store)

    def sync(self, key):
        ns, name = key
        try:
            svc = self.store.get("services", ns, name)
        except NotFound:
            svc = None
        existing = [s for s in self.store.by_index("endpointslices", SERVICE_NAME, f"{ns}/{name}")
                    if (s["metadata"].get("labels") or {}).get(MANAGED_BY) == CONTROLLER]
        if svc is None or selects(svc) is None:
            self.triggers.forget(key)
            for s in existing:
                self._delete(SLICES, ns, s["metadata"]["name"])
            if svc is None or svc["spec"].get("type") == "ExternalName":
                self._delete(ENDPOINTS, ns, name)
            return None
        pods = self.store.list("pods", ns)[0]
        trigger = self.triggers.compute(svc, selected_pods(svc, pods))
        self._sync_slices(svc, desired_slices(svc, pods), existing, trigger)
        self._sync_endpoints(desired_endpoints(svc, pods), trigger)
        return None

    def _sync_slices(self, svc: dict, want: list, existing: list[dict], trigger: str | None) -> None:
        """Write the slices that differ from `want`, reusing existing ones in
        name order. A Service that selects nothing still has one slice, with
        no endpoints and no ports (the reconciler's placeholder)."""
        md = svc["metadata"]
        labels = slice_labels(svc)
        want = want or [((), [])]
        existing = sorted(existing, key=lambda s: s["metadata"]["name"])
        for i, (ports, eps) in enumerate(want):
            body = {"addressType": "IPv4", "endpoints": eps or None, "ports": slice_ports(ports)}
            if i < len(existing):
                cur = existing[i]
                if all(cur.get(k) == v for k, v in body.items()) and cur["metadata"].get("labels") == labels:
                    continue
                cur.update(body)
                cur["metadata"]["labels"] = labels
                _set_trigger_time(cur, trigger)
                self.registry.update(SLICES, md["namespace"], cur["metadata"]["name"], cur)
            else:
                obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                       "metadata": {"name": generated_name(f"{md['name']}-"), "generateName": f"{md['name']}-",
                                    "namespace": md["namespace"], "labels": labels,
                                    "ownerReferences": [owner_ref(svc)]}, **body}
                _set_trigger_time(obj, trigger)
                self.registry.create(SLICES, md["namespace"], obj)
        for cur in existing[len(want):]:
            self._delete(SLICES, md["namespace"], cur["metadata"]["name"])

    def _sync_endpoints(self, want: dict, trigger: str | None) -> None:
        md = want["metadata"]
        try:
            cur = self.store.get("endpoints", md["namespace"], md["name"])
        except NotFound:
            _set_trigger_time(want, trigger)
            self.registry.create(ENDPOINTS, md["namespace"], want)
            return
        if cur.get("subsets") == want.get("subsets") and (cur["metadata"].get("labels") or {}) == md["labels"]:
            return
        cur["metadata"]["labels"] = md["labels"]
        if "subsets" in want:
            cur["subsets"] = want["subsets"]
        else:
            cur.pop("subsets", None)
        _set_trigger_time(cur, trigger)
        self.registry.update(ENDPOINTS, md["namespace"], md["name"], cur)

    def _delete(self, kind, ns: str, name: str) -> None:
        try:
            self.registry.delete(kind, ns, name)
        except APIError as e:
            if e.code != 404:
                raise


def _set_trigger_time(obj: dict, trigger: str | None) -> None:
    """addTriggerTimeAnnotation: set it, or clear it when nothing triggered the write."""
    md = obj["metadata"]
    annotations = dict(md.get("annotations") or {})
    if trigger:
        annotations[TRIGGER_TIME] = trigger
    else:
        annotations.pop(TRIGGER_TIME, None)
    if annotations:
        md["annotations"] = annotations
    else:
        md.pop("annotations", None)
