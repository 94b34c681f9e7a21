"""Garbage collection by ownerReference: when an owner (Deployment,
ReplicaSet, ReplicationController, Service, Endpoints, StatefulSet...) is gone, its
dependents go too (background propagation; pods are deleted gracefully).
Like kube-controller-manager's pod GC, pods bound to a Node that no longer
exists are deleted at once (no kubelet is left to stop them gracefully), so
their ReplicaSets recreate them elsewhere."""
from __future__ import annotations

from agent.api.kinds import BY_RESOURCE
from agent.apiserver.crd.definition import served
from agent.apiserver.registry import APIError
from agent.controllers.base import Controller

OWNERS = ("deployments", "replicasets", "replicationcontrollers", "services", "endpoints", "nodes",
          "statefulsets", "daemonsets", "jobs", "cronjobs")
DEPENDENTS = ("replicasets", "pods", "endpointslices", "controllerrevisions", "jobs", "persistentvolumeclaims")


class GarbageCollector(Controller):
    name = "garbage-collector"
    watches = {r: (lambda self, o: [("sweep",)]) for r in OWNERS}

    def sync(self, key):
        scan = lambda r: self.store.list(r, copy_items=False)[0]  # noqa: E731 - read-only scans
        alive = {o["metadata"]["uid"] for r in OWNERS for o in scan(r)}
        alive |= {o["metadata"]["uid"] for k in served(self.store) for o in scan(k.resource)}   # operators' owners
        nodes = {o["metadata"]["name"] for o in scan("nodes")}
        for pod in scan("pods"):
            if pod["spec"].get("nodeName") and pod["spec"]["nodeName"] not in nodes:
                try:
                    self.registry.delete(BY_RESOURCE["pods"], pod["metadata"]["namespace"],
                                         pod["metadata"]["name"], grace=0)
                except APIError:
                    pass
        for resource in DEPENDENTS:
            for obj in scan(resource):
                refs = obj["metadata"].get("ownerReferences") or []
                if refs and not any(r.get("uid") in alive for r in refs):
                    md = obj["metadata"]
                    try:
                        self.registry.delete(BY_RESOURCE[resource], md.get("namespace"), md["name"])
                    except APIError:
                        pass
        return None
