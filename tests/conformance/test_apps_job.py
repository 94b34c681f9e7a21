"""Ports of test/e2e/apps/job.go ([sig-apps] Job): the [Conformance] specs
that need no volume (Indexed completion indexes and hostnames, delete a job,
adopt matching orphans and release non-matching pods) and their neighbours
about suspend, the active deadline, backoffLimit and the status
subresource, with e2ejob.NewTestJob's objects (busybox, the `data` emptyDir,
`somekey: somevalue`), checks and timeouts, through real kubectl. "should run
a job to completion when tasks sometimes fail and are locally restarted"
is not ported yet: it needs the emptyDir to keep a file across restarts,
which waits for pod volumes."""
import json
import time

import pytest

from tests.conformance.framework import POLL, poll

pytestmark = pytest.mark.integration

BASE_NAME = "job"
PARALLELISM, COMPLETIONS, BACKOFF_LIMIT = 2, 4, 6
JOB_TIMEOUT = 15 * 60                                  # e2ejob.JobTimeout
FOREVER_TEST_TIMEOUT = 30                              # wait.ForeverTestTimeout
COMMANDS = {"notTerminate": ["sleep", "1000000"], "fail": ["/bin/sh", "-c", "exit 1"],
            "succeed": ["/bin/sh", "-c", "exit 0"]}


def new_test_job(behavior: str, name: str, restart: str, parallelism: int, completions: int,
                 deadline: int | None, backoff_limit: int) -> dict:
    """e2ejob.NewTestJob."""
    spec = {"parallelism": parallelism, "completions": completions, "backoffLimit": backoff_limit,
            "manualSelector": False,
            "template": {"metadata": {"labels": {"somekey": "somevalue"}}, "spec": {
                "restartPolicy": restart, "volumes": [{"name": "data", "emptyDir": {}}],
                "containers": [{"name": "c", "image": "registry.k8s.io/e2e-test-images/busybox:1.36.1-1",
                                "command": COMMANDS[behavior],
                                "volumeMounts": [{"mountPath": "/data", "name": "data"}],
                                "securityContext": {}}]}}}
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}


def job_pods(f, name: str) -> list[dict]:
    """e2ejob.GetJobPods: by the job-name label."""
    return f.list("pods", f"job-name={name}")


def wait_for_job_complete(f, name: str, completions: int) -> None:
    poll(POLL, JOB_TIMEOUT, lambda: f.get("job", name)["status"].get("succeeded", 0) == completions,
         what=f"job {name} to complete")


def wait_for_all_job_pods_running(f, name: str, parallelism: int) -> None:
    poll(POLL, JOB_TIMEOUT, lambda: sum(1 for p in job_pods(f, name)
                                        if p["status"].get("phase") == "Running") == parallelism,
         what=f"{parallelism} running pods of job {name}")


def wait_for_all_job_pods_gone(f, name: str) -> None:
    poll(POLL, JOB_TIMEOUT, lambda: not job_pods(f, name), what=f"the pods of job {name} gone")


def wait_for_job_failure(f, name: str, timeout: float, reason: str) -> None:
    poll(POLL, timeout, lambda: any(c["type"] == "Failed" and c["status"] == "True" and c.get("reason") == reason
                                    for c in f.get("job", name)["status"].get("conditions") or []),
         what=f"job {name} to fail with {reason}")


def has_condition(job: dict, ctype: str) -> bool:
    return any(c["type"] == ctype for c in job["status"].get("conditions") or [])


