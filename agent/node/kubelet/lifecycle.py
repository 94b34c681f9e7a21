"""Container lifecycle hooks and the kubelet's way of stopping a container
(pkg/kubelet/lifecycle/handlers.go and killContainer of pkg/kubelet/kuberuntime).

`run_handler` runs one LifecycleHandler of a container: `exec` (inside the
container, through the runtime's exec; a non-zero exit is a failure), `httpGet`
(from the node's namespace to the pod's IP unless `host` is set; any HTTP
answer is a success, only a transport error fails, as in the kubelet),
`sleep` (waits, cut short when the container goes) and anything else
(`tcpSocket` is accepted by validation for old manifests but the kubelet
cannot run it) fails with the kubelet's "Cannot run handler". It returns ""
on success or the kubelet's message for the failure.

`kill_container` is the kubelet's killContainer: the grace period comes from
the pod's deletionGracePeriodSeconds, else the probe's
terminationGracePeriodSeconds when a liveness/startup probe failed, else the
pod's terminationGracePeriodSeconds; the preStop hook runs first and uses up
part of that period (it is given at most the whole period; a failure is a
`FailedPreStopHook` Event and the container is stopped anyway); what remains
is SIGTERM's grace, but never less than 2 s, so the container always has a
short window to shut down after its hook.
"""
from __future__ import annotations

import http.client
import logging
import ssl
import threading
import time

from agent.node.kubelet.probes import resolve_port
from agent.node.runtime.errors import RuntimeLayerError

log = logging.getLogger("nsplane.kubelet.lifecycle")

MIN_GRACE = 2                         # minimumGracePeriodInSeconds
USER_AGENT = "kube-lifecycle/1.32"
HTTP_HOOK_TIMEOUT = 30.0              # bounds a postStart httpGet against a server that never answers
REASON_LIVENESS, REASON_STARTUP = "livenessProbe", "startupProbe"


def pod_label(pod: dict) -> str:
    """format.Pod: name_namespace(uid)."""
    md = pod["metadata"]
    return f"{md['name']}_{md['namespace']}({md['uid']})"


def handler_of(spec: dict, hook: str) -> dict | None:
    """The container's postStart or preStop handler, None if it has none."""
    return ((spec.get("lifecycle") or {}).get(hook)) or None


def run_handler(handler: dict, pod: dict, container: dict, pod_ip: str, exec_in,
                cancel: threading.Event, timeout: float | None) -> str:
    """Run one LifecycleHandler; "" on success, the kubelet's failure message otherwise.

    `exec_in(argv, timeout)` runs a command in the container and returns
    (exit code, stdout, stderr); `cancel` is set when the container is gone
    (a sleep stops then); `timeout` bounds exec and httpGet (None: no bound).
    """
    name, who = container.get("name", ""), pod_label(pod)
    if "exec" in handler:
        argv = [str(a) for a in (handler["exec"] or {}).get("command", [])]
        shown = "[" + " ".join(argv) + "]"
        try:
            code, out, err = exec_in(argv, timeout)
        except RuntimeLayerError as e:
            return (f'Exec lifecycle hook ({shown}) for Container "{name}" in Pod "{who}" failed - '
                    f'error: {e}, message: ""')
        if code == 0:
            return ""
        output = (out + err).decode(errors="replace")
        return (f'Exec lifecycle hook ({shown}) for Container "{name}" in Pod "{who}" failed - error: '
                f"command '{' '.join(argv)}' exited with {code}: {err.decode(errors='replace')}, "
                f"message: {_quote(output)}")
    if "httpGet" in handler:
        h = handler["httpGet"] or {}
        try:
            _http_get(h, container, pod_ip, timeout or HTTP_HOOK_TIMEOUT)
            return ""
        except (OSError, ValueError, http.client.HTTPException) as e:
            return (f'HTTP lifecycle hook ({h.get("path", "")}) for Container "{name}" in Pod "{who}" '
                    f"failed - error: {e}")
    if "sleep" in handler:
        seconds = int((handler["sleep"] or {}).get("seconds", 0))
        if cancel.wait(seconds):
            return (f'Sleep lifecycle hook ({seconds}) for Container "{name}" in Pod "{who}" failed - '
                    "error: container terminated before sleep hook finished")
        return ""
    return f"Cannot run handler: invalid handler: {_describe(handler)}"


def _http_get(h: dict, container: dict, pod_ip: str, timeout: float) -> int:
    """GET the hook's URL; returns the status code (any answer is a success)."""
    port = h.get("port")
    port = 80 if port in ("", None) else resolve_port(port, container)
    host = h.get("host") or pod_ip
    if (h.get("scheme") or "HTTP").upper() == "HTTPS":
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE      # as the kubelet: no verification
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        headers = {x["name"]: x["value"] for x in h.get("httpHeaders", []) or []}
        headers.setdefault("User-Agent", USER_AGENT)
        path = h.get("path") or "/"
        conn.request("GET", path if path.startswith("/") else "/" + path, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _describe(handler: dict) -> str:
    return "&LifecycleHandler{" + ",".join(f"{k}:{v}" for k, v in handler.items()) + "}"


# ---- stopping a container ---------------------------------------------------------------

def grace_period(pod: dict, spec: dict, reason: str = "") -> int:
    """setTerminationGracePeriod: how long this kill may take."""
    deletion = pod["metadata"].get("deletionGracePeriodSeconds")
    if deletion is not None:
        return int(deletion)
    if reason in (REASON_LIVENESS, REASON_STARTUP):
        own = (spec.get(reason) or {}).get("terminationGracePeriodSeconds")
        if own is not None:
            return int(own)
    return int(pod["spec"].get("terminationGracePeriodSeconds", 30))


def kill_container(grace: int, prestop, stop, failed, override: int | None = None) -> int:
    """killContainer. `prestop(cancel)` runs the hook and returns "" or its
    failure message (None: no hook); `stop(seconds)` sends SIGTERM and SIGKILL
    after `seconds`; `failed(message)` records a FailedPreStopHook. With
    `override` (a pod gone from the API), exactly that grace and no hook.
    Returns the grace SIGTERM was given."""
    if override is not None:
        stop(override)
        return override
    if prestop is not None and grace > 0:
        grace -= _run_prestop(prestop, grace, failed)
    grace = max(grace, MIN_GRACE)
    stop(grace)
    return grace


def _run_prestop(prestop, grace: int, failed) -> int:
    """executePreStopHook: the hook on a thread of its own, waited for at
    most `grace` seconds; returns the whole seconds it took."""
    t0 = time.monotonic()
    cancel = threading.Event()

    def run():
        try:
            msg = prestop(cancel)
        except Exception as e:  # noqa: BLE001 - a hook bug is a failed hook, never a container left running
            msg = f"PreStop hook failed: {e}"
        if msg and not cancel.is_set():     # not the sleep we cut short at the deadline
            log.info("preStop hook failed: %s", msg)
            failed(msg)
    t = threading.Thread(target=run, name="prestop", daemon=True)
    t.start()
    t.join(grace)
    if t.is_alive():
        log.info("preStop hook not completed in its grace period of %ds", grace)
    cancel.set()     # a sleep still running ends with the container
    return int(time.monotonic() - t0)
