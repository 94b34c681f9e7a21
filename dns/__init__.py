"""The CoreDNS stand-in: cluster state -> DNS records, served over UDP and TCP.

Built on dnslib. It knows the shape of Kubernetes objects (Services,
EndpointSlices, Pods as plain dicts) but nothing of the API server or the
store; the agent feeds it from a list+watch.

Entry point for the agent (which owns the list+watch)::

    state = dns.cluster.ClusterState()
    state.replace("Service", items) / state.apply("Service", "ADDED", obj)  # also
        # "EndpointSlice", "Pod", "Namespace"; then state.mark_synced()
    dns.server.run(state, listen="0.0.0.0", port=53, stop=threading.Event())

Modules, one concern each (after CoreDNS's plugin/kubernetes): objects (dicts
-> slim objects), cluster (state + indexes), names (parse.go), records (the
answers), prepared (answers as ready bytes), wire (parsing), handler (one
message), forward (upstreams, cache, loop), metrics, health, server.
"""
