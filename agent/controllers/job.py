"""The Job controller (batch/v1), as kube-controller-manager's: run pods
from the template until `completions` succeed, at most `parallelism` at a
time; count failures (failed pods, plus container restarts under
restartPolicy OnFailure) against `backoffLimit`, waiting 10s, 20s, 40s...
(at most 6m) before replacing a failed pod; fail at `activeDeadlineSeconds`;
suspend and resume; Indexed completion mode (each pod's index in the
`batch.kubernetes.io/job-completion-index` annotation and label, the
JOB_COMPLETION_INDEX variable, hostname `<job>-<index>`, status
completedIndexes); the conditions kube 1.32 sets (SuccessCriteriaMet then
Complete, FailureTarget then Failed, Suspended); and, as the TTL-after-
finished controller, delete a finished Job `ttlSecondsAfterFinished` later.

`job_decision` is the pure core: given a Job, its pods and the time, what
to create, what to delete, the new status and when to look again.
"""
from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from agent.api.durations import parse_time
from agent.api.kinds import BY_RESOURCE
from agent.apiserver.registry import APIError
from agent.controllers.base import Controller, generated_name, ns_name, owner_key, owner_ref, record_event
from agent.controllers.replicaset import claim_selected, pod_ready

PODS, JOBS = BY_RESOURCE["pods"], BY_RESOURCE["jobs"]
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
COMPONENT = "job-controller"
BACKOFF_BASE, BACKOFF_MAX = 10.0, 360.0


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def phase(pod: dict) -> str:
    return (pod.get("status") or {}).get("phase", "Pending")


def pod_index(pod: dict) -> int:
    v = (pod["metadata"].get("annotations") or {}).get(INDEX_KEY)
    return int(v) if v is not None and str(v).isdigit() else -1


def restarts(pod: dict) -> int:
    return sum(cs.get("restartCount", 0) or 0 for cs in (pod.get("status") or {}).get("containerStatuses") or [])


def finish_time(pod: dict) -> datetime | None:
    """When a terminated pod stopped: its containers' finishedAt, else its conditions' last change."""
    st = pod.get("status") or {}
    times = [parse_time(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
             for cs in st.get("containerStatuses") or []]
    times += [parse_time(c.get("lastTransitionTime")) for c in st.get("conditions") or []]
    times = [t for t in times if t]
    return max(times) if times else None


def format_indexes(indexes) -> str:
    """1,2,3,5,7 -> "1-3,5,7" (status.completedIndexes)."""
    out, run = [], []
    for i in sorted(set(indexes)):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 2 else ",".join(map(str, run)))
        run = [i]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 2 else ",".join(map(str, run)))
    return ",".join(out)


def _condition(ctype: str, reason: str, message: str, now: datetime, status: str = "True") -> dict:
    return {"type": ctype, "status": status, "lastProbeTime": iso(now), "lastTransitionTime": iso(now),
            "reason": reason, "message": message}


