"""The envelope of every protobuf body: the `k8s\\x00` magic, then runtime.Unknown.

    Unknown { typeMeta=1 {apiVersion=1, kind=2}, raw=2, contentEncoding=3, contentType=4 }

`raw` is the object's message without TypeMeta; the envelope says what it
is. kube-apiserver and kubectl write contentEncoding and contentType empty,
and so do we. This module owns the lookup by (apiVersion, kind) and turns
the decoded message into the JSON object (kind and apiVersion first, as
kube-apiserver writes them).
"""
from __future__ import annotations

from .codec import decode_message, encode_message
from .schema import Message, registry
from .wire import LEN, ProtobufError, fields, length_delimited

MAGIC = b"k8s\x00"


def served(api_version: str, kind: str) -> bool:
    """True when (apiVersion, kind) -- a kind or its List -- has a protobuf schema here."""
    return (api_version, kind) in registry().kinds


def _message(api_version: str, kind: str) -> Message:
    message = registry().kinds.get((api_version, kind))
    if message is None:
        raise ProtobufError(f"{kind or '(no kind)'} ({api_version or 'no apiVersion'}) is not supported as protobuf "
                            f"here; send it as application/json")
    return message


def _unknown(body: bytes) -> dict[str, bytes]:
    """The fields of runtime.Unknown (all length-delimited), empty when absent."""
    names = {1: "typeMeta", 2: "raw", 3: "contentEncoding", 4: "contentType"}
    out = dict.fromkeys(names.values(), b"")
    for number, wire_type, value in fields(body):
        if number in names:
            if wire_type != LEN:
                raise ProtobufError(f"Unknown.{names[number]}: wire type {wire_type}, expected {LEN}")
            out[names[number]] = value
    return out


def _type_meta(data: bytes) -> tuple[str, str]:
    api_version = kind = ""
    for number, wire_type, value in fields(data):
        if number in (1, 2):
            if wire_type != LEN:
                raise ProtobufError(f"TypeMeta field {number}: wire type {wire_type}, expected {LEN}")
            text = value.decode("utf-8", errors="replace")
            api_version, kind = (text, kind) if number == 1 else (api_version, text)
    return api_version, kind


def decode(data: bytes) -> dict:
    """A protobuf request body -> the object as its JSON form."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtobufError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf body: it does not start with the 'k8s\\x00' magic")
    unknown = _unknown(data[len(MAGIC):])
    if unknown["contentEncoding"]:
        raise ProtobufError(f"content encoding {unknown['contentEncoding'].decode(errors='replace')!r} is not supported")
    if unknown["contentType"] not in (b"", b"application/vnd.kubernetes.protobuf"):
        raise ProtobufError(f"embedded content type {unknown['contentType'].decode(errors='replace')!r} is not protobuf")
    api_version, kind = _type_meta(unknown["typeMeta"])
    message = _message(api_version, kind)
    return {"kind": kind, "apiVersion": api_version, **decode_message(message, unknown["raw"])}


def encode(obj: dict) -> bytes:
    """An object (or a List, or a Status) as its JSON form -> a protobuf body."""
    if not isinstance(obj, dict):
        raise ProtobufError(f"expected an object, got {type(obj).__name__}")
    api_version, kind = obj.get("apiVersion") or "", obj.get("kind") or ""
    if not isinstance(api_version, str) or not isinstance(kind, str):
        raise ProtobufError("apiVersion and kind must be strings")
    raw = encode_message(_message(api_version, kind), obj, kind)
    type_meta = length_delimited(1, api_version.encode()) + length_delimited(2, kind.encode())
    unknown = length_delimited(1, type_meta) + length_delimited(2, raw) + length_delimited(3, b"") + length_delimited(4, b"")
    return MAGIC + unknown
