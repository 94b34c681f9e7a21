"""The StatefulSet controller, as kube-controller-manager's: pods with
stable names `<set>-<ordinal>` (from spec.ordinals.start), hostname = the
pod's name and subdomain = spec.serviceName (so the headless Service's DNS
answers `<pod>.<service>.<ns>.svc.cluster.local`); OrderedReady (one pod
at a time, each Running and Ready before the next, scaled down from the
highest ordinal) or Parallel pod management; updates through
ControllerRevisions (agent/controllers/revisions.py) with RollingUpdate
(highest ordinal first, down to `partition`) or OnDelete; the
`controller-revision-hash`, `statefulset.kubernetes.io/pod-name` and
`apps.kubernetes.io/pod-index` labels; status replicas, readyReplicas,
availableReplicas, currentReplicas, updatedReplicas, currentRevision,
updateRevision, collisionCount and observedGeneration.

`plan` is the pure core (kube's updateStatefulSet: which pod to create,
delete or wait for next); `statefulset_status` computes the status.
Each volumeClaimTemplate becomes a `persistentVolumeClaim` volume of the
pod (claim `<template>-<pod>`), and the claim itself is created before the
pod when missing (`new_claims`; labels from the template and the set's
selector; owned by the set when persistentVolumeClaimRetentionPolicy
whenDeleted is Delete), as kube's controller makes them. The scheduler binds
a claim to the node of its first pod (agent/controllers/volumebinding.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from agent.api.kinds import BY_RESOURCE
from agent.apiserver.registry import APIError
from agent.apiserver.store import NotFound
from agent.controllers.base import Controller, controller_ref, ns_name, owner_key, record_event
from agent.controllers.replicaset import claim_selected, pod_available, pod_from_template, pod_ready
from agent.controllers.revisions import Revisions

PODS = BY_RESOURCE["pods"]
PVCS = BY_RESOURCE["persistentvolumeclaims"]
REVISION_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
COMPONENT = "statefulset-controller"


def ordinal_of(set_name: str, pod_name: str) -> int:
    """The ordinal in `<set>-<n>`, or -1 when the name is not one of the set's."""
    m = re.fullmatch(re.escape(set_name) + r"-(0|[1-9][0-9]*)", pod_name)
    return int(m.group(1)) if m else -1


