"""kube-apiserver's validation of Roles, ClusterRoles, RoleBindings and
ClusterRoleBindings (pkg/apis/rbac/validation), with kube's messages:

    Role.rbac.authorization.k8s.io "r" is invalid: rules[0].verbs: Required value: verbs must contain at least one value
    RoleBinding.rbac.authorization.k8s.io "b" is invalid: roleRef: Invalid value: ...: cannot change roleRef

Names are path segments (ValidateRBACName), so `system:node` is a valid name.
"""
from __future__ import annotations

from agent.api.syntax import dns1123_subdomain_errors
from agent.apiserver.validation.common import path_segment_errors
from agent.apiserver.validation.errors import Errs

GROUP = "rbac.authorization.k8s.io"


def _strings(errs: Errs, node: dict, key: str, path: str) -> list[str]:
    v = node.get(key)
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        errs.typed(node, key, path, "array")
        errs.invalid(path, v, "must be a list of strings")
        return []
    return v


def validate_policy_rule(errs: Errs, rule, namespaced: bool, path: str) -> None:
    if not isinstance(rule, dict):
        errs.invalid(path, rule, "must be an object")
        return
    if not _strings(errs, rule, "verbs", f"{path}.verbs"):
        errs.required(f"{path}.verbs", "verbs must contain at least one value")
    urls = _strings(errs, rule, "nonResourceURLs", f"{path}.nonResourceURLs")
    groups = _strings(errs, rule, "apiGroups", f"{path}.apiGroups")
    resources = _strings(errs, rule, "resources", f"{path}.resources")
    names = _strings(errs, rule, "resourceNames", f"{path}.resourceNames")
    if urls:
        if namespaced:
            errs.invalid(f"{path}.nonResourceURLs", urls, "namespaced rules cannot apply to non-resource URLs")
        if groups or resources or names:
            errs.invalid(f"{path}.nonResourceURLs", urls,
                         "rules cannot apply to both regular resources and non-resource URLs")
        return
    if not groups:
        errs.required(f"{path}.apiGroups", "resource rules must supply at least one api group")
    if not resources:
        errs.required(f"{path}.resources", "resource rules must supply at least one resource")


def _rules(errs: Errs, obj: dict, namespaced: bool) -> None:
    rules = obj.get("rules")
    if rules is None:
        return
    if not isinstance(rules, list):
        errs.invalid("rules", rules, "must be a list")
        return
    for i, r in enumerate(rules):
        validate_policy_rule(errs, r, namespaced, f"rules[{i}]")


def check_role(errs: Errs, obj: dict, old: dict | None, **_) -> None:
    _rules(errs, obj, True)


def check_cluster_role(errs: Errs, obj: dict, old: dict | None, **_) -> None:
    _rules(errs, obj, False)
    agg = obj.get("aggregationRule")
    if agg is None:
        return
    sels = agg.get("clusterRoleSelectors") if isinstance(agg, dict) else None
    if not isinstance(sels, list) or not sels:
        errs.required("aggregationRule.clusterRoleSelectors", "at least one clusterRoleSelector required if "
                                                             "aggregationRule is non-nil")
    for i, sel in enumerate(sels if isinstance(sels, list) else []):
        if not isinstance(sel, dict):
            errs.invalid(f"aggregationRule.clusterRoleSelectors[{i}]", sel, "must be a label selector")


def _subject(errs: Errs, s, path: str) -> None:
    if not isinstance(s, dict):
        errs.invalid(path, s, "must be an object")
        return
    name, kind, group = s.get("name") or "", s.get("kind") or "", s.get("apiGroup") or ""
    if not name:
        errs.required(f"{path}.name")
    if kind == "ServiceAccount":
        for msg in dns1123_subdomain_errors(name) if name else []:
            errs.invalid(f"{path}.name", name, msg)
        if group:
            errs.not_supported(f"{path}.apiGroup", group, [""])
        if not s.get("namespace"):
            errs.required(f"{path}.namespace")
    elif kind in ("User", "Group"):
        if group != GROUP:
            errs.not_supported(f"{path}.apiGroup", group, [GROUP])
    else:
        errs.not_supported(f"{path}.kind", kind, ["ServiceAccount", "User", "Group"])


def _binding(errs: Errs, obj: dict, old: dict | None, kinds: list[str]) -> None:
    ref = obj.get("roleRef")
    if not isinstance(ref, dict):
        errs.required("roleRef")
        ref = {}
    if ref.get("apiGroup") != GROUP:
        errs.not_supported("roleRef.apiGroup", ref.get("apiGroup") or "", [GROUP])
    if ref.get("kind") not in kinds:
        errs.not_supported("roleRef.kind", ref.get("kind") or "", kinds)
    if not ref.get("name"):
        errs.required("roleRef.name")
    else:
        for msg in path_segment_errors(str(ref["name"])):
            errs.invalid("roleRef.name", ref["name"], msg)
    subjects = obj.get("subjects")
    if subjects is not None and not isinstance(subjects, list):
        errs.invalid("subjects", subjects, "must be a list")
        subjects = []
    for i, s in enumerate(subjects or []):
        _subject(errs, s, f"subjects[{i}]")
    if old is not None and (old.get("roleRef") or {}) != ref:
        errs.invalid("roleRef", ref, "cannot change roleRef")


def check_role_binding(errs: Errs, obj: dict, old: dict | None, **_) -> None:
    _binding(errs, obj, old, ["Role", "ClusterRole"])


def check_cluster_role_binding(errs: Errs, obj: dict, old: dict | None, **_) -> None:
    _binding(errs, obj, old, ["ClusterRole"])


CHECKS = {"Role": check_role, "ClusterRole": check_cluster_role, "RoleBinding": check_role_binding,
          "ClusterRoleBinding": check_cluster_role_binding}
