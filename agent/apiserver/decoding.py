"""Request bodies into objects, refusing what kube-apiserver's decoder
refuses, with its 400 BadRequest wording: bytes that are not UTF-8 or not
JSON, JSON that is not an object, nesting deeper than MAX_DEPTH, an
apiVersion/kind that is not the one the URL names ("Pod in version "v1"
cannot be handled as a Service: ..."), and values of the wrong JSON type
for their field (Go's "json: cannot unmarshal string into Go struct field
PodSpec.spec.containers of type []v1.Container"), checked against the
schemas of agent/apiserver/schemas.py. Pure functions; the request path
(agent/apiserver/handler.py) calls them before any verb sees a body, so
nothing downstream meets a malformed value.
"""
from __future__ import annotations

import json

from agent.api.kinds import KINDS, Kind
from agent.apiserver import schemas
from agent.apiserver.registry import APIError
from agent.apiserver.validation.errors import type_name

MAX_DEPTH = 200        # far above any object we serve; below Python's recursion limit in every later walk
SCHEME = "pkg/api/legacyscheme/scheme.go:30"
FIND_KIND = 'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }'
_GO_KIND = {"string": "string", "bool": "bool", "int32": "int32", "int64": "int64", "number": "float64",
            "time": "v1.Time", "intstr": "intstr.IntOrString", "quantity": "resource.Quantity"}


def _summary(raw: bytes) -> str:
    text = raw[:30].decode("utf-8", "replace")
    return text + " ..." if len(raw) > 30 else text


def _unrecognized(kind: Kind, why: str, raw: bytes) -> APIError:
    return APIError(400, "BadRequest", f"the object provided is unrecognized (must be of type {kind.kind}): "
                                       f"{why} ({_summary(raw)})")


def depth(value) -> int:
    """How deeply lists and objects nest in a decoded JSON value (iterative:
    safe for any depth json.loads returned)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, dict):
            deepest = max(deepest, d)
            todo.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            deepest = max(deepest, d)
            todo.extend((x, d + 1) for x in v)
    return deepest


def parse(raw: bytes, what: str = "the request body"):
    """Any JSON value from request bytes; ValueError with the reason (not
    UTF-8, not JSON, nested deeper than MAX_DEPTH)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} is not valid UTF-8 (byte {e.start})") from None
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"json: exceeded max depth ({what} nests deeper than {MAX_DEPTH} levels)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"json parse error: {e}") from None
    if depth(value) > MAX_DEPTH:
        raise ValueError(f"json: exceeded max depth ({what} nests deeper than {MAX_DEPTH} levels)")
    return value


def body_object(raw: bytes, kind: Kind | None = None, what: str = "object") -> dict:
    """A request body that must be one JSON object (an empty body is {})."""
    if not raw.strip():
        return {}
    try:
        value = parse(raw)
    except ValueError as e:
        if kind is None:
            raise APIError(400, "BadRequest", f"the request body is not a valid {what}: {e}") from None
        raise _unrecognized(kind, f"couldn't get version/kind; {e}", raw) from None
    if not isinstance(value, dict):
        why = f"json: cannot unmarshal {_json_type(value)} into Go value of type {what if kind is None else FIND_KIND}"
        if kind is None:
            raise APIError(400, "BadRequest", f"the request body is not a valid {what}: {why}")
        raise _unrecognized(kind, f"couldn't get version/kind; json parse error: {why}", raw)
    return value


def checked_body(method: str, name: str | None, sub: str | None) -> str | None:
    """Which check a request's body gets: "object" (a create or update of
    the URL's kind, its status or approval), "patch", or None (a body the
    verb reads itself: binding, token, exec, attach, scale)."""
    if method in ("POST", "PUT") and sub in (None, "status", "approval") and not (method == "POST" and name):
        return "object"
    return "patch" if method == "PATCH" else None


def check_request_body(kind: Kind, method: str, name: str | None, sub: str | None, raw: bytes,
                       content_type: str) -> None:
    """kube-apiserver's 400 for a create/update body that is not an object
    of `kind` with well-typed values, or a patch that is not JSON (merge
    and strategic merge patches: their values typed too)."""
    check = checked_body(method, name, sub)
    if check == "object":
        check_type(kind, body_object(raw, kind))
    elif check == "patch":
        ctype = content_type.split(";")[0].strip()
        merge = ("application/merge-patch+json", "application/strategic-merge-patch+json")
        if ctype not in (*merge, "application/json-patch+json"):
            return                # apply patches are YAML; other types are the verb's 415
        try:
            value = parse(raw or b"null", "the patch")
        except ValueError as e:
            raise APIError(400, "BadRequest", f"error decoding patch: {e}") from None
        if ctype in merge and isinstance(value, dict) and sub is None:
            error = type_error(kind.kind, value)
            if error:
                raise APIError(400, "BadRequest", f'{kind.kind} in version "{kind.version}" cannot be handled as a '
                                                  f'{kind.kind}: {error}')


