"""OpenAPI documents for kubectl, and unknown-field checking (fieldValidation).

kubectl's default `--validate=strict` works like this (verified against
kubectl 1.32 and Debian's 1.20 on this server):
- 1.32 reads /openapi/v3, then /openapi/v3/<group-version>; if the PATCH
  operation of the manifest's kind takes a `fieldValidation` query
  parameter, it leaves validation to the server and sends
  `?fieldValidation=Strict` on create, update and patch. It also reads the
  merge keys (x-kubernetes-patch-merge-key) there for client-side apply.
- 1.20 validates on the client: it downloads /openapi/v2 as protobuf
  (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, see
  agent/apiserver/openapi_proto.py) and rejects unknown fields and wrong types itself.

So the server answers /openapi/v2 (JSON or protobuf), /openapi/v3 (the index)
and /openapi/v3/api/v1, /openapi/v3/apis/<g>/<v>, all generated from the
compact schemas in agent/apiserver/schemas.py; and `check_fields` implements
fieldValidation=Strict|Warn|Ignore with kube-apiserver's messages.
"""
from __future__ import annotations

import hashlib
import json
from functools import cache, lru_cache

from agent.api.kinds import BY_KIND, KINDS, Kind
from agent.apiserver import openapi_proto, schemas, strictdecode
from agent.apiserver.registry import APIError

PROTOBUF_V2 = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"   # what clients ask for
PROTOBUF_V2_SERVED = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"  # Go's mime can parse it
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml")
_SCALARS = {
    "string": {"type": "string"}, "bool": {"type": "boolean"}, "number": {"type": "number", "format": "double"},
    "int32": {"type": "integer", "format": "int32"}, "int64": {"type": "integer", "format": "int64"},
}
_NAMED = {"time": "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
          "intstr": "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
          "quantity": "io.k8s.apimachinery.pkg.api.resource.Quantity"}
_NAMED_DEFS = {
    _NAMED["time"]: {"type": "string", "format": "date-time",
                     "description": "Time is a wrapper around time.Time which supports correct marshaling to "
                                    "YAML and JSON."},
    _NAMED["intstr"]: {"type": "string", "format": "int-or-string",
                       "description": "IntOrString is a type that can hold an int32 or a string."},
    _NAMED["quantity"]: {"type": "string",
                         "description": "Quantity is a fixed-point representation of a number, "
                                        "e.g. 100m or 64Mi."},
}


# ---- schemas ------------------------------------------------------------------------

def _type_schema(t: str, ref: str) -> dict:
    if t in _SCALARS:
        return dict(_SCALARS[t])
    if t == "any":
        return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    if t in _NAMED:
        return {"$ref": ref + _NAMED[t]}
    if t.startswith("["):
        return {"type": "array", "items": _type_schema(t[1:-1], ref)}
    if t.startswith("{"):
        return {"type": "object", "additionalProperties": _type_schema(t[1:-1], ref)}
    return {"$ref": ref + schemas.full_name(t)}


def _field_schema(spec, ref: str) -> dict:
    t, patch = (spec, None) if isinstance(spec, str) else spec
    s = _type_schema(t, ref)
    if patch and patch.startswith("merge:"):
        key = patch.split(":", 1)[1]
        s.update({"x-kubernetes-patch-merge-key": key, "x-kubernetes-patch-strategy": "merge",
                  "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": [key]})
    elif patch == "merge":
        s.update({"x-kubernetes-patch-strategy": "merge", "x-kubernetes-list-type": "set"})
    elif patch == "retainKeys":
        s["x-kubernetes-patch-strategy"] = "retainKeys"
    elif patch == "replace":
        s["x-kubernetes-list-type"] = "atomic"
    return s


def _object_schema(short: str, ref: str) -> dict:
    fields = schemas.fields_of(short)
    s = {"type": "object", "properties": {f: _field_schema(spec, ref) for f, spec in fields.items()}}
    if schemas.required_of(short):
        s["required"] = list(schemas.required_of(short))
    k = BY_KIND.get(short)
    if short in schemas.KIND_TYPES and k:
        s["x-kubernetes-group-version-kind"] = [{"group": k.group, "kind": k.kind, "version": k.version}]
    return s


def definitions(ref: str) -> dict:
    """Every schema by its definition name; `ref` is '#/definitions/' (v2) or
    '#/components/schemas/' (v3)."""
    out = dict(_NAMED_DEFS)
    for short in schemas.TYPES:
        out[schemas.full_name(short)] = _object_schema(short, ref)
    for short in schemas.KIND_TYPES:
        out[schemas.full_name(short)] = _object_schema(short, ref)
    return out


# ---- paths -----------------------------------------------------------------------------

def _op_id(verb: str, k: Kind, namespaced_path: bool) -> str:
    group = "".join(p.capitalize() for p in (k.group.split(".")[0] if k.group else "core").split("-"))
    return f"{verb}{group}{k.version.capitalize()}{'Namespaced' if namespaced_path else ''}{k.kind}"


