"""Custom objects (instances of a CRD) on their way to the store, as
apiextensions-apiserver's customresource strategy handles them: defaults
from the schema, pruning of undeclared fields, schema validation plus
ObjectMeta validation, generation counting, the status and scale
subresources, and the printer columns (a small JSONPath) for Tables.

Pure: the registry and the request handler call these with plain objects.
"""
from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime

from agent.api.printers import since
from agent.apiserver.crd import schema as structural
from agent.apiserver.crd.definition import KIND, CustomKind
from agent.apiserver.tables import AGE_DOC, list_metadata
from agent.apiserver.validation.common import validate_meta, validate_meta_update
from agent.apiserver.validation.errors import Errs, go_value


def admit(kind: CustomKind, obj: dict, old: dict | None) -> list:
    """Default, prune and validate `obj` in place; the causes that refuse it.
    With a status subresource, a create's status is dropped (it is written
    through /status only), as kube's strategy does."""
    if old is None and has_status(kind):
        obj.pop("status", None)
    structural.apply_defaults(obj, kind.schema)
    structural.prune(obj, kind.schema)
    errs = Errs()
    md = obj.get("metadata")
    if old is not None and isinstance(md, dict):
        validate_meta_update(errs, md, old.get("metadata") or {})
    validate_meta(errs, kind.kind, md, kind.namespaced)
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    errs.extend(structural.validate(body, {**kind.schema, "required": [
        r for r in kind.schema.get("required") or () if r not in ("apiVersion", "kind", "metadata")]}))
    return list(errs)


def has_status(kind) -> bool:
    return isinstance(kind, CustomKind) and "status" in kind.subresources


def count_generation(kind, new: dict, old: dict | None) -> None:
    """metadata.generation of a custom object or a CRD: 1 on create, +1
    whenever anything but metadata (and status, when it is a subresource)
    changes."""
    md = new["metadata"]
    if old is None:
        md["generation"] = 1
        return
    skip = ("metadata", "status") if has_status(kind) or kind.kind == KIND else ("metadata",)

    def body(o):
        return {k: v for k, v in o.items() if k not in skip}
    gen = old["metadata"].get("generation", 1)
    md["generation"] = gen + 1 if body(new) != body(old) else gen


# ---- JSONPath (the subset printer columns and scale paths use) -----------------------

_TOKEN = re.compile(r"\.([A-Za-z0-9_\-$@]+)|\[(\d+)\]|\['([^']+)'\]|\[\*\]"
                    r"|\[\?\(@\.([A-Za-z0-9_\-.]+)\s*(==|!=)\s*(?:\"([^\"]*)\"|'([^']*)')\)\]")


def _tokens(path: str) -> list:
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if not path.startswith("."):
        path = "." + path
    out, pos = [], 0
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if not m:
            raise ValueError(f"unrecognized JSONPath at {path[pos:]!r}")
        if m.group(4):                  # a filter: [?(@.type=="Programmed")], as the Gateway API's columns use
            out.append(("?", m.group(4).split("."), m.group(5), m.group(6) if m.group(6) is not None else m.group(7)))
        else:
            out.append(m.group(1) or m.group(3) or (int(m.group(2)) if m.group(2) else "*"))
        pos = m.end()
    return out


def jsonpath(obj, path: str) -> list:
    """All values `path` reaches in `obj` (empty if none)."""
    values = [obj]
    for tok in _tokens(path):
        nxt = []
        for v in values:
            if tok == "*" and isinstance(v, list):
                nxt.extend(v)
            elif isinstance(tok, tuple) and isinstance(v, list):
                nxt.extend(item for item in v if _keep(item, tok))
            elif isinstance(tok, int) and isinstance(v, list) and -len(v) <= tok < len(v) or isinstance(tok, str) and isinstance(v, dict) and tok in v:
                nxt.append(v[tok])
        values = nxt
    return values


def _keep(item, flt: tuple) -> bool:
    _, fields, op, want = flt
    for f in fields:
        if not isinstance(item, dict) or f not in item:
            return False
        item = item[f]
    return (str(item) == want) == (op == "==")


def set_path(obj: dict, path: str, value) -> None:
    node = obj
    toks = _tokens(path)
    for tok in toks[:-1]:
        node = node.setdefault(tok, {})
    node[toks[-1]] = value


