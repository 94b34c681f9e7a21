"""authorization.k8s.io/v1: SelfSubjectAccessReview, SelfSubjectRulesReview, SubjectAccessReview,
LocalSubjectAccessReview (`kubectl auth can-i`; created, never stored, so no lists).

Field numbers and Go types from Kubernetes 1.32 (k8s.io/api authorization/v1 generated.proto and types.go).
"""

GROUP = "authorization"
API_VERSION = "authorization.k8s.io/v1"
KINDS = ("SelfSubjectAccessReview", "SelfSubjectRulesReview", "SubjectAccessReview", "LocalSubjectAccessReview")
UNLISTED = KINDS

_REVIEW = {1: "metadata,omitempty meta.ObjectMeta", 2: "spec SubjectAccessReviewSpec",
           3: "status,omitempty SubjectAccessReviewStatus"}
MESSAGES = {
    "SelfSubjectAccessReview": {1: "metadata,omitempty meta.ObjectMeta", 2: "spec SelfSubjectAccessReviewSpec",
                                3: "status,omitempty SubjectAccessReviewStatus"},
    "SelfSubjectAccessReviewSpec": {1: "resourceAttributes,omitempty *ResourceAttributes",
                                    2: "nonResourceAttributes,omitempty *NonResourceAttributes"},
    "SubjectAccessReview": _REVIEW,
    "LocalSubjectAccessReview": _REVIEW,
    "SubjectAccessReviewSpec": {
        1: "resourceAttributes,omitempty *ResourceAttributes",
        2: "nonResourceAttributes,omitempty *NonResourceAttributes",
        3: "user,omitempty string",
        4: "groups,omitempty []string",
        5: "extra,omitempty map[string]ExtraValue",
        6: "uid,omitempty string",
    },
    "ResourceAttributes": {
        1: "namespace,omitempty string", 2: "verb,omitempty string", 3: "group,omitempty string",
        4: "version,omitempty string", 5: "resource,omitempty string", 6: "subresource,omitempty string",
        7: "name,omitempty string", 8: "fieldSelector,omitempty *FieldSelectorAttributes",
        9: "labelSelector,omitempty *LabelSelectorAttributes",
    },
    "FieldSelectorAttributes": {1: "rawSelector,omitempty string", 2: "requirements,omitempty []FieldSelectorRequirement"},
    "FieldSelectorRequirement": {1: "key string", 2: "operator string", 3: "values,omitempty []string"},
    "LabelSelectorAttributes": {1: "rawSelector,omitempty string",
                                2: "requirements,omitempty []meta.LabelSelectorRequirement"},
    "NonResourceAttributes": {1: "path,omitempty string", 2: "verb,omitempty string"},
    "SubjectAccessReviewStatus": {1: "allowed bool", 4: "denied,omitempty bool", 2: "reason,omitempty string",
                                  3: "evaluationError,omitempty string"},
    "SelfSubjectRulesReview": {1: "metadata,omitempty meta.ObjectMeta", 2: "spec SelfSubjectRulesReviewSpec",
                               3: "status,omitempty SubjectRulesReviewStatus"},
    "SelfSubjectRulesReviewSpec": {1: "namespace,omitempty string"},
    "SubjectRulesReviewStatus": {1: "resourceRules []ResourceRule", 2: "nonResourceRules []NonResourceRule",
                                 3: "incomplete bool", 4: "evaluationError,omitempty string"},
    "ResourceRule": {1: "verbs []string", 2: "apiGroups,omitempty []string", 3: "resources,omitempty []string",
                     4: "resourceNames,omitempty []string"},
    "NonResourceRule": {1: "verbs []string", 2: "nonResourceURLs,omitempty []string"},
}
