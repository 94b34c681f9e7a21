"""networking.k8s.io/v1: Ingress and IngressClass.

Field numbers and Go types from Kubernetes 1.36 (k8s.io/api networking/v1/generated.proto and types.go).
"""

GROUP = "networking"
API_VERSION = "networking.k8s.io/v1"
KINDS = ("Ingress", "IngressClass")

MESSAGES = {
    "Ingress": {
        1: "metadata,omitempty meta.ObjectMeta",
        2: "spec,omitempty IngressSpec",
        3: "status,omitempty IngressStatus",
    },
    "IngressSpec": {
        4: "ingressClassName,omitempty *string",
        1: "defaultBackend,omitempty *IngressBackend",
        2: "tls,omitempty []IngressTLS",
        3: "rules,omitempty []IngressRule",
    },
    "IngressTLS": {1: "hosts,omitempty []string", 2: "secretName,omitempty string"},
    "IngressStatus": {1: "loadBalancer,omitempty IngressLoadBalancerStatus"},
    "IngressLoadBalancerStatus": {1: "ingress,omitempty []IngressLoadBalancerIngress"},
    "IngressLoadBalancerIngress": {
        1: "ip,omitempty string",
        2: "hostname,omitempty string",
        4: "ports,omitempty []IngressPortStatus",
    },
    "IngressPortStatus": {1: "port int32", 2: "protocol string", 3: "error,omitempty *string"},
    "IngressRule": {1: "host,omitempty string", 2: ",inline IngressRuleValue"},
    "IngressRuleValue": {1: "http,omitempty *HTTPIngressRuleValue"},
    "HTTPIngressRuleValue": {1: "paths []HTTPIngressPath"},
    "HTTPIngressPath": {1: "path,omitempty string", 3: "pathType *string", 2: "backend IngressBackend"},
    "IngressBackend": {
        4: "service,omitempty *IngressServiceBackend",
        3: "resource,omitempty *core.TypedLocalObjectReference",
    },
    "IngressServiceBackend": {1: "name string", 2: "port,omitempty ServiceBackendPort"},
    "ServiceBackendPort": {1: "name,omitempty string", 2: "number,omitempty int32"},
    "IngressClass": {1: "metadata,omitempty meta.ObjectMeta", 2: "spec,omitempty IngressClassSpec"},
    "IngressClassSpec": {
        1: "controller,omitempty string",
        2: "parameters,omitempty *IngressClassParametersReference",
    },
    "IngressClassParametersReference": {
        1: "apiGroup,omitempty *string",
        2: "kind string",
        3: "name string",
        4: "scope *string",
        5: "namespace,omitempty *string",
    },
}
