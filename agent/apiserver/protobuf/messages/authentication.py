"""authentication.k8s.io/v1: TokenRequest (`kubectl create token`; a subresource, so no list).

Field numbers and Go types from Kubernetes 1.36 (k8s.io/api authentication/v1/generated.proto and types.go).
"""

GROUP = "authentication"
API_VERSION = "authentication.k8s.io/v1"
KINDS = ("TokenRequest",)
UNLISTED = ("TokenRequest",)

MESSAGES = {
    "TokenRequest": {
        1: "metadata,omitempty meta.ObjectMeta",
        2: "spec TokenRequestSpec",
        3: "status,omitempty TokenRequestStatus",
    },
    "TokenRequestSpec": {
        1: "audiences []string",
        4: "expirationSeconds *int64",
        3: "boundObjectRef *BoundObjectReference",
    },
    "TokenRequestStatus": {1: "token string", 2: "expirationTimestamp Time"},
    "BoundObjectReference": {
        1: "kind,omitempty string",
        2: "apiVersion,omitempty string",
        3: "name,omitempty string",
        4: "uid,omitempty string",
    },
}
