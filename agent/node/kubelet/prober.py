"""The kubelet's probe manager (pkg/kubelet/prober): which probe of which
container runs when, and what its result does.

- startupProbe: until it succeeds, the container is not `started` and its
  readiness and liveness probes do not run; once it succeeded it runs no
  more; failureThreshold failures in a row kill the container ("Container x
  failed startup probe, will be restarted") and the restartPolicy decides.
- readinessProbe: its result is the container's readiness; without one, a
  container is ready once started.
- livenessProbe: failureThreshold failures in a row kill the container
  ("Container x failed liveness probe, will be restarted"); its preStop hook
  runs and the probe's own terminationGracePeriodSeconds applies if set.

Every failed attempt is an `Unhealthy` Warning ("Liveness probe failed: ..."),
counted by the Event recorder as the kubelet's are. A container's `ready`
and `startup_ok` are saved with the pod (containers.py), so an agent
restarted while the container runs picks its probes up where they were:
readiness does not drop to false and back (Part 6 of issue 13).
"""
from __future__ import annotations

import time

from agent.node.kubelet.containers import Container
from agent.node.kubelet.hooks import container_spec
from agent.node.kubelet.lifecycle import REASON_LIVENESS, REASON_STARTUP
from agent.node.kubelet.probes import ProbeState, run_probe

STARTUP, READINESS, LIVENESS = "startupProbe", "readinessProbe", "livenessProbe"
TITLE = {STARTUP: "Startup", READINESS: "Readiness", LIVENESS: "Liveness"}


class Prober:
    """Probes of one node's pods. `exec_sync(cid, argv, timeout)` runs a
    command in a container; `pool` runs the attempts; `lifecycle` kills
    (hooks.ContainerLifecycle); `event` and `mark` as the kubelet's."""

    def __init__(self, exec_sync, pool, lifecycle, event, mark, save):
        self.exec_sync, self.pool, self.lifecycle = exec_sync, pool, lifecycle
        self.event, self.mark, self.save = event, mark, save

    def arm(self, rt, c: Container, spec: dict, adopted: bool = False) -> None:
        """Probe states for an instance that just started (or, `adopted`, for
        one a restarted agent found running: its saved readiness and startup
        results stand until a probe says otherwise)."""
        for key in [k for k in rt.probes if k[0] == c.name]:
            del rt.probes[key]
        if not adopted:
            c.startup_ok = STARTUP not in spec
            c.ready = c.startup_ok and READINESS not in spec
        now = time.time()
        for kind in (STARTUP, READINESS, LIVENESS):
            if kind not in spec or (kind == STARTUP and c.startup_ok):
                continue
            initial = {STARTUP: False, READINESS: c.ready, LIVENESS: True}[kind]
            st = rt.probes[(c.name, kind)] = ProbeState(spec[kind], initial=initial)
            st.next_at = now + (0.0 if adopted else float(spec[kind].get("initialDelaySeconds", 0)))

    def run(self, rt) -> None:
        """Start the attempts that are due."""
        now = time.time()
        for (cname, kind), st in list(rt.probes.items()):
            c = rt.containers.get(cname)
            if c is None or not c.running or c.post_start or st.in_flight or now < st.next_at:
                continue
            if kind != STARTUP and not c.startup_ok:
                continue
            st.in_flight = True
            st.next_at = now + float(st.probe.get("periodSeconds", 10))
            spec = container_spec(rt.pod, cname)
            run_in = lambda argv, timeout, cid=c.cid: self.exec_sync(cid, argv, timeout)
            fut = self.pool.submit(run_probe, st.probe, rt.ip, spec, run_in)
            fut.add_done_callback(lambda f, rt=rt, c=c, kind=kind, st=st, cid=c.cid:
                                  self.done(rt, c, kind, st, f, cid))

    def done(self, rt, c: Container, kind: str, st: ProbeState, fut, cid: str) -> None:
        st.in_flight = False
        if rt.deleting_since or c.cid != cid or not c.running or rt.probes.get((c.name, kind)) is not st:
            return       # a probe of an instance that is gone
        try:
            ok, msg = fut.result()
        except Exception as e:  # noqa: BLE001 - a probe bug is a failed probe, not a dead kubelet
            ok, msg = False, str(e)
        if not ok:
            self.event(rt.pod, "Unhealthy", f"{TITLE[kind]} probe failed: {msg}", "Warning")
        if kind == STARTUP:
            self._startup(rt, c, st, ok, msg)
        elif st.record(ok, msg):
            if kind == READINESS:
                c.ready = st.result
                self.save(rt)
            elif not st.result:
                self._restart(rt, c, REASON_LIVENESS, "liveness")
        self.mark(rt)

    def _startup(self, rt, c: Container, st: ProbeState, ok: bool, msg: str) -> None:
        st.record(ok, msg)
        if st.result:
            c.startup_ok = True
            del rt.probes[(c.name, STARTUP)]
            if READINESS not in container_spec(rt.pod, c.name):
                c.ready = True
            self.save(rt)
        elif st.failures >= int(st.probe.get("failureThreshold", 3)):
            st.failures = 0
            self._restart(rt, c, REASON_STARTUP, "startup")

    def _restart(self, rt, c: Container, reason: str, what: str) -> None:
        self.lifecycle.kill_async(rt, c, container_spec(rt.pod, c.name), reason,
                                  f"Container {c.name} failed {what} probe, will be restarted")
