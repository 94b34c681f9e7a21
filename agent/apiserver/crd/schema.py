"""A CustomResourceDefinition's structural OpenAPI v3 schema applied to a
custom object, as apiextensions-apiserver does on every write: defaults
filled in, unknown fields pruned, then the value validated with kube's
field errors (k8s.io/apiextensions-apiserver validation, kube-openapi's
messages).

Pure functions over plain JSON values; `Cause`s come from
agent/apiserver/validation/errors.py. CEL rules (x-kubernetes-validations)
are not evaluated here: `cel_rules` counts them so the caller can say so.
"""
from __future__ import annotations

import copy
import re

from agent.apiserver.validation.errors import Errs, type_name

PRESERVE = "x-kubernetes-preserve-unknown-fields"
INT_OR_STRING = "x-kubernetes-int-or-string"
EMBEDDED = "x-kubernetes-embedded-resource"
CEL = "x-kubernetes-validations"
_META_FIELDS = ("apiVersion", "kind", "metadata")


def _path(base: str, key: str) -> str:
    return f"{base}.{key}" if base else key


# ---- defaulting ------------------------------------------------------------------

def apply_defaults(value, schema: dict | None):
    """Fill in every absent property that has a `default` (recursively, into
    objects, list items and map values), as structural defaulting does."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key, sub in props.items():
            if key not in value and isinstance(sub, dict) and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
        for key, item in value.items():
            if key in props:
                apply_defaults(item, props[key])
            elif isinstance(schema.get("additionalProperties"), dict):
                apply_defaults(item, schema["additionalProperties"])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(item, schema["items"])
    return value


# ---- pruning -----------------------------------------------------------------------

def prune(value, schema: dict | None, path: str = "", root: bool = True) -> list[str]:
    """Remove the fields `schema` does not declare (unless it preserves
    unknown fields); returns their paths, as fieldValidation reports them."""
    dropped: list[str] = []
    _prune(value, schema, path, root, dropped)
    return dropped


def _prune(value, schema, path: str, root: bool, out: list[str]) -> None:
    if not isinstance(schema, dict):
        return
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        keep_meta = root or schema.get(EMBEDDED)
        for key in list(value):
            if keep_meta and key in _META_FIELDS:       # ObjectMeta's own fields, not the schema's
                continue
            if key in props:
                _prune(value[key], props[key], _path(path, key), False, out)
            elif isinstance(extra, dict):
                _prune(value[key], extra, _path(path, key), False, out)
            elif extra is True or schema.get(PRESERVE):
                continue
            else:
                out.append(_path(path, key))
                del value[key]
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _prune(item, schema["items"], f"{path}[{i}]", False, out)


# ---- validation ----------------------------------------------------------------------

_JSON_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def _type_ok(value, want: str) -> bool:
    if want == "integer":
        return isinstance(value, int) and not isinstance(value, bool) or (
            isinstance(value, float) and value.is_integer())
    if want == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _JSON_TYPES.get(want, object))


def _num(v):
    return int(v) if isinstance(v, float) and v.is_integer() else v


def validate(value, schema: dict | None, path: str = "") -> list:
    """Every Cause that makes `value` invalid against `schema`."""
    errs = Errs()
    _validate(errs, value, schema, path)
    return list(errs)


def _validate(errs: Errs, value, schema, path: str) -> None:
    if not isinstance(schema, dict):
        return
    if value is None:
        if not schema.get("nullable") and schema.get("type") and not schema.get(PRESERVE):
            errs.add("TypeInvalid", path, "null", f'{path} in body must be of type {schema["type"]}: "null"')
        return
    want = schema.get("type")
    if schema.get(INT_OR_STRING):
        if not (isinstance(value, str) or _type_ok(value, "integer")):
            got = type_name(value)
            errs.add("TypeInvalid", path, got, f'{path} in body must be of type integer,string: "{got}"')
            return
    elif want and not _type_ok(value, want):
        got = type_name(value)
        errs.add("TypeInvalid", path, got, f'{path} in body must be of type {want}: "{got}"')
        return
    _scalar_checks(errs, value, schema, path)
    if isinstance(value, dict):
        _object_checks(errs, value, schema, path)
    elif isinstance(value, list):
        _array_checks(errs, value, schema, path)
    for sub in schema.get("allOf") or ():
        _validate(errs, value, sub, path)
    for key in ("anyOf", "oneOf"):
        alts = schema.get(key)
        if alts:
            matches = sum(1 for s in alts if not validate(value, s, path))
            if matches == 0 or (key == "oneOf" and matches > 1):
                errs.invalid(path, value, f"{path} in body must match {'exactly one' if key == 'oneOf' else 'at least one'} schema in {key}")
    if isinstance(schema.get("not"), dict) and not validate(value, schema["not"], path):
        errs.invalid(path, value, f"{path} in body must not validate the schema (not)")


def _scalar_checks(errs: Errs, value, schema: dict, path: str) -> None:
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        errs.not_supported(path, value, [str(e) for e in enum])
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errs.add("TooLong", path, detail=f'may not be more than {schema["maxLength"]} bytes')
        if "minLength" in schema and len(value) < schema["minLength"]:
            errs.invalid(path, value, f'{path} in body should be at least {schema["minLength"]} chars long')
        pattern = schema.get("pattern")
        if pattern and not _search(pattern, value):
            errs.invalid(path, value, f"{path} in body should match '{pattern}'")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        _bounds(errs, _num(value), schema, path)


def _search(pattern: str, value: str) -> bool:
    try:
        return re.search(pattern, value) is not None
    except re.error:          # an ECMA/RE2 construct Python lacks: do not refuse the object for it
        return True


def _bounds(errs: Errs, value, schema: dict, path: str) -> None:
    if "maximum" in schema:
        mx = _num(schema["maximum"])
        if schema.get("exclusiveMaximum") and value >= mx:
            errs.invalid(path, value, f"{path} in body should be less than {mx}")
        elif value > mx:
            errs.invalid(path, value, f"{path} in body should be less than or equal to {mx}")
    if "minimum" in schema:
        mn = _num(schema["minimum"])
        if schema.get("exclusiveMinimum") and value <= mn:
            errs.invalid(path, value, f"{path} in body should be greater than {mn}")
        elif value < mn:
            errs.invalid(path, value, f"{path} in body should be greater than or equal to {mn}")
    mult = schema.get("multipleOf")
    if mult and (value / mult) != int(value / mult):
        errs.invalid(path, value, f"{path} in body should be a multiple of {_num(mult)}")


def _object_checks(errs: Errs, value: dict, schema: dict, path: str) -> None:
    for req in schema.get("required") or ():
        if req not in value:
            errs.required(_path(path, req))
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        errs.add("TooMany", path, len(value), f'must have at most {schema["maxProperties"]} items')
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        errs.invalid(path, len(value), f'{path} in body should have at least {schema["minProperties"]} properties')
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if key in props:
            _validate(errs, item, props[key], _path(path, key))
        elif isinstance(extra, dict):
            _validate(errs, item, extra, _path(path, key))
    if schema.get(EMBEDDED):
        for key in ("apiVersion", "kind"):
            if not isinstance(value.get(key), str) or not value.get(key):
                errs.required(_path(path, key), "must not be empty")


def _array_checks(errs: Errs, value: list, schema: dict, path: str) -> None:
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errs.add("TooMany", path, len(value), f'must have at most {schema["maxItems"]} items')
    if "minItems" in schema and len(value) < schema["minItems"]:
        errs.invalid(path, len(value), f'{path} in body should have at least {schema["minItems"]} items')
    if schema.get("uniqueItems"):
        seen = []
        for i, item in enumerate(value):
            if item in seen:
                errs.duplicate(f"{path}[{i}]", item)
            seen.append(item)
    items = schema.get("items")
    for i, item in enumerate(value):
        _validate(errs, item, items, f"{path}[{i}]")
    keys = schema.get("x-kubernetes-list-map-keys")
    if schema.get("x-kubernetes-list-type") == "map" and keys:
        seen_keys = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                k = tuple(item.get(x) for x in keys)
                if k in seen_keys:
                    errs.duplicate(f"{path}[{i}]", {x: item.get(x) for x in keys})
                seen_keys.append(k)
    elif schema.get("x-kubernetes-list-type") == "set":
        seen = []
        for i, item in enumerate(value):
            if item in seen:
                errs.duplicate(f"{path}[{i}]", item)
            seen.append(item)


# ---- CEL rules -----------------------------------------------------------------------

def cel_rules(schema, path: str = "") -> list[str]:
    """Paths of the schema nodes that carry x-kubernetes-validations."""
    out: list[str] = []
    if not isinstance(schema, dict):
        return out
    if schema.get(CEL):
        out.append(path or "<root>")
    for key, sub in (schema.get("properties") or {}).items():
        out.extend(cel_rules(sub, _path(path, key)))
    if isinstance(schema.get("items"), dict):
        out.extend(cel_rules(schema["items"], path + "[*]"))
    if isinstance(schema.get("additionalProperties"), dict):
        out.extend(cel_rules(schema["additionalProperties"], path + "[*]"))
    return out
