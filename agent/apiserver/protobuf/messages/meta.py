"""meta/v1: ObjectMeta, ListMeta, LabelSelector, OwnerReference, Condition and Status.

The messages every kind embeds, plus Status, the body of every error
(apiVersion "v1", kind "Status" on the protobuf wire, as kube-apiserver writes it).
Field numbers and Go types from Kubernetes 1.36 (k8s.io/apimachinery
pkg/apis/meta/v1/generated.proto and types.go).
"""

GROUP = "meta"
API_VERSION = "v1"
KINDS = ("Status",)
UNLISTED = ("Status",)

MESSAGES = {
    "ListMeta": {
        1: "selfLink,omitempty string",
        2: "resourceVersion,omitempty string",
        3: "continue,omitempty string",
        4: "remainingItemCount,omitempty *int64",
        5: "shardInfo,omitempty *ShardInfo",
    },
    "ShardInfo": {1: "selector string"},
    "ObjectMeta": {
        1: "name,omitempty string",
        2: "generateName,omitempty string",
        3: "namespace,omitempty string",
        4: "selfLink,omitempty string",
        5: "uid,omitempty string",
        6: "resourceVersion,omitempty string",
        7: "generation,omitempty int64",
        8: "creationTimestamp,omitempty,omitzero Time",
        9: "deletionTimestamp,omitempty *Time",
        10: "deletionGracePeriodSeconds,omitempty *int64",
        11: "labels,omitempty map[string]string",
        12: "annotations,omitempty map[string]string",
        13: "ownerReferences,omitempty []OwnerReference",
        14: "finalizers,omitempty []string",
        17: "managedFields,omitempty []ManagedFieldsEntry",
    },
    "OwnerReference": {
        5: "apiVersion string",
        1: "kind string",
        3: "name string",
        4: "uid string",
        6: "controller,omitempty *bool",
        7: "blockOwnerDeletion,omitempty *bool",
    },
    "Status": {
        1: "metadata,omitempty ListMeta",
        2: "status,omitempty string",
        3: "message,omitempty string",
        4: "reason,omitempty string",
        5: "details,omitempty *StatusDetails",
        6: "code,omitempty int32",
    },
    "StatusDetails": {
        1: "name,omitempty string",
        2: "group,omitempty string",
        3: "kind,omitempty string",
        6: "uid,omitempty string",
        4: "causes,omitempty []StatusCause",
        5: "retryAfterSeconds,omitempty int32",
    },
    "StatusCause": {1: "reason,omitempty string", 2: "message,omitempty string", 3: "field,omitempty string"},
    "LabelSelector": {
        1: "matchLabels,omitempty map[string]string",
        2: "matchExpressions,omitempty []LabelSelectorRequirement",
    },
    "LabelSelectorRequirement": {1: "key string", 2: "operator string", 3: "values,omitempty []string"},
    "ManagedFieldsEntry": {
        1: "manager,omitempty string",
        2: "operation,omitempty string",
        3: "apiVersion,omitempty string",
        4: "time,omitempty *Time",
        6: "fieldsType,omitempty string",
        7: "fieldsV1,omitempty *FieldsV1",
        8: "subresource,omitempty string",
    },
    "Condition": {
        1: "type string",
        2: "status string",
        3: "observedGeneration,omitempty int64",
        4: "lastTransitionTime Time",
        5: "reason string",
        6: "message string",
    },
}
