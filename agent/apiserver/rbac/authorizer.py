"""The RBAC authorizer (plugin/pkg/auth/authorizer/rbac): a request is
allowed when some rule of a role bound to its user allows it.

- ClusterRoleBindings grant their ClusterRole everywhere (every namespace
  and the cluster scope); RoleBindings grant their Role, or a ClusterRole,
  only in the binding's namespace.
- A subject names a User (by name), a Group (one of the user's groups:
  system:authenticated, system:serviceaccounts, system:serviceaccounts:<ns>,
  system:nodes...) or a ServiceAccount (the user
  system:serviceaccount:<ns>:<name>; its namespace defaults to the binding's).
- A binding to a role that does not exist grants nothing (kube logs it as a
  resolution error and goes on).

Roles and bindings are read from the store on every request (it keeps them
in memory), so a new binding applies at once, as in kube-apiserver.
"""
from __future__ import annotations

from collections.abc import Iterator

from agent.apiserver.authn.user import UserInfo, service_account_username
from agent.apiserver.rbac.rules import Attributes, rule_allows
from agent.apiserver.store import NotFound


def applies_to(user: UserInfo, subject: dict, namespace: str) -> bool:
    """appliesToUser."""
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "User":
        return user.name == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        return user.name == service_account_username(subject.get("namespace") or namespace, name)
    return False


def _bound(user: UserInfo, binding: dict) -> dict | None:
    """The first subject of `binding` that is `user`, or None."""
    ns = binding["metadata"].get("namespace", "")
    for s in binding.get("subjects") or []:
        if isinstance(s, dict) and applies_to(user, s, ns):
            return s
    return None


def describe(binding: dict, subject: dict) -> str:
    """kube's clusterRoleBindingDescriber / roleBindingDescriber (the reason of an allow)."""
    md, ref = binding["metadata"], binding.get("roleRef") or {}
    name = f'{md["name"]}/{md["namespace"]}' if md.get("namespace") else md["name"]
    who = subject.get("name", "")
    if subject.get("kind") == "ServiceAccount" and subject.get("namespace"):
        who = f'{who}/{subject["namespace"]}'
    return f'{binding["kind"]} "{name}" of {ref.get("kind", "")} "{ref.get("name", "")}" to {subject.get("kind")} "{who}"'


class RBACAuthorizer:
    def __init__(self, store):
        self.store = store

    def role_rules(self, ref: dict, namespace: str) -> list[dict] | None:
        """GetRoleReferenceRules: the rules a roleRef names, None if the role is missing."""
        try:
            if ref.get("kind") == "ClusterRole":
                role = self.store.get("clusterroles", "", ref.get("name", ""))
            elif ref.get("kind") == "Role" and namespace:
                role = self.store.get("roles", namespace, ref.get("name", ""))
            else:
                return None
        except NotFound:
            return None
        return [r for r in role.get("rules") or [] if isinstance(r, dict)]

    def visit(self, user: UserInfo, namespace: str) -> Iterator[tuple[str, list[dict]]]:
        """(which binding, its role's rules) for every binding of `user` that
        applies in `namespace` ("" = cluster scope: ClusterRoleBindings only)."""
        crbs, _ = self.store.list("clusterrolebindings", None, copy_items=False)
        rbs, _ = self.store.list("rolebindings", namespace, copy_items=False) if namespace else ([], 0)
        for b in [*crbs, *rbs]:
            subject = _bound(user, b)
            if subject is not None:
                rules = self.role_rules(b.get("roleRef") or {}, b["metadata"].get("namespace", ""))
                if rules is not None:
                    yield describe(b, subject), rules

    def rules_for(self, user: UserInfo, namespace: str) -> list[dict]:
        """Every rule `user` holds in `namespace` (SelfSubjectRulesReview, escalation checks)."""
        out: list[dict] = []
        for _, rules in self.visit(user, namespace):
            out.extend(rules)
        return out

    def allowed(self, user: UserInfo, a: Attributes) -> tuple[bool, str]:
        """(allowed, reason): kube's reason names the binding that allowed it."""
        for source, rules in self.visit(user, a.namespace):
            for rule in rules:
                if rule_allows(rule, a):
                    return True, f"RBAC: allowed by {source}"
        return False, ""
