"""The ReplicaSet controller: keeps `spec.replicas` active pods from the
template, named `<rs>-<5 chars>`, and reports replicas / ready / available."""
from __future__ import annotations

import copy
import random

from agent.api.kinds import BY_RESOURCE
from agent.apiserver.registry import APIError
from agent.controllers.base import (
    Controller,
    controller_ref,
    ns_name,
    owned_by,
    owner_ref,
    random_suffix,
    record_event,
)


def pod_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions", []) or [])


def active(pod: dict) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and \
        pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")


def deletion_order(pods: list[dict]) -> list[dict]:
    """Which pods go first when scaling down: unscheduled, then not ready,
    then the newest (kube's ActivePods ordering, simplified)."""
    return sorted(pods, key=lambda p: (bool(p["spec"].get("nodeName")), pod_ready(p),
                                       _neg(p["metadata"].get("creationTimestamp", ""))))


def _neg(stamp: str) -> tuple:
    return tuple(-ord(c) for c in stamp)


def pod_from_template(rs: dict, rng=random) -> dict:
    tmpl = copy.deepcopy(rs["spec"]["template"])
    md = tmpl.get("metadata", {})
    suffix = random_suffix(rng)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{rs['metadata']['name']}-{suffix}", "namespace": rs["metadata"]["namespace"],
                         "labels": md.get("labels", {}), "annotations": md.get("annotations", {}),
                         "ownerReferences": [owner_ref(rs)]},
            "spec": tmpl.get("spec", {})}


class ReplicaSetController(Controller):
    name = "replicaset-controller"
    watches = {
        "replicasets": lambda self, o: [ns_name(o)],
        "pods": lambda self, o: [(o["metadata"]["namespace"], r["name"])
                                 for r in [controller_ref(o)] if r and r.get("kind") == "ReplicaSet"],
    }

    def sync(self, key):
        ns, name = key
        rs = self.live("replicasets", ns, name)
        if rs is None:
            return None
        uid = rs["metadata"]["uid"]
        mine = [p for p in self.store.list("pods", ns)[0] if owned_by(p, uid)]
        live = [p for p in mine if active(p)]
        want = rs["spec"].get("replicas", 1)
        kind = BY_RESOURCE["pods"]
        if len(live) < want:
            for _ in range(want - len(live)):
                try:
                    pod = self.registry.create(kind, ns, pod_from_template(rs))
                except APIError as e:
                    record_event(self.registry, rs, "FailedCreate", f"Error creating: {e.message}", "Warning",
                                  "replicaset-controller")
                    return 5.0
                record_event(self.registry, rs, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}",
                              component="replicaset-controller")
        elif len(live) > want:
            for pod in deletion_order(live)[:len(live) - want]:
                try:
                    self.registry.delete(kind, ns, pod["metadata"]["name"])
                except APIError:
                    continue
                record_event(self.registry, rs, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}",
                              component="replicaset-controller")
        self._status(rs, [p for p in self.store.list("pods", ns)[0] if owned_by(p, uid) and active(p)])
        return None

    def _status(self, rs: dict, live: list[dict]) -> None:
        ready = sum(1 for p in live if pod_ready(p))
        status = {"replicas": len(live), "fullyLabeledReplicas": len(live), "readyReplicas": ready,
                  "availableReplicas": ready, "observedGeneration": rs["metadata"].get("generation", 1)}
        status = {k: v for k, v in status.items() if v or k in ("replicas", "observedGeneration")}
        self.put_status("replicasets", rs, status)
