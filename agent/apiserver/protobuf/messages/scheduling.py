"""scheduling.k8s.io/v1: PriorityClass.

Field numbers and Go types from Kubernetes 1.36 (k8s.io/api scheduling/v1/generated.proto and types.go).
"""

GROUP = "scheduling"
API_VERSION = "scheduling.k8s.io/v1"
KINDS = ("PriorityClass",)

MESSAGES = {
    "PriorityClass": {
        1: "metadata,omitempty meta.ObjectMeta",
        2: "value int32",
        3: "globalDefault,omitempty bool",
        4: "description,omitempty string",
        5: "preemptionPolicy,omitempty *string",
    },
}
