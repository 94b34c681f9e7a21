"""Which answer a request wants: protobuf or JSON, from its Accept header.

kube-apiserver negotiates the response's media type from Accept
(k8s.io/apiserver endpoints/handlers/negotiation): it reads the listed
media types in order of preference (q, then position), skips those asking
for a conversion it cannot do, and answers with the first one it serves;
`*/*`, `application/*` and no header at all mean JSON. kubectl's typed
clients send `application/vnd.kubernetes.protobuf,application/json`
(protobuf first: answer protobuf when the kind has a schema, else JSON);
`kubectl get` asks `application/json;as=Table;...,application/json` and
discovery `application/json, */*` (JSON).

A protobuf entry with an `as=` parameter (Table, PartialObjectMetadata) asks
for a conversion we only serve as JSON, and `stream=watch` asks for watch
framing; neither counts as wanting a protobuf object. Media types we serve
in neither form (application/cbor, text/html) are passed over.
"""
from __future__ import annotations

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
_JSON_TYPES = {"application/json", "application/*", "*/*", "application/yaml", "application/apply-patch+yaml"}


def _media_ranges(accept: str):
    """(q, position, media type, params) for each entry of an Accept header."""
    for position, entry in enumerate(accept.split(",")):
        parts = [p.strip() for p in entry.split(";")]
        media_type = parts[0].lower()
        if not media_type:
            continue
        params = {}
        for p in parts[1:]:
            key, _, value = p.partition("=")
            params[key.strip().lower()] = value.strip().strip('"')
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 0.0
        if q > 0:
            yield q, position, media_type, params


def wants_protobuf(accept_header: str | None) -> bool:
    """True when Accept prefers a plain protobuf object over JSON."""
    if not accept_header:
        return False
    for _, _, media_type, params in sorted(_media_ranges(accept_header), key=lambda r: (-r[0], r[1])):
        if media_type == MEDIA_TYPE:
            if "as" in params or "stream" in params:
                continue
            return True
        if media_type in _JSON_TYPES:
            return False
    return False


SERVED = ("application/json", "application/yaml", MEDIA_TYPE)


def preferred(accept_header: str | None) -> str | None:
    """The media type a response should have: the first acceptable entry
    of Accept by preference ("application/json", "application/yaml" or
    protobuf; wildcards mean JSON), or None when Accept lists only types
    we never serve (kube's 406 NotAcceptable)."""
    if not accept_header or not accept_header.strip():
        return "application/json"
    for _, _, media_type, _ in sorted(_media_ranges(accept_header), key=lambda r: (-r[0], r[1])):
        if media_type in ("application/json", "application/*", "*/*", "application/apply-patch+yaml"):
            return "application/json"
        if media_type in SERVED:
            return media_type
    return None
