"""The DaemonSet controller, as kube-controller-manager's: one pod per node
that should run it (the template's nodeSelector and required node
affinity, taints against its tolerations: agent/api/nodeaffinity.py),
following nodes as they are added and removed (`nsplane node add/remove`);
each pod pinned to its node through a required node affinity on
`metadata.name` (which the scheduler honours), with the tolerations kube
adds to daemon pods; failed pods replaced; updates through
ControllerRevisions (`controller-revision-hash`, `pod-template-generation`
labels) with RollingUpdate (maxUnavailable, or maxSurge) or OnDelete;
status desiredNumberScheduled, currentNumberScheduled, numberMisscheduled,
numberReady, updatedNumberScheduled, numberAvailable, numberUnavailable.

`daemon_plan` is the pure core: pods to create (node names) and delete.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, timezone

from agent.api.kinds import BY_RESOURCE
from agent.api.nodeaffinity import affinity_matches, untolerated_taint
from agent.apiserver.registry import APIError
from agent.controllers.base import Controller, generated_name, ns_name, owner_key, owner_ref, record_event
from agent.controllers.deployment import resolve
from agent.controllers.replicaset import claim_selected, pod_available
from agent.controllers.revisions import HASH_LABEL, Revisions

PODS = BY_RESOURCE["pods"]
COMPONENT = "daemonset-controller"
REVISION_LABEL = "controller-revision-hash"
GENERATION_LABEL = "pod-template-generation"
# The tolerations kube's DaemonSet controller gives every daemon pod (util.AddOrUpdateDaemonPodTolerations).
DAEMON_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
NETWORK_TOLERATION = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}


def daemon_pod_spec(template_spec: dict, node: str | None) -> dict:
    """The template's pod spec with kube's daemon tolerations and, for a
    node, the required affinity that pins it there."""
    spec = copy.deepcopy(template_spec)
    tolerations = list(spec.get("tolerations") or [])
    extra = list(DAEMON_TOLERATIONS) + ([NETWORK_TOLERATION] if spec.get("hostNetwork") else [])
    for t in extra:
        if not any(x.get("key") == t["key"] and x.get("effect") == t["effect"] for x in tolerations):
            tolerations.append(dict(t))
    spec["tolerations"] = tolerations
    if node is not None:
        aff = spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
        aff["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}
    return spec


def should_run(ds: dict, node: dict) -> bool:
    """NodeShouldRunDaemonPod: affinity/selector match, taints tolerated."""
    spec = daemon_pod_spec((ds["spec"].get("template") or {}).get("spec") or {}, None)
    return affinity_matches(spec, node) and untolerated_taint(spec, node) is None


def node_of(pod: dict) -> str | None:
    """The node a daemon pod is bound to, or pinned to by its affinity."""
    if pod["spec"].get("nodeName"):
        return pod["spec"]["nodeName"]
    terms = (((pod["spec"].get("affinity") or {}).get("nodeAffinity") or {})
             .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    for t in terms:
        for f in t.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and len(f.get("values") or []) == 1:
                return f["values"][0]
    return None


def _failed(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") == "Failed"


def _terminating(pod: dict) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


@dataclass
class DaemonPlan:
    create: list[str] = field(default_factory=list)    # node names
    delete: list[str] = field(default_factory=list)    # pod names
    status: dict = field(default_factory=dict)


def daemon_plan(ds: dict, nodes: list[dict], pods: list[dict], new_hash: str, now: datetime) -> DaemonPlan:
    spec = ds["spec"]
    min_ready = spec.get("minReadySeconds", 0) or 0
    plan = DaemonPlan()
    by_node: dict[str, list[dict]] = {}
    for p in pods:
        by_node.setdefault(node_of(p) or "", []).append(p)
    wanted = sorted(n["metadata"]["name"] for n in nodes if should_run(ds, n))
    wanted_set = set(wanted)

    def is_new(p):
        return (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == new_hash

    def available(p):
        return not _terminating(p) and pod_available(p, min_ready, now)
    live: dict[str, list[dict]] = {}
    for node, node_pods in by_node.items():
        if node not in wanted_set:
            plan.delete += [p["metadata"]["name"] for p in node_pods if not _terminating(p)]
            continue
        for p in node_pods:
            if _failed(p) and not _terminating(p):
                plan.delete.append(p["metadata"]["name"])
        live[node] = sorted((p for p in node_pods if not _terminating(p) and not _failed(p)),
                            key=lambda p: p["metadata"].get("creationTimestamp", ""))
    strategy = spec.get("updateStrategy") or {}
    rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
    ru = strategy.get("rollingUpdate") or {}
    surge = resolve(ru.get("maxSurge", 0), len(wanted), True) if rolling else 0
    max_unavailable = resolve(ru.get("maxUnavailable", 1), len(wanted), True) if rolling else 0
    if rolling and surge == 0 and max_unavailable == 0:
        max_unavailable = 1
    unavailable = 0
    old_available: list[tuple[str, dict]] = []
    for node in wanted:
        node_pods = live.get(node, [])
        if not node_pods:
            if not any(_terminating(p) for p in by_node.get(node, [])):
                plan.create.append(node)
            unavailable += 1
            continue
        new = [p for p in node_pods if is_new(p)]
        old = [p for p in node_pods if not is_new(p)]
        if len(node_pods) > 1 and not (surge and old and new and not available(new[0])):
            keep = (new or old)[0]
            plan.delete += [p["metadata"]["name"] for p in node_pods if p is not keep]
            node_pods = [keep]
            new, old = ([keep], []) if is_new(keep) else ([], [keep])
        if not any(available(p) for p in node_pods):
            unavailable += 1
        if rolling and old and not new:
            if not available(old[0]):
                plan.delete.append(old[0]["metadata"]["name"])     # an unavailable old pod can always go
            else:
                old_available.append((node, old[0]))
    if rolling and surge:
        surging = sum(1 for node in wanted if len(live.get(node, [])) > 1)
        for node, pod in old_available[:max(0, surge - surging)]:
            plan.create.append(node)
    elif rolling:
        budget = max(0, max_unavailable - unavailable)
        plan.delete += [pod["metadata"]["name"] for _, pod in old_available[:budget]]
    plan.status = _status(ds, wanted, by_node, is_new, available)
    return plan


def _status(ds, wanted, by_node, is_new, available) -> dict:
    current = ready = updated = avail = 0
    for node in wanted:
        node_pods = [p for p in by_node.get(node, []) if not _terminating(p)]
        if not node_pods:
            continue
        current += 1
        ready += any(_ready(p) for p in node_pods)
        updated += any(is_new(p) for p in node_pods)
        avail += any(available(p) for p in node_pods)
    misscheduled = sum(1 for node, ps in by_node.items()
                       if node not in set(wanted) and any(not _terminating(p) for p in ps))
    status = {"currentNumberScheduled": current, "numberMisscheduled": misscheduled,
              "desiredNumberScheduled": len(wanted), "numberReady": ready,
              "observedGeneration": ds["metadata"].get("generation", 1), "updatedNumberScheduled": updated,
              "numberAvailable": avail, "numberUnavailable": len(wanted) - avail}
    return {k: v for k, v in status.items() if v or k in ("currentNumberScheduled", "numberMisscheduled",
                                                          "desiredNumberScheduled", "numberReady")}


def _ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def new_daemon_pod(ds: dict, node: str, revision_hash: str) -> dict:
    tmpl = copy.deepcopy(ds["spec"]["template"])
    md = tmpl.get("metadata") or {}
    prefix = f"{ds['metadata']['name']}-"
    labels = {**(md.get("labels") or {}), REVISION_LABEL: revision_hash,
              GENERATION_LABEL: str(ds["metadata"].get("generation", 1))}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": generated_name(prefix), "generateName": prefix,
                         "namespace": ds["metadata"]["namespace"], "labels": labels,
                         "annotations": dict(md.get("annotations") or {}), "ownerReferences": [owner_ref(ds)]},
            "spec": daemon_pod_spec(tmpl.get("spec") or {}, node)}


class DaemonSetController(Controller):
    name = COMPONENT
    watches = {
        "daemonsets": lambda self, o: [ns_name(o)],
        "pods": owner_key("DaemonSet", "daemonsets"),
        "nodes": lambda self, o: [ns_name(d) for d in self.store.list("daemonsets")[0]],
    }

    def __init__(self, store, registry):
        super().__init__(store, registry)
        self.revisions = Revisions(store, registry)

    def sync(self, key):
        ns, name = key
        ds = self.live("daemonsets", ns, name)
        if ds is None:
            return None
        pods = claim_selected(self.store, self.registry, ds)
        if pods is None:
            return None
        history = self.revisions.owned(ds)
        revision = self.revisions.sync(ds, history)
        new_hash = revision["metadata"]["labels"][HASH_LABEL]
        plan = daemon_plan(ds, self.store.list("nodes")[0], pods, new_hash, datetime.now(timezone.utc))
        for pod_name in plan.delete:
            try:
                self.registry.delete(PODS, ns, pod_name)
            except APIError as e:
                if e.code == 404:
                    continue
                raise
            record_event(self.registry, ds, "SuccessfulDelete", f"Deleted pod: {pod_name}", component=COMPONENT)
        for node in plan.create:
            try:
                pod = self.registry.create(PODS, ns, new_daemon_pod(ds, node, new_hash))
            except APIError as e:
                record_event(self.registry, ds, "FailedCreate", f"Error creating: {e.message}", "Warning", COMPONENT)
                return 5.0
            record_event(self.registry, ds, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}",
                         component=COMPONENT)
        self.put_status("daemonsets", ds, plan.status)
        in_use = {revision["metadata"]["name"]} | {
            f"{name}-{(p['metadata'].get('labels') or {}).get(REVISION_LABEL)}" for p in pods}
        self.revisions.truncate(ds, self.revisions.owned(ds), in_use)
        min_ready = ds["spec"].get("minReadySeconds", 0) or 0
        if min_ready and plan.status.get("numberReady", 0) != plan.status.get("numberAvailable", 0):
            return float(min_ready)
        return None
