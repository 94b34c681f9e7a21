"""kubectl's rows for StatefulSet, ControllerRevision, DaemonSet, Job and
CronJob (printStatefulSet, printControllerRevision, printDaemonSet,
printJob, printCronJob) and their server-side Table columns."""
from datetime import datetime, timezone

from agent.api import printers
from agent.apiserver import tables

NOW = datetime(2026, 3, 4, 10, 0, tzinfo=timezone.utc)
MD = {"name": "x", "namespace": "default", "creationTimestamp": "2026-03-04T09:58:00Z"}
TEMPLATE = {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}


def row(kind, obj, wide=False):
    return printers.row(kind, {"kind": kind, "metadata": MD, **obj}, wide=wide, now=NOW)


def test_statefulset_and_revision():
    assert row("StatefulSet", {"spec": {"replicas": 3, **TEMPLATE}, "status": {"readyReplicas": 2}}, True) == \
        ["x", "2/3", "2m", "c", "busybox"]
    cr = {"revision": 4, "metadata": {**MD, "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "controller": True}]}}
    assert printers.row("ControllerRevision", cr, now=NOW) == ["x", "statefulset.apps/db", "4", "2m"]


def test_daemonset():
    ds = {"spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {"spec": {
        "nodeSelector": {"disk": "ssd"}, "containers": [{"name": "c", "image": "i"}]}}},
          "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                     "updatedNumberScheduled": 1, "numberAvailable": 2}}
    assert row("DaemonSet", ds, True) == ["x", "3", "3", "2", "1", "2", "disk=ssd", "2m", "c", "i", "app=a"]


def test_job_status_completions_duration():
    running = {"spec": {"completions": 3, **TEMPLATE}, "status": {"startTime": "2026-03-04T09:59:00Z", "succeeded": 1}}
    assert row("Job", running) == ["x", "Running", "1/3", "60s", "2m"]
    done = {"spec": {"completions": 1}, "status": {"startTime": "2026-03-04T09:58:00Z",
                                                     "completionTime": "2026-03-04T09:58:05Z", "succeeded": 1,
                                                     "conditions": [{"type": "Complete", "status": "True"}]}}
    assert row("Job", done) == ["x", "Complete", "1/1", "5s", "2m"]
    work_queue = {"spec": {"parallelism": 2}, "status": {"conditions": [{"type": "Failed", "status": "True"}]}}
    assert row("Job", work_queue) == ["x", "Failed", "0/1 of 2", "", "2m"]


def test_cronjob():
    cj = {"spec": {"schedule": "*/5 * * * *", "suspend": False, "jobTemplate": {"spec": TEMPLATE}},
          "status": {"active": [{"name": "a"}], "lastScheduleTime": "2026-03-04T09:59:30Z"}}
    assert row("CronJob", cj, True) == ["x", "*/5 * * * *", "<none>", "False", "1", "30s", "2m", "c", "busybox",
                                        "<none>"]
    cj["spec"]["timeZone"] = "Europe/Berlin"
    cj["status"] = {}
    assert row("CronJob", cj)[2:6] == ["Europe/Berlin", "False", "0", "<none>"]


def test_table_columns_and_integer_cells():
    t = tables.table("DaemonSet", [{"kind": "DaemonSet", "metadata": MD, "spec": {}, "status": {
        "desiredNumberScheduled": 2}}], now=NOW)
    assert [c["name"] for c in t["columnDefinitions"]][:8] == ["Name", "Desired", "Current", "Ready", "Up-to-date",
                                                               "Available", "Node Selector", "Age"]
    assert t["rows"][0]["cells"][1] == 2
    assert printers.columns("CronJob") == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"]
