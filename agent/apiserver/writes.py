"""The write verbs' extras that kube-apiserver layers over the registry:
server-side dry run, the scale subresource, and delete propagation.

- dry run (`?dryRun=All`, `kubectl apply --dry-run=server`): the registry
  runs as usual (defaulting, validation, allocation checks) against a store
  that reads the real objects but writes nothing.
- scale (`deployments/<n>/scale`, `replicasets/<n>/scale`,
  `replicationcontrollers/<n>/scale`): an autoscaling/v1 Scale view of
  `.spec.replicas`, for `kubectl scale`.
- propagationPolicy on DELETE: Background (the garbage collector removes
  dependents after the owner), Orphan (dependents lose their ownerReference
  and stay), Foreground (dependents go first, then the owner; done under the
  store lock, so no controller sees half of it).
"""
from __future__ import annotations

import copy

from agent.api.kinds import KINDS, Kind
from agent.apiserver.registry import APIError, Registry
from agent.apiserver.store import AlreadyExists, NotFound, key_of

SCALABLE = ("Deployment", "ReplicaSet", "ReplicationController", "StatefulSet")
PROPAGATION = ("Background", "Foreground", "Orphan")


# ---- dry run -------------------------------------------------------------

class DryRunStore:
    """Reads pass through to the real store; writes return what would have
    been stored, without a resourceVersion, and change nothing."""

    def __init__(self, store):
        self._store = store

    def __getattr__(self, name):           # get, list, watch, resource_version, transaction
        return getattr(self._store, name)

    def create(self, resource: str, obj: dict) -> dict:
        _, ns, name = key_of(resource, obj)
        try:
            self._store.get(resource, ns, name)
            raise AlreadyExists(name)
        except NotFound:
            pass
        out = copy.deepcopy(obj)
        out["metadata"].pop("resourceVersion", None)
        return out

    def update(self, resource: str, obj: dict) -> dict:
        md = obj["metadata"]
        self._store.get(resource, md.get("namespace", "") or "", md["name"])
        return copy.deepcopy(obj)

    def delete(self, resource: str, namespace: str, name: str) -> dict:
        return self._store.get(resource, namespace, name)


def dry_run_registry(registry: Registry) -> Registry:
    dry = copy.copy(registry)
    dry.store = DryRunStore(registry.store)
    return dry


def check_dry_run(value: str | None) -> bool:
    """True for dryRun=All; kube's 400 for anything else but empty."""
    if not value:
        return False
    if value != "All":
        raise APIError(400, "BadRequest", f'Unsupported value: "{value}": supported values: "All"')
    return True


# ---- scale subresource -----------------------------------------------------

def label_selector_string(sel: dict | None) -> str:
    """metav1.LabelSelectorAsSelector(...).String() for the common shapes."""
    sel = sel or {}
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op, key, vals = e.get("operator"), e.get("key"), sorted(e.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({','.join(vals)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(vals)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(sorted(parts))


def scale_of(obj: dict) -> dict:
    md = obj["metadata"]
    sel = obj.get("spec", {}).get("selector")
    if obj.get("kind") == "ReplicationController":    # a plain map: labels.SelectorFromSet(...).String()
        selector = ",".join(f"{k}={v}" for k, v in sorted((sel or {}).items()))
    else:
        selector = label_selector_string(sel)
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in md},
            "spec": {"replicas": obj.get("spec", {}).get("replicas", 1)},
            "status": {"replicas": obj.get("status", {}).get("replicas", 0),
                       "selector": selector}}


def with_scale(obj: dict, scale: dict) -> dict:
    """`obj` with the replicas a Scale asks for (and its resourceVersion precondition)."""
    replicas = (scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        raise APIError(422, "Invalid", f'Scale.autoscaling "{obj["metadata"]["name"]}" is invalid: '
                       f"spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0")
    new = copy.deepcopy(obj)
    new.setdefault("spec", {})["replicas"] = replicas
    rv = (scale.get("metadata") or {}).get("resourceVersion")
    new["metadata"]["resourceVersion"] = rv or obj["metadata"]["resourceVersion"]
    return new


def require_scalable(kind: Kind) -> None:
    if kind.kind not in SCALABLE:
        raise APIError(404, "NotFound", f"the server could not find the requested resource ({kind.resource}/scale)")


# ---- delete propagation ----------------------------------------------------

def propagation(query: dict, body: dict) -> str:
    policy = query.get("propagationPolicy") or body.get("propagationPolicy")
    if policy is None and body.get("orphanDependents") is not None:
        policy = "Orphan" if body["orphanDependents"] else "Background"
    policy = policy or "Background"
    if policy not in PROPAGATION:
        raise APIError(400, "BadRequest", f'Unsupported value: "{policy}": supported values: '
                       + ", ".join(f'"{p}"' for p in PROPAGATION))
    return policy


def dependents(store, owner: dict) -> list[tuple[Kind, dict]]:
    """Objects whose ownerReferences name `owner` (same namespace)."""
    uid, ns = owner["metadata"]["uid"], owner["metadata"].get("namespace")
    out = []
    for k in KINDS:
        if not k.namespaced or not ns:
            continue
        for o in store.list(k.resource, ns)[0]:
            if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or []):
                out.append((k, o))
    return out


def delete(registry: Registry, kind: Kind, ns: str | None, name: str, grace: int | None,
           uid: str | None, rv: str | None, policy: str) -> dict:
    with registry.store.transaction():
        cur = registry.get(kind, ns, name)
        if rv and cur["metadata"].get("resourceVersion") != rv:
            raise APIError(409, "Conflict", f"Precondition failed: ResourceVersion in precondition: {rv}, "
                           f"ResourceVersion in object meta: {cur['metadata'].get('resourceVersion')}")
        if policy == "Orphan":
            _orphan(registry, cur)
        elif policy == "Foreground":
            for dk, dep in dependents(registry.store, cur):
                md = dep["metadata"]
                if md.get("deletionTimestamp"):
                    continue
                try:
                    delete(registry, dk, md.get("namespace"), md["name"], None, None, None, "Foreground")
                except APIError as e:
                    if e.code != 404:
                        raise
        return registry.delete(kind, ns, name, grace, uid)


def _orphan(registry: Registry, owner: dict) -> None:
    uid = owner["metadata"]["uid"]
    for dk, dep in dependents(registry.store, owner):
        dep["metadata"]["ownerReferences"] = [r for r in dep["metadata"]["ownerReferences"] if r.get("uid") != uid]
        if not dep["metadata"]["ownerReferences"]:
            del dep["metadata"]["ownerReferences"]
        registry.update(dk, dep["metadata"].get("namespace"), dep["metadata"]["name"], dep)
