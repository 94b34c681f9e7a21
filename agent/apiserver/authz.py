"""Authorization until RBAC: ServiceAccount identities read, nothing more.

kube-apiserver turns each request into attributes (k8s.io/apiserver
endpoints/request RequestInfoFactory: verb, API group, namespace, resource,
subresource, name, or a non-resource path) and asks its authorizers. Here
the only rule is: a user in the group system:serviceaccounts may get, list
and watch anything, create a SelfSubjectReview (kube's system:basic-user
grants that to everyone) and read non-resource paths; every other request
of theirs is kube's 403 Forbidden, worded as kube words it:

    pods is forbidden: User "system:serviceaccount:default:default" cannot create
    resource "pods" in API group "" in the namespace "default"

Static-token users (the admin, node agents) and the trusted Unix socket are
not limited. RBAC replaces this module.
"""
from __future__ import annotations

from dataclasses import dataclass

from agent.apiserver.authn.user import UserInfo
from agent.apiserver.registry import APIError

READ_VERBS = ("get", "list", "watch")
ALLOWED_CREATES = {("authentication.k8s.io", "selfsubjectreviews")}
# subresources that run something: kube asks for "create" whatever the HTTP method
# (websocket upgrades are GETs; AuthorizePodWebsocketUpgradeCreatePermission)
_CONNECT = {("pods", "exec"), ("pods", "attach"), ("pods", "portforward")}
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


@dataclass(frozen=True)
class Attributes:
    verb: str
    path: str
    resource_request: bool = False
    group: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


def attributes(method: str, path: str, query: dict) -> Attributes:
    """RequestInfoFactory.NewRequestInfo, for the paths we serve."""
    parts = [p for p in path.split("/") if p]
    lower = method.lower()
    if len(parts) >= 3 and parts[0] == "api":
        group, rest = "", parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        return Attributes(lower, path)
    watch = bool(rest) and rest[0] == "watch"
    if watch:
        rest = rest[1:]
    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    if not rest:
        return Attributes(lower, path)
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if method in ("GET", "HEAD"):
        verb = "get" if name else "list"
        if watch or query.get("watch") in ("1", "true"):
            verb = "watch"
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = _METHOD_VERBS.get(method, lower)
    if (resource, sub) in _CONNECT:
        verb = "create"
    return Attributes(verb, path, True, group, namespace, resource, sub, name)


def forbidden_message(user: UserInfo, a: Attributes) -> str:
    """responsewriters.forbiddenMessage."""
    if not a.resource_request:
        return f'User "{user.name}" cannot {a.verb} path "{a.path}"'
    resource = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    where = f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
    return f'User "{user.name}" cannot {a.verb} resource "{resource}" in API group "{a.group}" {where}'


def forbidden(user: UserInfo, a: Attributes) -> APIError:
    """apierrors.NewForbidden(GroupResource, name, forbiddenMessage)."""
    msg = forbidden_message(user, a)
    if not a.resource_request:
        return APIError(403, "Forbidden", f"forbidden: {msg}")
    qualified = f"{a.resource}.{a.group}" if a.group else a.resource
    details = {"group": a.group, "kind": a.resource}
    if a.name:
        details["name"] = a.name
        return APIError(403, "Forbidden", f'{qualified} "{a.name}" is forbidden: {msg}', details)
    return APIError(403, "Forbidden", f"{qualified} is forbidden: {msg}", details)


def allowed(user: UserInfo | None, a: Attributes) -> bool:
    if user is None or not user.is_service_account:
        return True
    if not a.resource_request:
        return a.verb in ("get", "head")
    if a.verb in READ_VERBS:
        return True
    return a.verb == "create" and (a.group, a.resource) in ALLOWED_CREATES and not a.subresource


def authorize(user: UserInfo | None, method: str, path: str, query: dict) -> None:
    """Raise kube's 403 when `user` may not make this request."""
    a = attributes(method, path, query)
    if not allowed(user, a):
        raise forbidden(user, a)