def finished(job: dict) -> str | None:
    """'Complete' or 'Failed' once the Job has that condition."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return c["type"]
    return None


@dataclass
class Decision:
    create: list[int] = field(default_factory=list)    # indexes (-1: NonIndexed)
    delete: list[str] = field(default_factory=list)    # pod names
    status: dict = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)   # (type, reason, message)
    requeue: float | None = None


def job_decision(job: dict, pods: list[dict], now: datetime) -> Decision:
    spec = job["spec"]
    old = job.get("status") or {}
    d = Decision(status=copy.deepcopy(old))
    st = d.status
    st.setdefault("uncountedTerminatedPods", {})
    conds = st.setdefault("conditions", [])
    indexed = spec.get("completionMode") == "Indexed"
    completions = spec.get("completions")
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    active = [p for p in live if phase(p) not in ("Succeeded", "Failed")]
    succeeded = [p for p in pods if phase(p) == "Succeeded"]
    failed = [p for p in pods if phase(p) == "Failed"]
    done_indexes = {pod_index(p) for p in succeeded if 0 <= pod_index(p) < (completions or 0)} if indexed else set()
    n_succeeded = len(done_indexes) if indexed else len(succeeded)
    on_failure = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") == "OnFailure"
    n_failures = len(failed) + (sum(restarts(p) for p in active) if on_failure else 0)
    st["failed"], st["succeeded"] = len(failed), n_succeeded
    st["terminating"] = len(pods) - len(live)
    if indexed:
        st["completedIndexes"] = format_indexes(done_indexes)
    if finished(job):
        st["active"], st["ready"] = len(active), sum(1 for p in active if pod_ready(p))
        d.delete = [p["metadata"]["name"] for p in active]
        return _tidy(d)

    def finish(ctype: str, interim: str, reason: str, message: str, etype: str = "Normal"):
        conds[:] = [c for c in conds if c.get("type") not in (interim, ctype)]
        conds.append(_condition(interim, reason, message, now))
        conds.append(_condition(ctype, reason, message, now))
        if ctype == "Complete":
            st["completionTime"] = iso(now)
        d.delete = [p["metadata"]["name"] for p in active]
        d.events.append((etype, "Completed" if ctype == "Complete" else reason,
                         "Job completed" if ctype == "Complete" else message))
    suspended = bool(spec.get("suspend"))
    was_suspended = any(c.get("type") == "Suspended" and c.get("status") == "True" for c in conds)
    if suspended:
        if not was_suspended:
            conds[:] = [c for c in conds if c.get("type") != "Suspended"]
            conds.append(_condition("Suspended", "JobSuspended", "Job suspended", now))
            d.events.append(("Normal", "Suspended", "Job suspended"))
        d.delete = [p["metadata"]["name"] for p in active]
        st["active"], st["ready"] = 0, 0
        return _tidy(d)
    if was_suspended:
        conds[:] = [c for c in conds if c.get("type") != "Suspended"]
        conds.append(_condition("Suspended", "JobResumed", "Job resumed", now, "False"))
        d.events.append(("Normal", "Resumed", "Job resumed"))
        st["startTime"] = iso(now)
    st.setdefault("startTime", iso(now))
    start = parse_time(st["startTime"]) or now
    deadline = spec.get("activeDeadlineSeconds")
    backoff_limit = spec.get("backoffLimit", 6)
    if completions is not None and n_succeeded >= completions or \
            completions is None and succeeded and not active:
        finish("Complete", "SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods")
    elif n_failures > backoff_limit:
        finish("Failed", "FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit",
               "Warning")
    elif deadline is not None and now >= start + timedelta(seconds=deadline):
        finish("Failed", "FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline",
               "Warning")
    else:
        _manage(d, job, active, succeeded, failed, done_indexes, now)
        if deadline is not None:
            left = (start + timedelta(seconds=deadline) - now).total_seconds()
            d.requeue = max(0.5, min(d.requeue or left, left))
    st["active"] = len(active) - len([p for p in active if p["metadata"]["name"] in d.delete])
    st["ready"] = sum(1 for p in active if pod_ready(p))
    return _tidy(d)


def _manage(d: Decision, job: dict, active: list[dict], succeeded: list[dict], failed: list[dict],
            done_indexes: set[int], now: datetime) -> None:
    """manageJob: create or delete pods toward the wanted number of active ones."""
    spec = job["spec"]
    completions, parallelism = spec.get("completions"), spec.get("parallelism", 1)
    if failed:
        last = max((finish_time(p) or now) for p in failed)
        wait = min(BACKOFF_BASE * 2 ** (len(failed) - 1), BACKOFF_MAX)
        ready_at = last + timedelta(seconds=wait)
        if now < ready_at:
            d.requeue = (ready_at - now).total_seconds()
            return
    if spec.get("completionMode") == "Indexed":
        running = {pod_index(p) for p in active}
        want = [i for i in range(completions) if i not in done_indexes and i not in running]
        extra = [p for p in active if pod_index(p) in done_indexes or pod_index(p) < 0]
        room = max(0, parallelism - (len(active) - len(extra)))
        d.create = want[:room]
        d.delete = [p["metadata"]["name"] for p in extra]
        return
    want = parallelism
    if completions is not None:
        want = min(completions - len(succeeded), parallelism)
    elif succeeded:
        want = 0
    if len(active) < want:
        d.create = [-1] * (want - len(active))
    elif len(active) > want:
        newest = sorted(active, key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True)
        d.delete = [p["metadata"]["name"] for p in newest[:len(active) - want]]


def _tidy(d: Decision) -> Decision:
    st = d.status
    if not st.get("conditions"):
        st.pop("conditions", None)
    for k in ("failed", "succeeded", "active"):
        if not st.get(k):
            st.pop(k, None)
    if not st.get("completedIndexes"):
        st.pop("completedIndexes", None)
    return d


def pod_for(job: dict, index: int, rng=random) -> dict:
    """A pod from the Job's template; in Indexed mode carrying its index."""
    tmpl = copy.deepcopy(job["spec"]["template"])
    md, spec = tmpl.get("metadata") or {}, tmpl.get("spec") or {}
    name = job["metadata"]["name"]
    prefix = f"{name}-{index}-" if index >= 0 else f"{name}-"
    labels, annotations = dict(md.get("labels") or {}), dict(md.get("annotations") or {})
    if index >= 0:
        annotations[INDEX_KEY] = labels[INDEX_KEY] = str(index)
        spec.setdefault("hostname", f"{name}-{index}")
        env = {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
            "apiVersion": "v1", "fieldPath": f"metadata.annotations['{INDEX_KEY}']"}}}
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            c["env"] = [e for e in c.get("env") or [] if e.get("name") != "JOB_COMPLETION_INDEX"] + [env]
    pod_md = {"name": generated_name(prefix, rng), "generateName": prefix, "namespace": job["metadata"]["namespace"],
              "labels": labels, "annotations": annotations, "ownerReferences": [owner_ref(job)]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_md, "spec": spec}


