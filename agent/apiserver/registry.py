"""What the API server does to an object between the request and the store:
defaulting, validation, ClusterIP and NodePort allocation, status/spec
separation, and graceful pod deletion. Mirrors kube-apiserver's registry
strategies for the kinds we serve.

Errors are `APIError`s carrying a Kubernetes `Status`; nothing is written when
one is raised.
"""
from __future__ import annotations

import copy
import uuid

from agent.api.kinds import Kind
from agent.api.objects import now_iso
from agent.apiserver import validation
from agent.apiserver.allocator import (
    AllocationError,
    ClusterIPRange,
    LoadBalancerPool,
    NodePortRange,
)
from agent.apiserver.store import AlreadyExists, NotFound, Store

HAS_STATUS = {"Pod", "Service", "Deployment", "ReplicaSet", "Node", "Namespace"}


class APIError(Exception):
    """An error answered as a Kubernetes Status object."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict:
        st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            st["details"] = self.details
        return st


def not_found(kind: Kind, name: str) -> APIError:
    return APIError(404, "NotFound", f'{kind.resource}{_grp(kind)} "{name}" not found',
                    {"name": name, "group": kind.group, "kind": kind.resource})


def _grp(kind: Kind) -> str:
    return f".{kind.group}" if kind.group else ""


def invalid(kind: Kind, name: str, causes: list) -> APIError:
    msg = validation.format_invalid(kind.kind, name, causes)
    return APIError(422, "Invalid", msg, {
        "name": name, "group": kind.group, "kind": kind.kind,
        "causes": [{"reason": c.reason, "message": c.message, "field": c.field} for c in causes]})


class Registry:
    def __init__(self, store: Store, service_cidr: str = "10.96.0.0/12",
                 node_ports: tuple[int, int] = (30000, 32767), lb_pool: str = "none"):
        self.store = store
        self.cluster_ips = ClusterIPRange(service_cidr)
        self.node_ports = NodePortRange(*node_ports)
        self.lb_pool = LoadBalancerPool(lb_pool)
        store.add_index("services", "clusterIPs", _cluster_ips)
        store.add_index("services", "nodePorts", _node_ports)
        store.add_index("services", "loadBalancerIPs", load_balancer_ips)

    # ---- entry points ------------------------------------------------
    def create(self, kind: Kind, namespace: str | None, obj: dict) -> dict:
        obj = copy.deepcopy(obj)
        md = obj.setdefault("metadata", {})
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        if kind.namespaced:
            ns = namespace or md.get("namespace") or "default"
            if md.get("namespace") and namespace and md["namespace"] != namespace:
                raise APIError(400, "BadRequest",
                               "the namespace of the provided object does not match the namespace sent on the request")
            md["namespace"] = ns
            self._require_namespace(ns)
        else:
            md.pop("namespace", None)
        if not md.get("name") and md.get("generateName"):
            md["name"] = md["generateName"] + uuid.uuid4().hex[:5]
        name = md.get("name", "")
        for k in ("resourceVersion", "uid", "creationTimestamp", "deletionTimestamp"):
            md.pop(k, None)
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now_iso()
        if kind.kind in ("Deployment", "ReplicaSet"):
            md["generation"] = 1
        default(kind.kind, obj)
        causes = validation.validate(kind.kind, obj, None, node_port_range=(self.node_ports.first, self.node_ports.last))
        if causes:
            raise invalid(kind, name, causes)
        with self.store.transaction():
            if kind.kind == "Service":
                self._allocate_service(obj, None)
            try:
                return self.store.create(kind.resource, obj)
            except AlreadyExists:
                raise APIError(409, "AlreadyExists", f'{kind.resource}{_grp(kind)} "{name}" already exists',
                               {"name": name, "group": kind.group, "kind": kind.resource}) from None

    def update(self, kind: Kind, namespace: str | None, name: str, obj: dict, subresource: str | None = None) -> dict:
        obj = copy.deepcopy(obj)
        with self.store.transaction():
            old = self.get(kind, namespace, name)
            md = obj.setdefault("metadata", {})
            if md.get("name", name) != name:
                raise APIError(400, "BadRequest", f"the name of the object ({md.get('name')}) does not match the name on the URL ({name})")
            want_rv = md.get("resourceVersion")
            if want_rv and want_rv != old["metadata"]["resourceVersion"]:
                raise APIError(409, "Conflict",
                               f'Operation cannot be fulfilled on {kind.resource}{_grp(kind)} "{name}": '
                               "the object has been modified; please apply your changes to the latest version and try again",
                               {"name": name, "group": kind.group, "kind": kind.resource})
            new = self._merge_update(kind, old, obj, subresource)
            if new == old:
                return old
            if subresource != "status":
                if kind.kind == "Service":
                    drop_type_dependent_fields(old, new)
                default(kind.kind, new)
                causes = validation.validate(kind.kind, new, old, node_port_range=(self.node_ports.first, self.node_ports.last))
                if causes:
                    raise invalid(kind, name, causes)
                if kind.kind == "Service":
                    self._allocate_service(new, old)
                if kind.kind in ("Deployment", "ReplicaSet") and new.get("spec") != old.get("spec"):
                    new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
            stored = self.store.update(kind.resource, new)
            if stored["metadata"].get("deletionTimestamp") and not stored["metadata"].get("finalizers") \
                    and kind.kind != "Pod":
                return self.store.delete(kind.resource, stored["metadata"].get("namespace", ""), name)
            return stored

    def guaranteed_update(self, kind: Kind, namespace: str | None, name: str,
                          mutate, subresource: str | None = None) -> dict:
        """Read-modify-write through `update` (so validated like any client's
        write), atomic against other writers: `mutate(current)` returns the
        new object, or None for no change."""
        with self.store.transaction():
            cur = self.get(kind, namespace, name)
            new = mutate(copy.deepcopy(cur))
            if new is None:
                return cur
            return self.update(kind, namespace, name, new, subresource)

    def get(self, kind: Kind, namespace: str | None, name: str) -> dict:
        try:
            return self.store.get(kind.resource, namespace or "" if kind.namespaced else "", name)
        except NotFound:
            raise not_found(kind, name) from None

    def delete(self, kind: Kind, namespace: str | None, name: str, grace: int | None = None,
               precondition_uid: str | None = None) -> dict:
        ns = (namespace or "") if kind.namespaced else ""
        with self.store.transaction():
            cur = self.get(kind, ns, name)
            if precondition_uid and cur["metadata"]["uid"] != precondition_uid:
                raise APIError(409, "Conflict", f"Precondition failed: UID in precondition: {precondition_uid}, "
                               f"UID in object meta: {cur['metadata']['uid']}")
            if kind.kind == "Pod" and self._graceful(cur, grace):
                return cur if cur["metadata"].get("deletionTimestamp") else self._mark_deleting(cur, grace)
            if kind.kind == "Namespace":
                self._delete_namespace_contents(name)
            return self.store.delete(kind.resource, ns, name)

    # ---- helpers ------------------------------------------------------
    def _require_namespace(self, ns: str) -> None:
        try:
            nsobj = self.store.get("namespaces", "", ns)
        except NotFound:
            raise APIError(404, "NotFound", f'namespaces "{ns}" not found',
                           {"name": ns, "kind": "namespaces"}) from None
        if nsobj["metadata"].get("deletionTimestamp"):
            raise APIError(403, "Forbidden", f"unable to create new content in namespace {ns} because it is being terminated")

    def _merge_update(self, kind: Kind, old: dict, obj: dict, subresource: str | None) -> dict:
        """PUT replaces spec and metadata; status only through /status (and the
        reverse), as for kinds with a status subresource."""
        new = copy.deepcopy(old)
        if subresource == "status":
            new["status"] = obj.get("status", {})
            return new
        keep_status = kind.kind in HAS_STATUS
        for key, value in obj.items():
            if key in ("metadata", "status", "apiVersion", "kind"):
                continue
            new[key] = value
        for key in list(new):
            if key not in obj and key not in ("metadata", "status", "apiVersion", "kind"):
                del new[key]
        if not keep_status and "status" in obj:
            new["status"] = obj["status"]
        md, omd = new["metadata"], obj.get("metadata", {})
        for field in ("labels", "annotations", "ownerReferences", "finalizers"):
            if field in omd:
                md[field] = omd[field]
            else:
                md.pop(field, None)
        return new

    def _graceful(self, pod: dict, grace: int | None) -> bool:
        if grace == 0:
            return False
        if not pod.get("spec", {}).get("nodeName"):
            return False
        return pod.get("status", {}).get("phase") not in ("Succeeded", "Failed") or bool(
            pod["metadata"].get("deletionTimestamp"))

    def _mark_deleting(self, pod: dict, grace: int | None) -> dict:
        if grace is None:
            grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        pod["metadata"]["deletionTimestamp"] = now_iso()
        pod["metadata"]["deletionGracePeriodSeconds"] = grace
        return self.store.update("pods", pod)

    def _delete_namespace_contents(self, ns: str) -> None:
        from agent.api.kinds import KINDS
        for k in KINDS:
            if k.namespaced:
                for o in self.store.list(k.resource, ns)[0]:
                    self.store.delete(k.resource, ns, o["metadata"]["name"])

    def used(self, svc: dict) -> tuple["Taken", "Taken", "Taken"]:
        """ClusterIPs, node ports and load-balancer addresses held by Services other
        than `svc`, as views of the store's indexes (call under the store lock)."""
        me = (svc["metadata"].get("namespace", ""), svc["metadata"]["name"])
        return tuple(Taken(self.store.index("services", name), me)
                     for name in ("clusterIPs", "nodePorts", "loadBalancerIPs"))

    def _allocate_service(self, svc: dict, old: dict | None) -> None:
        spec = svc["spec"]
        stype = spec.get("type", "ClusterIP")
        used_ips, used_ports, used_lb = self.used(svc)
        field = "spec.clusterIPs"
        try:
            if stype == "ExternalName":
                spec.pop("clusterIP", None)
                spec.pop("clusterIPs", None)
            elif spec.get("clusterIP") != "None":
                old_ip = (old or {}).get("spec", {}).get("clusterIP")
                want = spec.get("clusterIP") or (old_ip if old_ip not in (None, "", "None") else None)
                if want and old_ip == want:
                    ip = want
                else:
                    ip = self.cluster_ips.allocate(used_ips, want)
                spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
            else:
                spec["clusterIPs"] = ["None"]
            field = "spec.ports"
            wants_node_ports = stype == "NodePort" or (
                stype == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True))
            old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                         for p in (old or {}).get("spec", {}).get("ports", [])}
            mine: dict[int, str] = {}    # nodePort -> protocol, within this Service
            for i, p in enumerate(spec.get("ports", [])):
                field = f"spec.ports[{i}].nodePort"
                if not wants_node_ports:
                    if stype != "LoadBalancer":
                        p.pop("nodePort", None)
                    continue
                proto = p.get("protocol", "TCP")
                kept = old_ports.get((p.get("port"), proto))
                if p.get("nodePort") and (p["nodePort"] == kept or mine.get(p["nodePort"], proto) != proto):
                    pass   # kept, or shared by the same Service's port of another protocol (as kube allows)
                else:
                    p["nodePort"] = self.node_ports.allocate(used_ports, p.get("nodePort") or kept)
                used_ports.add(p["nodePort"])
                mine[p["nodePort"]] = proto
            field = "spec.healthCheckNodePort"
            if stype == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local":
                kept = (old or {}).get("spec", {}).get("healthCheckNodePort")
                if not spec.get("healthCheckNodePort") or spec["healthCheckNodePort"] != kept:
                    spec["healthCheckNodePort"] = self.node_ports.allocate(
                        used_ports, spec.get("healthCheckNodePort"))
            field = "spec.loadBalancerIP"
            if stype == "LoadBalancer" and spec.get("loadBalancerIP"):
                ip = spec["loadBalancerIP"]
                try:
                    self.lb_pool.check(ip, used_lb, f"{svc['metadata']['namespace']}/{svc['metadata']['name']}")
                except AllocationError as e:
                    raise AllocationError(f'Invalid value: "{ip}": {e}') from None
        except AllocationError as e:
            msg = str(e)
            if field == "spec.clusterIPs":
                msg = f'Invalid value: []string{{"{spec.get("clusterIP")}"}}: {msg}'
            name = svc["metadata"]["name"]
            raise invalid(_service_kind(), name, [validation.Cause(field, "FieldValueInvalid", msg)]) from None


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


