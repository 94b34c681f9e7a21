"""The ReplicaSet controller, and the replica manager it shares with the
ReplicationController (agent/controllers/replicationcontroller.py), as
kube-controller-manager's replication manager wraps its ReplicaSet
controller: keep `spec.replicas` active pods from the template, named
`<owner>-<5 chars>` and owned through a controller ownerReference; adopt
orphan pods the selector matches and release owned pods it no longer
matches; report replicas, fullyLabeledReplicas, readyReplicas,
availableReplicas (ready for minReadySeconds), observedGeneration and the
ReplicaFailure condition; say SuccessfulCreate / SuccessfulDelete (or
FailedCreate / FailedDelete) in Events.

`ReplicaManager` is parameterised by the owner's resource, kind, event
component and selector; `replica_status` and `deletion_order` are pure.
"""
from __future__ import annotations

import copy
import random
from datetime import datetime, timedelta, timezone

from agent.api import selectors
from agent.api.kinds import BY_RESOURCE
from agent.api.objects import now_iso
from agent.api.printers import parse_time
from agent.apiserver.registry import APIError
from agent.controllers.base import (
    Controller,
    controller_ref,
    generated_name,
    ns_name,
    owner_ref,
    record_event,
)

REPLICA_FAILURE = "ReplicaFailure"
PODS = BY_RESOURCE["pods"]


def _ready_condition(pod: dict) -> dict | None:
    return next((c for c in pod.get("status", {}).get("conditions", []) or [] if c.get("type") == "Ready"), None)


def pod_ready(pod: dict) -> bool:
    return (_ready_condition(pod) or {}).get("status") == "True"


def pod_available(pod: dict, min_ready_seconds: int, now: datetime) -> bool:
    """podutil.IsPodAvailable: ready, and for at least minReadySeconds."""
    if not pod_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = parse_time(_ready_condition(pod).get("lastTransitionTime"))
    return since is not None and since + timedelta(seconds=min_ready_seconds) < now


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


def pod_from_template(owner: dict, rng=random) -> dict:
    """controller.GetPodFromTemplate: the template's labels, annotations,
    finalizers and spec, owned by `owner`."""
    tmpl = copy.deepcopy(owner["spec"]["template"])
    md = tmpl.get("metadata", {})
    prefix = f"{owner['metadata']['name']}-"
    pod_md = {"name": generated_name(prefix, rng), "generateName": prefix, "namespace": owner["metadata"]["namespace"],
              "labels": md.get("labels", {}), "annotations": md.get("annotations", {}),
              "ownerReferences": [owner_ref(owner)]}
    if md.get("finalizers"):
        pod_md["finalizers"] = md["finalizers"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_md, "spec": tmpl.get("spec", {})}


def replica_status(owner: dict, pods: list[dict], failure: tuple[str, str] | None,
                   now: datetime | None = None) -> dict:
    """calculateStatus: the status of `owner` given its active pods and the
    error of this sync's creates or deletes ((reason, message) or None)."""
    now = now or datetime.now(timezone.utc)
    spec = owner.get("spec", {})
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = spec.get("minReadySeconds", 0) or 0
    conditions = list((owner.get("status") or {}).get("conditions") or [])
    has_failure = any(c.get("type") == REPLICA_FAILURE for c in conditions)
    if failure and not has_failure:
        conditions.append({"type": REPLICA_FAILURE, "status": "True", "lastTransitionTime": now_iso(),
                           "reason": failure[0], "message": failure[1]})
    elif not failure and has_failure:
        conditions = [c for c in conditions if c.get("type") != REPLICA_FAILURE]
    labelled = sum(1 for p in pods if all((p["metadata"].get("labels") or {}).get(k) == v
                                          for k, v in template_labels.items()))
    status = {"replicas": len(pods), "fullyLabeledReplicas": labelled,
              "readyReplicas": sum(1 for p in pods if pod_ready(p)),
              "availableReplicas": sum(1 for p in pods if pod_available(p, min_ready, now)),
              "observedGeneration": owner["metadata"].get("generation", 1), "conditions": conditions}
    return {k: v for k, v in status.items() if v or k == "replicas"}


def claim_pods(store, registry, owner: dict, matches, resource: str = "pods") -> list[dict]:
    """ClaimPods (PodControllerRefManager): adopt orphans `matches(obj)`
    accepts, release owned objects it no longer accepts; return the objects
    owned afterwards (all of `owner`'s namespace are looked at)."""
    uid, out = owner["metadata"]["uid"], []
    kind = BY_RESOURCE[resource]
    for obj in store.list(resource, owner["metadata"]["namespace"])[0]:
        ref, ok = controller_ref(obj), matches(obj)
        if ref is None and ok and not obj["metadata"].get("deletionTimestamp"):
            if _set_owner(registry, kind, obj, lambda refs: refs + [owner_ref(owner)]):
                out.append(obj)
        elif ref is not None and ref.get("uid") == uid:
            if ok:
                out.append(obj)
            else:
                _set_owner(registry, kind, obj, lambda refs: [r for r in refs if r.get("uid") != uid])
    return out


