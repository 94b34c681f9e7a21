"""PATCH bodies, the three kinds kube-apiserver takes:

  application/merge-patch+json           RFC 7386 JSON merge patch
  application/json-patch+json            RFC 6902 JSON patch (add, remove, replace, move, copy, test)
  application/strategic-merge-patch+json Kubernetes' strategic merge patch

A strategic merge patch merges lists of objects by a merge key instead of
replacing them (containers by name, ports by containerPort, ...), as the
`patchStrategy`/`patchMergeKey` tags of k8s.io/api's Go types say; the
subset for the kinds we serve is written out in SCHEMAS below. It also obeys
the directives kubectl sends: `$patch: replace|delete|merge`,
`$retainKeys`, `$setElementOrder/<field>` and
`$deleteFromPrimitiveList/<field>`. Lists without a merge key are replaced,
as the Go types say for them.

Pure functions over plain dicts; errors are PatchError with kube's wording.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
SUPPORTED = (STRATEGIC_PATCH, MERGE_PATCH, JSON_PATCH)


class PatchError(Exception):
    """`code` is the HTTP status kube-apiserver answers with."""

    def __init__(self, message: str, code: int = 422):
        super().__init__(message)
        self.code = code


# ---- schema: patch strategies of the Go types ------------------------------

@dataclass(frozen=True)
class ListOf:
    """A list field merged by `key` (None: a merged list of primitives)."""
    key: str | None
    elem: dict = field(default_factory=dict)


OBJECT_META = {"finalizers": ListOf(None), "ownerReferences": ListOf("uid")}
CONTAINER = {"ports": ListOf("containerPort"), "env": ListOf("name"), "volumeMounts": ListOf("mountPath"),
             "volumeDevices": ListOf("devicePath"), "resizePolicy": ListOf("resourceName")}
POD_SPEC = {"containers": ListOf("name", CONTAINER), "initContainers": ListOf("name", CONTAINER),
            "ephemeralContainers": ListOf("name", CONTAINER), "volumes": ListOf("name"),
            "imagePullSecrets": ListOf("name"), "hostAliases": ListOf("ip"),
            "topologySpreadConstraints": ListOf("topologyKey"), "resourceClaims": ListOf("name"),
            "schedulingGates": ListOf("name")}
CONDITIONS = {"conditions": ListOf("type")}
POD_TEMPLATE = {"metadata": OBJECT_META, "spec": POD_SPEC}
WORKLOAD = {"metadata": OBJECT_META, "spec": {"template": POD_TEMPLATE}, "status": CONDITIONS}
SCHEMAS = {
    "Pod": {"metadata": OBJECT_META, "spec": POD_SPEC, "status": CONDITIONS},
    "Service": {"metadata": OBJECT_META, "spec": {"ports": ListOf("port")}, "status": CONDITIONS},
    "Deployment": WORKLOAD,
    "ReplicaSet": WORKLOAD,
    "StatefulSet": WORKLOAD,
    "DaemonSet": WORKLOAD,
    "Job": WORKLOAD,
    "CronJob": {"metadata": OBJECT_META, "spec": {"jobTemplate": {"spec": {"template": POD_TEMPLATE}}}},
    "Node": {"metadata": OBJECT_META, "status": {"addresses": ListOf("type"), "conditions": ListOf("type")}},
    "Namespace": {"metadata": OBJECT_META, "status": CONDITIONS},
}

PATCH = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ORDER = "$setElementOrder/"
DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


# ---- strategic merge patch -------------------------------------------------

def strategic_merge(original: dict, patch: dict, kind: str) -> dict:
    """`original` with the strategic merge patch applied (a new dict)."""
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object", 400)
    return _merge_map(copy.deepcopy(original), copy.deepcopy(patch), SCHEMAS.get(kind, {"metadata": OBJECT_META}))


def _merge_map(orig, patch: dict, schema: dict):
    directive = patch.pop(PATCH, None)
    if directive == "delete":
        return None
    if directive == "replace":
        return _strip(patch)
    if directive not in (None, "merge"):
        raise PatchError(f"Unknown patch type: {directive} in map: {patch}", 400)
    out = dict(orig) if isinstance(orig, dict) else {}
    retain = patch.pop(RETAIN_KEYS, None)
    orders = {k[len(SET_ORDER):]: patch.pop(k) for k in list(patch) if k.startswith(SET_ORDER)}
    deletes = {k[len(DELETE_PRIMITIVE):]: patch.pop(k) for k in list(patch) if k.startswith(DELETE_PRIMITIVE)}
    for k, v in patch.items():
        if k.startswith("$"):
            raise PatchError(f"unknown patch directive {k!r}", 400)
        if v is None:
            out.pop(k, None)
            continue
        sub = schema.get(k, {})
        merged = _merge_value(out.get(k), v, sub, k)
        if merged is None and isinstance(v, dict):
            out.pop(k, None)       # `$patch: delete` on a map
        else:
            out[k] = merged
    for k, values in deletes.items():
        if isinstance(out.get(k), list):
            out[k] = [x for x in out[k] if x not in values]
    for k, order in orders.items():
        if isinstance(out.get(k), list):
            sub = schema.get(k)
            out[k] = _reorder(out[k], order, sub.key if isinstance(sub, ListOf) else None)
    if retain is not None:
        keep = set(retain)
        out = {k: v for k, v in out.items() if k in keep}
    return out


def _merge_value(orig, patch, sub, name: str):
    if isinstance(patch, dict):
        return _merge_map(orig, patch, sub if isinstance(sub, dict) else {})
    if isinstance(patch, list) and isinstance(sub, ListOf):
        return _merge_list(orig if isinstance(orig, list) else [], patch, sub, name)
    return _strip(patch)


def _merge_list(orig: list, patch: list, spec: ListOf, name: str) -> list:
    if spec.key is None:       # primitives with strategy "merge": a union, in order
        out = list(orig)
        out += [x for x in patch if x not in out]
        return out
    if any(isinstance(p, dict) and p.get(PATCH) == "replace" for p in patch):
        return [_strip(p) for p in patch if not (isinstance(p, dict) and p.get(PATCH) == "replace")]
    out = list(orig)
    for p in patch:
        if not isinstance(p, dict):
            raise PatchError(f"{name}: expected a list of objects merged by {spec.key!r}, got {json.dumps(p)}", 400)
        if spec.key not in p:
            raise PatchError(f"map: {_go_map(p)} does not contain declared merge key: {spec.key}", 400)
        i = next((n for n, o in enumerate(out) if isinstance(o, dict) and o.get(spec.key) == p[spec.key]), None)
        if p.get(PATCH) == "delete":
            out = [o for o in out if not (isinstance(o, dict) and o.get(spec.key) == p[spec.key])]
            continue
        if i is None:
            out.append(_merge_map({}, p, spec.elem))
        else:
            out[i] = _merge_map(out[i], p, spec.elem)
    return out


def _reorder(items: list, order: list, key: str | None) -> list:
    """`$setElementOrder`: the listed elements in the listed order; others
    (the server added them) keep their place after them."""
    def ident(x):
        return x.get(key) if key and isinstance(x, dict) else x
    wanted = [ident(o) for o in order]
    pos = {v: n for n, v in enumerate(wanted)}
    listed = sorted((x for x in items if ident(x) in pos), key=lambda x: pos[ident(x)])
    return listed + [x for x in items if ident(x) not in pos]


def _strip(value):
    """A value with every directive removed (for replaced subtrees)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _go_map(d: dict) -> str:
    return "map[" + " ".join(f"{k}:{v}" for k, v in sorted(d.items())) + "]"