def terminating(pod: dict) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def running_and_ready(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and pod_ready(pod)


def finished(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")


def revision_of(pod: dict) -> str:
    return (pod["metadata"].get("labels") or {}).get(REVISION_LABEL, "")


@dataclass(frozen=True)
class Step:
    """One thing to do: create ordinal `ordinal` at `revision`, delete pod `name`."""
    action: str               # "create" | "delete"
    ordinal: int = -1
    revision: str = ""        # "current" | "update" (create)
    name: str = ""


def plan(sts: dict, pods: list[dict], update_revision: str, now: datetime | None = None) -> list[Step]:
    """The steps of this sync, in order (kube's updateStatefulSet). Under
    OrderedReady the list stops at the first pod not yet Running and Ready
    (or still terminating); under Parallel every missing pod is created and
    every condemned one deleted at once. Rolling updates replace one pod at a
    time, highest ordinal first, none below the partition."""
    now = now or datetime.now(timezone.utc)
    spec, name = sts["spec"], sts["metadata"]["name"]
    start = ((spec.get("ordinals") or {}).get("start")) or 0
    count = spec.get("replicas", 1)
    min_ready = spec.get("minReadySeconds", 0) or 0
    strategy = spec.get("updateStrategy") or {}
    monotonic = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
    partition = ((strategy.get("rollingUpdate") or {}).get("partition") or 0)
    replicas: list[dict | None] = [None] * count
    condemned = []
    for pod in pods:
        o = ordinal_of(name, pod["metadata"]["name"])
        if start <= o < start + count:
            replicas[o - start] = pod
        elif o >= 0:
            condemned.append(pod)
    condemned.sort(key=lambda p: -ordinal_of(name, p["metadata"]["name"]))

    def healthy(pod):
        return running_and_ready(pod) and pod_available(pod, min_ready, now) and not terminating(pod)
    unhealthy = [p for p in replicas + condemned if p is not None and not healthy(p)]
    first_unhealthy = min(unhealthy, key=lambda p: ordinal_of(name, p["metadata"]["name"]), default=None)
    steps: list[Step] = []
    for i, pod in enumerate(replicas):
        if pod is not None and finished(pod) and not terminating(pod):
            steps.append(Step("delete", name=pod["metadata"]["name"]))
            if monotonic:
                return steps
            continue
        if pod is None:
            current = strategy.get("type", "RollingUpdate") == "RollingUpdate" and i < partition
            steps.append(Step("create", start + i, "current" if current else "update"))
            if monotonic:
                return steps
            continue
        if monotonic and (terminating(pod) or not healthy(pod)):
            return steps
    for pod in condemned:
        if terminating(pod):
            if monotonic:
                return steps
            continue
        if monotonic and first_unhealthy is not None and first_unhealthy is not pod:
            return steps
        steps.append(Step("delete", name=pod["metadata"]["name"]))
        if monotonic:
            return steps
    if strategy.get("type", "RollingUpdate") != "RollingUpdate" or steps:
        return steps
    for i in range(count - 1, partition - 1, -1):
        pod = replicas[i]
        if revision_of(pod) != update_revision and not terminating(pod):
            return [Step("delete", name=pod["metadata"]["name"])]
        if not healthy(pod):
            return []
    return []


def statefulset_status(sts: dict, pods: list[dict], current: str, update: str,
                       now: datetime | None = None) -> dict:
    """computeReplicaStatus and completeRollingUpdate: counts over the
    set's pods; a RollingUpdate whose pods are all updated and ready makes
    the update revision current."""
    now = now or datetime.now(timezone.utc)
    min_ready = sts["spec"].get("minReadySeconds", 0) or 0
    live = [p for p in pods if not terminating(p)]
    status = {
        "observedGeneration": sts["metadata"].get("generation", 1),
        "replicas": len(pods),
        "readyReplicas": sum(1 for p in pods if running_and_ready(p)),
        "availableReplicas": sum(1 for p in pods if running_and_ready(p) and pod_available(p, min_ready, now)),
        "currentReplicas": sum(1 for p in live if revision_of(p) == current),
        "updatedReplicas": sum(1 for p in live if revision_of(p) == update),
        "currentRevision": current, "updateRevision": update,
        "collisionCount": (sts.get("status") or {}).get("collisionCount", 0) or 0,
    }
    rolling = (sts["spec"].get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
    if rolling and status["updatedReplicas"] == status["replicas"] == status["readyReplicas"]:
        status["currentReplicas"], status["currentRevision"] = status["updatedReplicas"], update
    return {k: v for k, v in status.items() if v or k in ("replicas", "availableReplicas", "collisionCount",
                                                          "observedGeneration")}


def new_pod(sts: dict, revision: dict, ordinal: int) -> dict:
    """newStatefulSetPod from the template of `revision` (a ControllerRevision)."""
    owner = {**sts, "spec": {**sts["spec"], "template": _template_of(revision)}}
    pod = pod_from_template(owner)
    name = f"{sts['metadata']['name']}-{ordinal}"
    md = pod["metadata"]
    md["name"] = name
    md.pop("generateName", None)
    md["labels"] = {**md.get("labels", {}), POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal),
                    REVISION_LABEL: revision["metadata"]["name"]}
    claims = [c for c in sts["spec"].get("volumeClaimTemplates") or [] if (c.get("metadata") or {}).get("name")]
    if claims:                      # updateStorage: each template's claim, named <template>-<pod>
        names = {c["metadata"]["name"] for c in claims}
        pod["spec"]["volumes"] = [v for v in pod["spec"].get("volumes") or [] if v.get("name") not in names] + [
            {"name": c["metadata"]["name"],
             "persistentVolumeClaim": {"claimName": f"{c['metadata']['name']}-{name}"}} for c in claims]
    pod["spec"]["hostname"] = name
    if sts["spec"].get("serviceName"):
        pod["spec"]["subdomain"] = sts["spec"]["serviceName"]
    return pod


def new_claims(sts: dict, ordinal: int) -> list[dict]:
    """getPersistentVolumeClaims: the claims pod `ordinal` uses, from the
    volumeClaimTemplates (named <template>-<set>-<ordinal>, labelled with the
    template's labels and the set's selector matchLabels)."""
    pod_name = f"{sts['metadata']['name']}-{ordinal}"
    selector = ((sts["spec"].get("selector") or {}).get("matchLabels")) or {}
    out = []
    for tmpl in sts["spec"].get("volumeClaimTemplates") or []:
        md = tmpl.get("metadata") or {}
        if not md.get("name"):
            continue
        claim_md = {k: v for k, v in md.items() if k in ("labels", "annotations")}
        claim_md.update(name=f"{md['name']}-{pod_name}", namespace=sts["metadata"]["namespace"],
                        labels={**(md.get("labels") or {}), **selector})
        policy = sts["spec"].get("persistentVolumeClaimRetentionPolicy") or {}
        if policy.get("whenDeleted") == "Delete":
            claim_md["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                                            "name": sts["metadata"]["name"], "uid": sts["metadata"]["uid"],
                                            "controller": True, "blockOwnerDeletion": True}]
        out.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": claim_md,
                    "spec": dict(tmpl.get("spec") or {})})
    return out


