"""OpenAPI v2 as protobuf (gnostic's openapi_v2.Document), for older kubectl.

kubectl up to 1.26 (Debian 12 ships 1.20) downloads /openapi/v2 only as
`application/com.github.proto-openapi.spec.v2@v1.0+protobuf` and validates
manifests against it on the client; a JSON answer fails to unmarshal and
`kubectl apply` then refuses to run without --validate=false.

This module encodes the subset of the gnostic schema (google/gnostic,
openapiv2/OpenAPIv2.proto — field numbers below) that our JSON document
uses: Document, Info, Paths/PathItem/Operation with query and body
parameters and responses, Definitions and Schema (type, format, description,
$ref, required, properties, items, additionalProperties, vendor extensions
as YAML). Varints and length-delimited fields are all it takes; the
primitives are shared with the Kubernetes protobuf codec.
"""
from __future__ import annotations

import json

from agent.apiserver.protobuf.wire import length_delimited, varint_field

# ---- wire format (primitives in agent.apiserver.protobuf.wire) ----------------------

def _str(field: int, s: str | None) -> bytes:
    return length_delimited(field, s.encode()) if s else b""


def _bool(field: int, v: bool | None) -> bytes:
    return varint_field(field, 1) if v else b""


def _strs(field: int, values) -> bytes:
    return b"".join(length_delimited(field, v.encode()) for v in values or ())


def _msg(field: int, data: bytes) -> bytes:
    """An embedded message (written even when empty: presence matters)."""
    return length_delimited(field, data)


# ---- messages ---------------------------------------------------------------------

def _named_any(name: str, value) -> bytes:
    any_msg = _str(2, json.dumps(value))                 # Any.yaml: JSON is YAML
    return _str(1, name) + _msg(2, any_msg)


def _extensions(field: int, obj: dict) -> bytes:
    return b"".join(_msg(field, _named_any(k, v)) for k, v in obj.items() if k.startswith("x-"))


def schema(s: dict) -> bytes:
    out = _str(1, s.get("$ref")) + _str(2, s.get("format")) + _str(4, s.get("description"))
    out += _strs(19, s.get("required"))
    ap = s.get("additionalProperties")
    if isinstance(ap, dict):
        out += _msg(21, _msg(1, schema(ap)))
    elif isinstance(ap, bool):
        out += _msg(21, varint_field(2, int(ap)))
    if s.get("type"):
        types = s["type"] if isinstance(s["type"], list) else [s["type"]]
        out += _msg(22, _strs(1, types))
    if "items" in s:
        out += _msg(23, _msg(1, schema(s["items"])))
    if "properties" in s:
        props = b"".join(_msg(1, _str(1, name) + _msg(2, schema(sub))) for name, sub in s["properties"].items())
        out += _msg(25, props)
    return out + _extensions(31, s)


def _parameter(p: dict) -> bytes:
    if p.get("in") == "body":
        body = (_str(1, p.get("description")) + _str(2, p["name"]) + _str(3, "body") + _bool(4, p.get("required"))
                + _msg(5, schema(p.get("schema") or {})))
        param = _msg(1, body)
    else:
        sub = (_bool(1, p.get("required")) + _str(2, p.get("in")) + _str(3, p.get("description"))
               + _str(4, p.get("name")))
        if p.get("in") == "query":
            sub += _str(6, p.get("type")) + _bool(20, p.get("uniqueItems"))
            param = _msg(2, _msg(3, sub))
        else:                                             # path parameter
            sub += _str(5, p.get("type")) + _bool(19, p.get("uniqueItems"))
            param = _msg(2, _msg(4, sub))
    return _msg(1, param)                                 # ParametersItem.parameter


def _responses(responses: dict) -> bytes:
    out = b""
    for code, r in responses.items():
        value = _msg(1, _str(1, r.get("description")))   # ResponseValue.response
        out += _msg(1, _str(1, code) + _msg(2, value))
    return out


def operation(op: dict) -> bytes:
    out = _strs(1, op.get("tags")) + _str(2, op.get("summary")) + _str(3, op.get("description"))
    out += _str(5, op.get("operationId")) + _strs(6, op.get("produces")) + _strs(7, op.get("consumes"))
    out += b"".join(_msg(8, _parameter(p)) for p in op.get("parameters") or ())
    if op.get("responses"):
        out += _msg(9, _responses(op["responses"]))
    return out + _extensions(13, op)


_PATH_ITEM_FIELDS = {"get": 2, "put": 3, "post": 4, "delete": 5, "options": 6, "head": 7, "patch": 8}


def path_item(item: dict) -> bytes:
    out = b""
    for verb, field in _PATH_ITEM_FIELDS.items():
        if verb in item:
            out += _msg(field, operation(item[verb]))
    out += b"".join(_msg(9, _parameter(p)) for p in item.get("parameters") or ())
    return out + _extensions(10, item)


def encode_document(doc: dict) -> bytes:
    """A Swagger 2.0 document (as JSON-like dicts) -> openapi_v2.Document bytes."""
    info = doc.get("info") or {}
    out = _str(1, doc.get("swagger", "2.0"))
    out += _msg(2, _str(1, info.get("title")) + _str(2, info.get("version")))
    paths = b"".join(_msg(2, _str(1, p) + _msg(2, path_item(item))) for p, item in doc.get("paths", {}).items())
    out += _msg(8, paths)
    defs = b"".join(_msg(1, _str(1, name) + _msg(2, schema(s))) for name, s in doc.get("definitions", {}).items())
    out += _msg(9, defs)
    return out
