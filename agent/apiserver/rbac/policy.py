"""The default roles and bindings kube-apiserver bootstraps
(plugin/pkg/auth/authorizer/rbac/bootstrappolicy: policy.go,
controller_policy.go), the ones that matter for what we serve, plus the
few kubeadm adds for its addons.

- cluster-admin, and admin / edit / view, whose rules are aggregated
  (agent/controllers/clusterroleaggregation.py) from
  system:aggregate-to-{admin,edit,view} and any ClusterRole a user labels
  `rbac.authorization.k8s.io/aggregate-to-<role>: "true"`;
- system:basic-user, system:discovery, system:public-info-viewer,
  system:service-account-issuer-discovery, system:monitoring: what every
  authenticated user (or every ServiceAccount) may ask;
- system:node (the Node authorizer's static rules; its binding has no
  subjects, as in kube), system:node-proxier (kube-proxy), system:kube-dns;
- kubeadm's addons: system:coredns bound to kube-system/coredns, and, as our
  node agent is also the node's kube-proxy, system:node-proxier bound to
  the group system:nodes (kubeadm binds it to the kube-proxy ServiceAccount);
  system:node bound to the one token machines joined in host mode share;
  kubeadm's Role kube-system/kube-proxy (get the kube-proxy ConfigMap),
  bound to system:nodes for the same reason (kubeadm binds it to its node
  bootstrap tokens' group), so node agents read their KubeProxyConfiguration.

Every object carries the label kubernetes.io/bootstrapping=rbac-defaults
and the annotation rbac.authorization.kubernetes.io/autoupdate=true;
agent/apiserver/rbac/reconcile.py puts them back at every start.
"""
from __future__ import annotations

from agent.api import pki

GROUP = "rbac.authorization.k8s.io"
API_VERSION = f"{GROUP}/v1"
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"

READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
READ_WRITE = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def rule(verbs: list[str], groups: list[str], resources: list[str], names: list[str] | None = None) -> dict:
    r = {"verbs": list(verbs), "apiGroups": list(groups), "resources": list(resources)}
    if names:
        r["resourceNames"] = list(names)
    return r


def urls(verbs: list[str], paths: list[str]) -> dict:
    return {"verbs": list(verbs), "nonResourceURLs": list(paths)}


def _meta(name: str, labels: dict | None = None) -> dict:
    return {"name": name, "labels": {**BOOTSTRAP_LABELS, **(labels or {})}, "annotations": {AUTOUPDATE: "true"}}


def cluster_role(name: str, rules: list[dict], labels: dict | None = None, aggregate_from: str = "") -> dict:
    role = {"apiVersion": API_VERSION, "kind": "ClusterRole", "metadata": _meta(name, labels), "rules": rules}
    if aggregate_from:
        role["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {AGGREGATE_TO + aggregate_from: "true"}}]}
    return role


def subject(kind: str, name: str, namespace: str = "") -> dict:
    if kind == "ServiceAccount":
        return {"kind": kind, "name": name, "namespace": namespace}
    return {"kind": kind, "apiGroup": GROUP, "name": name}


def cluster_binding(name: str, role: str, subjects: list[dict]) -> dict:
    return {"apiVersion": API_VERSION, "kind": "ClusterRoleBinding", "metadata": _meta(name),
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role}, "subjects": subjects}


# ---- the aggregated user-facing roles ------------------------------------------------------

