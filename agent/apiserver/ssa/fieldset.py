"""Field sets, as structured-merge-diff keeps them for managedFields: which
fields of an object a manager owns, and their FieldsV1 encoding
(`{"f:spec": {"f:replicas": {}}, "k:{\\"name\\":\\"web\\"}": {".": {}}}`).

A path is a tuple of elements: "f:<field>" (a struct or map member),
'k:{"name":"web"}' (an item of a list-map, by its keys), 'v:"a"' (a value
of a set list), "i:<n>" (never produced: other lists are atomic).
`ListTypes` says how a list at a path is merged: from the built-in kinds'
patch keys (agent/apiserver/patch.py) or a CRD's x-kubernetes-list-type and
x-kubernetes-list-map-keys. Pure.
"""
from __future__ import annotations

import json
from collections.abc import Callable

Path = tuple[str, ...]
# path (field names only, list items skipped) -> ("map", keys) | ("set", ()) | ("atomic", ())
ListType = Callable[[tuple[str, ...]], tuple[str, tuple[str, ...]]]
# the fields kube's field manager never tracks
IGNORED = {("f:apiVersion",), ("f:kind",)}
IGNORED_META = {"name", "namespace", "creationTimestamp", "selfLink", "uid", "generation", "managedFields",
                "resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"}


KEY_DEFAULTS = {"protocol": "TCP"}      # a list-map key kube defaults before keying the item


def item_key(item: dict, keys: tuple[str, ...]) -> dict:
    out = {}
    for k in sorted(keys):
        v = item.get(k, KEY_DEFAULTS.get(k))
        if v is not None:
            out[k] = v
    return out


def _key(item: dict, keys: tuple[str, ...]) -> str:
    return "k:" + json.dumps(item_key(item, keys), separators=(",", ":"))


def _names(path: Path) -> tuple[str, ...]:
    return tuple(p[2:] for p in path if p.startswith("f:"))


def flatten(obj: dict, list_type: ListType, atomic: Callable[[tuple[str, ...]], bool],
            with_maps: Callable[[tuple[str, ...]], bool] | None = None) -> dict[Path, object]:
    """Every tracked path of `obj` and the value there: leaves (scalars,
    atomic lists and structs, empty maps), list-map items and set values;
    with `with_maps`, maps and structs that have members too (what an Update
    that adds them owns, FieldsV1's ".")."""
    out: dict[Path, object] = {}
    for key, value in obj.items():
        if key in ("apiVersion", "kind"):
            continue
        if key == "metadata" and isinstance(value, dict):
            meta = {k: v for k, v in value.items() if k not in IGNORED_META}
            if meta:                     # name and the server's fields are never owned
                _walk(meta, ("f:metadata",), list_type, atomic, with_maps, out, top=True)
            continue
        _walk(value, (f"f:{key}",), list_type, atomic, with_maps, out)
    return out


def _walk(value, path: Path, list_type, atomic, with_maps, out, top=False) -> None:
    names = _names(path)
    if isinstance(value, dict) and value and not atomic(names):
        if with_maps and not top and with_maps(names):
            out[path] = _CONTAINER
        for k, v in value.items():
            _walk(v, path + (f"f:{k}",), list_type, atomic, with_maps, out)
        return
    if isinstance(value, list) and value:
        ltype, keys = list_type(names)
        if ltype == "map" and all(isinstance(i, dict) for i in value):
            for item in value:
                ipath = path + (_key(item, keys),)
                out[ipath] = _CONTAINER
                for k, v in item.items():
                    _walk(v, ipath + (f"f:{k}",), list_type, atomic, with_maps, out)
            return
        if ltype == "set" and all(not isinstance(i, (dict, list)) for i in value):
            for item in value:
                out[path + ("v:" + json.dumps(item, separators=(",", ":")),)] = item
            return
    out[path] = value


class _Container:
    """The value recorded for a list item or map that has members: it is
    owned as a whole, but never compared (its members are)."""

    def __repr__(self):
        return "<container>"


_CONTAINER = _Container()


def is_container(value) -> bool:
    return value is _CONTAINER


# ---- FieldsV1 ----------------------------------------------------------------------------

def to_fields_v1(paths) -> dict:
    """The FieldsV1 JSON of a set of paths."""
    root: dict = {}
    for path in sorted(paths):
        node = root
        for elem in path:
            node = node.setdefault(elem, {})
        node["."] = {}
    return _collapse(root)


def _collapse(node: dict) -> dict:
    """A member with no children is `{}`; one with children keeps '.': {}."""
    out = {}
    for k, v in node.items():
        if k == ".":
            continue
        children = _collapse(v)
        member = "." in v
        if children and member:
            out[k] = {".": {}, **children}
        else:
            out[k] = children
    return dict(sorted(out.items(), key=lambda kv: (kv[0] != ".", kv[0])))


def from_fields_v1(fields: dict, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for k, v in (fields or {}).items():
        if k == ".":
            if prefix:
                out.add(prefix)
            continue
        path = prefix + (k,)
        if not v:
            out.add(path)
        else:
            out |= from_fields_v1(v, path)
    return out


# ---- printing (conflict messages) ------------------------------------------------------------

def path_string(path: Path) -> str:
    """structured-merge-diff's Path.String(): .spec.containers[name="web"].image"""
    out = ""
    for elem in path:
        kind, _, rest = elem.partition(":")
        if kind == "f":
            out += "." + rest
        elif kind == "k":
            keys = json.loads(rest)
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]"
        elif kind == "v":
            out += f"[={rest}]"
        else:
            out += f"[{rest}]"
    return out