# ---- scale subresource ---------------------------------------------------------------

def scale_of(kind: CustomKind, obj: dict) -> dict:
    sc = kind.subresources["scale"]
    md = obj["metadata"]
    spec = jsonpath(obj, sc["specReplicasPath"])
    status = jsonpath(obj, sc["statusReplicasPath"])
    out = {"kind": "Scale", "apiVersion": "autoscaling/v1",
           "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                        if k in md},
           "spec": {"replicas": spec[0] if spec else 0},
           "status": {"replicas": status[0] if status else 0}}
    if sc.get("labelSelectorPath"):
        sel = jsonpath(obj, sc["labelSelectorPath"])
        if sel and isinstance(sel[0], str):
            out["status"]["selector"] = sel[0]
    return out


def with_scale(kind: CustomKind, obj: dict, replicas: int) -> dict:
    new = copy.deepcopy(obj)
    set_path(new, kind.subresources["scale"]["specReplicasPath"], replicas)
    return new


# ---- printer columns -----------------------------------------------------------------

_NAME_DOC = "Name must be unique within a namespace. Is required when creating resources, although some " \
            "resources may allow a client to request the generation of an appropriate name automatically."


def columns(kind: CustomKind) -> list[dict]:
    """The Table's columns: NAME, then the CRD's additionalPrinterColumns
    (or AGE when it declares none), as kube's CRD TableConvertor builds them."""
    cols = [{"name": "Name", "type": "string", "format": "name", "description": _NAME_DOC, "priority": 0}]
    declared = kind.printer_columns or [{"name": "Age", "type": "date",
                                         "jsonPath": ".metadata.creationTimestamp"}]
    for c in declared:
        cols.append({"name": c["name"], "type": c["type"], "format": c.get("format", ""),
                     "description": c.get("description", ""), "priority": c.get("priority", 0)})
    return cols


def cells(kind: CustomKind, obj: dict, now: datetime | None = None) -> list:
    out: list = [obj.get("metadata", {}).get("name", "")]
    declared = kind.printer_columns or [{"name": "Age", "type": "date",
                                         "jsonPath": ".metadata.creationTimestamp"}]
    for c in declared:
        try:
            vals = jsonpath(obj, c["jsonPath"])
        except ValueError:
            vals = []
        out.append(_cell(c["type"], vals, now))
    return out


def _cell(ctype: str, vals: list, now: datetime | None):
    if not vals or vals[0] is None:
        return None
    v = vals[0]
    if ctype == "date" and isinstance(v, str):
        return since(v, now or datetime.now(UTC)) or v
    if ctype in ("integer", "number", "boolean") and not isinstance(v, (dict, list)):
        return v
    if isinstance(v, str):
        return v
    return json.dumps(v, separators=(",", ":")) if isinstance(v, (dict, list)) else go_value(v)


def definition_columns() -> tuple[list[dict], object]:
    """kube's default TableConvertor, which CRDs themselves get: NAME, CREATED AT."""
    cols = [{"name": "Name", "type": "string", "format": "name", "description": _NAME_DOC, "priority": 0},
            {"name": "Created At", "type": "date", "format": "", "description": AGE_DOC, "priority": 0}]
    return cols, lambda o: [o["metadata"].get("name", ""), o["metadata"].get("creationTimestamp")]


def table(kind, objs: list[dict], *, version: str, include: str, resource_version: str = "",
          continue_token: str = "", remaining: int | None = None) -> dict:
    """A Table of custom objects (their CRD's columns) or of CRDs."""
    md = list_metadata(resource_version, continue_token, remaining)
    if isinstance(kind, CustomKind):
        cols, row_cells = columns(kind), (lambda o: cells(kind, o))
    else:
        cols, row_cells = definition_columns()
    rows = []
    for o in objs:
        r = {"cells": row_cells(o)}
        if include == "Object":
            r["object"] = o
        elif include == "Metadata":
            r["object"] = {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{version}",
                           "metadata": o.get("metadata") or {}}
        rows.append(r)
    return {"kind": "Table", "apiVersion": f"meta.k8s.io/{version}", "metadata": md,
            "columnDefinitions": cols, "rows": rows}
