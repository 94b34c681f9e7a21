"""The kubelet's lifecycle of one container instance around its process
(pkg/kubelet/kuberuntime startContainer step 4 and killContainer), over the
node's KubeRuntime: the postStart hook after the container started, the
preStop hook and SIGTERM/SIGKILL when it is stopped for any reason (pod
deletion, a failed liveness or startup probe, a failed postStart hook, a
changed definition). The rules themselves (handlers, grace periods) are in
lifecycle.py.

While its postStart hook runs a container is not yet running for the API
(it reports ContainerCreating, its probes wait, the pod's next containers
wait, as the kubelet's pod worker blocks on the hook); when the hook fails
it gets a `FailedPostStartHook` Event and is killed, then restarted as its
restartPolicy says.
"""
from __future__ import annotations

import logging
import threading

from agent.node.kubelet import lifecycle
from agent.node.kubelet.containers import Container

log = logging.getLogger("nsplane.kubelet.hooks")


def container_spec(pod: dict, name: str) -> dict:
    return next((s for s in pod["spec"].get("containers", []) if s.get("name") == name), {"name": name})


class ContainerLifecycle:
    """Hooks and stops of a node's containers. `event(pod, reason, message,
    type)` records an Event; `mark(rt)` asks for the pod to be synced again."""

    def __init__(self, runtime, event, mark):
        self.runtime, self.event, self.mark = runtime, event, mark
        self._stopping: set[str] = set()
        self._lock = threading.Lock()

    def _exec_in(self, cid: str):
        return lambda argv, timeout: self.runtime.runtime.exec_sync(cid, argv, timeout=timeout)

    def stopping(self, cid: str) -> bool:
        return cid in self._stopping

    # ---- postStart ------------------------------------------------------------------
    def post_start(self, rt, c: Container, spec: dict, then) -> bool:
        """Run the postStart hook of the instance just started, on a thread;
        `then()` once it succeeded. False if the container has no such hook."""
        handler = lifecycle.handler_of(spec, "postStart")
        if handler is None:
            return False
        c.post_start, cid = True, c.cid

        def run():
            msg = lifecycle.run_handler(handler, rt.pod, spec, rt.ip or "", self._exec_in(cid),
                                        threading.Event(), None)
            if c.cid == cid:
                c.post_start = False
            if msg:
                log.info("pod %s/%s: postStart hook of %s failed: %s", *rt.key, c.name, msg)
                # the message stays out of the Event (it can hold secrets), as the kubelet's
                self.event(rt.pod, "FailedPostStartHook", "PostStartHook failed", "Warning")
                self.kill(rt, c, spec, message="FailedPostStartHook")
            elif c.cid == cid:
                then()
            self.mark(rt)
        threading.Thread(target=run, name=f"poststart-{c.name}", daemon=True).start()
        return True

    # ---- stopping ---------------------------------------------------------------------
    def kill(self, rt, c: Container, spec: dict, reason: str = "", message: str | None = "",
             override: int | None = None) -> None:
        """killContainer of the current instance of `c`, here and now: the
        `Killing` Event (`message`, or "Stopping container <name>"; None: no
        Event), preStop inside the grace period, SIGTERM, SIGKILL. A second
        kill of an instance being stopped returns at once."""
        cid = c.cid
        with self._lock:
            if not cid or cid in self._stopping:
                return
            self._stopping.add(cid)
        try:
            if message is not None:
                self.event(rt.pod, "Killing", message or f"Stopping container {c.name}")
            handler = lifecycle.handler_of(spec, "preStop")
            grace = lifecycle.grace_period(rt.pod, spec, reason)
            prestop = None if handler is None else (
                lambda cancel: lifecycle.run_handler(handler, rt.pod, spec, rt.ip or "", self._exec_in(cid),
                                                     cancel, float(grace)))
            given = lifecycle.kill_container(
                grace, prestop, lambda seconds: self.runtime.stop(cid, float(seconds)),
                lambda msg: self.event(rt.pod, "FailedPreStopHook", "PreStopHook failed", "Warning"),
                override)
            log.info("pod %s/%s: container %s stopped (grace %ds%s)", *rt.key, c.name, given,
                     ", after its preStop hook" if prestop and override is None else "")
        finally:
            with self._lock:
                self._stopping.discard(cid)
            self.mark(rt)

    def kill_async(self, rt, c: Container, spec: dict, reason: str = "", message: str | None = "") -> None:
        """kill on a thread of its own (a restart: the sync loop goes on)."""
        threading.Thread(target=self.kill, args=(rt, c, spec, reason, message),
                         name=f"kill-{c.name}", daemon=True).start()