def ttl_expiry(job: dict) -> datetime | None:
    """When a finished Job with ttlSecondsAfterFinished is due for deletion."""
    ttl = job["spec"].get("ttlSecondsAfterFinished")
    if ttl is None or not finished(job):
        return None
    st = job.get("status") or {}
    times = [parse_time(st.get("completionTime"))] + [
        parse_time(c.get("lastTransitionTime")) for c in st.get("conditions") or []
        if c.get("type") in ("Complete", "Failed")]
    done = max((t for t in times if t), default=None)
    return done + timedelta(seconds=ttl) if done else None


class JobController(Controller):
    name = COMPONENT
    watches = {
        "jobs": lambda self, o: [ns_name(o)],
        "pods": owner_key("Job", "jobs"),
    }

    def __init__(self, store, registry, clock=None):
        super().__init__(store, registry)
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    def sync(self, key):
        ns, name = key
        job = self.live("jobs", ns, name)
        if job is None:
            return None
        now = self.clock()
        expiry = ttl_expiry(job)
        if expiry is not None:
            if now >= expiry:
                self._delete(JOBS, ns, name)
                return None
            return (expiry - now).total_seconds()
        pods = claim_selected(self.store, self.registry, job)
        if pods is None:
            return None
        d = job_decision(job, pods, now)
        for pod_name in d.delete:
            if self._delete(PODS, ns, pod_name):
                record_event(self.registry, job, "SuccessfulDelete", f"Deleted pod: {pod_name}", component=COMPONENT)
        for index in d.create:
            try:
                pod = self.registry.create(PODS, ns, pod_for(job, index))
            except APIError as e:
                record_event(self.registry, job, "FailedCreate", f"Error creating: {e.message}", "Warning", COMPONENT)
                return 5.0
            record_event(self.registry, job, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}",
                         component=COMPONENT)
        self.put_status("jobs", job, d.status)
        for etype, reason, message in d.events:
            record_event(self.registry, job, reason, message, etype, COMPONENT)
        if finished({"status": d.status}) and job["spec"].get("ttlSecondsAfterFinished") is not None:
            return float(job["spec"]["ttlSecondsAfterFinished"]) or 0.1
        return d.requeue

    def _delete(self, kind, ns: str, name: str) -> bool:
        try:
            self.registry.delete(kind, ns, name)
        except APIError as e:
            if e.code != 404:
                raise
            return False
        return True
