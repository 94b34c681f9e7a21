"""kubectl's columns and cells for StatefulSet, ControllerRevision,
DaemonSet, Job and CronJob (kube-apiserver's printStatefulSet,
printControllerRevision, printDaemonSet, printJob, printCronJob).

Registered into agent/api/printers.py's tables (`COLUMNS`, `ROWS`).
"""
from __future__ import annotations

from agent.api import durations as p
from agent.api.selectors import from_label_selector

COLUMNS = {
    "StatefulSet": (["NAME", "READY", "AGE"], ["CONTAINERS", "IMAGES"]),
    "ControllerRevision": (["NAME", "CONTROLLER", "REVISION", "AGE"], []),
    "DaemonSet": (["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"],
                  ["CONTAINERS", "IMAGES", "SELECTOR"]),
    "Job": (["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"], ["CONTAINERS", "IMAGES", "SELECTOR"]),
    "CronJob": (["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"],
                ["CONTAINERS", "IMAGES", "SELECTOR"]),
}


def _selector(sel: dict | None) -> str:
    try:
        return str(from_label_selector(sel))
    except ValueError:
        return "<invalid>"


def _md(obj):
    return obj.get("metadata") or {}


def _age(obj, now):
    return p.since(_md(obj).get("creationTimestamp"), now)


def _template_cells(spec: dict) -> list[str]:
    ctrs = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    return [",".join(c.get("name", "") for c in ctrs), ",".join(c.get("image", "") for c in ctrs)]


def _statefulset(sts, wide, now):
    spec, st = sts.get("spec") or {}, sts.get("status") or {}
    row = [_md(sts).get("name", ""), f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)}", _age(sts, now)]
    return row + (_template_cells(spec) if wide else [])


def _controller_revision(cr, wide, now):
    ref = next((r for r in _md(cr).get("ownerReferences") or [] if r.get("controller")), None)
    controller = "<none>"
    if ref:
        group = ref.get("apiVersion", "").rpartition("/")[0]
        controller = f"{ref.get('kind', '').lower()}{'.' + group if group else ''}/{ref.get('name', '')}"
    return [_md(cr).get("name", ""), controller, str(cr.get("revision", 0)), _age(cr, now)]


def _daemonset(ds, wide, now):
    spec, st = ds.get("spec") or {}, ds.get("status") or {}
    node_selector = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector")
    row = [_md(ds).get("name", ""), str(st.get("desiredNumberScheduled", 0)), str(st.get("currentNumberScheduled", 0)),
           str(st.get("numberReady", 0)), str(st.get("updatedNumberScheduled", 0)), str(st.get("numberAvailable", 0)),
           ",".join(f"{k}={v}" for k, v in sorted(node_selector.items())) if node_selector else "<none>", _age(ds, now)]
    return row + (_template_cells(spec) + [_selector(spec.get("selector")) or "<none>"] if wide else [])


def _has_condition(job: dict, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


def job_status(job: dict) -> str:
    """printJob's STATUS: Complete, Failed, Terminating, Suspended, FailureTarget, Running."""
    if _has_condition(job, "Complete"):
        return "Complete"
    if _has_condition(job, "Failed"):
        return "Failed"
    if _md(job).get("deletionTimestamp"):
        return "Terminating"
    if _has_condition(job, "Suspended"):
        return "Suspended"
    if _has_condition(job, "FailureTarget"):
        return "FailureTarget"
    return "Running"


def job_completions(job: dict) -> str:
    spec, succeeded = job.get("spec") or {}, (job.get("status") or {}).get("succeeded", 0)
    if spec.get("completions") is not None:
        return f"{succeeded}/{spec['completions']}"
    parallelism = spec.get("parallelism") or 0
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def job_duration(job: dict, now) -> str:
    st = job.get("status") or {}
    start, end = p.parse_time(st.get("startTime")), p.parse_time(st.get("completionTime"))
    if start is None:
        return ""
    return p.human_duration(((end or now) - start).total_seconds())


def _job(job, wide, now):
    spec = job.get("spec") or {}
    row = [_md(job).get("name", ""), job_status(job), job_completions(job), job_duration(job, now), _age(job, now)]
    return row + (_template_cells(spec) + [_selector(spec.get("selector")) or "<none>"] if wide else [])


def _cronjob(cj, wide, now):
    spec, st = cj.get("spec") or {}, cj.get("status") or {}
    suspend = spec.get("suspend")
    last = st.get("lastScheduleTime")
    row = [_md(cj).get("name", ""), spec.get("schedule", ""), spec.get("timeZone") or "<none>",
           "<unset>" if suspend is None else str(bool(suspend)), str(len(st.get("active") or [])),
           p.since(last, now) if last else "<none>", _age(cj, now)]
    if not wide:
        return row
    jspec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return row + _template_cells(jspec) + [_selector(jspec.get("selector")) or "<none>"]


ROWS = {"StatefulSet": _statefulset, "ControllerRevision": _controller_revision, "DaemonSet": _daemonset,
        "Job": _job, "CronJob": _cronjob}