def check_type(kind: Kind, obj: dict) -> None:
    """The object's apiVersion and kind, where given, are the URL's; then
    every field has its schema's JSON type."""
    for field in ("apiVersion", "kind"):
        if obj.get(field) is not None and not isinstance(obj[field], str):
            raise APIError(400, "BadRequest", f"the object provided is unrecognized (must be of type {kind.kind}): "
                                              f"couldn't get version/kind; json parse error: json: cannot unmarshal "
                                              f"{_json_type(obj[field])} into Go struct field .{field} of type string")
    api_version, obj_kind = obj.get("apiVersion") or kind.api_version, obj.get("kind") or kind.kind
    if (api_version, obj_kind) != (kind.api_version, kind.kind):
        version = api_version.rsplit("/", 1)[-1]
        if any(k.api_version == api_version and k.kind == obj_kind for k in KINDS):
            why = f"converting ({version}.{obj_kind}) to ({(kind.group or 'core').split('.')[0]}.{kind.kind}): " \
                  f"unknown conversion"
        else:
            why = f'no kind "{obj_kind}" is registered for version "{api_version}" in scheme "{SCHEME}"'
        raise APIError(400, "BadRequest", f'{obj_kind} in version "{version}" cannot be handled as a {kind.kind}: '
                                          f'{why}')
    error = type_error(kind.kind, obj)
    if error:
        raise APIError(400, "BadRequest", f'{kind.kind} in version "{kind.version}" cannot be handled as a '
                                          f'{kind.kind}: {error}')


def _json_type(value) -> str:
    """The JSON type as Go's unmarshal errors name it."""
    name = type_name(value)
    return {"boolean": "bool", "integer": "number"}.get(name, name)


def _go_type(t: str) -> str:
    if t.startswith("["):
        return "[]" + _go_type(t[1:-1])
    if t.startswith("{"):
        return "map[string]" + _go_type(t[1:-1])
    if t == "any":
        return "interface {}"
    return _GO_KIND.get(t) or f"v1.{t.rsplit('.', 1)[-1]}"


def _fits(value, t: str) -> bool:
    """Whether a JSON value (not null: null is every type's zero) decodes into schema type `t`."""
    if t == "any":
        return True
    if t.startswith("["):
        return isinstance(value, list)
    if t.startswith("{") or t in schemas.TYPES or t in schemas.KIND_TYPES:
        return isinstance(value, dict)
    if t in ("string", "time"):
        return isinstance(value, str)
    if t == "bool":
        return isinstance(value, bool)
    if t in ("int32", "int64"):
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "intstr":
        return isinstance(value, str) or isinstance(value, int) and not isinstance(value, bool)
    if t == "quantity":
        return isinstance(value, (str, int, float)) and not isinstance(value, bool)
    return True


def type_error(kind: str, obj: dict) -> str | None:
    """Go's unmarshal error for the first value of `obj` whose JSON type its
    field's schema type does not take; None when every value fits."""
    if kind not in schemas.KIND_TYPES:
        return None
    todo = [(obj, kind, kind, "")]
    while todo:
        value, t, struct, path = todo.pop()
        if value is None:
            continue
        if not _fits(value, t):
            shown = f"number {value}" if t in ("int32", "int64") and isinstance(value, float) else _json_type(value)
            return f"json: cannot unmarshal {shown} into Go struct field {struct}.{path} of type {_go_type(t)}"
        if t.startswith("["):
            todo.extend((v, t[1:-1], struct, path) for v in reversed(value))
        elif t.startswith("{"):
            todo.extend((v, t[1:-1], struct, path) for v in value.values())
        elif t in schemas.TYPES or t in schemas.KIND_TYPES:
            fields = schemas.fields_of(t)
            name = t.rsplit(".", 1)[-1]
            for key in reversed(list(value)):
                if key in fields:
                    spec = fields[key]
                    todo.append((value[key], spec if isinstance(spec, str) else spec[0], name,
                                 f"{path}.{key}" if path else key))
    return None
