"""What the request path needs to serve custom resources: their URLs, their
discovery entries (plain and aggregated), their OpenAPI v3 documents (so
kubectl 1.32 leaves validation to the server and uses JSON merge patches for
client-side apply, as against kube-apiserver), and fieldValidation for
their bodies.

Every function takes the served `CustomKind`s (definition.served(store)),
so this module holds no state.
"""
from __future__ import annotations

import hashlib
import json

from agent.apiserver import discovery, openapi, strictdecode, tables
from agent.apiserver.crd import openapi_v2, published
from agent.apiserver.crd import schema as structural
from agent.apiserver.crd.definition import CustomKind, sorted_versions
from agent.apiserver.registry import APIError

_VERBS = ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"]
META_DOCS = {
    "name": "Name must be unique within a namespace.",
    "namespace": "Namespace defines the space within which each name must be unique.",
    "labels": "Map of string keys and values that can be used to organize and categorize (scope and select) "
              "objects.",
    "annotations": "Annotations is an unstructured key value map stored with a resource that may be set by "
                   "external tools to store and retrieve arbitrary metadata.",
    "creationTimestamp": tables.AGE_DOC,
    "uid": "UID is the unique in time and space value for this object.",
    "resourceVersion": "An opaque value that represents the internal version of this object.",
}


def _not_found(path: str) -> APIError:
    return APIError(404, "NotFound", f"the server could not find the requested resource ({path})")


def parse(path: str, kinds: list[CustomKind]) -> tuple[CustomKind, str | None, str | None, str | None]:
    """'/apis/example.com/v1/namespaces/ns/widgets/w1/status' -> (kind, 'ns', 'w1', 'status')."""
    parts = [p for p in path.split("/") if p]
    if len(parts) < 4 or parts[0] != "apis":
        raise _not_found(path)
    group, version, rest = parts[1], parts[2], parts[3:]
    here = {k.resource: k for k in kinds if k.group == group and k.version == version}
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] in here:
        namespace, rest = rest[1], rest[2:]
    kind = here.get(rest[0])
    if kind is None or len(rest) > 3 or (namespace and not kind.namespaced):
        raise _not_found(path)
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and sub not in kind.subresources:
        raise APIError(404, "NotFound", "the server could not find the requested resource")
    return kind, namespace, name, sub


# ---- discovery ---------------------------------------------------------------------------

def _groups(kinds: list[CustomKind]) -> dict[str, list[str]]:
    out: dict[str, set[str]] = {}
    for k in kinds:
        out.setdefault(k.group, set()).add(k.version)
    return {g: sorted_versions(vs) for g, vs in sorted(out.items())}


def _group_entry(group: str, versions: list[str]) -> dict:
    vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": vs, "preferredVersion": vs[0]}


def _resource(k: CustomKind) -> list[dict]:
    r = {"name": k.resource, "singularName": k.singular, "namespaced": k.namespaced, "kind": k.kind,
         "verbs": list(_VERBS)}
    if k.short_names:
        r["shortNames"] = list(k.short_names)
    if k.categories:
        r["categories"] = k.categories
    out = [r]
    if "status" in k.subresources:
        out.append({"name": f"{k.resource}/status", "singularName": "", "namespaced": k.namespaced,
                    "kind": k.kind, "verbs": ["get", "patch", "update"]})
    if "scale" in k.subresources:
        out.append({"name": f"{k.resource}/scale", "singularName": "", "namespaced": k.namespaced,
                    "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]})
    return out


def _agg_resource(k: CustomKind) -> dict:
    r = {"resource": k.resource, "responseKind": {"group": k.group, "version": k.version, "kind": k.kind},
         "scope": "Namespaced" if k.namespaced else "Cluster", "singularResource": k.singular,
         "verbs": list(_VERBS)}
    if k.short_names:
        r["shortNames"] = list(k.short_names)
    if k.categories:
        r["categories"] = k.categories
    subs = []
    if "scale" in k.subresources:
        subs.append({"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1",
                                                             "kind": "Scale"}, "verbs": ["get", "patch", "update"]})
    if "status" in k.subresources:
        subs.append({"subresource": "status", "responseKind": {"group": k.group, "version": k.version,
                                                              "kind": k.kind}, "verbs": ["get", "patch", "update"]})
    if subs:
        r["subresources"] = subs
    return r


def discovery_document(path: str, accept: str | None, kinds: list[CustomKind]) -> tuple[dict, str] | None:
    """The built-in discovery document at `path` with the custom groups
    added, or a custom group's own document; None when neither serves it."""
    p = path.rstrip("/") or "/"
    groups = _groups(kinds)
    parts = [x for x in p.split("/") if x]
    if p == "/apis":
        doc, media = discovery.document(p, accept)
        if media == "application/json":
            doc["groups"].extend(_group_entry(g, vs) for g, vs in groups.items())
        else:
            for g, vs in groups.items():
                doc["items"].append({"metadata": {"name": g, "creationTimestamp": None}, "versions": [
                    {"version": v, "freshness": "Current",
                     "resources": sorted((_agg_resource(k) for k in kinds if k.group == g and k.version == v),
                                         key=lambda r: r["resource"])} for v in vs]})
        return doc, media
    if len(parts) == 2 and parts[0] == "apis" and parts[1] in groups:
        return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(parts[1], groups[parts[1]])}, \
            "application/json"
    if len(parts) == 3 and parts[0] == "apis" and parts[2] in groups.get(parts[1], ()):
        res = [r for k in kinds if k.group == parts[1] and k.version == parts[2] for r in _resource(k)]
        res.sort(key=lambda r: r["name"])
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{parts[1]}/{parts[2]}",
                "resources": res}, "application/json"
    return None


