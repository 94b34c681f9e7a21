"""Readiness and liveness probes as the kubelet runs them: httpGet (2xx/3xx
is success), tcpSocket (a connection is success) and exec (exit 0 is
success), with initialDelaySeconds, periodSeconds, timeoutSeconds,
successThreshold and failureThreshold.

Probes run from the node's network namespace (where the kubelet is) against
the pod's IP, like the real kubelet; exec probes run inside the container
(the runtime's exec: the container's user, environment and namespaces).
"""
from __future__ import annotations

import http.client
import socket

from agent.node.runtime.errors import RuntimeLayerError


def resolve_port(port, container: dict) -> int:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for p in container.get("ports", []) or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"port {port!r} is not a named port of container {container.get('name')}")


def run_probe(probe: dict, pod_ip: str, container: dict, exec_in) -> tuple[bool, str]:
    """One attempt. Returns (success, message for events). `exec_in(argv,
    timeout)` runs a command in the container: (exit code, stdout, stderr)."""
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "httpGet" in probe:
            h = probe["httpGet"]
            port = resolve_port(h.get("port"), container)
            host = h.get("host") or pod_ip
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
            try:
                headers = {x["name"]: x["value"] for x in h.get("httpHeaders", []) or []}
                headers.setdefault("User-Agent", "kube-probe/1.32")
                conn.request("GET", h.get("path", "/"), headers=headers)
                code = conn.getresponse().status
            finally:
                conn.close()
            ok = 200 <= code < 400
            return ok, "" if ok else f"HTTP probe failed with statuscode: {code}"
        if "tcpSocket" in probe:
            t = probe["tcpSocket"]
            port = resolve_port(t.get("port"), container)
            with socket.create_connection((t.get("host") or pod_ip, port), timeout=timeout):
                return True, ""
        if "exec" in probe:
            argv = [str(a) for a in probe["exec"].get("command", [])]
            try:
                code, out, err = exec_in(argv, timeout)
            except RuntimeLayerError as e:
                if e.reason == "ExecTimeout":
                    return False, f"command {' '.join(argv)!r} timed out"
                return False, str(e)
            return code == 0, (out + err).decode(errors="replace").strip()
        if "grpc" in probe:
            return False, "grpc probes are not supported by nsplane; use httpGet, tcpSocket or exec"
    except (OSError, ValueError, http.client.HTTPException) as e:
        return False, f"{_what(probe)} failed: {e}"
    return False, "probe has no handler"


def _what(probe: dict) -> str:
    for k in ("httpGet", "tcpSocket", "exec"):
        if k in probe:
            return {"httpGet": "HTTP probe", "tcpSocket": "TCP probe", "exec": "exec probe"}[k]
    return "probe"


class ProbeState:
    """Thresholds over consecutive results: `result` flips only after
    successThreshold successes or failureThreshold failures."""

    def __init__(self, probe: dict, initial: bool):
        self.probe = probe
        self.result = initial
        self.successes = 0
        self.failures = 0
        self.next_at = 0.0
        self.message = ""
        self.in_flight = False

    def record(self, ok: bool, message: str) -> bool:
        """Returns True when the outcome changed."""
        self.message = message
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if not self.result and self.successes >= int(self.probe.get("successThreshold", 1)):
                self.result = True
                return True
        else:
            self.failures, self.successes = self.failures + 1, 0
            if self.result and self.failures >= int(self.probe.get("failureThreshold", 3)):
                self.result = False
                return True
        return False
