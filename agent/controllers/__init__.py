"""Controllers of the server role, run in the API server's process (as k3s
runs kube-controller-manager and kube-scheduler in-process): scheduling,
Deployment -> ReplicaSet -> Pods, ReplicationController -> Pods, Service
selector -> EndpointSlices and Endpoints, hand-written Endpoints ->
mirrored EndpointSlices, LoadBalancer addresses, node pod-CIDR allocation
and lifecycle, garbage collection by ownerReference, and the objects a new
cluster starts with (bootstrap).

Each controller is level-triggered: watch events only enqueue keys; one worker
per controller reads the current state and converges it. They read the store
directly (it is their informer cache) and write only through the registry,
validated like any client's write: spec changes as updates, status through
the status subresource, pods bound through pods/binding.
"""
