"""The Job and CronJob controllers' pure cores and the cron parser: pods to
create and delete, completion, backoff and deadline failure, Indexed mode,
TTL; schedules, time zones, concurrency policies, missed starts, history."""
from datetime import datetime, timezone

import pytest

from agent.api import cron
from agent.apiserver import defaults, validation
from agent.controllers.cronjob import cronjob_decision, job_from_template, job_name
from agent.controllers.job import format_indexes, job_decision, pod_for, ttl_expiry

NOW = datetime(2026, 3, 4, 10, 30, 15, tzinfo=timezone.utc)


def job(**spec):
    j = {"apiVersion": "batch/v1", "kind": "Job",
         "metadata": {"name": "pi", "namespace": "default", "uid": "u1"},
         "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}},
                  **spec}}
    defaults.default("Job", j)
    return j


def pod(name, phase="Running", index=None, created="2026-03-04T10:00:00Z"):
    md = {"name": name, "creationTimestamp": created}
    if index is not None:
        md["annotations"] = {"batch.kubernetes.io/job-completion-index": str(index)}
    return {"metadata": md, "status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if phase == "Running" else "False",
         "lastTransitionTime": "2026-03-04T10:00:00Z"}]}}


def types(d):
    return [c["type"] for c in d.status.get("conditions", [])]


def test_job_defaults_and_generated_selector():
    j = job()
    assert (j["spec"]["completions"], j["spec"]["parallelism"], j["spec"]["backoffLimit"]) == (1, 1, 6)
    assert j["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}
    assert j["spec"]["template"]["metadata"]["labels"] == {
        "batch.kubernetes.io/controller-uid": "u1", "batch.kubernetes.io/job-name": "pi",
        "controller-uid": "u1", "job-name": "pi"}
    assert validation.validate("Job", j) == []


def test_job_validation_wording():
    j = job()
    j["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    assert validation.format_invalid("Job", "pi", validation.validate("Job", j)) == (
        'Job.batch "pi" is invalid: spec.template.spec.restartPolicy: Unsupported value: "Always": '
        'supported values: "OnFailure", "Never"')


def test_parallelism_bounds_active_pods_toward_completions():
    j = job(completions=3, parallelism=2)
    assert job_decision(j, [], NOW).create == [-1, -1]
    assert job_decision(j, [pod("a", "Succeeded"), pod("b")], NOW).create == [-1]
    d = job_decision(j, [pod("a", "Succeeded"), pod("b", "Succeeded"), pod("c")], NOW)
    assert d.create == [] and d.status["active"] == 1 and d.status["succeeded"] == 2


def test_complete_sets_conditions_and_completion_time():
    j = job(completions=2, parallelism=2)
    d = job_decision(j, [pod("a", "Succeeded"), pod("b", "Succeeded")], NOW)
    assert types(d) == ["SuccessCriteriaMet", "Complete"]
    assert d.status["completionTime"] == "2026-03-04T10:30:15Z"
    assert d.status["conditions"][1]["reason"] == "CompletionsReached"
    assert ("Normal", "Completed", "Job completed") in d.events


def test_backoff_limit_fails_the_job_and_waits_between_retries():
    j = job(backoffLimit=1)
    failed = pod("a", "Failed")
    d = job_decision(j, [failed], datetime(2026, 3, 4, 10, 0, 4, tzinfo=timezone.utc))
    assert d.create == [] and d.requeue == pytest.approx(6)   # 1 failure: retry 10s after it failed
    d = job_decision(j, [failed], datetime(2026, 3, 4, 10, 0, 11, tzinfo=timezone.utc))
    assert d.create == [-1]
    d = job_decision(j, [failed, pod("b", "Failed")], NOW)
    assert types(d) == ["FailureTarget", "Failed"]
    assert d.status["conditions"][1]["reason"] == "BackoffLimitExceeded"


def test_active_deadline_fails_and_deletes_running_pods():
    j = job(activeDeadlineSeconds=60)
    j["status"] = {"startTime": "2026-03-04T10:00:00Z"}
    d = job_decision(j, [pod("a")], NOW)
    assert types(d)[-1] == "Failed" and d.status["conditions"][-1]["reason"] == "DeadlineExceeded"
    assert d.delete == ["a"]


def test_indexed_mode():
    j = job(completions=3, parallelism=2, completionMode="Indexed")
    d = job_decision(j, [pod("pi-0-x", "Succeeded", 0)], NOW)
    assert d.create == [1, 2] and d.status["completedIndexes"] == "0"
    p = pod_for(j, 2)
    assert p["metadata"]["generateName"] == "pi-2-"
    assert p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "2"
    assert p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == "2"
    assert p["spec"]["hostname"] == "pi-2"
    env = p["spec"]["containers"][0]["env"][-1]
    assert env["name"] == "JOB_COMPLETION_INDEX"
    assert env["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert format_indexes([0, 1, 2, 4, 6, 7]) == "0-2,4,6,7"


def test_suspend_deletes_active_pods():
    d = job_decision(job(suspend=True), [pod("a")], NOW)
    assert d.delete == ["a"] and types(d) == ["Suspended"]


def test_ttl_after_finished():
    j = job(ttlSecondsAfterFinished=30)
    assert ttl_expiry(j) is None
    j["status"] = {"completionTime": "2026-03-04T10:00:00Z",
                   "conditions": [{"type": "Complete", "status": "True"}]}
    assert ttl_expiry(j) == datetime(2026, 3, 4, 10, 0, 30, tzinfo=timezone.utc)


# ---- cron ------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec,after,expected", [
    ("*/15 * * * *", "2026-03-04T10:30:15", "2026-03-04T10:45:00"),
    ("@hourly", "2026-03-04T10:30:00", "2026-03-04T11:00:00"),
    ("@daily", "2026-03-04T10:30:00", "2026-03-05T00:00:00"),
    ("@weekly", "2026-03-04T10:30:00", "2026-03-08T00:00:00"),      # a Sunday
    ("@yearly", "2026-03-04T10:30:00", "2027-01-01T00:00:00"),
    ("0 9 * * MON-FRI", "2026-03-06T10:00:00", "2026-03-09T09:00:00"),
    ("0 0 13 * 5", "2026-03-01T00:00:00", "2026-03-06T00:00:00"),   # the 13th OR a Friday
    ("30 2 1 jan,jul ?", "2026-03-01T00:00:00", "2026-07-01T02:30:00"),
])
def test_next_activation(spec, after, expected):
    t = datetime.fromisoformat(after).replace(tzinfo=timezone.utc)
    assert cron.parse(spec).next_after(t) == datetime.fromisoformat(expected).replace(tzinfo=timezone.utc)


