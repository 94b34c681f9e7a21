"""discovery.k8s.io/v1: EndpointSlice.

Field numbers and Go types from Kubernetes 1.36 (k8s.io/api discovery/v1/generated.proto and types.go).
"""

GROUP = "discovery"
API_VERSION = "discovery.k8s.io/v1"
KINDS = ("EndpointSlice",)

MESSAGES = {
    "EndpointSlice": {
        1: "metadata,omitempty meta.ObjectMeta",
        4: "addressType string",
        2: "endpoints []Endpoint",
        3: "ports []EndpointPort",
    },
    "Endpoint": {
        1: "addresses []string",
        2: "conditions,omitempty EndpointConditions",
        3: "hostname,omitempty *string",
        4: "targetRef,omitempty *core.ObjectReference",
        5: "deprecatedTopology,omitempty map[string]string",
        6: "nodeName,omitempty *string",
        7: "zone,omitempty *string",
        8: "hints,omitempty *EndpointHints",
    },
    "EndpointConditions": {
        1: "ready,omitempty *bool",
        2: "serving,omitempty *bool",
        3: "terminating,omitempty *bool",
    },
    "EndpointHints": {1: "forZones,omitempty []ForZone", 2: "forNodes,omitempty []ForNode"},
    "ForZone": {1: "name string"},
    "ForNode": {1: "name string"},
    "EndpointPort": {
        1: "name,omitempty *string",
        2: "protocol,omitempty *string",
        3: "port,omitempty *int32",
        4: "appProtocol,omitempty *string",
    },
}
