"""What the API server does to an object between the request and the store,
as kube-apiserver's registry strategies do for the kinds we serve: create,
update (spec and metadata, or the status subresource), read-modify-write,
delete (graceful for pods, with a namespace's contents), in that order:
defaulting (agent/apiserver/defaults.py), validation
(agent/apiserver/validation/), Service allocation
(agent/apiserver/allocation.py), then the store.

Every writer goes through here: REST clients (agent/apiserver/handler.py) and
the controllers alike. Errors are `APIError`s carrying a Kubernetes `Status`;
nothing is written when one is raised.
"""
from __future__ import annotations

import copy
import random
import uuid

from agent.api.kinds import BY_RESOURCE, KINDS, Kind
from agent.api.objects import now_iso
from agent.apiserver import admission, configdata, csrstrategy, defaultingressclass, validation
from agent.apiserver.allocation import (
    AllocationRefused,
    ServiceAllocation,
    drop_type_dependent_fields,
)
from agent.apiserver.crd import custom, definition
from agent.apiserver.crd.definition import CustomKind
from agent.apiserver.defaults import default
from agent.apiserver.ssa import context as fieldmanager
from agent.apiserver.store import AlreadyExists, NotFound, Store

HAS_STATUS = {"Pod", "Service", "Deployment", "ReplicaSet", "ReplicationController", "Node", "Namespace"}
HAS_STATUS |= {"StatefulSet", "DaemonSet", "Job", "CronJob"}     # the workload controllers' kinds
HAS_STATUS |= {"Ingress", "PersistentVolumeClaim"}
# Kinds whose metadata.generation counts spec changes (kube's workload strategies).
HAS_GENERATION = {"Deployment", "ReplicaSet", "ReplicationController", "StatefulSet", "DaemonSet", "Job", "CronJob",
                  "Ingress"}
# utilrand's alphabet: the 5 characters kube-apiserver appends to a generateName.
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


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
    st = validation.invalid_status(kind.kind, name, causes)
    if isinstance(kind, CustomKind):       # Kind.group, as for the built-in kinds
        st["message"] = f"{kind.kind}.{kind.group}" + st["message"][len(kind.kind):]
        st["details"]["group"] = kind.group
    return APIError(422, "Invalid", st["message"], st["details"])


def _decoded(kind: Kind, obj: dict) -> dict:
    """What decoding the body does first (Secret bytes and stringData:
    agent/apiserver/configdata.py); a body it refuses is kube's 400."""
    try:
        configdata.prepare(kind.kind, obj)
    except configdata.DecodeError as e:
        raise APIError(400, "BadRequest", str(e)) from None
    return obj


IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")

