"""Garbage collection by ownerReference: when an owner (Deployment,
ReplicaSet, Service) is gone, its dependents go too (background propagation;
pods are deleted gracefully). Like kube-controller-manager's pod GC, pods
bound to a Node that no longer exists are deleted at once (no kubelet is left
to stop them gracefully), so their ReplicaSets recreate them elsewhere."""
from __future__ import annotations

from agent.controllers.base import Controller
from agent.kinds import BY_RESOURCE
from agent.registry import APIError

OWNERS = ("deployments", "replicasets", "services", "nodes")
DEPENDENTS = ("replicasets", "pods", "endpointslices")


class GarbageCollector(Controller):
    name = "garbage-collector"
    watches = {r: (lambda self, o: [("sweep",)]) for r in OWNERS}

    def sync(self, key):
        alive = {o["metadata"]["uid"] for r in OWNERS for o in self.store.list(r)[0]}
        nodes = {o["metadata"]["name"] for o in self.store.list("nodes")[0]}
        for pod in self.store.list("pods")[0]:
            if pod["spec"].get("nodeName") and pod["spec"]["nodeName"] not in nodes:
                try:
                    self.registry.delete(BY_RESOURCE["pods"], pod["metadata"]["namespace"],
                                         pod["metadata"]["name"], grace=0)
                except APIError:
                    pass
        for resource in DEPENDENTS:
            for obj in self.store.list(resource)[0]:
                refs = obj["metadata"].get("ownerReferences") or []
                if refs and not any(r.get("uid") in alive for r in refs):
                    md = obj["metadata"]
                    try:
                        self.registry.delete(BY_RESOURCE[resource], md.get("namespace"), md["name"])
                    except APIError:
                        pass
        return None
