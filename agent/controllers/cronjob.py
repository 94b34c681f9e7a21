"""The CronJob controller (batch/v1), as kube-controller-manager's
cronjob-controller (v2): at each time the schedule names (in spec.timeZone)
create a Job from spec.jobTemplate named `<cronjob>-<minutes since the
epoch>`, annotated with `batch.kubernetes.io/cronjob-scheduled-timestamp`;
honour suspend, startingDeadlineSeconds (a start missed by more than that
is skipped, with a MissSchedule event) and concurrencyPolicy (Allow; Forbid
skips while a Job is active; Replace deletes the active ones first); keep
status.active, lastScheduleTime and lastSuccessfulTime; delete finished
Jobs beyond successfulJobsHistoryLimit / failedJobsHistoryLimit.

The clock is injectable (`CronJobController(..., clock=fn)`), so a test can
drive it; `cronjob_decision` is the pure core.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from agent.api import cron
from agent.api.durations import parse_time
from agent.api.kinds import BY_RESOURCE
from agent.apiserver.registry import APIError
from agent.controllers.base import Controller, controller_ref, ns_name, owner_key, owner_ref, record_event
from agent.controllers.job import finished, iso

JOBS = BY_RESOURCE["jobs"]
COMPONENT = "cronjob-controller"
SCHEDULED_KEY = "batch.kubernetes.io/cronjob-scheduled-timestamp"


@dataclass
class CronDecision:
    create: datetime | None = None            # the scheduled time of the Job to create
    delete: list[str] = field(default_factory=list)
    replace: list[str] = field(default_factory=list)
    status: dict = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    requeue: float | None = None


def job_name(cj: dict, scheduled: datetime) -> str:
    """getJobName: the CronJob's name and the scheduled time in minutes."""
    return f"{cj['metadata']['name']}-{int(scheduled.timestamp()) // 60}"


def _started(job: dict) -> str:
    return (job.get("status") or {}).get("startTime") or job["metadata"].get("creationTimestamp", "")


def _ref(job: dict) -> dict:
    md = job["metadata"]
    return {"kind": "Job", "namespace": md["namespace"], "name": md["name"], "uid": md["uid"],
            "apiVersion": "batch/v1", "resourceVersion": md.get("resourceVersion", "")}


def cronjob_decision(cj: dict, jobs: list[dict], now: datetime) -> CronDecision:
    """What to do now for a CronJob that owns `jobs`."""
    spec = cj["spec"]
    d = CronDecision(status=copy.deepcopy(cj.get("status") or {}))
    st = d.status
    running = [j for j in jobs if not finished(j) and not j["metadata"].get("deletionTimestamp")]
    known = {r.get("uid") for r in st.get("active") or []}
    for j in jobs:
        if finished(j) and j["metadata"]["uid"] in known:
            d.events.append(("Normal", "SawCompletedJob",
                             f"Saw completed job: {j['metadata']['name']}, status: {finished(j)}"))
    st["active"] = [_ref(j) for j in sorted(running, key=lambda j: j["metadata"]["name"])]
    done = [parse_time((j.get("status") or {}).get("completionTime")) for j in jobs if finished(j) == "Complete"]
    done = [t for t in done if t]
    if done:
        last_ok = parse_time(st.get("lastSuccessfulTime"))
        newest = max(done)
        if last_ok is None or newest > last_ok:
            st["lastSuccessfulTime"] = iso(newest)
    for kind, limit in (("Complete", spec.get("successfulJobsHistoryLimit", 3)),
                        ("Failed", spec.get("failedJobsHistoryLimit", 1))):
        old = sorted((j for j in jobs if finished(j) == kind), key=_started)
        if limit is not None:
            d.delete += [j["metadata"]["name"] for j in old[:max(0, len(old) - limit)]]
    if spec.get("suspend"):
        return _tidy(d)
    try:
        sched, tz = cron.parse(spec["schedule"]), cron.zone(spec.get("timeZone"))
    except ValueError as e:
        d.events.append(("Warning", "UnparseableSchedule", f"unparseable schedule: {spec.get('schedule')!r} : {e}"))
        return _tidy(d)
    earliest = parse_time(st.get("lastScheduleTime")) or parse_time(cj["metadata"].get("creationTimestamp")) or now
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None:
        earliest = max(earliest, now - timedelta(seconds=deadline))
    scheduled, missed = sched.last_between(earliest, now, tz)
    nxt = sched.next_after(now, tz)
    d.requeue = max(0.1, (nxt - now).total_seconds()) if nxt else None
    if missed > 100:
        d.events.append(("Warning", "TooManyMissedTimes",
                         "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or "
                         "check clock skew"))
    if scheduled is None:
        return _tidy(d)
    if deadline is not None and scheduled + timedelta(seconds=deadline) < now:
        d.events.append(("Warning", "MissSchedule",
                         f"Missed scheduled time to start a job: {scheduled.astimezone(tz).isoformat()}"))
        return _tidy(d)
    policy = spec.get("concurrencyPolicy", "Allow")
    if policy == "Forbid" and running:
        return _tidy(d)
    if policy == "Replace":
        d.replace = [j["metadata"]["name"] for j in running]
    d.create = scheduled
    return _tidy(d)