def _query(name: str, desc: str, v3: bool) -> dict:
    if v3:
        return {"name": name, "in": "query", "description": desc, "schema": {"type": "string", "uniqueItems": True}}
    return {"name": name, "in": "query", "description": desc, "type": "string", "uniqueItems": True}


_WRITE_PARAMS = (("dryRun", "When present, indicates that modifications should not be persisted."),
                 ("fieldManager", ("fieldManager is a name associated with the actor or entity that is making "
                                  "these changes.")),
                 ("fieldValidation", ("fieldValidation instructs the server on how to handle objects in the "
                                     "request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid "
                                     "values are: Ignore, Warn (the default), Strict.")))


def _operation(action: str, k: Kind, ns_path: bool, ref: str, v3: bool, body: list[str] | None) -> dict:
    verb = {"post": "create", "put": "replace"}.get(action, action)
    op = {"operationId": _op_id(verb, k, ns_path), "tags": [k.group or "core"],
          "x-kubernetes-action": action, "x-kubernetes-group-version-kind":
          {"group": k.group, "kind": k.kind, "version": k.version},
          "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}}}
    if body is None:
        return op
    op["parameters"] = [_query(n, d, v3) for n, d in _WRITE_PARAMS]
    schema = {"$ref": ref + schemas.full_name(k.kind)} if action != "patch" else {"type": "object"}
    if v3:
        op["requestBody"] = {"content": {c: {"schema": schema} for c in body}, "required": True}
    else:
        op["consumes"] = body
        op["parameters"].insert(0, {"name": "body", "in": "body", "required": True, "schema": schema})
    return op


def paths(group_version: str | None, ref: str, v3: bool) -> dict:
    """The collection and item paths of every kind in `group_version` (all if None)."""
    out = {}
    for k in KINDS:
        if group_version and k.api_version != group_version:
            continue
        ns = k.namespaced
        base = k.group_prefix + ("/namespaces/{namespace}" if ns else "") + "/" + k.resource
        if k.verbs == ("create",):             # selfsubjectreviews: POST only
            out[base] = {"post": _operation("post", k, ns, ref, v3, ["*/*"])}
            continue
        out[base] = {"get": _operation("list", k, ns, ref, v3, None),
                     "post": _operation("post", k, ns, ref, v3, ["*/*"])}
        out[base + "/{name}"] = {"get": _operation("get", k, ns, ref, v3, None),
                                 "put": _operation("put", k, ns, ref, v3, ["*/*"]),
                                 "patch": _operation("patch", k, ns, ref, v3, list(PATCH_TYPES)),
                                 "delete": _operation("delete", k, ns, ref, v3, None)}
    return out


# ---- documents ----------------------------------------------------------------------------

@lru_cache(maxsize=1)
def v2_document() -> dict:
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.32.0-nsplane"},
            "paths": paths(None, "#/definitions/", False), "definitions": definitions("#/definitions/")}


@lru_cache(maxsize=1)
def v2_protobuf() -> bytes:
    return openapi_proto.encode_document(v2_document())


def group_version_paths() -> dict[str, str]:
    """'api/v1' / 'apis/apps/v1' -> the group-version served there."""
    return {k.group_prefix.lstrip("/"): k.api_version for k in KINDS}


@cache
def v3_document(group_version: str) -> dict:
    ref = "#/components/schemas/"
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0-nsplane"},
            "paths": paths(group_version, ref, True), "components": {"schemas": definitions(ref)}}


def _hash(doc: dict) -> str:
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:128].upper()


def v3_root() -> dict:
    return {"paths": {p: {"serverRelativeURL": f"/openapi/v3/{p}?hash={_hash(v3_document(gv))}"}
                      for p, gv in sorted(group_version_paths().items())}}


def v2_media_type(accept: str | None) -> str:
    """The form of /openapi/v2 a client asks for: protobuf or JSON."""
    if PROTOBUF_V2 in (accept or "") and "application/json" not in (accept or "").split(",")[0]:
        return PROTOBUF_V2_SERVED
    return "application/json"


def serve(path: str, accept: str | None) -> tuple[dict | bytes, str]:
    """(body, content type) for a GET of /openapi/..., or APIError 404/406."""
    p = path.rstrip("/")
    if p == "/openapi/v2":
        if v2_media_type(accept) == PROTOBUF_V2_SERVED:
            return v2_protobuf(), PROTOBUF_V2_SERVED
        return v2_document(), "application/json"
    if p == "/openapi/v3":
        return v3_root(), "application/json"
    gv = group_version_paths().get(p.removeprefix("/openapi/v3/"))
    if p.startswith("/openapi/v3/") and gv:
        return v3_document(gv), "application/json"
    raise APIError(404, "NotFound", f"the server could not find the requested resource ({path})")


# ---- fieldValidation ------------------------------------------------------------------------

def _walk(value, spec, path: str, out: list[str]) -> None:
    t = spec if isinstance(spec, str) else spec[0]
    if t.startswith("[") and isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, t[1:-1], f"{path}[{i}]", out)
    elif t.startswith("{") and isinstance(value, dict):
        for key, item in value.items():
            _walk(item, t[1:-1], f"{path}.{key}", out)
    elif (t in schemas.TYPES or t in schemas.KIND_TYPES) and isinstance(value, dict):
        _walk_object(value, t, path, out)