def claim_selected(store, registry, owner: dict, member=lambda obj: True) -> list[dict] | None:
    """claim_pods by the owner's spec.selector (and `member`, e.g. a
    StatefulSet's `<name>-<ordinal>`); None when the selector does not parse."""
    try:
        sel = selectors.from_label_selector(owner["spec"].get("selector"))
    except ValueError:
        return None
    return claim_pods(store, registry, owner,
                      lambda obj: sel.matches(obj["metadata"].get("labels") or {}) and member(obj))


def _set_owner(registry, kind, obj: dict, change) -> bool:
    def mutate(cur):
        if cur["metadata"].get("uid") != obj["metadata"]["uid"]:
            return None
        refs = change(list(cur["metadata"].get("ownerReferences") or []))
        if refs:
            cur["metadata"]["ownerReferences"] = refs
        else:
            cur["metadata"].pop("ownerReferences", None)
        return cur
    try:
        registry.guaranteed_update(kind, obj["metadata"]["namespace"], obj["metadata"]["name"], mutate)
    except APIError:
        return False
    return True


class ReplicaManager(Controller):
    """Keeps the pods of one kind of replica owner. Subclasses set `name`,
    `resource`, `component` (the Events' source) and `selector(owner)`."""

    resource = "replicasets"
    component = "replicaset-controller"

    def __init__(self, store, registry):
        super().__init__(store, registry)
        self.kind = BY_RESOURCE[self.resource].kind
        self.watches = {self.resource: lambda self, o: [ns_name(o)], "pods": ReplicaManager._pod_keys}

    def selector(self, owner: dict) -> selectors.Selector:    # pragma: no cover - abstract
        raise NotImplementedError

    def _selects(self, owner: dict, labels: dict) -> bool:
        try:
            return self.selector(owner).matches(labels)
        except ValueError:
            return False

    def _pod_keys(self, pod: dict) -> list:
        """The owner of a pod, or for an orphan every owner that would adopt it."""
        ns, ref = pod["metadata"]["namespace"], controller_ref(pod)
        if ref:
            return [(ns, ref["name"])] if ref.get("kind") == self.kind else []
        labels = pod["metadata"].get("labels") or {}
        return [ns_name(o) for o in self.store.list(self.resource, ns)[0] if self._selects(o, labels)]

    def sync(self, key):
        ns, name = key
        owner = self.live(self.resource, ns, name)
        if owner is None:
            return None
        live = [p for p in self._claim(owner) if active(p)]
        failure = self._manage(owner, live)
        live = [p for p in self._owned(owner) if active(p)]
        now = datetime.now(timezone.utc)
        status = replica_status(owner, live, failure, now)
        self.put_status(self.resource, owner, status)
        if failure:
            return 5.0
        min_ready = owner["spec"].get("minReadySeconds", 0) or 0
        if min_ready and status.get("readyReplicas", 0) != status.get("availableReplicas", 0):
            return float(min_ready)
        return None

    def _owned(self, owner: dict) -> list[dict]:
        uid = owner["metadata"]["uid"]
        return [p for p in self.store.list("pods", owner["metadata"]["namespace"])[0]
                if (controller_ref(p) or {}).get("uid") == uid]

    def _claim(self, owner: dict) -> list[dict]:
        return claim_pods(self.store, self.registry, owner,
                          lambda pod: self._selects(owner, pod["metadata"].get("labels") or {}))

    def _manage(self, owner: dict, live: list[dict]) -> tuple[str, str] | None:
        """Create or delete pods toward spec.replicas; the first error as
        (reason, message) for the ReplicaFailure condition."""
        ns, want = owner["metadata"]["namespace"], owner["spec"].get("replicas", 1)
        for _ in range(max(0, want - len(live))):
            try:
                pod = self.registry.create(PODS, ns, pod_from_template(owner))
            except APIError as e:
                record_event(self.registry, owner, "FailedCreate", f"Error creating: {e.message}", "Warning",
                             self.component)
                return "FailedCreate", e.message
            record_event(self.registry, owner, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}",
                         component=self.component)
        for pod in deletion_order(live)[:max(0, len(live) - want)]:
            try:
                self.registry.delete(PODS, ns, pod["metadata"]["name"])
            except APIError as e:
                if e.code == 404:
                    continue
                record_event(self.registry, owner, "FailedDelete", f"Error deleting: {e.message}", "Warning",
                             self.component)
                return "FailedDelete", e.message
            record_event(self.registry, owner, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}",
                         component=self.component)
        return None


class ReplicaSetController(ReplicaManager):
    name = "replicaset-controller"
    resource = "replicasets"
    component = "replicaset-controller"

    def selector(self, owner: dict) -> selectors.Selector:
        return selectors.from_label_selector(owner["spec"].get("selector"))
