"""rbac.authorization.k8s.io/v1: Role, ClusterRole, RoleBinding, ClusterRoleBinding.

Field numbers and Go types from Kubernetes 1.36 (k8s.io/api rbac/v1/generated.proto and types.go).
"""

GROUP = "rbac"
API_VERSION = "rbac.authorization.k8s.io/v1"
KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")

MESSAGES = {
    "PolicyRule": {
        1: "verbs []string",
        2: "apiGroups,omitempty []string",
        3: "resources,omitempty []string",
        4: "resourceNames,omitempty []string",
        5: "nonResourceURLs,omitempty []string",
    },
    "Subject": {1: "kind string", 2: "apiGroup,omitempty string", 3: "name string", 4: "namespace,omitempty string"},
    "RoleRef": {1: "apiGroup string", 2: "kind string", 3: "name string"},
    "Role": {1: "metadata,omitempty meta.ObjectMeta", 2: "rules []PolicyRule"},
    "RoleBinding": {1: "metadata,omitempty meta.ObjectMeta", 2: "subjects,omitempty []Subject", 3: "roleRef RoleRef"},
    "ClusterRole": {
        1: "metadata,omitempty meta.ObjectMeta",
        2: "rules []PolicyRule",
        3: "aggregationRule,omitempty *AggregationRule",
    },
    "AggregationRule": {1: "clusterRoleSelectors,omitempty []meta.LabelSelector"},
    "ClusterRoleBinding": {
        1: "metadata,omitempty meta.ObjectMeta",
        2: "subjects,omitempty []Subject",
        3: "roleRef RoleRef",
    },
}
