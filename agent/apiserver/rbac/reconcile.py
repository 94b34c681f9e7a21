"""The bootstrap policy put in place at every start, as kube-apiserver's
rbac/bootstrap-roles post-start hook does (pkg/registry/rbac/rest/
storage_rbac.go, reconciliation): each default ClusterRole and
ClusterRoleBinding (agent/apiserver/rbac/policy.py) is created when missing;
one that exists is brought up to date — missing rules, labels, annotations
and subjects added, a changed aggregationRule or roleRef replaced — unless a
user annotated it rbac.authorization.kubernetes.io/autoupdate: "false".
Extra rules and subjects a user added are kept (kube's default, no
--remove-extra-permissions).
"""
from __future__ import annotations

import logging

from agent.api.kinds import BY_KIND
from agent.apiserver.rbac import policy
from agent.apiserver.registry import APIError

log = logging.getLogger("nsplane.apiserver.rbac")


def _merged_meta(cur: dict, want: dict) -> dict:
    md = cur["metadata"]
    md["labels"] = {**(md.get("labels") or {}), **want["metadata"]["labels"]}
    md["annotations"] = {**want["metadata"]["annotations"], **(md.get("annotations") or {})}
    return cur


def _union(have: list, want: list) -> list:
    out = list(have or [])
    for item in want:
        if item not in out:
            out.append(item)
    return out


def reconcile_role(cur: dict, want: dict) -> dict | None:
    """The updated ClusterRole, or None when nothing changes."""
    before = repr(cur)
    cur = _merged_meta(cur, want)
    if want.get("aggregationRule"):
        cur["aggregationRule"] = want["aggregationRule"]
    else:
        cur["rules"] = _union(cur.get("rules"), want.get("rules") or [])
    return None if repr(cur) == before else cur


def reconcile_binding(cur: dict, want: dict) -> dict | None:
    before = repr(cur)
    cur = _merged_meta(cur, want)
    subjects = _union(cur.get("subjects"), want.get("subjects") or [])
    if subjects:
        cur["subjects"] = subjects
    return None if repr(cur) == before else cur


def _ensure(registry, kind_name: str, want: dict, reconcile) -> str:
    kind = BY_KIND[kind_name]
    name, ns = want["metadata"]["name"], want["metadata"].get("namespace")
    try:
        cur = registry.get(kind, ns, name)
    except APIError as e:
        if e.code != 404:
            raise
        registry.create(kind, ns, want)
        return "created"
    if (cur["metadata"].get("annotations") or {}).get(policy.AUTOUPDATE) == "false":
        return ""
    if kind_name.endswith("RoleBinding") and cur.get("roleRef") != want["roleRef"]:
        registry.delete(kind, ns, name)         # roleRef is immutable: kube recreates the binding
        registry.create(kind, ns, want)
        return "recreated"
    new = reconcile(cur, want)
    if new is None:
        return ""
    registry.update(kind, ns, name, new)
    return "updated"


def _ensure_namespace(registry, name: str) -> None:
    try:
        registry.get(BY_KIND["Namespace"], None, name)
    except APIError as e:
        if e.code != 404:
            raise
        registry.create(BY_KIND["Namespace"], None, {"metadata": {"name": name}})


def ensure_bootstrap_policy(registry) -> None:
    changed = []
    for role in policy.cluster_roles():
        if _ensure(registry, "ClusterRole", role, reconcile_role):
            changed.append(f'clusterrole {role["metadata"]["name"]}')
    for binding in policy.cluster_role_bindings():
        if _ensure(registry, "ClusterRoleBinding", binding, reconcile_binding):
            changed.append(f'clusterrolebinding {binding["metadata"]["name"]}')
    for ns in {o["metadata"]["namespace"] for o in policy.namespaced_roles() + policy.namespaced_role_bindings()}:
        _ensure_namespace(registry, ns)       # as kube's RBAC post-start hook makes kube-system if missing
    for role in policy.namespaced_roles():
        if _ensure(registry, "Role", role, reconcile_role):
            changed.append(f'role {role["metadata"]["namespace"]}/{role["metadata"]["name"]}')
    for binding in policy.namespaced_role_bindings():
        if _ensure(registry, "RoleBinding", binding, reconcile_binding):
            changed.append(f'rolebinding {binding["metadata"]["namespace"]}/{binding["metadata"]["name"]}')
    if changed:
        log.info("RBAC bootstrap policy: reconciled %d objects (%s)", len(changed), ", ".join(changed[:5]) +
                 (", ..." if len(changed) > 5 else ""))
