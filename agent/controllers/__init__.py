"""Controllers of the server role, run in the API server's process against the
store (as k3s runs kube-controller-manager in-process): scheduling,
Deployment -> ReplicaSet -> Pods, Service selector -> EndpointSlices and
Endpoints, node pod-CIDR allocation, garbage collection by ownerReference.

Each controller is level-triggered: watch events only enqueue keys; one worker
per controller reads the current state from the store and converges it.
"""
