"""Lifecycle hooks and killContainer's grace periods (agent/node/kubelet/lifecycle.py),
and the prober's startup/readiness/liveness rules (agent/node/kubelet/prober.py),
without a runtime: handlers run against fakes and a loopback HTTP server."""
import http.server
import threading
import time
from concurrent.futures import Future

import pytest

from agent.node.kubelet import lifecycle
from agent.node.kubelet.containers import Container
from agent.node.kubelet.prober import Prober
from agent.node.kubelet.status import container_status
from agent.node.runtime.errors import RuntimeLayerError

POD = {"metadata": {"name": "web", "namespace": "default", "uid": "u1"},
       "spec": {"terminationGracePeriodSeconds": 30, "containers": [{"name": "c"}]}}
C = {"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}
WHO = "web_default(u1)"


def run(handler, exec_in=None, cancel=None, ip="127.0.0.1"):
    return lifecycle.run_handler(handler, POD, C, ip, exec_in or (lambda argv, t: (0, b"", b"")),
                                 cancel or threading.Event(), 5.0)


def test_exec_hook_success_and_the_kubelets_failure_message():
    seen = []
    assert run({"exec": {"command": ["sh", "-c", "true"]}}, lambda argv, t: seen.append((argv, t)) or (0, b"", b"")) == ""
    assert seen == [(["sh", "-c", "true"], 5.0)]
    msg = run({"exec": {"command": ["sh", "-c", "exit 3"]}}, lambda argv, t: (3, b"out\n", b"bad"))
    assert msg == (f'Exec lifecycle hook ([sh -c exit 3]) for Container "c" in Pod "{WHO}" failed - error: '
                   "command 'sh -c exit 3' exited with 3: bad, message: \"out\\nbad\"")

    def timeout(argv, t):
        raise RuntimeLayerError("exec in container x: sh did not finish within 5s", reason="ExecTimeout")
    assert run({"exec": {"command": ["sh"]}}, timeout).endswith("did not finish within 5s, message: \"\"")


@pytest.fixture
def server():
    paths = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            paths.append((self.path, self.headers["User-Agent"], self.headers.get("X-Hook")))
            self.send_response(500 if self.path == "/fail" else 200)
            self.end_headers()

        def log_message(self, *a):
            pass
    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1], paths
    srv.shutdown()
    srv.server_close()


def test_http_hook_any_answer_is_a_success_a_refused_connection_is_not(server):
    port, paths = server
    assert run({"httpGet": {"path": "/drain", "port": port, "httpHeaders": [{"name": "X-Hook", "value": "1"}]}}) == ""
    assert run({"httpGet": {"path": "/fail", "port": port}}) == ""        # the kubelet does not look at the code
    assert paths == [("/drain", "kube-lifecycle/1.32", "1"), ("/fail", "kube-lifecycle/1.32", None)]
    with pytest.raises(ValueError):
        lifecycle._http_get({"port": "nope"}, C, "127.0.0.1", 1)
    srv_gone = run({"httpGet": {"path": "/x", "port": 1}})
    assert srv_gone.startswith(f'HTTP lifecycle hook (/x) for Container "c" in Pod "{WHO}" failed - error: ')
    assert "refused" in srv_gone


def test_sleep_hook_ends_early_when_the_container_goes_and_tcp_socket_cannot_run():
    cancel = threading.Event()
    cancel.set()
    assert run({"sleep": {"seconds": 30}}, cancel=cancel) == (
        f'Sleep lifecycle hook (30) for Container "c" in Pod "{WHO}" failed - error: '
        "container terminated before sleep hook finished")
    assert run({"sleep": {"seconds": 0}}) == ""
    assert run({"tcpSocket": {"port": 80}}).startswith("Cannot run handler: invalid handler: ")


def test_grace_period_sources():
    pod = {"metadata": {}, "spec": {"terminationGracePeriodSeconds": 20}}
    spec = {"livenessProbe": {"terminationGracePeriodSeconds": 3}}
    assert lifecycle.grace_period(pod, spec) == 20
    assert lifecycle.grace_period(pod, spec, lifecycle.REASON_LIVENESS) == 3
    assert lifecycle.grace_period(pod, spec, lifecycle.REASON_STARTUP) == 20
    assert lifecycle.grace_period({"metadata": {"deletionGracePeriodSeconds": 7}, "spec": {}}, spec,
                                  lifecycle.REASON_LIVENESS) == 7
    assert lifecycle.grace_period({"metadata": {}, "spec": {}}, {}) == 30


def test_kill_runs_prestop_first_and_shares_the_grace_period():
    order, failed = [], []

    def prestop(cancel):
        order.append("prestop")
        return ""
    assert lifecycle.kill_container(10, prestop, lambda g: order.append(("stop", g)), failed.append) == 10
    assert order == ["prestop", ("stop", 10)] and failed == []
    # a hook that outlives the grace period is cut off; SIGTERM still gets the 2 s minimum
    order.clear()
    given = lifecycle.kill_container(1, lambda cancel: (cancel.wait(10), "")[1],
                                     lambda g: order.append(("stop", g)), failed.append)
    assert given == 2 and order == [("stop", 2)] and failed == []