# ---- RFC 7386 --------------------------------------------------------------

def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# ---- RFC 6902 --------------------------------------------------------------

def json_patch(doc, ops) -> dict:
    """RFC 6902: apply `ops` in order to a copy of `doc`; all or nothing."""
    if not isinstance(ops, list):
        raise PatchError("json: cannot unmarshal object into Go value of type jsonpatch.Patch", 400)
    doc = copy.deepcopy(doc)
    for n, op in enumerate(ops):
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"operation {n}: an operation needs \"op\" and \"path\"", 400)
        doc = _apply_op(doc, op)
    return doc


def _apply_op(doc, op: dict):
    kind, path = op["op"], op["path"]
    if kind == "add":
        return _add(doc, path, copy.deepcopy(_need(op, "value")))
    if kind == "remove":
        _remove(doc, path)
        return doc
    if kind == "replace":
        if path == "":
            return copy.deepcopy(_need(op, "value"))
        parent, last = _parent(doc, path)
        _get_child(parent, last, path)
        _set_child(parent, last, copy.deepcopy(_need(op, "value")), path)
        return doc
    if kind in ("move", "copy"):
        src = _need(op, "from")
        value = _resolve(doc, src)
        if kind == "move":
            if path.startswith(src + "/"):
                raise PatchError(f"move operation: cannot move {src} into its own child {path}")
            _remove(doc, src)
        return _add(doc, path, copy.deepcopy(value))
    if kind == "test":
        have = _resolve(doc, path)
        if have != _need(op, "value"):
            raise PatchError(f"testing value {path} failed: test failed")
        return doc
    raise PatchError(f"Unexpected kind: {kind}", 400)


