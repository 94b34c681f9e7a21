"""What a custom resource publishes in both OpenAPI documents (v2 in
openapi_v2.py, v3 in serving.py): its definition's name, the patch types
it takes, the properties kube adds to its schema, and its operations'
common part. Pure.
"""
from __future__ import annotations

import json

from agent.apiserver.crd.definition import CustomKind

# a custom resource takes no strategic merge patch (its schema has no patch strategies)
CUSTOM_PATCH_TYPES = ["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"]
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def definition_name(k: CustomKind) -> str:
    """kube's REST-friendly OpenAPI name: group reversed, version, kind (com.example.v1.Widget)."""
    return ".".join(reversed(k.group.split("."))) + f".{k.version}.{k.kind}"


def object_schema(k: CustomKind, schema: dict, metadata: dict) -> dict:
    """`schema` (a copy of the version's, converted as the document needs)
    with apiVersion, kind, metadata and x-kubernetes-group-version-kind."""
    s = json.loads(json.dumps(schema))
    props = s.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "description": "APIVersion defines the versioned schema of this "
                                                            "representation of an object."}
    props["kind"] = {"type": "string", "description": "Kind is a string value representing the REST resource "
                                                      "this object represents."}
    props["metadata"] = {**metadata, "description": "Standard object's metadata."}
    s["x-kubernetes-group-version-kind"] = [{"group": k.group, "kind": k.kind, "version": k.version}]
    return s


def operation(action: str, k: CustomKind) -> dict:
    """An operation on the resource, without its body and parameters."""
    verb = {"post": "create", "put": "replace"}.get(action, action)
    return {"operationId": f"{verb}{k.kind}{'Namespaced' if k.namespaced else ''}",
            "tags": [f"{k.group}/{k.version}"], "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": {"group": k.group, "kind": k.kind, "version": k.version},
            "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}}}


def paths(k: CustomKind, op) -> dict:
    """The collection and item paths of `k`, each operation built by
    op(action, body media types or None)."""
    base = f"/apis/{k.api_version}" + ("/namespaces/{namespace}" if k.namespaced else "") + "/" + k.resource
    return {base: {"get": op("list", None), "post": op("post", ["*/*"])},
            base + "/{name}": {"get": op("get", None), "put": op("put", ["*/*"]),
                               "patch": op("patch", CUSTOM_PATCH_TYPES), "delete": op("delete", None)}}
