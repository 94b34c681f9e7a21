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

from agent.apiserver import openapi, openapi_proto
from agent.apiserver.crd import published
from agent.apiserver.crd.definition import CustomKind

_DROPPED = ("allOf", "oneOf", "anyOf", "not", "x-kubernetes-validations")
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
    return published.object_schema(k, _v2_schema(k.schema), {"$ref": "#/definitions/" + published.OBJECT_META})


def _operation(k: CustomKind, action: str, body: list[str] | None) -> dict:
    op = published.operation(action, k)
    if body is not None:
        schema = {"$ref": "#/definitions/" + published.definition_name(k)} if action != "patch" else {"type": "object"}
        op["consumes"] = body
        op["parameters"] = [{"name": "body", "in": "body", "required": True, "schema": schema},
                            *(openapi._query(n, d, False) for n, d in openapi._WRITE_PARAMS)]
    return op


def custom_part(kinds: list[CustomKind]) -> dict:
    """The paths and definitions of the served custom resources."""
    paths, defs = {}, {}
    for k in kinds:
        paths.update(published.paths(k, lambda action, body, k=k: _operation(k, action, body)))
        defs[published.definition_name(k)] = _definition(k)
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
