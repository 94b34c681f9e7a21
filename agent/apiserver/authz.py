"""Authorization, as kube-apiserver's `--authorization-mode=Node,RBAC`.

Each request becomes attributes (k8s.io/apiserver endpoints/request
RequestInfoFactory: verb, API group, namespace, resource, subresource, name,
or a non-resource path) and is asked, in order, of:

1. the system:masters group: always allowed (kube's privileged group);
2. the Node authorizer (agent/apiserver/rbac/node.py) for node agents;
3. RBAC (agent/apiserver/rbac/authorizer.py), over the Roles, ClusterRoles
   and bindings in the store (the default ones: agent/apiserver/rbac/policy.py).

What none allows is kube's 403 Forbidden, worded as kube words it:

    pods is forbidden: User "system:serviceaccount:default:default" cannot create
    resource "pods" in API group "" in the namespace "default"

The connect subresources are classified as kube classifies them: a GET
through pods/proxy or services/proxy is `get` on "pods/proxy", any other
method a write (POST `create`, PUT `update`, ...); pods/exec, attach and
portforward are `create` whatever the method. A list or watch with the field
selector `metadata.name=<n>` names that object, so resourceNames rules apply.

Before authorizing, impersonation headers (`kubectl --as`) replace the user
when it may `impersonate` them (agent/apiserver/rbac/impersonation.py).
"""
from __future__ import annotations

import logging

from agent.apiserver.authn.user import MASTERS, UserInfo
from agent.apiserver.rbac import escalation, impersonation, policy
from agent.apiserver.rbac.authorizer import RBACAuthorizer
from agent.apiserver.rbac.node import NodeAuthorizer
from agent.apiserver.rbac.rules import Attributes
from agent.apiserver.registry import APIError

# subresources that run something: kube asks for "create" whatever the HTTP method
# (websocket upgrades are GETs; AuthorizePodWebsocketUpgradeCreatePermission)
_CONNECT = {("pods", "exec"), ("pods", "attach"), ("pods", "portforward")}
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}
log = logging.getLogger("nsplane.apiserver.authz")


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
    if verb in ("list", "watch") and not name:
        name = _name_selector(query.get("fieldSelector") or "")
    return Attributes(verb, path, True, group, namespace, resource, sub, name)


def forbidden_message(user: UserInfo, a: Attributes) -> str:
    """responsewriters.forbiddenMessage."""
    if not a.resource_request:
        return f'User "{user.name}" cannot {a.verb} path "{a.path}"'
    resource = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    where = f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
    return f'User "{user.name}" cannot {a.verb} resource "{resource}" in API group "{a.group}" {where}'


def forbidden(user: UserInfo, a: Attributes, reason: str = "") -> APIError:
    """responsewriters.Forbidden: apierrors.NewForbidden(GroupResource, name,
    forbiddenMessage[: reason])."""
    msg = forbidden_message(user, a) + (f": {reason}" if reason else "")
    if not a.resource_request:
        return APIError(403, "Forbidden", f"forbidden: {msg}")
    qualified = f"{a.resource}.{a.group}" if a.group else a.resource
    details = {"group": a.group, "kind": a.resource}
    if a.name:
        details["name"] = a.name
        return APIError(403, "Forbidden", f'{qualified} "{a.name}" is forbidden: {msg}', details)
    return APIError(403, "Forbidden", f"{qualified} is forbidden: {msg}", details)


class Authorizer:
    """system:masters, then Node, then RBAC; over one store."""

    def __init__(self, store):
        self.store = store
        self.rbac = RBACAuthorizer(store)
        self.node = NodeAuthorizer(store, policy.NODE_RULES)

    def decide(self, user: UserInfo | None, a: Attributes) -> tuple[bool, str]:
        """(allowed, reason); the reason of a denial is the authorizers' (kube's union)."""
        if user is None:            # public paths, before authentication
            return True, ""
        if MASTERS in user.groups:
            return True, ""
        decision, node_reason = self.node.authorize(user, a)
        if decision == "allow":
            return True, node_reason
        ok, reason = self.rbac.allowed(user, a)
        if ok:
            return True, reason
        return False, node_reason

    def authorize(self, user: UserInfo | None, a: Attributes) -> None:
        ok, reason = self.decide(user, a)
        if not ok:
            err = forbidden(user, a, reason)
            log.info("403 %s", err.message)
            raise err

    def check(self, user: UserInfo | None, headers, method: str, path: str, query: dict) -> UserInfo | None:
        """The request's user after impersonation, once it may make the request."""
        if user is not None:
            user = impersonation.impersonate(self, user, headers)
        self.authorize(user, attributes(method, path, query))
        return user

    def guard(self, registry, user: UserInfo | None):
        """The registry as this user writes through it: Roles and bindings pass
        the escalation and bind checks (agent/apiserver/rbac/escalation.py)."""
        if user is None or MASTERS in user.groups:
            return registry
        return escalation.GuardedRegistry(registry, user, self)


def _name_selector(selector: str) -> str:
    """The name a `metadata.name=<n>` field selector picks (RequestInfo does this)."""
    for part in selector.split(","):
        key, op, value = part.partition("=")
        if key.strip() == "metadata.name" and op and not key.endswith("!"):
            return value.removeprefix("=").strip()
    return ""
