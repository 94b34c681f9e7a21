"""authentication.k8s.io/v1: TokenRequest (`kubectl create token`; a subresource, so no list) and
SelfSubjectReview (`kubectl auth whoami`; created, never stored, so no list either).

Field numbers and Go types from Kubernetes 1.36 (k8s.io/api authentication/v1/generated.proto and types.go).
"""

GROUP = "authentication"
API_VERSION = "authentication.k8s.io/v1"
KINDS = ("TokenRequest", "SelfSubjectReview")
UNLISTED = ("TokenRequest", "SelfSubjectReview")

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
    "SelfSubjectReview": {
        1: "metadata,omitempty meta.ObjectMeta",
        2: "status,omitempty SelfSubjectReviewStatus",
    },
    "SelfSubjectReviewStatus": {1: "userInfo,omitempty UserInfo"},
    "UserInfo": {
        1: "username,omitempty string",
        2: "uid,omitempty string",
        3: "groups,omitempty []string",
        4: "extra,omitempty map[string]ExtraValue",
    },
}
