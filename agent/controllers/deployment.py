"""The Deployment controller: one ReplicaSet per pod template (named by the
template hash, `pod-template-hash` label), rolled with RollingUpdate
(maxSurge / maxUnavailable) or Recreate; status and conditions as kube's."""
from __future__ import annotations

import copy
import json
import math

from agent.api.kinds import BY_RESOURCE
from agent.api.objects import now_iso
from agent.apiserver.registry import APIError
from agent.controllers.base import (
    ALPHANUMS,
    Controller,
    controller_ref,
    ns_name,
    owned_by,
    owner_ref,
    record_event,
)
from agent.controllers.replicaset import active, pod_ready

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"


def template_hash(template: dict, collisions: int = 0) -> str:
    """FNV-1a over the template, encoded like rand.SafeEncodeString."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collisions:
        data += str(collisions).encode()
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return "".join(ALPHANUMS[ord(c) % len(ALPHANUMS)] for c in str(h))


def resolve(value, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        frac = total * int(value[:-1]) / 100
        return math.ceil(frac) if round_up else math.floor(frac)
    return int(value or 0)


def surge_and_unavailable(deploy: dict) -> tuple[int, int]:
    spec = deploy["spec"]
    ru = spec.get("strategy", {}).get("rollingUpdate", {}) or {}
    replicas = spec.get("replicas", 1)
    surge = resolve(ru.get("maxSurge", "25%"), replicas, True)
    unavailable = resolve(ru.get("maxUnavailable", "25%"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def plan_rollout(replicas: int, surge: int, unavailable: int, new: int, olds: list[tuple[int, int]],
                 new_ready: int) -> tuple[int, list[int]]:
    """Pure RollingUpdate step. olds: [(spec replicas, ready)]; returns the new
    RS's replicas and each old RS's replicas."""
    total = new + sum(r for r, _ in olds)
    new_target = min(new, replicas)
    if new < replicas:
        new_target = new + max(0, min(replicas - new, replicas + surge - total))
    ready = new_ready + sum(rd for _, rd in olds)
    min_available = replicas - unavailable
    new_unavailable = max(0, new_target - new_ready)
    budget = max(0, (new_target + sum(r for r, _ in olds)) - min_available - new_unavailable)
    budget = max(budget, 0) if ready >= min_available else 0
    out = []
    for r, rd in olds:
        unhealthy = r - rd          # not-ready old pods can always go
        cut = min(r, unhealthy + budget)
        budget -= max(0, cut - unhealthy)
        out.append(r - cut)
    return new_target, out


class DeploymentController(Controller):
    name = "deployment-controller"
    watches = {
        "deployments": lambda self, o: [ns_name(o)],
        "replicasets": lambda self, o: [(o["metadata"]["namespace"], r["name"])
                                        for r in [controller_ref(o)] if r and r.get("kind") == "Deployment"],
    }

    def sync(self, key):
        ns, name = key
        d = self.live("deployments", ns, name)
        if d is None:
            return None
        uid = d["metadata"]["uid"]
        sets = [rs for rs in self.store.list("replicasets", ns)[0] if owned_by(rs, uid)]
        h = template_hash(d["spec"]["template"])
        new = next((rs for rs in sets if rs["metadata"].get("labels", {}).get(HASH_LABEL) == h), None)
        olds = [rs for rs in sets if rs is not new]
        if new is None:
            new = self._create_rs(d, h, sets)
            if new is None:
                return 5.0
        replicas = d["spec"].get("replicas", 1)
        pods = self.store.list("pods", ns)[0]
        ready_of = {rs["metadata"]["uid"]: sum(1 for p in pods if owned_by(p, rs["metadata"]["uid"])
                                               and active(p) and pod_ready(p)) for rs in sets + [new]}
        if d["spec"].get("strategy", {}).get("type") == "Recreate":
            live_old = sum(1 for p in pods for rs in olds if owned_by(p, rs["metadata"]["uid"]))
            targets = [0] * len(olds)
            new_target = replicas if live_old == 0 else 0
        else:
            surge, unavailable = surge_and_unavailable(d)
            new_target, targets = plan_rollout(
                replicas, surge, unavailable, new["spec"].get("replicas", 0),
                [(rs["spec"].get("replicas", 0), ready_of[rs["metadata"]["uid"]]) for rs in olds],
                ready_of[new["metadata"]["uid"]])
        self._scale(d, new, new_target)
        for rs, t in zip(olds, targets):
            self._scale(d, rs, t)
        self._status(d, new, olds, pods)
        settled = new_target == replicas and all(t == 0 for t in targets)
        return None if settled else 0.5

    def _create_rs(self, d: dict, h: str, existing: list[dict]) -> dict | None:
        tmpl = copy.deepcopy(d["spec"]["template"])
        tmpl.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
        sel = copy.deepcopy(d["spec"]["selector"])
        sel.setdefault("matchLabels", {})[HASH_LABEL] = h
        revision = 1 + max((int(rs["metadata"].get("annotations", {}).get(REVISION, 0)) for rs in existing), default=0)
        old_total = sum(rs["spec"].get("replicas", 0) for rs in existing)
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": f"{d['metadata']['name']}-{h}", "namespace": d["metadata"]["namespace"],
                           "labels": dict(tmpl["metadata"]["labels"]),
                           "annotations": {REVISION: str(revision),
                                           "deployment.kubernetes.io/desired-replicas": str(d["spec"].get("replicas", 1))},
                           "ownerReferences": [owner_ref(d)]},
              "spec": {"replicas": d["spec"].get("replicas", 1) if old_total == 0 else 0,
                       "selector": sel, "template": tmpl}}
        try:
            rs = self.registry.create(BY_RESOURCE["replicasets"], d["metadata"]["namespace"], rs)
        except APIError as e:
            record_event(self.registry, d, "FailedCreate", e.message, "Warning", "deployment-controller")
            return None
        record_event(self.registry, d, "ScalingReplicaSet",
                      f"Scaled up replica set {rs['metadata']['name']} to {rs['spec']['replicas']}",
                      component="deployment-controller")
        return rs

    def _scale(self, d: dict, rs: dict, target: int) -> None:
        cur = rs["spec"].get("replicas", 0)
        if cur == target:
            return

        def put(o):
            if o["spec"].get("replicas") == target:
                return None
            o["spec"]["replicas"] = target
            o["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/desired-replicas"] = \
                str(d["spec"].get("replicas", 1))
            return o
        self.registry.guaranteed_update(BY_RESOURCE["replicasets"], rs["metadata"]["namespace"], rs["metadata"]["name"],
                                        put)
        verb = "up" if target > cur else "down"
        record_event(self.registry, d, "ScalingReplicaSet",
                      f"Scaled {verb} replica set {rs['metadata']['name']} from {cur} to {target}",
                      component="deployment-controller")

    def _status(self, d: dict, new: dict, olds: list[dict], pods: list[dict]) -> None:
        def count(rs, ready_only=False):
            return sum(1 for p in pods if owned_by(p, rs["metadata"]["uid"]) and active(p)
                       and (not ready_only or pod_ready(p)))
        total = count(new) + sum(count(rs) for rs in olds)
        ready = count(new, True) + sum(count(rs, True) for rs in olds)
        replicas = d["spec"].get("replicas", 1)
        _, unavailable = surge_and_unavailable(d)
        available = ready >= replicas - unavailable
        now = now_iso()
        old_conds = {c["type"]: c for c in d.get("status", {}).get("conditions", [])}

        def cond(ctype, ok, reason, message):
            prev = old_conds.get(ctype)
            status = "True" if ok else "False"
            if prev and prev.get("status") == status and prev.get("reason") == reason:
                return prev
            return {"type": ctype, "status": status, "reason": reason, "message": message,
                    "lastUpdateTime": now, "lastTransitionTime": now}
        rsname = new["metadata"]["name"]
        complete = count(new) == replicas and total == replicas and count(new, True) == replicas
        status = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": total, "updatedReplicas": count(new), "readyReplicas": ready,
            "availableReplicas": ready, "unavailableReplicas": max(0, replicas - ready),
            "conditions": [
                cond("Available", available, "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                     "Deployment has minimum availability." if available else "Deployment does not have minimum availability."),
                cond("Progressing", True, "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                     f'ReplicaSet "{rsname}" has successfully progressed.' if complete
                     else f'ReplicaSet "{rsname}" is progressing.'),
            ]}
        status = {k: v for k, v in status.items() if v or k in ("observedGeneration", "replicas", "conditions")}
        self.put_status("deployments", d, status)
