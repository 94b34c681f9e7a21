"""autoscaling/v1: Scale, the body of every /scale subresource (no list).

Field numbers and Go types from Kubernetes 1.36 (k8s.io/api autoscaling/v1/generated.proto and types.go).
"""

GROUP = "autoscaling"
API_VERSION = "autoscaling/v1"
KINDS = ("Scale",)
UNLISTED = ("Scale",)

MESSAGES = {
    "Scale": {
        1: "metadata,omitempty meta.ObjectMeta",
        2: "spec,omitempty ScaleSpec",
        3: "status,omitempty ScaleStatus",
    },
    "ScaleSpec": {1: "replicas,omitempty int32"},
    "ScaleStatus": {1: "replicas int32", 2: "selector,omitempty string"},
}
