"""What a request's URL names: `parse_path` turns a Kubernetes REST path into
the kind, namespace, name and subresource it addresses, and `predicate` turns
its labelSelector / fieldSelector query into a filter over objects. Unknown
paths and bad selectors are the 404 and 400 `Status`es kube-apiserver answers.
"""
from __future__ import annotations

from typing import Callable

from agent.api import fields, selectors
from agent.api.kinds import BY_RESOURCE, Kind
from agent.apiserver.discovery import PATH_SUBRESOURCES, SUBRESOURCES
from agent.apiserver.registry import APIError


def parse_path(path: str) -> tuple[Kind, str | None, str | None, str | None]:
    """'/api/v1/namespaces/default/services/web/status' ->
    (Service kind, 'default', 'web', 'status')."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        raise APIError(404, "NotFound", f"the server could not find the requested resource ({path})")
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] in BY_RESOURCE:
        namespace, rest = rest[1], rest[2:]
    if not rest or rest[0] not in BY_RESOURCE or BY_RESOURCE[rest[0]].group != group:
        raise APIError(404, "NotFound", f"the server could not find the requested resource ({path})")
    kind = BY_RESOURCE[rest[0]]
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and sub not in {s.name for s in SUBRESOURCES.get(kind.resource, ())}:
        raise APIError(404, "NotFound", "the server could not find the requested resource")
    if len(rest) > 3 and sub not in PATH_SUBRESOURCES:
        raise APIError(404, "NotFound", "the server could not find the requested resource")
    return kind, namespace, name, sub


def subresource_path(path: str, namespaced: bool) -> str:
    """What follows the subresource in a path parse_path accepted (still
    percent-encoded, trailing slash kept): '/api/v1/namespaces/ns/pods/web:80/proxy/a/b/'
    -> '/a/b/', '.../proxy' -> ''."""
    skip = (2 if path.lstrip("/").startswith("api/") else 3) + (2 if namespaced else 0) + 3
    pos = 0
    while skip:
        while path.startswith("/", pos):
            pos += 1
        end = path.find("/", pos)
        pos = len(path) if end < 0 else end
        skip -= 1
    return path[pos:]


def read_only(path: str) -> bool:
    """Health, version, discovery and OpenAPI: documents, only ever read."""
    parts = [p for p in path.split("/") if p]
    return path in ("/healthz", "/readyz", "/livez", "/version") or path.startswith("/openapi/") or \
        parts in ([], ["api"], ["apis"], ["api", "v1"]) or len(parts) in (2, 3) and parts[0] == "apis"


def long_running(path: str, q: dict, headers) -> bool:
    """kube-apiserver's long-running requests (watch, follow, upgrades for
    exec/attach, proxy, port-forward): no read timeout once begun."""
    return ("Upgrade" in headers or q.get("watch") in ("1", "true") or q.get("follow") in ("1", "true")
            or "/proxy" in path or "/portforward" in path)


def list_kind(kind: Kind) -> str:
    return getattr(kind, "list_kind", kind.kind + "List")     # a CRD names its own


def predicate(q: dict, kind: str | None = None) -> Callable[[dict], bool] | None:
    """The objects a list or watch keeps (labelSelector and fieldSelector), or
    None for all of them."""
    preds = []
    if q.get("labelSelector"):
        try:
            sel = selectors.parse(q["labelSelector"])
        except ValueError as e:
            raise APIError(400, "BadRequest", str(e)) from None
        preds.append(lambda o: sel.matches(o.get("metadata", {}).get("labels") or {}))
    if q.get("fieldSelector"):
        try:
            preds.append(fields.parse_fields(q["fieldSelector"], kind))
        except ValueError as e:
            raise APIError(400, "BadRequest", str(e)) from None
    if not preds:
        return None
    return lambda o: all(p(o) for p in preds)