class Registry:
    """The write path of every kind (and `get`, which answers with kube's 404).
    Controllers and REST clients share one Registry; `allocation` holds the
    cluster's Service ranges."""

    def __init__(self, store: Store, service_cidr: str = "10.96.0.0/12",
                 node_ports: tuple[int, int] = (30000, 32767), lb_pool: str = "none"):
        self.store = store
        self.allocation = ServiceAllocation(store, service_cidr, node_ports, lb_pool)

    # ---- entry points ------------------------------------------------
    def create(self, kind: Kind, namespace: str | None, obj: dict) -> dict:
        obj = _decoded(kind, copy.deepcopy(obj))
        md = obj.setdefault("metadata", {})
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        if isinstance(kind, CustomKind):         # stored in the CRD's storage version
            obj["apiVersion"] = kind.storage_api_version
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
            md["name"] = md["generateName"][:58] + "".join(random.choice(_NAME_CHARS) for _ in range(5))
        name = md.get("name", "")
        for k in ("resourceVersion", "uid", "creationTimestamp", "deletionTimestamp"):
            md.pop(k, None)
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now_iso()
        if kind.kind in HAS_GENERATION:     # their strategies' PrepareForCreate: a fresh status
            md["generation"] = 1
            obj["status"] = {"replicas": 0} if kind.kind in ("ReplicaSet", "ReplicationController", "StatefulSet") \
                else {}
        if kind.kind == "PersistentVolumeClaim":
            obj["status"] = {}               # PrepareForCreate; defaulting makes it phase Pending
        if kind.kind == csrstrategy.KIND:
            obj.pop("status", None)          # signed and approved only through its subresources
        default(kind.kind, obj)
        if kind.kind == "Pod":
            self._admit_pod(obj)
        if kind.kind == "Ingress":
            defaultingressclass.admit(obj, self.store.list("ingressclasses")[0])
        causes = self._validate(kind, obj, None)
        if causes:
            raise invalid(kind, name, causes)
        with self.store.transaction():
            if kind.kind == "Service":
                self._allocate(kind, obj, None)
            fieldmanager.stamp(kind, None, obj, None, self._status_sub(kind))
            try:
                return self.store.create(kind.resource, obj)
            except AlreadyExists:
                raise APIError(409, "AlreadyExists", f'{kind.resource}{_grp(kind)} "{name}" already exists',
                               {"name": name, "group": kind.group, "kind": kind.resource}) from None

    def _admit_pod(self, pod: dict) -> None:
        def service_account(namespace: str, name: str) -> dict | None:
            try:
                return self.get(BY_RESOURCE["serviceaccounts"], namespace, name)
            except APIError:
                return None
        try:
            admission.admit_pod(service_account, pod)
        except admission.Forbidden as e:
            raise APIError(403, "Forbidden", str(e), {"name": pod["metadata"].get("name", ""),
                                                      "kind": "pods"}) from None

    def update(self, kind: Kind, namespace: str | None, name: str, obj: dict, subresource: str | None = None) -> dict:
        obj = _decoded(kind, copy.deepcopy(obj))
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
            if new == old and not fieldmanager.applying():
                return old
            if subresource == "status" and isinstance(kind, CustomKind):    # the schema covers status too
                causes = custom.admit(kind, new, old)
                if causes:
                    raise invalid(kind, name, causes)
            if subresource != "status":
                if kind.kind == "Service":
                    drop_type_dependent_fields(old, new)
                default(kind.kind, new)
                causes = self._validate(kind, new, old)
                if causes:
                    raise invalid(kind, name, causes)
                if kind.kind == "Service":
                    self._allocate(kind, new, old)
                if kind.kind in HAS_GENERATION and new.get("spec") != old.get("spec"):
                    new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
            fieldmanager.stamp(kind, old, new, subresource, self._status_sub(kind))
            if new == old:
                return old
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

    def bind(self, namespace: str | None, name: str, binding: dict) -> dict:
        """pods/<name>/binding, as kube-apiserver's BindingREST: set an unbound
        pod's spec.nodeName (which no update may change) to the Binding's
        target Node and mark the pod PodScheduled. A pod already bound, or
        being deleted, is a 409 Conflict."""
        kind = BY_RESOURCE["pods"]
        md = binding.get("metadata") if isinstance(binding, dict) else None
        md = md if isinstance(md, dict) else {}
        if md.get("name") != name:
            raise APIError(400, "BadRequest", "name in URL does not match name in Binding object")
        causes = validation.validate_binding(binding)
        if causes:
            st = validation.invalid_status("Binding", name, causes)
            raise APIError(422, "Invalid", st["message"], st["details"])
        with self.store.transaction():
            pod = self.get(kind, namespace, name)
            bound = pod["spec"].get("nodeName")
            why = (f"pod {name} is being deleted, cannot be assigned to a host"
                   if pod["metadata"].get("deletionTimestamp") else
                   f'pod {name} is already assigned to node "{bound}"' if bound else None)
            if why:
                raise APIError(409, "Conflict", f'Operation cannot be fulfilled on pods/binding "{name}": {why}',
                               {"name": name, "kind": "pods/binding"})
            pod["spec"]["nodeName"] = binding["target"]["name"]
            conds = pod.setdefault("status", {}).setdefault("conditions", [])
            conds[:] = [c for c in conds if c.get("type") != "PodScheduled"]
            conds.append({"type": "PodScheduled", "status": "True"})
            return self.store.update(kind.resource, pod)

    def get(self, kind: Kind, namespace: str | None, name: str) -> dict:
        try:
            return self.store.get(kind.resource, namespace or "", name)
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
            if kind.kind == definition.KIND:     # its objects go with it
                for o in self.store.list(cur["spec"]["names"]["plural"])[0]:
                    self.store.delete(cur["spec"]["names"]["plural"], o["metadata"].get("namespace", ""),
                                      o["metadata"]["name"])
            if kind.kind == "Namespace":
                if name in IMMORTAL_NAMESPACES:     # kube-apiserver's NamespaceLifecycle admission
                    raise APIError(403, "Forbidden", f'namespaces "{name}" is forbidden: this namespace may not be '
                                                     "deleted", {"name": name, "kind": "namespaces"})
                self._delete_namespace_contents(name)
            return self.store.delete(kind.resource, ns, name)

    # ---- helpers ------------------------------------------------------
    def _validate(self, kind: Kind, obj: dict, old: dict | None) -> list:
        """Validation (after defaulting) of a create (`old` None) or an update:
        custom objects by their CRD's schema (agent/apiserver/crd/), the rest
        by agent/apiserver/validation/; an accepted CRD is established."""
        if isinstance(kind, CustomKind):
            causes = custom.admit(kind, obj, old)
            custom.count_generation(kind, obj, old)
            return causes
        if kind.kind == definition.KIND:
            definition.default_crd(obj)
        causes = validation.validate(kind.kind, obj, old, node_port_range=self.allocation.node_port_range)
        if kind.kind == definition.KIND and not causes:
            causes = definition.validate_crd(obj, old, self.store.list(definition.RESOURCE)[0])
            if not causes:
                definition.establish(obj, old)
                custom.count_generation(kind, obj, old)
        return causes

    def _require_namespace(self, ns: str) -> None:
        try:
            nsobj = self.store.get("namespaces", "", ns)
        except NotFound:
            raise APIError(404, "NotFound", f'namespaces "{ns}" not found',
                           {"name": ns, "kind": "namespaces"}) from None
        if nsobj["metadata"].get("deletionTimestamp"):
            raise APIError(403, "Forbidden", f"unable to create new content in namespace {ns} because it is being terminated")

    @staticmethod
    def _status_sub(kind: Kind) -> bool:
        return kind.kind in HAS_STATUS or custom.has_status(kind) or kind.kind == definition.KIND

    def _merge_update(self, kind: Kind, old: dict, obj: dict, subresource: str | None) -> dict:
        """PUT replaces spec and metadata; status only through /status (and the
        reverse), as for kinds with a status subresource."""
        if kind.kind == csrstrategy.KIND:
            return csrstrategy.merge_update(old, obj, subresource)
        new = copy.deepcopy(old)
        md, omd = new["metadata"], obj.get("metadata", {})
        if subresource == "status":     # kube's status strategies keep spec, not metadata
            new["status"] = obj.get("status", {})
            for field in ("labels", "annotations", "ownerReferences", "finalizers"):
                if field in omd:
                    md[field] = omd[field]
            return new
        keep_status = self._status_sub(kind)
        for key, value in obj.items():
            if key in ("metadata", "status", "apiVersion", "kind"):
                continue
            new[key] = value
        for key in list(new):
            if key not in obj and key not in ("metadata", "status", "apiVersion", "kind"):
                del new[key]
        if not keep_status and "status" in obj:
            new["status"] = obj["status"]
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
        for k in [*KINDS, *definition.served(self.store)]:
            if k.namespaced:
                for o in self.store.list(k.resource, ns)[0]:
                    self.store.delete(k.resource, ns, o["metadata"]["name"])

    def _allocate(self, kind: Kind, svc: dict, old: dict | None) -> None:
        try:
            self.allocation.allocate(svc, old)
        except AllocationRefused as e:
            raise invalid(kind, svc["metadata"]["name"], [e.cause]) from None


__all__ = ["Registry", "APIError", "not_found", "invalid"]
