"""PATCH with `application/apply-patch+yaml`: server-side apply as
kube-apiserver serves it (`kubectl apply --server-side`, `kubectl diff
--server-side`, Helm 4, Flux): the body is the manager's whole intent for
the fields it manages, `fieldManager` is required, `force=true` takes
conflicting fields over, an object that does not exist is created (201),
and dryRun=All changes nothing (the registry given is then a dry-run one).

The merge and the bookkeeping are agent/apiserver/ssa/managed.py; the write
goes through the registry like any other, which keeps the managedFields
computed here.
"""
from __future__ import annotations

import json

import yaml

from agent.api.objects import now_iso
from agent.apiserver import openapi, schemas, strictdecode
from agent.apiserver.crd import schema as structural
from agent.apiserver.crd.definition import CustomKind
from agent.apiserver.registry import APIError
from agent.apiserver.ssa import context, managed


def _config(kind, name: str, raw: bytes, q: dict) -> tuple[dict, list[str]]:
    try:
        config = yaml.safe_load(raw or b"")
    except yaml.YAMLError as e:
        raise APIError(400, "BadRequest", f"error decoding YAML: {e}") from None
    if not isinstance(config, dict):
        raise APIError(400, "BadRequest", "error decoding YAML: the apply configuration must be an object")
    if not config.get("kind"):
        raise APIError(400, "BadRequest", f"Object 'Kind' is missing in '{json.dumps(config)}'")
    if config.get("apiVersion") != kind.api_version or config["kind"] != kind.kind:
        raise APIError(400, "BadRequest", f'the apply configuration ({config.get("apiVersion")}, Kind='
                       f'{config["kind"]}) does not match the resource it is sent to ({kind.api_version}, '
                       f"Kind={kind.kind})")
    md = config.get("metadata")
    if not isinstance(md, dict):
        md = config["metadata"] = {}
    if md.get("name") and md["name"] != name:
        raise APIError(400, "BadRequest", f"the name of the object ({md['name']}) does not match the name on "
                                          f"the URL ({name})")
    if md.get("managedFields") is not None:
        raise APIError(400, "BadRequest", "metadata.managedFields must be nil")
    return config, _field_validation(kind, config, raw, q.get("fieldValidation"))


def _undeclared(kind, config: dict) -> list[str]:
    """The configuration's fields the kind's schema does not declare (dropped
    from it), as structured-merge-diff paths: '.spec.foo'."""
    if not isinstance(kind, CustomKind):
        found = openapi.unknown_fields(kind.kind, config)
        openapi.prune(kind.kind, config)
        return ["." + p for p in found]
    found = [f".metadata.{k}" for k in config["metadata"] if k not in schemas.fields_of("ObjectMeta")]
    for path in found:
        del config["metadata"][path.rsplit(".", 1)[1]]
    return found + ["." + p for p in structural.prune(config, kind.schema)]


def _field_validation(kind, config: dict, raw: bytes, directive: str | None) -> list[str]:
    """fieldValidation of an apply configuration, as kube's typed-patch
    conversion does it: keys the YAML repeats and fields the schema does not
    declare are Strict's 400, Warn's warnings; undeclared fields are dropped."""
    directive = openapi.validation_directive(directive)
    repeated = strictdecode.yaml_duplicates(raw) if directive != "Ignore" else []
    if repeated and directive == "Strict":
        raise APIError(400, "BadRequest", "error strict decoding YAML: error converting YAML to JSON: yaml: "
                                          "unmarshal errors:\n  " + "\n  ".join(repeated))
    undeclared = _undeclared(kind, config)
    if undeclared and directive == "Strict":
        detail = undeclared[0] + ": field not declared in schema" if len(undeclared) == 1 else \
            "errors:\n  " + "\n  ".join(p + ": field not declared in schema" for p in undeclared)
        raise APIError(400, "BadRequest", f"failed to create typed patch object ({kind.api_version}, "
                                          f"Kind={kind.kind}): {detail}")
    if directive == "Ignore":
        return []
    return repeated + [f'unknown field "{p[1:]}"' for p in undeclared]


def serve(registry, kind, ns: str | None, name: str, sub: str | None, q: dict,
          raw: bytes) -> tuple[int, dict, list[str]]:
    """(HTTP code, object, warnings) for one apply request."""
    manager = q.get("fieldManager")
    if not manager:
        raise APIError(400, "BadRequest", "PATCH apply requests must set the fieldManager query parameter "
                                          "(fieldManager is required for apply requests)")
    if sub not in (None, "status"):
        raise APIError(415, "UnsupportedMediaType", f"apply patches are not supported on {kind.resource}/{sub}")
    config, warnings = _config(kind, name, raw, q)
    force = q.get("force") in ("true", "1")
    status_sub = registry._status_sub(kind)
    with registry.store.transaction():
        try:
            live = registry.get(kind, ns, name)
        except APIError as e:
            if e.code != 404 or sub:
                raise
            live = None
        try:
            merged = managed.apply(live, config, manager, sub or "", context.shape_of(kind), now_iso(), force,
                                   status_sub)
        except managed.ApplyConflict as e:
            raise APIError(409, "Conflict", str(e), {"causes": [
                {"reason": "FieldManagerConflict", "message": f"conflict with {who}", "field": path}
                for who, path in e.conflicts]}) from None
        with context.applied(merged["metadata"]["managedFields"]):
            if live is None:
                merged["metadata"]["name"] = name
                return 201, registry.create(kind, ns, merged), warnings
            return 200, registry.update(kind, ns, name, merged, sub), warnings
