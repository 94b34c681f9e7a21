"""Escalation prevention (pkg/registry/rbac/{role,clusterrole,rolebinding,
clusterrolebinding}/policybased): a user may only write RBAC objects that
grant what they already hold.

- Role / ClusterRole create or update (when the rules change): allowed to
  system:masters, to whoever may `escalate` roles (clusterroles), else the
  user's own rules in that namespace (cluster-wide for a ClusterRole) must
  cover every new rule. A ClusterRole with an aggregationRule needs full
  authority (it may gather any rule).
- RoleBinding / ClusterRoleBinding: allowed to whoever may `bind` the role
  referenced (resourceNames narrow it), else the role's rules must be
  covered as above; a missing role is refused.

The refusal is kube's 403:

    roles.rbac.authorization.k8s.io "r" is forbidden: user "alice" (groups=["system:authenticated"]) is attempting
    to grant RBAC permissions not currently held:
    {APIGroups:[""], Resources:["pods"], Verbs:["delete"]}
"""
from __future__ import annotations

from agent.apiserver.authn.user import UserInfo
from agent.apiserver.rbac.rules import Attributes, compact, compact_string, covers
from agent.apiserver.registry import APIError

GROUP = "rbac.authorization.k8s.io"
ROLE_KINDS = {"Role": "roles", "ClusterRole": "clusterroles"}
BINDING_KINDS = ("RoleBinding", "ClusterRoleBinding")
FULL_AUTHORITY = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, {"verbs": ["*"], "nonResourceURLs": ["*"]}]


def _go_quoted(items) -> str:
    return "[" + " ".join(f'"{s}"' for s in items) + "]"


def _forbidden(resource: str, name: str, msg: str) -> APIError:
    qualified = f"{resource}.{GROUP}"
    head = f'{qualified} "{name}" is forbidden' if name else f"{qualified} is forbidden"
    return APIError(403, "Forbidden", f"{head}: {msg}", {"name": name, "group": GROUP, "kind": resource}
                    if name else {"group": GROUP, "kind": resource})


def not_held_message(user: UserInfo, missing: list[dict]) -> str:
    """ConfirmNoEscalation's message."""
    lines = sorted(compact_string(r) for r in compact(missing))
    return (f"user {_go_quoted([user.name])[1:-1]} (groups={_go_quoted(user.groups)}) is attempting to grant RBAC "
            "permissions not currently held:\n" + "\n".join(lines))


class GuardedRegistry:
    """A Registry whose creates and updates of RBAC objects are checked for `user`."""

    def __init__(self, registry, user: UserInfo, authorizer):
        self._registry, self._user, self._authz = registry, user, authorizer

    def __getattr__(self, name):
        return getattr(self._registry, name)

    def create(self, kind, namespace, obj):
        self._check(kind, namespace or (obj.get("metadata") or {}).get("namespace") or "default"
                    if kind.namespaced else "", obj, None)
        return self._registry.create(kind, namespace, obj)

    def update(self, kind, namespace, name, obj, subresource=None):
        if kind.kind in ROLE_KINDS or kind.kind in BINDING_KINDS:
            try:
                old = self._registry.get(kind, namespace, name)
            except APIError:
                old = None
            self._check(kind, namespace or "", obj, old)
        return self._registry.update(kind, namespace, name, obj, subresource)

    # ---- the checks ------------------------------------------------------------------
    def _may(self, verb: str, resource: str, namespace: str, name: str) -> bool:
        a = Attributes(verb, resource_request=True, group=GROUP, namespace=namespace, resource=resource, name=name)
        return self._authz.decide(self._user, a)[0]

    def _confirm(self, resource: str, name: str, namespace: str, rules: list[dict]) -> None:
        missing = covers(self._authz.rbac.rules_for(self._user, namespace), rules)
        if missing:
            raise _forbidden(resource, name, not_held_message(self._user, missing))

    def _check(self, kind, namespace: str, obj: dict, old: dict | None) -> None:
        if not isinstance(obj, dict):
            return
        name = (obj.get("metadata") or {}).get("name") or ""
        if kind.kind in ROLE_KINDS:
            rules = [r for r in obj.get("rules") or [] if isinstance(r, dict)]
            if old is not None and old.get("rules") == obj.get("rules") and \
                    old.get("aggregationRule") == obj.get("aggregationRule"):
                return
            if self._may("escalate", kind.resource, namespace, name if old is not None else ""):
                return
            if obj.get("aggregationRule") and kind.kind == "ClusterRole":
                rules = FULL_AUTHORITY
            self._confirm(kind.resource, name, namespace, rules)
        elif kind.kind in BINDING_KINDS:
            ref = obj.get("roleRef") if isinstance(obj.get("roleRef"), dict) else {}
            role_resource = ROLE_KINDS.get(ref.get("kind", ""))
            if role_resource is None:
                return                      # validation refuses it
            if self._may("bind", role_resource, namespace, ref.get("name", "")):
                return
            rules = self._authz.rbac.role_rules(ref, namespace)
            if rules is None:
                raise _forbidden(kind.resource, name, f'{role_resource}.{GROUP} "{ref.get("name", "")}" not found')
            self._confirm(kind.resource, name, namespace, rules)

