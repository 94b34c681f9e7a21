"""The CronJob and Job controllers against a real store and registry, with
the clock driven by the test: a CronJob every 5 minutes makes a Job at each
mark (named by the scheduled minute) and none between, Forbid waits for the
running one, Replace deletes it, finished Jobs beyond the history limit go,
and the Job controller's TTL deletes a finished Job once its time is up."""
from datetime import datetime, timedelta, timezone

import pytest

from agent.api import cron
from agent.api.durations import parse_time
from agent.api.kinds import BY_RESOURCE
from agent.apiserver.registry import Registry
from agent.apiserver.store import Store
from agent.controllers import bootstrap
from agent.controllers.cronjob import CronJobController
from agent.controllers.job import JobController

CRONJOBS, JOBS = BY_RESOURCE["cronjobs"], BY_RESOURCE["jobs"]
T0 = datetime.now(timezone.utc)


class Clock:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture
def env(tmp_path):
    store = Store(str(tmp_path / "store.db"))
    registry = Registry(store)
    bootstrap.bootstrap(registry, "172.28.0.1", 6443)
    clock = Clock(T0)
    return store, registry, clock, CronJobController(store, registry, clock=clock)


def make_cronjob(registry, policy="Allow", **spec):
    cj = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick", "namespace": "default"},
          "spec": {"schedule": "*/5 * * * *", "concurrencyPolicy": policy, "jobTemplate": {"spec": {"template": {
              "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}, **spec}}
    created = registry.create(CRONJOBS, "default", cj)
    return parse_time(created["metadata"]["creationTimestamp"])


def marks(since, n=5):
    """The schedule's next n activations after `since` (the CronJob's creation)."""
    out, t = [], since
    for _ in range(n):
        t = cron.parse("*/5 * * * *").next_after(t)
        out.append(t)
    return out


def minute_name(t):
    return f"tick-{int(t.timestamp()) // 60}"


def job_names(store):
    return sorted(j["metadata"]["name"] for j in store.list("jobs", "default")[0])


def finish(registry, name, ctype="Complete", at="2026-03-04T10:06:00Z"):
    registry.guaranteed_update(JOBS, "default", name, lambda cur: {**cur, "status": {
        "startTime": at, "completionTime": at if ctype == "Complete" else None,
        "conditions": [{"type": ctype, "status": "True", "lastTransitionTime": at}]}}, subresource="status")


def test_a_job_at_each_scheduled_minute_and_none_between(env):
    store, registry, clock, ctl = env
    m = marks(make_cronjob(registry))
    clock.t = m[0] - timedelta(seconds=30)
    assert ctl.sync(("default", "tick")) == pytest.approx(30)       # requeued for the next mark
    assert job_names(store) == []
    clock.t = m[0] + timedelta(seconds=10)
    ctl.sync(("default", "tick"))
    assert job_names(store) == [minute_name(m[0])]
    cj = store.get("cronjobs", "default", "tick")
    assert cj["status"]["lastScheduleTime"] == m[0].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [r["name"] for r in cj["status"]["active"]] == [minute_name(m[0])]
    ctl.sync(("default", "tick"))                                    # same minute: nothing new
    assert job_names(store) == [minute_name(m[0])]
    done = (m[0] + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    finish(registry, minute_name(m[0]), at=done)
    clock.t = m[1] + timedelta(seconds=10)
    ctl.sync(("default", "tick"))
    assert job_names(store) == sorted([minute_name(m[0]), minute_name(m[1])])
    cj = store.get("cronjobs", "default", "tick")
    assert cj["status"]["lastSuccessfulTime"] == done
    assert [r["name"] for r in cj["status"]["active"]] == [minute_name(m[1])]


def test_forbid_waits_and_replace_deletes(env):
    store, registry, clock, ctl = env
    m = marks(make_cronjob(registry, "Forbid"))
    clock.t = m[0]
    ctl.sync(("default", "tick"))
    clock.t = m[1]
    ctl.sync(("default", "tick"))
    assert job_names(store) == [minute_name(m[0])]                   # the first still runs
    registry.guaranteed_update(CRONJOBS, "default", "tick",
                               lambda cur: {**cur, "spec": {**cur["spec"], "concurrencyPolicy": "Replace"}})
    ctl.sync(("default", "tick"))
    assert job_names(store) == [minute_name(m[1])]


def test_history_limit_and_suspend(env):
    store, registry, clock, ctl = env
    m = marks(make_cronjob(registry, successfulJobsHistoryLimit=1))
    for t in m[:3]:
        clock.t = t
        ctl.sync(("default", "tick"))
        finish(registry, minute_name(t), at=t.strftime("%Y-%m-%dT%H:%M:%SZ"))
    ctl.sync(("default", "tick"))
    assert job_names(store) == [minute_name(m[2])]
    registry.guaranteed_update(CRONJOBS, "default", "tick", lambda cur: {**cur, "spec": {**cur["spec"], "suspend": True}})
    clock.t = m[3]
    ctl.sync(("default", "tick"))
    assert job_names(store) == [minute_name(m[2])]


def test_job_ttl_after_finished_with_a_driven_clock(tmp_path):
    store = Store(str(tmp_path / "store.db"))
    registry = Registry(store)
    bootstrap.bootstrap(registry, "172.28.0.1", 6443)
    clock = Clock(T0)
    ctl = JobController(store, registry, clock=clock)
    registry.create(JOBS, "default", {"apiVersion": "batch/v1", "kind": "Job",
                                      "metadata": {"name": "once", "namespace": "default"},
                                      "spec": {"ttlSecondsAfterFinished": 60, "template": {"spec": {
                                          "restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}})
    ctl.sync(("default", "once"))
    assert len(store.list("pods", "default")[0]) == 1
    finish(registry, "once", at=T0.strftime("%Y-%m-%dT%H:%M:%SZ"))
    clock.t = T0.replace(microsecond=0) + timedelta(seconds=30)
    assert ctl.sync(("default", "once")) == pytest.approx(30)
    assert job_names(store) == ["once"]
    clock.t = T0 + timedelta(seconds=61)
    ctl.sync(("default", "once"))
    assert job_names(store) == []
