"""Custom resources in /openapi/v2, as kube-apiserver publishes them: each
served version's schema as a Swagger 2.0 definition (named like
`com.example.v1.Widget`, with x-kubernetes-group-version-kind) and its
paths, so kubectl 1.20's client-side validation and `explain` know them.

Swagger 2.0 has no nullable, oneOf, anyOf or not: those are dropped, as
kube's v2 conversion drops them. The protobuf form is the built-in
document's bytes followed by the custom part (protobuf merges the repeated
path and definition entries of the two).
"""
from __future__ import annotations

import json

from agent.apiserver import openapi, openapi_proto
from agent.apiserver.crd.definition import CUSTOM_PATCH_TYPES, CustomKind, definition_name

_DROPPED = ("allOf", "oneOf", "anyOf", "not", "x-kubernetes-validations")
_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_cache: dict = {}


def _v2_schema(node):
    """kube's ToStructuralOpenAPIV2: what kubectl's v2 readers cannot take is
    dropped — combinators and CEL rules; a nullable node loses its type,
    items and properties, a node preserving unknown fields its items and
    properties (and the extension), an array left without items its type."""
    if not isinstance(node, dict):
        return node
    out = {k: v for k, v in node.items() if k not in _DROPPED}
    if out.pop("nullable", False):
        for k in ("type", "items", "properties"):
            out.pop(k, None)
    if out.pop("x-kubernetes-preserve-unknown-fields", False):
        out.pop("items", None)
        out.pop("properties", None)
    if out.get("type") == "array" and "items" not in out:
        del out["type"]
    if isinstance(out.get("properties"), dict):
        nullable = {k for k, v in out["properties"].items() if isinstance(v, dict) and v.get("nullable")}
        out["properties"] = {k: _v2_schema(v) for k, v in out["properties"].items()}
        if out.get("required") and nullable:
            out["required"] = [r for r in out["required"] if r not in nullable]
    for k in ("items", "additionalProperties"):
        if isinstance(out.get(k), dict):
            out[k] = _v2_schema(out[k])
    return out


def _definition(k: CustomKind) -> dict:
    s = _v2_schema(json.loads(json.dumps(k.schema)))
    props = s.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "description": "APIVersion defines the versioned schema of this "
                                                            "representation of an object."}
    props["kind"] = {"type": "string", "description": "Kind is a string value representing the REST resource "
                                                      "this object represents."}
    props["metadata"] = {"$ref": "#/definitions/" + _META, "description": "Standard object's metadata."}
    s["x-kubernetes-group-version-kind"] = [{"group": k.group, "kind": k.kind, "version": k.version}]
    return s


def _operation(action: str, k: CustomKind, body: list[str] | None) -> dict:
    verb = {"post": "create", "put": "replace"}.get(action, action)
    op = {"operationId": f"{verb}{k.kind}{'Namespaced' if k.namespaced else ''}", "tags": [f"{k.group}/{k.version}"],
          "x-kubernetes-action": action,
          "x-kubernetes-group-version-kind": {"group": k.group, "kind": k.kind, "version": k.version},
          "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}}}
    if body is not None:
        schema = {"$ref": "#/definitions/" + definition_name(k)} if action != "patch" else {"type": "object"}
        op["consumes"] = body
        op["parameters"] = [{"name": "body", "in": "body", "required": True, "schema": schema},
                            *(openapi._query(n, d, False) for n, d in openapi._WRITE_PARAMS)]
    return op


def custom_part(kinds: list[CustomKind]) -> dict:
    """The paths and definitions of the served custom resources."""
    paths, defs = {}, {}
    for k in kinds:
        base = f"/apis/{k.api_version}" + ("/namespaces/{namespace}" if k.namespaced else "") + "/" + k.resource
        paths[base] = {"get": _operation("list", k, None), "post": _operation("post", k, ["*/*"])}
        paths[base + "/{name}"] = {"get": _operation("get", k, None), "put": _operation("put", k, ["*/*"]),
                                   "patch": _operation("patch", k, CUSTOM_PATCH_TYPES),
                                   "delete": _operation("delete", k, None)}
        defs[definition_name(k)] = _definition(k)
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.32.0-nsplane"},
            "paths": paths, "definitions": defs}


def _key(kinds: list[CustomKind]) -> tuple:
    return tuple((k.crd["metadata"]["name"], k.crd["metadata"].get("resourceVersion"), k.version) for k in kinds)


def document(kinds: list[CustomKind], protobuf: bool) -> dict | bytes:
    """/openapi/v2 with the custom resources, as JSON or protobuf (the last
    one asked for is kept, so kubectl's repeated downloads cost nothing)."""
    key = (_key(kinds), protobuf)
    if _cache.get("key") != key:
        part = custom_part(kinds)
        if protobuf:
            doc = openapi.v2_protobuf() + openapi_proto.encode_document(part)
        else:
            base = openapi.v2_document()
            doc = {**base, "paths": {**base["paths"], **part["paths"]},
                   "definitions": {**base["definitions"], **part["definitions"]}}
        _cache.clear()
        _cache.update(key=key, doc=doc)
    return _cache["doc"]
