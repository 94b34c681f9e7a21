"""policy/v1: PodDisruptionBudget.

Field numbers and Go types from Kubernetes 1.36 (k8s.io/api policy/v1/generated.proto and types.go).
"""

GROUP = "policy"
API_VERSION = "policy/v1"
KINDS = ("PodDisruptionBudget",)

MESSAGES = {
    "PodDisruptionBudgetSpec": {
        1: "minAvailable,omitempty *IntOrString",
        2: "selector,omitempty *meta.LabelSelector",
        3: "maxUnavailable,omitempty *IntOrString",
        4: "unhealthyPodEvictionPolicy,omitempty *string",
    },
    "PodDisruptionBudgetStatus": {
        1: "observedGeneration,omitempty int64",
        2: "disruptedPods,omitempty map[string]Time",
        3: "disruptionsAllowed int32",
        4: "currentHealthy int32",
        5: "desiredHealthy int32",
        6: "expectedPods int32",
        7: "conditions,omitempty []meta.Condition",
    },
    "PodDisruptionBudget": {
        1: "metadata,omitempty meta.ObjectMeta",
        2: "spec,omitempty PodDisruptionBudgetSpec",
        3: "status,omitempty PodDisruptionBudgetStatus",
    },
}
