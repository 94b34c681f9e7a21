"""Ports of test/e2e/apps/cronjob.go ([sig-apps] CronJob): "should schedule
multiple jobs concurrently" and "should replace jobs when
ReplaceConcurrent" [Conformance], with the spec's CronJob (every minute,
`*/1 * * * ?`; busybox sleeping 300 s with the `data` emptyDir) and checks,
through real kubectl. Each waits for real minutes to pass (a few minutes in
all), bounded by the spec's cronJobTimeout."""
import pytest

from tests.conformance.framework import poll

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BASE_NAME = "cronjob"
CRONJOB_TIMEOUT = 15 * 60
SLEEP = ["sleep", "300"]
BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1"


def new_test_cronjob(name: str, schedule: str, policy: str, command: list[str]) -> dict:
    """newTestCronJob."""
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": schedule, "concurrencyPolicy": policy, "jobTemplate": {"spec": {
                "parallelism": 1, "completions": 1, "backoffLimit": 6,
                "template": {"spec": {"restartPolicy": "OnFailure",
                                      "volumes": [{"name": "data", "emptyDir": {}}],
                                      "containers": [{"name": "c", "image": BUSYBOX, "command": command,
                                                      "volumeMounts": [{"mountPath": "/data", "name": "data"}]}]}}}}}}


def active_jobs(f, name: str) -> list[dict]:
    """The CronJob's jobs that have not finished."""
    return [j for j in f.list("jobs") if any(r.get("name") == name for r in j["metadata"].get("ownerReferences") or [])
            and not any(c["type"] in ("Complete", "Failed") and c["status"] == "True"
                        for c in j["status"].get("conditions") or [])]


def test_should_schedule_multiple_jobs_concurrently(framework):
    """[sig-apps] CronJob should schedule multiple jobs concurrently [Conformance]"""
    f = framework
    f.create(new_test_cronjob("concurrent", "*/1 * * * ?", "Allow", SLEEP))
    # Ensuring more than one job is running at a time
    poll(2, CRONJOB_TIMEOUT, lambda: len(f.get("cronjob", "concurrent")["status"].get("active") or []) >= 2,
         what="2 active jobs")
    # Ensuring at least two running jobs exists by listing jobs explicitly
    assert len(active_jobs(f, "concurrent")) >= 2
    f.kubectl("delete", "cronjob", "concurrent", "--wait=false")


def test_should_replace_jobs_when_replace_concurrent(framework):
    """[sig-apps] CronJob should replace jobs when ReplaceConcurrent [Conformance]"""
    f = framework
    f.create(new_test_cronjob("replace", "*/1 * * * ?", "Replace", SLEEP))
    # Ensuring a job is scheduled
    poll(2, CRONJOB_TIMEOUT, lambda: len(f.get("cronjob", "replace")["status"].get("active") or []) >= 1,
         what="an active job")
    # Ensuring exactly one is scheduled
    active = f.get("cronjob", "replace")["status"]["active"]
    assert len(active) == 1
    first = active[0]["name"]
    # Ensuring exactly one running job exists by listing jobs explicitly
    assert [j["metadata"]["name"] for j in active_jobs(f, "replace")] == [first]
    # Ensuring the job is replaced with a new one
    poll(2, CRONJOB_TIMEOUT, lambda: f.kubectl("get", "job", first, check=False).returncode != 0,
         what=f"job {first} to be replaced")
    f.kubectl("delete", "cronjob", "replace", "--wait=false")