def _need(op: dict, key: str):
    if key not in op:
        raise PatchError(f"{op['op']} operation does not apply: doc is missing {key} field", 400)
    return op[key]


def _tokens(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer {path!r} must start with /", 400)
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _resolve(doc, path: str):
    node = doc
    for t in _tokens(path):
        node = _get_child(node, t, path)
    return node


def _parent(doc, path: str):
    toks = _tokens(path)
    if not toks:
        raise PatchError("the root has no parent", 400)
    node = doc
    for t in toks[:-1]:
        node = _get_child(node, t, path)
    return node, toks[-1]


def _index(lst: list, tok: str, path: str, allow_end: bool = False) -> int:
    if tok == "-" and allow_end:
        return len(lst)
    if not tok.isdigit() or (len(tok) > 1 and tok[0] == "0"):
        raise PatchError(f"doc is missing path: {path}: invalid array index {tok!r}")
    i = int(tok)
    if i > len(lst) or (i == len(lst) and not allow_end):
        raise PatchError(f"doc is missing path: {path}: index out of bounds: {i}")
    return i


def _get_child(node, tok: str, path: str):
    if isinstance(node, dict):
        if tok not in node:
            raise PatchError(f"doc is missing path: {path}: missing value")
        return node[tok]
    if isinstance(node, list):
        return node[_index(node, tok, path)]
    raise PatchError(f"doc is missing path: {path}: missing value")


def _set_child(node, tok: str, value, path: str) -> None:
    if isinstance(node, dict):
        node[tok] = value
    elif isinstance(node, list):
        node[_index(node, tok, path)] = value
    else:
        raise PatchError(f"doc is missing path: {path}: missing value")


def _add(doc, path: str, value):
    if path == "":
        return value
    parent, last = _parent(doc, path)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, path, allow_end=True), value)
    else:
        raise PatchError(f"add operation does not apply: doc is missing path: {path}")
    return doc


def _remove(doc, path: str) -> None:
    parent, last = _parent(doc, path)
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"remove operation does not apply: doc is missing path: \"{path}\"")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, path)]
    else:
        raise PatchError(f"remove operation does not apply: doc is missing path: \"{path}\"")


# ---- dispatch --------------------------------------------------------------

def apply(content_type: str, original: dict, raw: bytes, kind: str) -> dict:
    """The patched object, for a PATCH body of `content_type`."""
    ctype = (content_type or "").split(";")[0].strip()
    if ctype == APPLY_PATCH:
        raise PatchError("server-side apply (application/apply-patch+yaml) is not supported by nsplane; "
                         "use client-side `kubectl apply` (without --server-side)", 415)
    if ctype not in SUPPORTED:
        raise PatchError(f"the body of the request was in an unknown format - accepted media types include: "
                         f"{', '.join(SUPPORTED)}, {APPLY_PATCH}", 415)
    try:
        body = json.loads(raw or b"null")
    except json.JSONDecodeError as e:
        raise PatchError(f"error decoding patch: {e}", 400) from None
    if ctype == JSON_PATCH:
        return json_patch(original, body)
    if not isinstance(body, dict):
        raise PatchError("the patch must be a JSON object", 400)
    if ctype == MERGE_PATCH:
        return merge_patch(original, body)
    return strategic_merge(original, body, kind)
