"""The Node authorizer (plugin/pkg/auth/authorizer/node), small: what a
node agent, authenticated as `system:node:<name>` in group `system:nodes`,
may do.

- Secrets, ConfigMaps, PersistentVolumeClaims: read (get, or list/watch of
  one name) only those a pod bound to this node references (volumes,
  projected sources, env and envFrom, imagePullSecrets); anything else is
  no opinion, with kube's reason "no relationship found between node
  '<name>' and this object" (RBAC grants nodes nothing more, so: 403).
- serviceaccounts/token: create only for a ServiceAccount a pod on this
  node runs as.
- Node objects: writes only to its own Node (what kube's NodeRestriction
  admission adds); pods/status only for pods bound to it.
- Everything else: the static rules of the system:node ClusterRole
  (bootstrappolicy's NodeRules, agent/apiserver/rbac/policy.py).

Kube keeps a graph of pods, nodes and what they reference; here the
store's pods are scanned when a node asks (they are in memory).
"""
from __future__ import annotations

from agent.apiserver.authn.user import UserInfo
from agent.apiserver.rbac.rules import Attributes, rules_allow
from agent.apiserver.store import NotFound

NODES_GROUP = "system:nodes"
NODE_PREFIX = "system:node:"
READ = ("get", "list", "watch")


def node_name(user: UserInfo) -> str | None:
    """NodeIdentifier: the node a user is, or None."""
    if NODES_GROUP not in user.groups or not user.name.startswith(NODE_PREFIX):
        return None
    return user.name[len(NODE_PREFIX):] or None


def _containers(spec: dict) -> list[dict]:
    return [c for key in ("initContainers", "containers", "ephemeralContainers")
            for c in spec.get(key) or [] if isinstance(c, dict)]


def references(pod: dict) -> dict[str, set[str]]:
    """{"secrets": {...}, "configmaps": {...}, "persistentvolumeclaims": {...},
    "serviceaccounts": {...}} a pod refers to."""
    spec = pod.get("spec") or {}
    out: dict[str, set[str]] = {"secrets": set(), "configmaps": set(), "persistentvolumeclaims": set(),
                                "serviceaccounts": {spec.get("serviceAccountName") or "default"}}
    for s in spec.get("imagePullSecrets") or []:
        if isinstance(s, dict) and s.get("name"):
            out["secrets"].add(s["name"])
    for v in spec.get("volumes") or []:
        if not isinstance(v, dict):
            continue
        if (v.get("secret") or {}).get("secretName"):
            out["secrets"].add(v["secret"]["secretName"])
        if (v.get("configMap") or {}).get("name"):
            out["configmaps"].add(v["configMap"]["name"])
        if (v.get("persistentVolumeClaim") or {}).get("claimName"):
            out["persistentvolumeclaims"].add(v["persistentVolumeClaim"]["claimName"])
        for src in (v.get("projected") or {}).get("sources") or []:
            if isinstance(src, dict):
                if (src.get("secret") or {}).get("name"):
                    out["secrets"].add(src["secret"]["name"])
                if (src.get("configMap") or {}).get("name"):
                    out["configmaps"].add(src["configMap"]["name"])
    for c in _containers(spec):
        for e in c.get("env") or []:
            ref = (e.get("valueFrom") or {}) if isinstance(e, dict) else {}
            if (ref.get("secretKeyRef") or {}).get("name"):
                out["secrets"].add(ref["secretKeyRef"]["name"])
            if (ref.get("configMapKeyRef") or {}).get("name"):
                out["configmaps"].add(ref["configMapKeyRef"]["name"])
        for e in c.get("envFrom") or []:
            if isinstance(e, dict) and (e.get("secretRef") or {}).get("name"):
                out["secrets"].add(e["secretRef"]["name"])
            if isinstance(e, dict) and (e.get("configMapRef") or {}).get("name"):
                out["configmaps"].add(e["configMapRef"]["name"])
    return out


class NodeAuthorizer:
    def __init__(self, store, node_rules: list[dict]):
        self.store, self.node_rules = store, node_rules

    def _pods_on(self, node: str, namespace: str) -> list[dict]:
        items, _ = self.store.list("pods", namespace, lambda p: (p.get("spec") or {}).get("nodeName") == node,
                                   copy_items=False)
        return items

    def _related(self, node: str, a: Attributes, resource: str) -> bool:
        return any(a.name in references(p)[resource] for p in self._pods_on(node, a.namespace))

    def authorize(self, user: UserInfo, a: Attributes) -> tuple[str, str]:
        """("allow" | "deny" | "", reason); "" is no opinion (RBAC decides)."""
        node = node_name(user)
        if node is None:
            return "", ""
        no_relation = f"no relationship found between node '{node}' and this object"
        if a.resource_request and a.group == "" and not a.subresource and a.resource in (
                "secrets", "configmaps", "persistentvolumeclaims"):
            if a.verb not in READ:
                return "", "can only read resources of this type"
            if not a.name or not a.namespace:
                return "", "can only read namespaced object of this type"
            return ("allow", "") if self._related(node, a, a.resource) else ("", no_relation)
        if a.resource_request and a.group == "" and (a.resource, a.subresource) == ("serviceaccounts", "token"):
            if a.verb != "create" or not a.name:
                return "", "can only create tokens for individual service accounts"
            return ("allow", "") if self._related(node, a, "serviceaccounts") else ("", no_relation)
        if a.resource_request and a.group == "" and a.resource == "nodes" and a.verb in ("update", "patch",
                                                                                           "delete"):
            if a.name != node:
                return "", f"node '{node}' cannot modify node '{a.name}'"
        if a.resource_request and a.group == "" and (a.resource, a.subresource) == ("pods", "status"):
            if not self._bound_here(node, a):
                return "", f"node '{node}' can only update the status of pods bound to it"
        if rules_allow(self.node_rules, a):
            return "allow", ""
        return "", ""

    def _bound_here(self, node: str, a: Attributes) -> bool:
        try:
            pod = self.store.get("pods", a.namespace, a.name)
        except NotFound:
            return False
        return (pod.get("spec") or {}).get("nodeName") == node
