"""The write verbs' extras that kube-apiserver layers over the registry:
server-side dry run, the scale subresource, and delete propagation.

- dry run (`?dryRun=All`, `kubectl apply --dry-run=server`): the registry
  runs as usual (defaulting, validation, allocation checks) against a store
  that reads the real objects but writes nothing.
- scale (`deployments/<n>/scale`, `replicasets/<n>/scale`, a CRD's `<plural>/<n>/scale`,
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
from agent.apiserver.crd import custom
from agent.apiserver.crd.definition import CustomKind
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


def scale_replicas(name: str, scale: dict) -> int:
    """The replicas a Scale body asks for, or kube's 422."""
    replicas = (scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        raise APIError(422, "Invalid", f'Scale.autoscaling "{name}" is invalid: '
                       f"spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0")
    return replicas


def with_scale(obj: dict, scale: dict) -> dict:
    """`obj` with the replicas a Scale asks for (and its resourceVersion precondition)."""
    replicas = scale_replicas(obj["metadata"]["name"], scale)
    new = copy.deepcopy(obj)
    new.setdefault("spec", {})["replicas"] = replicas
    rv = (scale.get("metadata") or {}).get("resourceVersion")
    new["metadata"]["resourceVersion"] = rv or obj["metadata"]["resourceVersion"]
    return new


def scale_view(kind: Kind):
    """(read, write) for a kind's scale subresource: read(obj) is its Scale,
    write(obj, scale) the object with the Scale's replicas; kube's 404 when
    the kind has none. A custom resource's come from its CRD's paths."""
    if isinstance(kind, CustomKind):
        return (lambda obj: custom.scale_of(kind, obj),
                lambda obj, scale: custom.with_scale(kind, obj, scale_replicas(obj["metadata"]["name"], scale)))
    require_scalable(kind)
    return scale_of, with_scale


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


def delete_options(body: dict) -> dict:
    """A DeleteOptions body whose fields have their types (400 otherwise)."""
    for field, types, go in (("preconditions", dict, "v1.Preconditions"),
                             ("propagationPolicy", str, "v1.DeletionPropagation"), ("orphanDependents", bool, "bool"),
                             ("dryRun", list, "[]string"), ("gracePeriodSeconds", int, "int64")):
        value = body.get(field)
        if value is not None and (not isinstance(value, types) or isinstance(value, bool) and types is int):
            raise APIError(400, "BadRequest", f"json: cannot unmarshal {type(value).__name__} into Go struct field "
                                              f"DeleteOptions.{field} of type {go}")
    pre = body.get("preconditions") or {}
    for field, value in [*((f"preconditions.{k}", v) for k, v in pre.items()),
                         *(("dryRun", v) for v in body.get("dryRun") or [])]:
        if value is not None and not isinstance(value, str):
            raise APIError(400, "BadRequest", f"json: cannot unmarshal {type(value).__name__} into Go struct field "
                                              f"DeleteOptions.{field} of type string")
    return body


def grace_period(value) -> int | None:
    """gracePeriodSeconds, from the query (a string) or the body (a number)."""
    if value is None or isinstance(value, int):
        return value
    try:
        return int(value)
    except ValueError:
        raise APIError(400, "BadRequest", f'invalid value for gracePeriodSeconds "{value}": it must be an integer') \
            from None


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