def _tidy(d: CronDecision) -> CronDecision:
    if not d.status.get("active"):
        d.status.pop("active", None)
    return d


def job_from_template(cj: dict, scheduled: datetime) -> dict:
    """getJobFromTemplate2: the jobTemplate's labels, annotations and spec,
    owned by the CronJob, with the scheduled time annotated."""
    jt = copy.deepcopy(cj["spec"].get("jobTemplate") or {})
    md = jt.get("metadata") or {}
    tz = cron.zone(cj["spec"].get("timeZone"))
    annotations = dict(md.get("annotations") or {})
    annotations[SCHEDULED_KEY] = scheduled.astimezone(tz).isoformat().replace("+00:00", "Z")
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": job_name(cj, scheduled), "namespace": cj["metadata"]["namespace"],
                         "labels": dict(md.get("labels") or {}), "annotations": annotations,
                         "ownerReferences": [owner_ref(cj)]},
            "spec": jt.get("spec") or {}}


class CronJobController(Controller):
    name = COMPONENT
    watches = {
        "cronjobs": lambda self, o: [ns_name(o)],
        "jobs": owner_key("CronJob"),
    }

    def __init__(self, store, registry, clock=None):
        super().__init__(store, registry)
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    def sync(self, key):
        ns, name = key
        cj = self.live("cronjobs", ns, name)
        if cj is None:
            return None
        uid = cj["metadata"]["uid"]
        jobs = [j for j in self.store.list("jobs", ns)[0] if (controller_ref(j) or {}).get("uid") == uid]
        d = cronjob_decision(cj, jobs, self.clock())
        for job in d.replace + d.delete:
            try:
                self.registry.delete(JOBS, ns, job)
            except APIError as e:
                if e.code != 404:
                    raise
                continue
            record_event(self.registry, cj, "SuccessfulDelete", f"Deleted job {job}", component=COMPONENT)
        if d.create is not None:
            try:
                job = self.registry.create(JOBS, ns, job_from_template(cj, d.create))
            except APIError as e:
                if e.code != 409:
                    record_event(self.registry, cj, "FailedCreate", f"Error creating job: {e.message}", "Warning",
                                 COMPONENT)
                    raise
            else:
                record_event(self.registry, cj, "SuccessfulCreate", f"Created job {job['metadata']['name']}",
                             component=COMPONENT)
                d.status["active"] = [r for r in d.status.get("active") or [] if r["name"] not in d.replace] + \
                    [_ref(job)]
            d.status["lastScheduleTime"] = iso(d.create)
        for etype, reason, message in d.events:
            record_event(self.registry, cj, reason, message, etype, COMPONENT)
        self.put_status("cronjobs", cj, d.status)
        return d.requeue
