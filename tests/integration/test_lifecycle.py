"""Container lifecycle on a single-node cluster, as a user meets it:
postStart and preStop hooks (exec, httpGet, sleep), a failing postStart
killing its container, startupProbe gating readiness and restarting a
container that never starts, and the two guarantees of issue 13 checked
under load from a client pod:

- nginx behind a Service with `preStop: sleep 5` loses no request during
  `kubectl rollout restart` (the hook's side effect is read from the
  terminating pod);
- a node agent killed with SIGKILL and started again adopts its running
  containers with their probe results: no pod's Ready condition moves, no
  connection is refused, and the node's iptables rules are the same before
  and after.

Every load loop is bounded in count and time. One cluster (no DNS) serves
the module."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml

from agent.cli.processes import running_pid
from tests.integration.cluster import REPO, ThrowawayCluster
from tests.integration.manifests import CURL, NGINX, service

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _yaml(obj: dict) -> str:
    return yaml.safe_dump(obj, sort_keys=False)


def pod(name: str, container: dict, grace: int = 1, restart: str = "Always") -> str:
    return _yaml({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                  "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": grace,
                           "containers": [{"name": name, "image": CURL, **container}]}})


def web(name: str, lifecycle: dict | None = None, grace: int = 30) -> str:
    container = {"name": "nginx", "image": NGINX, "ports": [{"containerPort": 80}],
                 "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 1}}
    if lifecycle:
        container["lifecycle"] = lifecycle
    return _yaml({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                  "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                           "template": {"metadata": {"labels": {"app": name}},
                                        "spec": {"terminationGracePeriodSeconds": grace,
                                                 "containers": [container]}}}})


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    tc = ThrowawayCluster(str(tmp_path_factory.mktemp("cluster")), dns=False)
    with tc:
        tc.nsplane("run", "client", f"--image={CURL}", "--", "sleep", "3600")
        tc.wait(lambda: tc.ready_pods("run=client"), 30, "the client pod")
        yield tc


def state(c, name: str) -> dict:
    return (c.get("pod", name)["status"].get("containerStatuses") or [{}])[0]


def events(c, name: str) -> list[tuple[str, str, str]]:
    evs = c.get("events", "--field-selector", f"involvedObject.name={name}")["items"]
    return [(e["type"], e["reason"], e["message"]) for e in evs]


def load(c, url: str, count: int, seconds: int) -> subprocess.Popen:
    """A steady, bounded stream of requests from the client pod: at most
    `count` requests and `seconds` seconds; prints one HTTP code (000 for a
    refused or failed connection) per request."""
    script = (f"end=$(( $(date +%s) + {seconds} )); i=0; "
              f"while [ $i -lt {count} ] && [ $(date +%s) -lt $end ]; do i=$((i+1)); "
              f"curl -s -o /dev/null -w '%{{http_code}}\\n' --max-time 2 {url}; sleep 0.02; done")
    return subprocess.Popen([sys.executable, "-m", "agent.cli", "exec", "client", "--", "sh", "-c", script],
                            env=c.env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float) -> list[str]:
    out, err = proc.communicate(timeout=timeout)
    codes = out.split()
    assert codes, f"the load loop sent nothing: {err}"
    return codes


# ---- hooks ------------------------------------------------------------------------------

def test_post_start_runs_in_the_container_and_pre_stop_before_sigterm(c):
    c.apply(pod("hooked", {"command": ["sleep", "3600"], "lifecycle": {
        "postStart": {"exec": {"command": ["sh", "-c", "echo started > /tmp/poststart"]}},
        "preStop": {"exec": {"command": ["sh", "-c", "echo stopping > /tmp/prestop; sleep 30"]}}}}, grace=3))
    c.wait(lambda: state(c, "hooked").get("ready"), 30, "hooked Ready")
    assert c.exec("hooked", "cat", "/tmp/poststart").stdout == "started\n"
    c.nsplane("delete", "pod", "hooked", "--wait=false")
    # the hook runs first, while the container still runs: its file is there to read
    out = c.wait(lambda: (r := c.exec("hooked", "cat", "/tmp/prestop")).returncode == 0 and r.stdout, 15,
                 "the preStop hook's file")
    assert out == "stopping\n"
    c.wait(lambda: not c.get("pods")["items"] or all(p["metadata"]["name"] != "hooked"
                                                      for p in c.get("pods")["items"]), 30, "hooked gone")
    evs = events(c, "hooked")
    assert ("Normal", "Killing", "Stopping container hooked") in evs
    assert not [e for e in evs if e[1] == "FailedPreStopHook"]      # cut off by the grace period, not failed


def test_a_failing_post_start_hook_kills_the_container(c):
    c.apply(pod("badstart", {"command": ["sleep", "3600"],
                             "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "exit 7"]}}}}))
    c.wait(lambda: state(c, "badstart").get("restartCount", 0) >= 1, 40, "badstart restarted")
    evs = events(c, "badstart")
    assert ("Warning", "FailedPostStartHook", "PostStartHook failed") in evs
    assert ("Normal", "Killing", "FailedPostStartHook") in evs
    assert not state(c, "badstart").get("ready")
    c.nsplane("delete", "pod", "badstart", "--wait=false")


def test_http_and_sleep_hooks(c):
    """An httpGet preStop reaches its server (another pod here: the request
    is in that server's log); a failing one is a FailedPreStopHook and the
    pod still goes; a sleep postStart holds the container before it runs."""
    c.apply(pod("observer", {"image": "registry.k8s.io/e2e-test-images/agnhost:2.47",
                             "args": ["netexec", "--http-port=8080"]}))
    c.wait(lambda: state(c, "observer").get("ready"), 30, "observer Ready")
    observer = c.get("pod", "observer")["status"]["podIP"]
    c.apply(pod("httphook", {"command": ["sleep", "3600"], "lifecycle": {
        "postStart": {"sleep": {"seconds": 1}},
        "preStop": {"httpGet": {"host": observer, "path": "/echo?msg=prestop-httphook", "port": 8080}}}},
        grace=5))
    c.apply(pod("badhook", {"command": ["sleep", "3600"],
                            "lifecycle": {"preStop": {"httpGet": {"path": "/", "port": 9}}}}, grace=5))
    c.wait(lambda: state(c, "httphook").get("ready") and state(c, "badhook").get("ready"), 30, "both Ready")
    c.nsplane("delete", "pod", "httphook", "badhook", "--wait=false")
    c.wait(lambda: not {"httphook", "badhook"} & {p["metadata"]["name"] for p in c.get("pods")["items"]}, 40,
           "both gone")
    assert ("Warning", "FailedPreStopHook", "PreStopHook failed") in events(c, "badhook")
    assert not [e for e in events(c, "httphook") if e[1] in ("FailedPreStopHook", "FailedPostStartHook")]
    assert "GET /echo?msg=prestop-httphook" in c.nsplane("logs", "observer").stderr + \
        c.nsplane("logs", "observer").stdout
    c.nsplane("delete", "pod", "observer", "--wait=false")


# ---- probes -----------------------------------------------------------------------------

def test_startup_probe_holds_readiness_then_releases_it(c):
    c.apply(pod("slowstart", {"command": ["sleep", "3600"],
                              "startupProbe": {"exec": {"command": ["test", "-e", "/tmp/up"]},
                                               "periodSeconds": 1, "failureThreshold": 60},
                              "livenessProbe": {"exec": {"command": ["test", "-e", "/tmp/up"]},
                                                "periodSeconds": 1, "failureThreshold": 1}}))
    c.wait(lambda: "running" in state(c, "slowstart").get("state", {}), 30, "slowstart running")
    time.sleep(2)       # liveness would have killed it by now if it ran before the startup probe passed
    st = state(c, "slowstart")
    assert (st["started"], st["ready"], st["restartCount"]) == (False, False, 0)
    assert c.exec("slowstart", "touch", "/tmp/up").returncode == 0
    c.wait(lambda: (s := state(c, "slowstart"))["started"] and s["ready"], 20, "slowstart started and Ready")
    assert state(c, "slowstart")["restartCount"] == 0
    c.nsplane("delete", "pod", "slowstart", "--wait=false")


def test_a_failing_startup_probe_restarts_the_container(c):
    c.apply(pod("neverup", {"command": ["sleep", "3600"],
                            "startupProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1,
                                             "failureThreshold": 2}}))
    c.wait(lambda: state(c, "neverup").get("restartCount", 0) >= 1, 40, "neverup restarted")
    evs = events(c, "neverup")
    assert ("Normal", "Killing", "Container neverup failed startup probe, will be restarted") in evs
    assert any(t == "Warning" and r == "Unhealthy" and m.startswith("Startup probe failed") for t, r, m in evs)
    term = state(c, "neverup")["lastState"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (137, "Error")      # sleep as PID 1 ignores SIGTERM
    c.nsplane("delete", "pod", "neverup", "--wait=false")


# ---- the checks under load ----------------------------------------------------------

def test_pre_stop_sleep_loses_no_request_during_rollout_restart(c):
    c.apply("---\n".join([
        web("drain", {"preStop": {"exec": {"command": ["sh", "-c", "echo draining > /tmp/prestop; sleep 5"]}}}),
        service("drain", selector={"app": "drain"}, ports=[{"port": 80, "targetPort": 80}])]))
    old = {p["metadata"]["name"] for p in c.wait_ready("app=drain", 2, timeout=60)}
    ip = c.get("svc", "drain")["spec"]["clusterIP"]
    c.wait(lambda: c.exec("client", "curl", "-s", "--max-time", "2", f"http://{ip}/").returncode == 0, 20,
           "the Service answering")
    proc = load(c, f"http://{ip}/", count=3000, seconds=60)
    try:
        time.sleep(1)
        c.kubectl("rollout", "restart", "deployment/drain")
        terminating = c.wait(lambda: [p["metadata"]["name"] for p in c.get("pods", "-l", "app=drain")["items"]
                                      if p["metadata"].get("deletionTimestamp")], 30, "an old pod terminating")
        side_effect = c.exec(terminating[0], "cat", "/tmp/prestop").stdout
        c.kubectl("rollout", "status", "deployment/drain", "--timeout=90s", timeout=100)
        c.wait(lambda: not old & {p["metadata"]["name"] for p in c.get("pods", "-l", "app=drain")["items"]}, 60,
               "the old pods gone")
    finally:
        codes = finish(proc, 90)
    failed = [x for x in codes if x != "200"]
    assert len(codes) > 100 and failed == [], f"{len(failed)} of {len(codes)} requests failed: {set(failed)}"
    assert side_effect == "draining\n"


def _rules(c) -> str:
    out = []
    for table in ("nat", "filter"):
        r = subprocess.run(["ip", "netns", "exec", c.node_netns(), "iptables-save", "-t", table],
                           capture_output=True, text=True, check=True)
        out += [re.sub(r"\[\d+:\d+\]", "", line) for line in r.stdout.splitlines() if not line.startswith("#")]
    return "\n".join(out)


def _ready_since(c, selector: str) -> dict[str, str]:
    return {p["metadata"]["name"]: next(x["lastTransitionTime"] for x in p["status"]["conditions"]
                                        if x["type"] == "Ready") for p in c.ready_pods(selector)}


def test_a_killed_and_restarted_agent_keeps_readiness_and_rules(c):
    c.apply("---\n".join([web("steady", grace=1),
                          service("steady", selector={"app": "steady"}, ports=[{"port": 80, "targetPort": 80}])]))
    c.wait_ready("app=steady", 2, timeout=60)
    ip = c.get("svc", "steady")["spec"]["clusterIP"]
    c.wait(lambda: c.exec("client", "curl", "-s", "--max-time", "2", f"http://{ip}/").returncode == 0, 20,
           "the Service answering")
    time.sleep(2)           # let the proxier settle on the final rules
    rules, since = _rules(c), _ready_since(c, "app=steady")
    proc = load(c, f"http://{ip}/", count=3000, seconds=60)
    try:
        for _ in range(3):
            time.sleep(2)
            pid = running_pid(c.cfg, "node-1")
            assert pid, "the node agent is not running"
            os.kill(pid, signal.SIGKILL)
            c.wait(lambda pid=pid: running_pid(c.cfg, "node-1") != pid, 10, "the agent gone")
            c.up()
        time.sleep(3)       # the restarted agent has synced and probed
    finally:
        codes = finish(proc, 90)
    failed = [x for x in codes if x != "200"]
    assert len(codes) > 100 and failed == [], f"{len(failed)} of {len(codes)} requests failed: {set(failed)}"
    assert _ready_since(c, "app=steady") == since       # Ready never went False and back
    assert _rules(c) == rules
