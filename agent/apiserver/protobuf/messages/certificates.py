"""certificates.k8s.io/v1: CertificateSigningRequest (kubelet serving-certificate bootstrap,
`kubectl certificate approve|deny`).

Field numbers and Go types from k8s.io/api certificates/v1 (generated.proto and types.go).
"""

GROUP = "certificates"
API_VERSION = "certificates.k8s.io/v1"
KINDS = ("CertificateSigningRequest",)

MESSAGES = {
    "CertificateSigningRequest": {
        1: "metadata,omitempty meta.ObjectMeta",
        2: "spec CertificateSigningRequestSpec",
        3: "status,omitempty CertificateSigningRequestStatus",
    },
    "CertificateSigningRequestSpec": {
        1: "request []byte",
        7: "signerName string",
        8: "expirationSeconds,omitempty *int32",
        5: "usages,omitempty []string",
        2: "username,omitempty string",
        3: "uid,omitempty string",
        4: "groups,omitempty []string",
        6: "extra,omitempty map[string]ExtraValue",
    },
    "CertificateSigningRequestStatus": {
        1: "conditions,omitempty []CertificateSigningRequestCondition",
        2: "certificate,omitempty []byte",
    },
    "CertificateSigningRequestCondition": {
        1: "type string",
        6: "status string",
        2: "reason,omitempty string",
        3: "message,omitempty string",
        4: "lastUpdateTime,omitempty Time",
        5: "lastTransitionTime,omitempty Time",
    },
}