VIEW_RULES = [
    rule(READ, [""], ["pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
                      "services/status", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status",
                      "configmaps"]),
    rule(READ, [""], ["limitranges", "resourcequotas", "bindings", "events", "pods/status", "resourcequotas/status",
                      "namespaces/status", "replicationcontrollers/status", "pods/log"]),
    rule(READ, [""], ["namespaces"]),
    rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
    rule(READ, ["apps"], ["controllerrevisions", "statefulsets", "statefulsets/scale", "statefulsets/status",
                          "daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                          "deployments/status", "replicasets", "replicasets/scale", "replicasets/status"]),
    rule(READ, ["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
    rule(READ, ["batch"], ["jobs", "jobs/status", "cronjobs", "cronjobs/status"]),
    rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
    rule(READ, ["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"]),
]
EDIT_RULES = [
    rule(WRITE, [""], ["pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"]),
    rule(["create"], [""], ["pods/eviction"]),
    rule(WRITE, [""], ["replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
                       "services/proxy", "persistentvolumeclaims", "configmaps", "secrets", "events"]),
    rule(["create"], [""], ["serviceaccounts/token"]),
    rule(WRITE, ["apps"], ["statefulsets", "statefulsets/scale", "daemonsets", "deployments", "deployments/rollback",
                           "deployments/scale", "replicasets", "replicasets/scale"]),
    rule(WRITE, ["autoscaling"], ["horizontalpodautoscalers"]),
    rule(WRITE, ["batch"], ["jobs", "cronjobs"]),
    rule(WRITE, ["policy"], ["poddisruptionbudgets"]),
    rule(WRITE, ["networking.k8s.io"], ["ingresses", "networkpolicies"]),
    rule(WRITE, ["coordination.k8s.io"], ["leases"]),
    rule(READ, [""], ["pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets", "services/proxy"]),
    rule(["impersonate"], [""], ["serviceaccounts"]),
]
ADMIN_RULES = [
    rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
    rule(READ_WRITE, [GROUP], ["rolebindings", "roles"]),
]

# ---- what the node agent may do besides the Node authorizer's graph (NodeRules) ------------------

NODE_RULES = [
    rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
    rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews", "subjectaccessreviews"]),
    rule(READ, [""], ["services"]),
    rule(["create", "get", "list", "watch"], [""], ["nodes"]),
    rule(["patch", "update"], [""], ["nodes/status"]),
    rule(["delete", "patch", "update"], [""], ["nodes"]),
    rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
    rule(READ, [""], ["pods"]),
    rule(["create", "delete"], [""], ["pods"]),
    rule(["patch", "update"], [""], ["pods/status"]),
    rule(["create"], [""], ["pods/eviction"]),
    rule(READ, [""], ["secrets", "configmaps"]),
    rule(["get"], [""], ["persistentvolumeclaims", "persistentvolumes"]),
    rule(["get"], [""], ["endpoints"]),
    rule(["create", "get", "list", "watch"], ["certificates.k8s.io"], ["certificatesigningrequests"]),
    rule(["create", "delete", "get", "patch", "update"], ["coordination.k8s.io"], ["leases"]),
    rule(["create"], [""], ["serviceaccounts/token"]),
]
NODE_PROXIER_RULES = [
    rule(READ, [""], ["endpoints", "services"]),
    rule(READ, [""], ["nodes"]),
    rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
    rule(["list", "watch"], ["discovery.k8s.io"], ["endpointslices"]),
]
COREDNS_RULES = [           # kubeadm's system:coredns
    rule(["list", "watch"], [""], ["endpoints", "services", "pods", "namespaces"]),
    rule(["list", "watch"], ["discovery.k8s.io"], ["endpointslices"]),
]
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"


def cluster_roles() -> list[dict]:
    agg = AGGREGATE_TO
    return [
        cluster_role("cluster-admin", [rule(["*"], ["*"], ["*"]), urls(["*"], ["*"])]),
        cluster_role("admin", [], aggregate_from="admin"),
        cluster_role("edit", [], {agg + "admin": "true"}, aggregate_from="edit"),
        cluster_role("view", [], {agg + "edit": "true"}, aggregate_from="view"),
        cluster_role("system:aggregate-to-admin", ADMIN_RULES, {agg + "admin": "true"}),
        cluster_role("system:aggregate-to-edit", EDIT_RULES, {agg + "edit": "true"}),
        cluster_role("system:aggregate-to-view", VIEW_RULES, {agg + "view": "true"}),
        cluster_role("system:basic-user", [
            rule(["create"], ["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
            rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"])]),
        cluster_role("system:discovery", [urls(["get"], [
            "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz",
            "/version", "/version/"])]),
        cluster_role("system:public-info-viewer", [urls(["get"], [
            "/healthz", "/livez", "/readyz", "/version", "/version/"])]),
        cluster_role("system:service-account-issuer-discovery", [urls(["get"], [
            "/.well-known/openid-configuration", "/.well-known/openid-configuration/", "/openid/v1/jwks",
            "/openid/v1/jwks/"])]),
        cluster_role("system:monitoring", [urls(["get"], [
            "/metrics", "/metrics/slis", "/livez", "/readyz", "/healthz", "/livez/*", "/readyz/*", "/healthz/*"])]),
        cluster_role("system:node", NODE_RULES),
        cluster_role("system:node-proxier", NODE_PROXIER_RULES),
        cluster_role("system:kube-dns", [rule(["list", "watch"], [""], ["endpoints", "services"])]),
        cluster_role("system:coredns", COREDNS_RULES),
    ]


def cluster_role_bindings() -> list[dict]:
    return [
        cluster_binding("cluster-admin", "cluster-admin", [subject("Group", "system:masters")]),
        cluster_binding("system:basic-user", "system:basic-user", [subject("Group", AUTHENTICATED)]),
        cluster_binding("system:discovery", "system:discovery", [subject("Group", AUTHENTICATED)]),
        cluster_binding("system:public-info-viewer", "system:public-info-viewer",
                        [subject("Group", AUTHENTICATED), subject("Group", UNAUTHENTICATED)]),
        cluster_binding("system:service-account-issuer-discovery", "system:service-account-issuer-discovery",
                        [subject("Group", "system:serviceaccounts")]),
        cluster_binding("system:monitoring", "system:monitoring", [subject("Group", "system:monitoring")]),
        cluster_binding("system:node", "system:node", []),
        cluster_binding("system:node-proxier", "system:node-proxier", [subject("User", "system:kube-proxy")]),
        cluster_binding("system:kube-dns", "system:kube-dns", [subject("ServiceAccount", "kube-dns", "kube-system")]),
        cluster_binding("system:coredns", "system:coredns", [subject("ServiceAccount", "coredns", "kube-system")]),
        cluster_binding("nsplane:node-proxier", "system:node-proxier", [subject("Group", "system:nodes")]),
        # the token machines joined in host mode share (agent/api/pki.py): system:node's rules, unlimited by
        # the Node authorizer, which knows no node by that name
        cluster_binding("nsplane:joined-nodes", "system:node", [subject("User", pki.JOIN_USER)]),
    ]


def namespaced_roles() -> list[dict]:
    role = cluster_role("kube-proxy", [rule(READ, [""], ["configmaps"], ["kube-proxy"])])
    role["kind"], role["metadata"]["namespace"] = "Role", "kube-system"
    return [role]


def namespaced_role_bindings() -> list[dict]:
    binding = cluster_binding("kube-proxy", "kube-proxy", [subject("Group", "system:nodes")])
    binding["kind"], binding["metadata"]["namespace"] = "RoleBinding", "kube-system"
    binding["roleRef"]["kind"] = "Role"
    return [binding]