def _template_of(revision: dict) -> dict:
    tmpl = dict(revision["data"]["spec"]["template"])
    tmpl.pop("$patch", None)
    return tmpl


class StatefulSetController(Controller):
    name = COMPONENT
    watches = {
        "statefulsets": lambda self, o: [ns_name(o)],
        "pods": owner_key("StatefulSet", "statefulsets"),
    }

    def __init__(self, store, registry):
        super().__init__(store, registry)
        self.revisions = Revisions(store, registry)

    def sync(self, key):
        ns, name = key
        sts = self.live("statefulsets", ns, name)
        if sts is None:
            return None
        uid = sts["metadata"]["uid"]
        pods = claim_selected(self.store, self.registry, sts, lambda p: ordinal_of(name, p["metadata"]["name"]) >= 0)
        if pods is None:
            return None
        history = self.revisions.owned(sts)
        update = self.revisions.sync(sts, history)
        history = self.revisions.owned(sts)
        by_name = {r["metadata"]["name"]: r for r in history}
        current = by_name.get((sts.get("status") or {}).get("currentRevision")) or update
        blocked = False
        for step in plan(sts, pods, update["metadata"]["name"]):
            if not self._do(sts, step, current if step.revision == "current" else update):
                blocked = True           # the name is still taken (a pod terminating): look again soon
                break
        pods = [p for p in self.store.list("pods", ns)[0] if (controller_ref(p) or {}).get("uid") == uid]
        status = statefulset_status(sts, pods, current["metadata"]["name"], update["metadata"]["name"])
        self.put_status("statefulsets", sts, status)
        in_use = {status.get("currentRevision"), status.get("updateRevision")} | {revision_of(p) for p in pods}
        self.revisions.truncate(sts, history, in_use)
        min_ready = sts["spec"].get("minReadySeconds", 0) or 0
        if min_ready and status.get("readyReplicas", 0) != status.get("availableReplicas", 0):
            return float(min_ready)
        return 1.0 if blocked else None

    def _do(self, sts: dict, step: Step, revision: dict) -> bool:
        ns, set_name = sts["metadata"]["namespace"], sts["metadata"]["name"]
        if step.action == "create":
            pod = new_pod(sts, revision, step.ordinal)
            verb, pod_name = "create", pod["metadata"]["name"]
        else:
            verb, pod_name = "delete", step.name
        try:
            if verb == "create":
                if not self._create_claims(sts, step.ordinal, pod_name):
                    return False
                self.registry.create(PODS, ns, pod)
            else:
                self.registry.delete(PODS, ns, pod_name)
        except APIError as e:
            if e.code in (404, 409):       # gone already / the old one still terminating
                return False
            record_event(self.registry, sts, f"Failed{verb.capitalize()}",
                         f"{verb} Pod {pod_name} in StatefulSet {set_name} failed error: {e.message}",
                         "Warning", COMPONENT)
            raise
        record_event(self.registry, sts, f"Successful{verb.capitalize()}",
                     f"{verb} Pod {pod_name} in StatefulSet {set_name} successful", component=COMPONENT)
        return True

    def _create_claims(self, sts: dict, ordinal: int, pod_name: str) -> bool:
        """createPersistentVolumeClaims: each missing claim of the pod; False
        (try again later) while one of them is still being deleted."""
        ns, set_name = sts["metadata"]["namespace"], sts["metadata"]["name"]
        for claim in new_claims(sts, ordinal):
            name = claim["metadata"]["name"]
            try:
                if self.store.get("persistentvolumeclaims", ns, name)["metadata"].get("deletionTimestamp"):
                    return False
                continue
            except NotFound:
                pass
            try:
                self.registry.create(PVCS, ns, claim)
            except APIError as e:
                if e.code == 409:       # made meanwhile
                    continue
                record_event(self.registry, sts, "FailedCreate",
                             f"create Claim {name} for Pod {pod_name} in StatefulSet {set_name} failed error: "
                             f"{e.message}", "Warning", COMPONENT)
                raise
            record_event(self.registry, sts, "SuccessfulCreate",
                         f"create Claim {name} Pod {pod_name} in StatefulSet {set_name} success", component=COMPONENT)
        return True