def test_a_failed_prestop_is_reported_and_the_container_stopped_anyway():
    stops, failed = [], []
    lifecycle.kill_container(5, lambda cancel: "boom", stops.append, failed.append)
    assert failed == ["boom"] and stops == [5]
    stops.clear()
    lifecycle.kill_container(0, lambda cancel: pytest.fail("no hook without a grace period"), stops.append,
                             failed.append)
    assert stops == [2]
    stops.clear()
    lifecycle.kill_container(30, lambda cancel: pytest.fail("no hook when forced"), stops.append, failed.append,
                             override=0)
    assert stops == [0]


# ---- prober ------------------------------------------------------------------------------

class FakeRT:
    def __init__(self, spec):
        self.pod = {"metadata": POD["metadata"], "spec": {"containers": [spec]}}
        self.probes, self.ip, self.deleting_since, self.key = {}, "10.244.1.2", 0.0, ("default", "web")
        self.containers = {}
        self.saved = 0


class Kills:
    def __init__(self):
        self.calls = []

    def kill_async(self, rt, c, spec, reason, message):
        self.calls.append((reason, message))


def prober_for(spec):
    events, kills = [], Kills()
    rt = FakeRT(spec)
    p = Prober(None, None, kills, lambda pod, r, m, t="Normal": events.append((t, r, m)), lambda rt: None,
               lambda rt: setattr(rt, "saved", rt.saved + 1))
    c = rt.containers["c"] = Container("c", "/nonexistent")
    c.cid, c.running = "id1", True
    p.arm(rt, c, spec)
    return p, rt, c, events, kills


def attempt(p, rt, c, kind, ok, msg=""):
    f = Future()
    f.set_result((ok, msg))
    p.done(rt, c, kind, rt.probes[("c", kind)], f, c.cid)


def test_startup_probe_gates_readiness_and_liveness_then_stops():
    spec = {"name": "c", "startupProbe": {"exec": {"command": ["x"]}, "failureThreshold": 2},
            "readinessProbe": {"exec": {"command": ["x"]}}, "livenessProbe": {"exec": {"command": ["x"]}}}
    p, rt, c, events, kills = prober_for(spec)
    assert not c.startup_ok and not c.ready
    cs = container_status(spec, c, "web", 0)
    assert (cs["started"], cs["ready"]) == (False, False)
    attempt(p, rt, c, "startupProbe", False, "not yet")
    assert events == [("Warning", "Unhealthy", "Startup probe failed: not yet")] and not kills.calls
    attempt(p, rt, c, "startupProbe", True)
    assert c.startup_ok and ("c", "startupProbe") not in rt.probes and rt.saved == 1
    assert not c.ready                 # the readiness probe decides now
    attempt(p, rt, c, "readinessProbe", True)
    assert c.ready and container_status(spec, c, "web", 0)["ready"]


def test_startup_probe_failures_restart_the_container():
    spec = {"name": "c", "startupProbe": {"exec": {"command": ["x"]}, "failureThreshold": 2}}
    p, rt, c, _events, kills = prober_for(spec)
    attempt(p, rt, c, "startupProbe", False, "no")
    attempt(p, rt, c, "startupProbe", False, "no")
    assert kills.calls == [("startupProbe", "Container c failed startup probe, will be restarted")]


def test_liveness_failures_restart_and_no_probe_means_ready():
    spec = {"name": "c", "livenessProbe": {"exec": {"command": ["x"]}, "failureThreshold": 2}}
    p, rt, c, events, kills = prober_for(spec)
    assert c.ready and c.startup_ok
    attempt(p, rt, c, "livenessProbe", False, "dead")
    assert not kills.calls
    attempt(p, rt, c, "livenessProbe", False, "dead")
    assert kills.calls == [("livenessProbe", "Container c failed liveness probe, will be restarted")]
    assert events == [("Warning", "Unhealthy", "Liveness probe failed: dead")] * 2


def test_an_adopted_container_keeps_its_readiness():
    spec = {"name": "c", "readinessProbe": {"exec": {"command": ["x"]}, "initialDelaySeconds": 60}}
    p, rt, c, _events, _kills = prober_for(spec)
    attempt(p, rt, c, "readinessProbe", True)
    saved = Container.from_state(c.to_state())         # what a restarted agent reads back
    saved.cid, saved.running = "id1", True
    rt.containers["c"] = saved
    p.arm(rt, saved, spec, adopted=True)
    assert saved.ready and rt.probes[("c", "readinessProbe")].result
    assert rt.probes[("c", "readinessProbe")].next_at <= time.time()   # probed at once, not after the delay


# ---- validation (agent/apiserver/validation/lifecycle.py) ---------------------------------

def _invalid(lifecycle: dict, grace: int | None = None) -> list[str]:
    from agent.apiserver import validation as V
    spec = {"containers": [{"name": "web", "image": "nginx", "lifecycle": lifecycle}]}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return [str(c) for c in V.validate("Pod", {"metadata": {"name": "web", "namespace": "default"}, "spec": spec})]