def _cluster_ips(svc: dict) -> list[str]:
    spec = svc.get("spec", {})
    return [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and ip != "None"]


def _node_ports(svc: dict) -> list[str]:
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
    if stype == "ExternalName" and unchanged("clusterIP"):
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)
    if otype == "ExternalName" and unchanged("externalName"):
        spec.pop("externalName", None)


def _service_kind() -> Kind:
    from agent.api.kinds import BY_KIND
    return BY_KIND["Service"]


# ---- defaulting (what kube-apiserver's defaulters fill in) ----------------

def default(kind: str, obj: dict) -> None:
    fn = _DEFAULTERS.get(kind)
    if fn:
        fn(obj)


def _default_service(svc: dict) -> None:
    spec = svc.setdefault("spec", {})
    stype = spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if stype == "ExternalName":
        return
    for p in spec.get("ports", []) or []:
        p.setdefault("protocol", "TCP")
        if "targetPort" not in p and isinstance(p.get("port"), int):
            p["targetPort"] = p["port"]
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    if stype in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if stype == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    if spec.get("sessionAffinity") == "ClientIP":
        spec.setdefault("sessionAffinityConfig", {}).setdefault("clientIP", {}).setdefault("timeoutSeconds", 10800)
    svc.setdefault("status", {"loadBalancer": {}})


