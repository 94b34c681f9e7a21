"""Jobs and CronJobs on a real cluster with real kubectl: completions 3 /
parallelism 2 completes (never more than 2 pods at once), an Indexed Job
gives each pod its JOB_COMPLETION_INDEX and hostname, backoffLimit fails a
Job, ttlSecondsAfterFinished deletes it, `kubectl create job|cronjob`
(protobuf bodies) and the Tables kubectl prints, and a CronJob scheduled
every minute runs a Job within the next real minute."""
import pytest

from tests.integration.cluster import ThrowawayCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MULTI = """\
apiVersion: batch/v1
kind: Job
metadata: {name: multi}
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: [sh, -c, "sleep 1; echo done"]}]
"""

INDEXED = """\
apiVersion: batch/v1
kind: Job
metadata: {name: idx}
spec:
  completions: 3
  parallelism: 3
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: [sh, -c, "echo index=$JOB_COMPLETION_INDEX host=$(hostname)"]}]
"""

FAILING = """\
apiVersion: batch/v1
kind: Job
metadata: {name: broken}
spec:
  backoffLimit: 0
  ttlSecondsAfterFinished: 5
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: [sh, -c, "exit 3"]}]
"""


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("cluster")), dns=False) as tc:
        yield tc


def job_pods(c, job: str) -> list[dict]:
    return c.get("pods", "-l", f"batch.kubernetes.io/job-name={job}")["items"]


def test_completions_with_parallelism(c):
    c.kubectl("apply", "-f", "-", input=MULTI)
    most = 0

    def done():
        nonlocal most
        running = [p for p in job_pods(c, "multi") if p["status"].get("phase") in ("Pending", "Running")]
        most = max(most, len(running))
        return c.get("job", "multi")["status"].get("succeeded") == 3
    c.wait(done, 60, "3 succeeded pods")
    assert most <= 2
    c.kubectl("wait", "--for=condition=complete", "job/multi", "--timeout=30s")
    job = c.get("job", "multi")
    assert [x["type"] for x in job["status"]["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    assert len(job_pods(c, "multi")) == 3
    for p in job_pods(c, "multi"):
        labels = p["metadata"]["labels"]
        assert labels["batch.kubernetes.io/controller-uid"] == job["metadata"]["uid"] == labels["controller-uid"]
        assert labels["job-name"] == "multi"
    out = c.kubectl("get", "job", "multi").stdout.splitlines()
    assert out[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert out[1].split()[:3] == ["multi", "Complete", "3/3"]
    described = c.kubectl("describe", "job", "multi").stdout
    assert "Pods Statuses:    0 Active (0 Ready) / 3 Succeeded / 0 Failed" in described
    assert "Job completed" in described


def test_indexed_job(c):
    c.kubectl("apply", "-f", "-", input=INDEXED)
    c.kubectl("wait", "--for=condition=complete", "job/idx", "--timeout=60s", timeout=70)
    logs = sorted(c.kubectl("logs", "-l", "job-name=idx").stdout.split("\n"))
    assert [x for x in logs if x] == [f"index={i} host=idx-{i}" for i in range(3)]
    assert c.get("job", "idx")["status"]["completedIndexes"] == "0-2"


def test_backoff_limit_fails_and_ttl_deletes(c):
    c.kubectl("apply", "-f", "-", input=FAILING)
    c.kubectl("wait", "--for=condition=failed", "job/broken", "--timeout=60s", timeout=70)
    cond = c.get("job", "broken")["status"]["conditions"][-1]
    assert (cond["type"], cond["reason"]) == ("Failed", "BackoffLimitExceeded")
    c.wait(lambda: c.kubectl("get", "job", "broken", check=False).returncode != 0, 30, "the job deleted by its TTL")
    c.wait(lambda: job_pods(c, "broken") == [], 30, "its pods collected")


def test_kubectl_create_job_and_invalid_job(c):
    c.kubectl("create", "job", "hello", "--image=busybox", "--", "sh", "-c", "echo hello")
    c.kubectl("wait", "--for=condition=complete", "job/hello", "--timeout=60s", timeout=70)
    assert c.kubectl("logs", "job/hello").stdout.strip() == "hello"
    bad = MULTI.replace("name: multi", "name: bad").replace("restartPolicy: Never", "restartPolicy: Always")
    r = c.kubectl("apply", "-f", "-", input=bad, check=False)
    assert r.returncode != 0
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never"' \
        in r.stderr


def test_cronjob_runs_each_minute(c):
    c.kubectl("create", "cronjob", "tick", "--image=busybox", "--schedule=*/1 * * * *", "--", "sh", "-c", "date")
    out = c.kubectl("get", "cronjob", "tick").stdout.splitlines()
    assert out[0].split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"]
    assert out[1].split()[:5] == ["tick", "*/1", "*", "*", "*"]
    c.wait(lambda: [j for j in c.get("jobs")["items"] if j["metadata"]["name"].startswith("tick-")], 75,
           "a job created by the cronjob")
    job = next(j for j in c.get("jobs")["items"] if j["metadata"]["name"].startswith("tick-"))
    assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert "batch.kubernetes.io/cronjob-scheduled-timestamp" in job["metadata"]["annotations"]
    c.kubectl("wait", "--for=condition=complete", f"job/{job['metadata']['name']}", "--timeout=60s", timeout=70)
    c.wait(lambda: c.get("cronjob", "tick")["status"].get("lastSuccessfulTime"), 30, "lastSuccessfulTime")
    assert c.get("cronjob", "tick")["status"]["lastScheduleTime"]
    c.kubectl("delete", "cronjob", "tick")
    c.wait(lambda: not [j for j in c.get("jobs")["items"] if j["metadata"]["name"].startswith("tick-")], 30,
           "the cronjob's jobs collected")
