"""How server-side apply merges each field of a kind: which lists are
list-maps (and by which keys), which are sets, which lists, maps and
structs are atomic, and which objects are maps (granular members, FieldsV1's
"." when an update adds them) rather than structs.

Built-in kinds read agent/apiserver/schemas.py (types, `{T}` maps) and the
patch keys of agent/apiserver/patch.py, with kube's list-map keys where SSA's
differ from the strategic-merge key (ports are keyed by port and protocol);
custom resources read their CRD's schema (x-kubernetes-list-type,
x-kubernetes-list-map-keys, x-kubernetes-map-type).
"""
from __future__ import annotations

from dataclasses import dataclass

from agent.apiserver import patch, schemas

_ATOMIC = {("spec", "selector")}        # LabelSelector / Service's selector: +structType / mapType=atomic


@dataclass(frozen=True)
class Shape:
    kind: str
    crd_schema: dict | None = None     # a custom resource's openAPIV3Schema

    # ---- lists --------------------------------------------------------------------------
    def list_type(self, names: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
        if self.crd_schema is not None and names[:1] != ("metadata",):   # ObjectMeta is every kind's
            node = self._crd_node(names)
            if not node:
                return "atomic", ()
            lt = node.get("x-kubernetes-list-type", "atomic")
            return lt, tuple(node.get("x-kubernetes-list-map-keys") or ())
        spec = _patch_node(self.kind, names)
        if not isinstance(spec, patch.ListOf):
            return "atomic", ()
        if spec.key is None:
            return "set", ()
        if spec.key in ("port", "containerPort"):      # kube's +listMapKey: the port and its protocol
            return "map", (spec.key, "protocol")
        return "map", (spec.key,)

    # ---- objects ------------------------------------------------------------------------
    def atomic(self, names: tuple[str, ...]) -> bool:
        if self.crd_schema is not None and names[:1] != ("metadata",):
            node = self._crd_node(names) or {}
            return node.get("x-kubernetes-map-type") == "atomic" or (
                node.get("type") == "object" and not node.get("properties") and not node.get("additionalProperties")
                and not node.get("x-kubernetes-preserve-unknown-fields") and names != ())
        return names in _ATOMIC and self.kind in ("Deployment", "ReplicaSet", "Service", "ReplicationController")

    def is_map(self, names: tuple[str, ...]) -> bool:
        if names[:1] == ("metadata",) and names[1:] in (("labels",), ("annotations",)):
            return True
        if self.crd_schema is not None:
            node = self._crd_node(names) or {}
            return isinstance(node.get("additionalProperties"), dict)
        t = _schema_type(self.kind, names)
        return isinstance(t, str) and t.startswith("{")

    def _crd_node(self, names: tuple[str, ...]) -> dict | None:
        node = self.crd_schema
        for n in names:
            while isinstance(node, dict) and node.get("type") == "array":
                node = node.get("items")
            if not isinstance(node, dict):
                return None
            props = node.get("properties") or {}
            node = props.get(n) if n in props else (node.get("additionalProperties")
                                                    if isinstance(node.get("additionalProperties"), dict) else None)
        return node


def _patch_node(kind: str, names: tuple[str, ...]):
    node = patch.SCHEMAS.get(kind, {"metadata": patch.OBJECT_META})
    for i, n in enumerate(names):
        if isinstance(node, patch.ListOf):
            node = node.elem
        if not isinstance(node, dict):
            return None
        node = node.get(n)
    return node


def _schema_type(kind: str, names: tuple[str, ...]):
    """The compact type (agent/apiserver/schemas.py) of the field at `names`."""
    if kind not in schemas.KIND_TYPES:
        return None
    t = kind
    for n in names:
        while isinstance(t, str) and t.startswith(("[", "{")) and not _is_named(t):
            t = t[1:-1]
        if not _is_named(t):
            return None
        spec = schemas.fields_of(t).get(n)
        if spec is None:
            return None
        t = spec if isinstance(spec, str) else spec[0]
    return t


def _is_named(t: str) -> bool:
    return t in schemas.TYPES or t in schemas.KIND_TYPES
