"""Kubernetes' protobuf wire format for the built-in kinds we serve.

kubectl's typed commands (`kubectl create namespace|deployment|service|...`,
`kubectl create token`) send `Content-Type: application/vnd.kubernetes.protobuf`
and ask `Accept: application/vnd.kubernetes.protobuf,application/json`.
This package is the pure codec between those bytes and the JSON-shaped
dicts the rest of the server works with; the HTTP layer decides when to
use it.

Content negotiation, as kube-apiserver does it: a request body is decoded by
its Content-Type (protobuf -> `decode`, anything else as JSON). The answer
is protobuf when the request's Accept lists `application/vnd.kubernetes.protobuf`
before JSON (`wants_protobuf`) and the kind has a schema here (`served`);
otherwise JSON. Errors follow the same rule: a Status in protobuf for a
protobuf client (`encode` handles apiVersion "v1", kind "Status").

    decode(data) -> dict          envelope + message -> the object's JSON form
    encode(obj) -> bytes          the reverse, for objects, <Kind>Lists and Status
    served(api_version, kind)     is there a schema for it
    wants_protobuf(accept)        does the client prefer protobuf
    ProtobufError(ValueError)     every malformed or unsupported input

Layout: wire.py (varints and fields), atoms.py (Time, IntOrString, Quantity...),
schema.py (the table format, compiled), messages/ (the tables, one module per
API group), codec.py (message <-> JSON), envelope.py (magic + runtime.Unknown),
negotiation.py (Accept).
"""
from .envelope import decode, encode, served
from .negotiation import MEDIA_TYPE, wants_protobuf
from .wire import ProtobufError

__all__ = ["MEDIA_TYPE", "ProtobufError", "decode", "encode", "served", "wants_protobuf"]