def _default_pod_spec(spec: dict) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    for c in spec.get("containers", []) or []:
        image = c.get("image", "")
        tag = image.rsplit("/", 1)[-1]
        c.setdefault("imagePullPolicy", "Always" if ":" not in tag or tag.endswith(":latest") else "IfNotPresent")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        for p in c.get("ports", []) or []:
            p.setdefault("protocol", "TCP")
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            pr = c.get(probe)
            if isinstance(pr, dict):
                pr.setdefault("timeoutSeconds", 1)
                pr.setdefault("periodSeconds", 10)
                pr.setdefault("successThreshold", 1)
                pr.setdefault("failureThreshold", 3)


def _default_pod(pod: dict) -> None:
    _default_pod_spec(pod.setdefault("spec", {}))
    st = pod.setdefault("status", {})
    st.setdefault("phase", "Pending")


def _default_workload(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    tmpl = spec.setdefault("template", {})
    _default_pod_spec(tmpl.setdefault("spec", {}))
    if obj.get("kind") == "Deployment":
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strat = spec.setdefault("strategy", {})
        strat.setdefault("type", "RollingUpdate")
        if strat["type"] == "RollingUpdate":
            ru = strat.setdefault("rollingUpdate", {})
            ru.setdefault("maxSurge", "25%")
            ru.setdefault("maxUnavailable", "25%")
    obj.setdefault("status", {})


def _default_namespace(ns: dict) -> None:
    ns.setdefault("spec", {"finalizers": ["kubernetes"]})
    ns.setdefault("status", {"phase": "Active"})
    ns["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = ns["metadata"].get("name", "")


def _default_slice(sl: dict) -> None:
    for ep in sl.get("endpoints", []) or []:
        ep.setdefault("conditions", {}).setdefault("ready", True)
    for p in sl.get("ports", []) or []:
        p.setdefault("protocol", "TCP")
        p.setdefault("name", "")


_DEFAULTERS = {
    "Service": _default_service,
    "Pod": _default_pod,
    "Deployment": _default_workload,
    "ReplicaSet": _default_workload,
    "Namespace": _default_namespace,
    "EndpointSlice": _default_slice,
}

__all__ = ["Registry", "APIError", "not_found", "default"]
