"""What a new cluster has before the user applies anything: the namespaces
default, kube-system, kube-public and kube-node-lease, and the `kubernetes`
Service (default, 10.96.0.1:443) whose endpoints are the API server itself."""
from __future__ import annotations

from agent.kinds import BY_RESOURCE
from agent.registry import APIError, Registry
from agent.store import NotFound

NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def ensure(registry: Registry, kind: str, obj: dict) -> dict:
    k = BY_RESOURCE[kind]
    md = obj["metadata"]
    try:
        return registry.store.get(k.resource, md.get("namespace", ""), md["name"])
    except NotFound:
        return registry.create(k, md.get("namespace"), obj)


def bootstrap(registry: Registry, api_ip: str, api_port: int) -> None:
    for ns in NAMESPACES:
        ensure(registry, "namespaces", {"metadata": {"name": ns}})
    svc_ip = registry.cluster_ips.nth(1)
    ensure(registry, "services", {
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": svc_ip,
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api_port}]}})
    endpoints(registry, api_ip, api_port)


def endpoints(registry: Registry, api_ip: str, api_port: int) -> None:
    """(Re)write the kubernetes Service's endpoints: the API's address may
    change between runs (a different underlay)."""
    store = registry.store
    want_sl = {"addressType": "IPv4",
               "endpoints": [{"addresses": [api_ip], "conditions": {"ready": True, "serving": True,
                                                                      "terminating": False}}],
               "ports": [{"name": "https", "port": api_port, "protocol": "TCP"}]}
    want_ep = [{"addresses": [{"ip": api_ip}], "ports": [{"name": "https", "port": api_port, "protocol": "TCP"}]}]
    for resource, body in (("endpointslices", want_sl), ("endpoints", {"subsets": want_ep})):
        try:
            cur = store.get(resource, "default", "kubernetes")
            if any(cur.get(k) != v for k, v in body.items()):
                cur.update(body)
                store.update(resource, cur)
        except NotFound:
            md = {"name": "kubernetes", "namespace": "default"}
            if resource == "endpointslices":
                md["labels"] = {"kubernetes.io/service-name": "kubernetes"}
            try:
                registry.create(BY_RESOURCE[resource], "default", {"metadata": md, **body})
            except APIError:
                raise