def _walk_object(obj: dict, short: str, path: str, out: list[str]) -> None:
    fields = schemas.fields_of(short)
    for key, value in obj.items():
        where = f"{path}.{key}" if path else key
        if key not in fields:
            out.append(where)
        elif value is not None:
            _walk(value, fields[key], where, out)


def unknown_fields(kind: str, obj: dict) -> list[str]:
    """JSON paths of the fields of `obj` its kind's schema does not have, in
    document order: ['spec.foo', 'spec.template.spec.containers[0].bar']."""
    if kind not in schemas.KIND_TYPES or not isinstance(obj, dict):
        return []
    out: list[str] = []
    _walk_object(obj, kind, "", out)
    return out


def validation_directive(directive: str | None) -> str:
    """?fieldValidation, Warn when absent; kube's 400 for anything else."""
    directive = directive or "Warn"
    if directive not in ("Strict", "Warn", "Ignore"):
        raise APIError(400, "BadRequest", f'fieldValidation must be one of "Ignore", "Warn" or "Strict", '
                                          f'not "{directive}"')
    return directive


def check_fields(kind: Kind, obj: dict, directive: str | None, duplicates: list[str] = ()) -> list[str]:
    """fieldValidation for a create or update body (and the paths of the
    fields its JSON repeats): Strict raises kube's 400, Warn (the default)
    returns the Warning header texts, Ignore returns []."""
    directive = validation_directive(directive)
    if directive == "Ignore":
        return []
    msgs = [f'unknown field "{u}"' for u in unknown_fields(kind.kind, obj)]
    msgs += [f'duplicate field "{d}"' for d in duplicates]
    if not msgs:
        return []
    if directive == "Strict":
        raise APIError(400, "BadRequest",
                       f'{kind.kind} in version "{kind.version}" cannot be handled as a {kind.kind}: '
                       f'strict decoding error: {", ".join(msgs)}')
    return msgs


def _go_value(v) -> str:
    """Go's %+v of a decoded JSON value (how kube quotes a patch in errors)."""
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{_go_value(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, list):
        return "[" + " ".join(_go_value(x) for x in v) + "]"
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _without_directives(patch):
    """A strategic merge patch minus its $-directives ($patch, $setElementOrder/..., $retainKeys...)."""
    if isinstance(patch, dict):
        return {k: _without_directives(v) for k, v in patch.items() if not k.startswith("$")}
    if isinstance(patch, list):
        return [_without_directives(x) for x in patch]
    return patch


def _prune(value, spec) -> None:
    t = spec if isinstance(spec, str) else spec[0]
    if t.startswith("[") and isinstance(value, list):
        for item in value:
            _prune(item, t[1:-1])
    elif t.startswith("{") and isinstance(value, dict):
        for item in value.values():
            _prune(item, t[1:-1])
    elif (t in schemas.TYPES or t in schemas.KIND_TYPES) and isinstance(value, dict):
        fields = schemas.fields_of(t)
        for key in list(value):
            if key.startswith("$"):
                continue
            if key not in fields:
                del value[key]
            elif value[key] is not None:
                _prune(value[key], fields[key])


def prune(kind: str, obj: dict) -> dict:
    """Drop the fields the schema does not have (what kube's decoder does
    with them under fieldValidation Ignore or Warn); SMP $-directives stay."""
    if kind in schemas.KIND_TYPES and isinstance(obj, dict):
        _prune(obj, kind)
    return obj


def json_object(raw: bytes) -> dict | None:
    """A request body that is a JSON object, or None (left to the verb)."""
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def check_body(kind: Kind, raw: bytes, method: str, content_type: str,
               directive: str | None) -> tuple[list[str], bytes]:
    """fieldValidation for a request body: create/update bodies are objects;
    merge and strategic merge patches are checked as the object they produce
    (unknown fields in the patch are unknown in the result). JSON patches and
    apply patches, and bodies that are not JSON objects, are left to the verb.
    Strict raises kube-apiserver's error; otherwise returns the warnings
    (Warn) and the body with the unknown fields dropped."""
    ctype = content_type.split(";")[0].strip()
    if method == "PATCH" and ctype not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
        return [], raw
    body = json_object(raw)
    if body is None:
        return [], raw
    try:
        warnings = check_fields(kind, _without_directives(body) if method == "PATCH" else body, directive,
                                strictdecode.json_duplicates(raw))
    except APIError as e:
        if method != "PATCH" or e.code != 400 or "strict decoding error: " not in e.message:
            raise
        cause = f'Invalid value: "{_go_value(body)}": strict decoding error: ' + \
            e.message.split("strict decoding error: ", 1)[1]
        raise APIError(422, "Invalid", f' "" is invalid: patch: {cause}',
                       {"causes": [{"reason": "FieldValueInvalid", "message": cause, "field": "patch"}]}) from None
    if not unknown_fields(kind.kind, _without_directives(body)):
        return warnings, raw
    return warnings, json.dumps(prune(kind.kind, body)).encode()