def test_time_zone():
    t = datetime(2026, 7, 1, 0, 0, tzinfo=timezone.utc)
    berlin = cron.zone("Europe/Berlin")
    assert cron.parse("0 9 * * *").next_after(t, berlin) == datetime(2026, 7, 1, 7, 0, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="unknown time zone Mars/Base"):
        cron.zone("Mars/Base")


@pytest.mark.parametrize("spec,message", [
    ("bad", "expected exactly 5 fields, found 1: [bad]"),
    ("61 * * * *", "end of range (61) above maximum (59): 61"),
    ("@often", "unrecognized descriptor: @often"),
])
def test_parse_errors(spec, message):
    with pytest.raises(ValueError) as e:
        cron.parse(spec)
    assert str(e.value) == message


def cronjob(**spec):
    cj = {"apiVersion": "batch/v1", "kind": "CronJob",
          "metadata": {"name": "tick", "namespace": "default", "uid": "c1", "creationTimestamp": "2026-03-04T10:00:30Z"},
          "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
              "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "x"}]}}}}, **spec}}
    defaults.default("CronJob", cj)
    return cj


def cjob(name, uid, done=None, start="2026-03-04T10:05:00Z"):
    st = {"startTime": start}
    if done:
        st["conditions"] = [{"type": done, "status": "True"}]
        st["completionTime"] = start
    return {"metadata": {"name": name, "uid": uid, "namespace": "default"}, "status": st}


def test_cronjob_creates_the_latest_missed_job_and_requeues_for_the_next():
    d = cronjob_decision(cronjob(), [], NOW)
    assert d.create == datetime(2026, 3, 4, 10, 30, tzinfo=timezone.utc)
    assert d.requeue == pytest.approx(285)
    j = job_from_template(cronjob(), d.create)
    assert j["metadata"]["name"] == job_name(cronjob(), d.create) == f"tick-{int(d.create.timestamp()) // 60}"
    assert j["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] == "2026-03-04T10:30:00Z"
    assert j["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert validation.validate("CronJob", cronjob()) == []


def test_cronjob_nothing_due_and_suspend():
    cj = cronjob()
    cj["status"] = {"lastScheduleTime": "2026-03-04T10:30:00Z"}
    assert cronjob_decision(cj, [], NOW).create is None
    assert cronjob_decision(cronjob(suspend=True), [], NOW).create is None


def test_concurrency_policies():
    running = [cjob("tick-1", "j1")]
    assert cronjob_decision(cronjob(concurrencyPolicy="Forbid"), running, NOW).create is None
    d = cronjob_decision(cronjob(concurrencyPolicy="Replace"), running, NOW)
    assert d.create is not None and d.replace == ["tick-1"]
    d = cronjob_decision(cronjob(), running, NOW)
    assert d.create is not None and d.replace == [] and d.status["active"][0]["name"] == "tick-1"


def test_starting_deadline_skips_a_late_start():
    d = cronjob_decision(cronjob(startingDeadlineSeconds=10), [], NOW)   # 10:30 is 15s ago
    assert d.create is None
    d = cronjob_decision(cronjob(startingDeadlineSeconds=20), [], NOW)
    assert d.create == datetime(2026, 3, 4, 10, 30, tzinfo=timezone.utc)


def test_history_limits():
    jobs = [cjob(f"ok{i}", f"u{i}", "Complete", f"2026-03-04T10:0{i}:00Z") for i in range(5)] + \
        [cjob(f"bad{i}", f"b{i}", "Failed", f"2026-03-04T10:0{i}:00Z") for i in range(3)]
    d = cronjob_decision(cronjob(), jobs, NOW)
    assert d.delete == ["ok0", "ok1", "bad0", "bad1"]
    assert d.status["lastSuccessfulTime"] == "2026-03-04T10:04:00Z"


def test_cronjob_validation_wording():
    cj = cronjob(schedule="bad", timeZone="Mars/Base", concurrencyPolicy="Never")
    assert validation.format_invalid("CronJob", "tick", validation.validate("CronJob", cj)) == (
        'CronJob.batch "tick" is invalid: [spec.schedule: Invalid value: "bad": expected exactly 5 fields, '
        'found 1: [bad], spec.timeZone: Invalid value: "Mars/Base": unknown time zone Mars/Base, '
        'spec.concurrencyPolicy: Unsupported value: "Never": supported values: "Allow", "Forbid", "Replace"]')