# ---- OpenAPI v3 --------------------------------------------------------------------------

def _operation(k: CustomKind, action: str, body: list[str] | None, ref: str) -> dict:
    op = published.operation(action, k)
    if body is not None:
        op["parameters"] = [openapi._query(n, d, True) for n, d in openapi._WRITE_PARAMS]
        schema = {"$ref": ref + published.definition_name(k)} if action != "patch" else {"type": "object"}
        op["requestBody"] = {"content": {c: {"schema": schema} for c in body}, "required": True}
    return op


def v3_document(group_version: str, kinds: list[CustomKind]) -> dict | None:
    ks = [k for k in kinds if k.api_version == group_version]
    if not ks:
        return None
    ref = "#/components/schemas/"
    paths, schemas = {}, {}
    for k in ks:
        paths.update(published.paths(k, lambda action, body, k=k: _operation(k, action, body, ref)))
        schemas[published.definition_name(k)] = published.object_schema(
            k, k.schema, {"allOf": [{"$ref": ref + published.OBJECT_META}]})
    builtin = openapi.definitions(ref)
    for name in ("ObjectMeta", "OwnerReference"):
        full = f"io.k8s.apimachinery.pkg.apis.meta.v1.{name}"
        schemas[full] = builtin[full]
    meta = schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"] = json.loads(json.dumps(
        schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]))
    for field, doc in META_DOCS.items():                 # what `kubectl explain <kind>.metadata` prints
        prop = meta["properties"][field]
        meta["properties"][field] = {"allOf": [prop], "description": doc} if "$ref" in prop else \
            {**prop, "description": doc}
    schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Time"] = builtin["io.k8s.apimachinery.pkg.apis.meta.v1.Time"]
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"},
            "paths": paths, "components": {"schemas": schemas}}


def serve_openapi(path: str, accept: str | None, kinds: list[CustomKind]) -> tuple:
    """/openapi/... with the custom group-versions added to the v3 index."""
    p = path.rstrip("/")
    if p == "/openapi/v3":
        root = openapi.v3_root()
        for gv in sorted({k.api_version for k in kinds}):
            doc = v3_document(gv, kinds)
            digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:128].upper()
            root["paths"][f"apis/{gv}"] = {"serverRelativeURL": f"/openapi/v3/apis/{gv}?hash={digest}"}
        return root, "application/json"
    if p == "/openapi/v2" and kinds:
        media = openapi.v2_media_type(accept)
        return openapi_v2.document(kinds, media != "application/json"), media
    if p.startswith("/openapi/v3/apis/"):
        doc = v3_document(p.removeprefix("/openapi/v3/apis/"), kinds)
        if doc is not None:
            return doc, "application/json"
    return openapi.serve(path, accept)


# ---- fieldValidation ----------------------------------------------------------------------

def check_body(kind: CustomKind, raw: bytes, method: str, content_type: str,
               directive: str | None) -> tuple[list[str], bytes]:
    """fieldValidation for a custom object's create/update/merge-patch body:
    fields its schema does not declare are Strict's 400, Warn's warnings
    (and then pruned by the registry), or ignored."""
    directive = openapi.validation_directive(directive)
    ctype = content_type.split(";")[0].strip()
    if directive == "Ignore" or (method == "PATCH" and ctype != "application/merge-patch+json"):
        return [], raw
    body = openapi.json_object(raw)
    if body is None:
        return [], raw
    unknown = structural.prune(json.loads(json.dumps(body)), kind.schema)
    msgs = [f'unknown field "{u}"' for u in unknown]
    msgs += [f'duplicate field "{d}"' for d in strictdecode.json_duplicates(raw)]
    if msgs and directive == "Strict":
        raise APIError(400, "BadRequest", f'{kind.kind} in version "{kind.version}" cannot be handled as a '
                                          f'{kind.kind}: strict decoding error: {", ".join(msgs)}')
    return msgs, raw


def cel_warning(kind: CustomKind) -> list[str]:
    """The Warning a write gets when the schema has CEL rules nsplane does not evaluate."""
    rules = structural.cel_rules(kind.schema)
    if not rules:
        return []
    shown = ", ".join(rules[:5]) + (f" and {len(rules) - 5} more" if len(rules) > 5 else "")
    return [f"nsplane does not evaluate CEL validation rules (x-kubernetes-validations); "
            f"{kind.kind}.{kind.group} has rules at {shown} that were not checked"]


def definition_cel_warning(raw: bytes) -> list[str]:
    """The Warning a CRD's create or update gets when its schemas have CEL rules."""
    crd = openapi.json_object(raw) or {}
    versions = (crd.get("spec") or {}).get("versions") or [] if isinstance(crd.get("spec"), dict) else []
    count = sum(len(structural.cel_rules(((v.get("schema") or {}).get("openAPIV3Schema")) or {}))
                for v in versions if isinstance(v, dict))
    if not count:
        return []
    return [f"nsplane does not evaluate CEL validation rules (x-kubernetes-validations): the {count} schema "
            f"nodes with rules in this CustomResourceDefinition will not be checked"]