@pytest.mark.parametrize("lifecycle, grace, expected", [
    ({"preStop": {"sleep": {"seconds": 5}}, "postStart": {"exec": {"command": ["true"]}}}, None, None),
    ({"preStop": {"tcpSocket": {"port": 80}}}, None, None),            # accepted; the kubelet cannot run it
    ({"preStop": {}}, None, "spec.containers[0].lifecycle.preStop: Required value: must specify a handler type"),
    ({"postStart": {"exec": {"command": ["true"]}, "sleep": {"seconds": 1}}}, None,
     "spec.containers[0].lifecycle.postStart.sleep: Forbidden: may not specify more than 1 handler type"),
    ({"postStart": {"exec": {}}}, None, "spec.containers[0].lifecycle.postStart.exec.command: Required value"),
    ({"preStop": {"httpGet": {"path": "/", "port": 70000}}}, None,
     "spec.containers[0].lifecycle.preStop.httpGet.port: Invalid value: 70000: must be between 1 and 65535, inclusive"),
    ({"preStop": {"sleep": {"seconds": 0}}}, None,
     ("spec.containers[0].lifecycle.preStop.sleep: Invalid value: 0: must be greater than 0 and less than "
      "terminationGracePeriodSeconds (30)")),
    ({"preStop": {"sleep": {"seconds": 10}}}, 5,
     ("spec.containers[0].lifecycle.preStop.sleep: Invalid value: 10: must be greater than 0 and less than "
      "terminationGracePeriodSeconds (5)")),
])
def test_lifecycle_validation(lifecycle, grace, expected):
    out = _invalid(lifecycle, grace)
    assert out == ([expected] if expected else []), out


# ---- hooks.ContainerLifecycle over a fake runtime ---------------------------------------------

class FakeRuntime:
    """KubeRuntime's stop and its OCI runtime's exec_sync, recorded in order."""

    def __init__(self, exit_code=0):
        self.calls, self.exit_code, self.runtime = [], exit_code, self

    def exec_sync(self, cid, argv, timeout=None):
        self.calls.append(("exec", cid, argv[-1]))
        return self.exit_code, b"", b""

    def stop(self, cid, grace):
        self.calls.append(("stop", cid, grace))


def lifecycle_for(spec, exit_code=0, deletion=None):
    from agent.node.kubelet.hooks import ContainerLifecycle
    rt = FakeRT(spec)
    rt.pod["spec"]["terminationGracePeriodSeconds"] = 10
    if deletion is not None:
        rt.pod["metadata"] = dict(rt.pod["metadata"], deletionGracePeriodSeconds=deletion)
    events, marks, runtime = [], [], FakeRuntime(exit_code)
    lc = ContainerLifecycle(runtime, lambda pod, r, m, t="Normal": events.append((t, r, m)), marks.append)
    c = rt.containers["c"] = Container("c", "/nonexistent")
    c.cid, c.running = "id1", True
    return lc, rt, c, runtime, events, marks


def test_kill_runs_the_prestop_hook_then_stops_with_what_is_left():
    spec = {"name": "c", "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "drain"]}}}}
    lc, rt, c, runtime, events, marks = lifecycle_for(spec, deletion=6)
    lc.kill(rt, c, spec)
    assert runtime.calls == [("exec", "id1", "drain"), ("stop", "id1", 6.0)]   # deletionGracePeriodSeconds wins
    assert events == [("Normal", "Killing", "Stopping container c")] and marks == [rt]
    assert not lc.stopping("id1")


def test_a_failing_prestop_and_a_forced_kill():
    spec = {"name": "c", "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "exit 1"]}}}}
    lc, rt, c, runtime, events, _ = lifecycle_for(spec, exit_code=1)
    lc.kill(rt, c, spec, message="Container c failed liveness probe, will be restarted")
    assert runtime.calls == [("exec", "id1", "exit 1"), ("stop", "id1", 10.0)]
    assert events == [("Normal", "Killing", "Container c failed liveness probe, will be restarted"),
                      ("Warning", "FailedPreStopHook", "PreStopHook failed")]
    runtime.calls.clear()
    lc.kill(rt, c, spec, message=None, override=0)
    assert runtime.calls == [("stop", "id1", 0.0)]


def test_a_failing_post_start_hook_kills_the_container():
    spec = {"name": "c", "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "setup"]}}}}
    lc, rt, c, runtime, events, marks = lifecycle_for(spec, exit_code=2)
    armed = threading.Event()
    assert lc.post_start(rt, c, spec, then=armed.set)
    assert c.post_start or runtime.calls      # not running for the API until the hook is done
    deadline = time.monotonic() + 10
    while not marks and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not armed.is_set() and not c.post_start
    assert runtime.calls == [("exec", "id1", "setup"), ("stop", "id1", 10.0)]
    assert events == [("Warning", "FailedPostStartHook", "PostStartHook failed"), ("Normal", "Killing", "FailedPostStartHook")]
    assert not lc.post_start(rt, c, {"name": "c"}, then=armed.set)      # no hook: nothing to wait for