def test_should_create_pods_for_an_indexed_job_with_completion_indexes_and_specified_hostname(framework):
    """[sig-apps] Job should create pods for an Indexed job with completion
    indexes and specified hostname [Conformance]"""
    f = framework
    job = new_test_job("succeed", "indexed-job", "Never", PARALLELISM, COMPLETIONS, None, BACKOFF_LIMIT)
    job["spec"]["completionMode"] = "Indexed"
    job = f.create(job)
    wait_for_job_complete(f, "indexed-job", COMPLETIONS)
    succeeded = set()
    for pod in job_pods(f, "indexed-job"):
        if pod["status"].get("phase") == "Succeeded" and pod["metadata"].get("annotations"):
            ix = int(pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"])
            succeeded.add(ix)
            assert pod["spec"]["hostname"] == f"indexed-job-{ix}"
    assert sorted(succeeded) == [0, 1, 2, 3]


def test_should_delete_a_job(framework):
    """[sig-apps] Job should delete a job [Conformance]"""
    f = framework
    f.create(new_test_job("notTerminate", "foo", "Never", PARALLELISM, COMPLETIONS, None, BACKOFF_LIMIT))
    wait_for_all_job_pods_running(f, "foo", PARALLELISM)
    # e2eresource.DeleteResourceAndWaitForGC
    f.kubectl("delete", "job", "foo", "--wait=false")
    wait_for_all_job_pods_gone(f, "foo")
    r = f.kubectl("get", "job", "foo", check=False)
    assert r.returncode != 0 and "NotFound" in r.stderr


def test_should_adopt_matching_orphans_and_release_non_matching_pods(framework):
    """[sig-apps] Job should adopt matching orphans and release non-matching
    pods [Conformance]"""
    f = framework
    job = f.create(new_test_job("notTerminate", "adopt-release", "Never", PARALLELISM, COMPLETIONS, None,
                                BACKOFF_LIMIT))
    wait_for_all_job_pods_running(f, "adopt-release", PARALLELISM)
    pods = job_pods(f, "adopt-release")
    assert len(pods) == PARALLELISM
    pod = pods[0]
    name = pod["metadata"]["name"]
    # Orphaning one of the Job's Pods
    f.kubectl("patch", "pod", name, "--type=json", "-p", '[{"op": "remove", "path": "/metadata/ownerReferences"}]')

    def adopted() -> bool:
        ref = next((r for r in f.get("pod", name)["metadata"].get("ownerReferences") or [] if r.get("controller")),
                   None)
        if ref is None:
            return False
        assert (ref["kind"], ref["name"], ref["uid"]) == ("Job", "adopt-release", job["metadata"]["uid"]), ref
        return True
    poll(POLL, JOB_TIMEOUT, adopted, what=f"pod {name} to be readopted")
    # Removing the labels from the Job's Pod
    f.kubectl("patch", "pod", name, "--type=json", "-p", '[{"op": "remove", "path": "/metadata/labels"}]')
    poll(POLL, JOB_TIMEOUT, lambda: not any(r.get("controller") for r in
                                            f.get("pod", name)["metadata"].get("ownerReferences") or []),
         what=f"pod {name} to be released")


def test_should_not_create_pods_when_created_in_suspend_state(framework):
    """[sig-apps] Job should not create pods when created in suspend state"""
    f = framework
    job = new_test_job("succeed", "suspend-true-to-false", "Never", PARALLELISM, COMPLETIONS, None, BACKOFF_LIMIT)
    job["spec"]["suspend"] = True
    f.create(job)
    deadline = time.monotonic() + FOREVER_TEST_TIMEOUT
    while time.monotonic() < deadline:                  # the poll must time out: no pod ever
        assert job_pods(f, "suspend-true-to-false") == []
        time.sleep(POLL)
    job = f.get("job", "suspend-true-to-false")
    assert has_condition(job, "Suspended")
    job["spec"]["suspend"] = False
    f.update(job)
    wait_for_job_complete(f, "suspend-true-to-false", COMPLETIONS)


def test_should_delete_pods_when_suspended(framework):
    """[sig-apps] Job should delete pods when suspended"""
    f = framework
    job = new_test_job("notTerminate", "suspend-false-to-true", "Never", PARALLELISM, COMPLETIONS, None,
                       BACKOFF_LIMIT)
    job["spec"]["suspend"] = False
    f.create(job)
    wait_for_all_job_pods_running(f, "suspend-false-to-true", PARALLELISM)
    job = f.get("job", "suspend-false-to-true")
    job["spec"]["suspend"] = True
    f.update(job)
    wait_for_all_job_pods_gone(f, "suspend-false-to-true")
    assert has_condition(f.get("job", "suspend-false-to-true"), "Suspended")


def test_should_fail_when_exceeds_active_deadline(framework):
    """[sig-apps] Job should fail when exceeds active deadline"""
    f = framework
    f.create(new_test_job("notTerminate", "exceed-active-deadline", "Never", PARALLELISM, COMPLETIONS, 1,
                          BACKOFF_LIMIT))
    wait_for_job_failure(f, "exceed-active-deadline", 1 + 15, "DeadlineExceeded")


def test_should_fail_to_exceed_backoff_limit(framework):
    """[sig-apps] Job should fail to exceed backoffLimit"""
    f = framework
    backoff = 1
    f.create(new_test_job("fail", "backofflimit", "Never", 1, 1, None, backoff))
    wait_for_job_failure(f, "backofflimit", JOB_TIMEOUT, "BackoffLimitExceeded")
    pods = job_pods(f, "backofflimit")
    assert len(pods) == backoff + 1
    assert all(p["status"]["phase"] == "Failed" for p in pods)


def test_should_apply_changes_to_a_job_status(framework):
    """[sig-apps] Job should apply changes to a job status"""
    f = framework
    job = f.create(new_test_job("notTerminate", "suspend-false-to-true", "Never", PARALLELISM, COMPLETIONS, None,
                                BACKOFF_LIMIT))
    wait_for_all_job_pods_running(f, "suspend-false-to-true", PARALLELISM)
    now1 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    patched = json.loads(f.kubectl("patch", "job", "suspend-false-to-true", "--subresource=status", "--type=merge",
                                   "-p", json.dumps({"metadata": {"annotations": {"patchedstatus": "true"}},
                                                     "status": {"startTime": now1}}), "-o", "json").stdout)
    assert patched["status"]["startTime"] == now1
    assert patched["metadata"]["annotations"]["patchedstatus"] == "true"
    got = f.raw(f"/apis/batch/v1/namespaces/{f.ns}/jobs/suspend-false-to-true/status")
    assert got["metadata"]["uid"] == job["metadata"]["uid"]
