"""The EndpointSlice controller (and the Endpoints object mirrored from the
same pods): Service selector ∩ pods that have an IP, with ready / serving /
terminating conditions, named targetPorts resolved per pod, at most 100
endpoints per slice, labels `kubernetes.io/service-name` and
`endpointslice.kubernetes.io/managed-by`. Services without a selector keep
the slices the user writes.

`desired_slices` and `desired_endpoints` are pure; the controller diffs them
against the store and writes only what changed.
"""
from __future__ import annotations

from agent.api import selectors
from agent.api.kinds import BY_RESOURCE
from agent.apiserver.registry import APIError
from agent.apiserver.store import NotFound
from agent.controllers.base import Controller, ns_name, owner_ref, random_suffix
from agent.controllers.replicaset import pod_ready

MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER = "endpointslice-controller.k8s.io"
SERVICE_NAME = "kubernetes.io/service-name"
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
    """Pure: [(ports, endpoints)] — pods grouped by their resolved port set,
    chunked to MAX_PER_SLICE, sorted for stable output."""
    groups: dict[tuple, list[dict]] = {}
    for pod in selected_pods(svc, pods):
        ports = []
        for sp in svc["spec"].get("ports", []) or []:
            port = target_port(sp, pod)
            ports.append((sp.get("name", ""), sp.get("protocol", "TCP"), port))
        groups.setdefault(tuple(ports), []).append(endpoint_for(svc, pod))
    out = []
    for ports, eps in sorted(groups.items(), key=lambda kv: str(kv[0])):
        eps.sort(key=lambda e: _ip_key(e["addresses"][0]))
        for i in range(0, len(eps), MAX_PER_SLICE):
            out.append((ports, eps[i:i + MAX_PER_SLICE]))
    return out


def _ip_key(ip: str) -> tuple:
    return tuple(int(x) for x in ip.split(".")) if ip.count(".") == 3 else (ip,)


def slice_ports(ports: tuple) -> list[dict]:
    out = []
    for name, proto, port in ports:
        p = {"name": name, "protocol": proto}
        if port is not None:
            p["port"] = port
        out.append(p)
    return out


def desired_endpoints(svc: dict, pods: list[dict]) -> dict:
    """Pure: the core/v1 Endpoints object for `svc`."""
    subsets: dict[tuple, dict] = {}
    for ports, eps in desired_slices(svc, pods):
        if any(p is None for _, _, p in ports):
            ports = tuple(x for x in ports if x[2] is not None)
            if not ports:
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
        sub["ports"] = [{"name": n, "port": p, "protocol": pr} if n else {"port": p, "protocol": pr}
                        for n, pr, p in ports]
        out.append(sub)
    md = svc["metadata"]
    ep = {"apiVersion": "v1", "kind": "Endpoints",
          "metadata": {"name": md["name"], "namespace": md["namespace"], "labels": dict(md.get("labels") or {})}}
    if out:
        ep["subsets"] = out
    return ep


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
        store.add_index("endpointslices", SERVICE_NAME, lambda s: [
            f"{s['metadata'].get('namespace', '')}/{n}" for n in [(s["metadata"].get("labels") or {}).get(SERVICE_NAME)]
            if n])

    def sync(self, key):
        ns, name = key
        try:
            svc = self.store.get("services", ns, name)
        except NotFound:
            svc = None
        existing = [s for s in self.store.by_index("endpointslices", SERVICE_NAME, f"{ns}/{name}")
                    if (s["metadata"].get("labels") or {}).get(MANAGED_BY) == CONTROLLER]
        if svc is None or selects(svc) is None:
            for s in existing:
                self._delete(SLICES, ns, s["metadata"]["name"])
            if svc is None or svc["spec"].get("type") == "ExternalName":
                self._delete(ENDPOINTS, ns, name)
            return None
        pods = self.store.list("pods", ns)[0]
        self._sync_slices(svc, desired_slices(svc, pods), existing)
        self._sync_endpoints(desired_endpoints(svc, pods))
        return None

    def _sync_slices(self, svc: dict, want: list, existing: list[dict]) -> None:
        md = svc["metadata"]
        labels = dict(md.get("labels") or {})
        labels.update({SERVICE_NAME: md["name"], MANAGED_BY: CONTROLLER})
        if not want:   # a service with no endpoints still has one (empty) slice, like kube's
            want = [(tuple((p.get("name", ""), p.get("protocol", "TCP"), None)
                           for p in svc["spec"].get("ports", []) or []), [])]
        existing = sorted(existing, key=lambda s: s["metadata"]["name"])
        for i, (ports, eps) in enumerate(want):
            body = {"addressType": "IPv4", "endpoints": eps, "ports": slice_ports(ports)}
            if i < len(existing):
                cur = existing[i]
                if all(cur.get(k) == v for k, v in body.items()) and cur["metadata"].get("labels") == labels:
                    continue
                cur.update(body)
                cur["metadata"]["labels"] = labels
                self.registry.update(SLICES, md["namespace"], cur["metadata"]["name"], cur)
            else:
                obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                       "metadata": {"name": f"{md['name']}-{random_suffix()}", "namespace": md["namespace"],
                                    "labels": labels, "ownerReferences": [owner_ref(svc)],
                                    "generateName": f"{md['name']}-"}, **body}
                self.registry.create(SLICES, md["namespace"], obj)
        for cur in existing[len(want):]:
            self._delete(SLICES, md["namespace"], cur["metadata"]["name"])

    def _sync_endpoints(self, want: dict) -> None:
        md = want["metadata"]
        try:
            cur = self.store.get("endpoints", md["namespace"], md["name"])
        except NotFound:
            self.registry.create(ENDPOINTS, md["namespace"], want)
            return
        if cur.get("subsets") == want.get("subsets") and cur["metadata"].get("labels") == md["labels"]:
            return
        cur["metadata"]["labels"] = md["labels"]
        if "subsets" in want:
            cur["subsets"] = want["subsets"]
        else:
            cur.pop("subsets", None)
        self.registry.update(ENDPOINTS, md["namespace"], md["name"], cur)

    def _delete(self, kind, ns: str, name: str) -> None:
        try:
            self.registry.delete(kind, ns, name)
        except APIError as e:
            if e.code != 404:
                raise
