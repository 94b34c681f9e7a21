"""What the kubelet remembers of each container of a pod, across restarts of
the container and of the agent (it is saved in the pod's state file).

One `Container` per container name: the OCI container running it now (its
id; the runtime's monitor knows its state and exit code, see
agent/node/runtime), the restart count, the waiting reason while it cannot
start (ErrImagePull, CreateContainerConfigError, ...), the last instance's
termination (kept after the OCI container is removed, for the status's
`state`/`lastState`), the crash-loop back-off, and readiness. Each attempt
logs to its own file, <pod dir>/<name>/<restart count>.log, as the kubelet's
/var/log/pods does, so `logs --previous` reads the one before.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

_SAVED = ("name", "log_dir", "cid", "restarts", "image", "image_id", "standin", "started_at",
          "exit_code", "finished_at", "reason", "message", "last", "backoff_until",
          "waiting_reason", "waiting_message", "retry_at", "ready", "startup_ok")


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@dataclass
class Container:
    """One container of a pod: its current (or last) instance and its history."""
    name: str
    log_dir: str
    cid: str = ""                  # the OCI container of the current instance ("" = none)
    restarts: int = 0
    image: str = ""                # the image it runs, normalised (docker.io/library/nginx:1.27)
    image_id: str = ""
    standin: bool = False
    started_at: float = 0.0
    exit_code: int | None = None   # the current instance's end (None while it runs)
    finished_at: float = 0.0
    reason: str = ""               # Completed | Error | OOMKilled | StartError | Unknown
    message: str = ""
    last: dict | None = None       # lastState.terminated of the instance before
    backoff_until: float = 0.0     # crash-loop back-off; inf = never again (restartPolicy)
    waiting_reason: str = ""       # why no instance runs (ErrImagePull, CreateContainerError...)
    waiting_message: str = ""
    retry_at: float = 0.0          # when to try again after a waiting error
    ready: bool = False
    startup_ok: bool = True        # its startupProbe succeeded (or it has none): status `started`
    post_start: bool = False       # its postStart hook is running (not yet running for the API)
    running: bool = False          # as last seen from the runtime
    stdin_fd: int | None = field(default=None, repr=False)   # write end of its stdin FIFO

    @property
    def log_path(self) -> str:
        return os.path.join(self.log_dir, f"{self.restarts}.log")

    def previous_log_path(self) -> str | None:
        return os.path.join(self.log_dir, f"{self.restarts - 1}.log") if self.restarts else None

    def to_state(self) -> dict:
        return {k: getattr(self, k) for k in _SAVED if k != "backoff_until"} | {
            "backoff_until": None if self.backoff_until == float("inf") else self.backoff_until}

    @classmethod
    def from_state(cls, d: dict) -> "Container":
        c = cls(**{k: d[k] for k in _SAVED if k in d and k != "backoff_until"})
        c.backoff_until = float("inf") if d.get("backoff_until", 0.0) is None else d.get("backoff_until", 0.0)
        return c

    # ---- transitions ------------------------------------------------------------------
    def started(self, cid: str, image: str, image_id: str, standin: bool) -> None:
        self.cid, self.image, self.image_id, self.standin = cid, image, image_id, standin
        self.started_at, self.running, self.post_start = time.time(), True, False
        self.exit_code, self.finished_at, self.reason, self.message = None, 0.0, "", ""
        self.waiting_reason = self.waiting_message = ""
        self.backoff_until = self.retry_at = 0.0

    def finished(self, exit_code: int, reason: str, message: str = "",
                 finished_at: float | None = None) -> None:
        self.exit_code, self.reason, self.message = exit_code, reason, message
        self.finished_at = finished_at or time.time()
        self.running = self.ready = False
        self.close_stdin()

    def termination(self) -> dict:
        """The current instance's end as the API's ContainerStateTerminated."""
        term = {"exitCode": self.exit_code, "reason": self.reason,
                "startedAt": iso(self.started_at) if self.started_at else None,
                "finishedAt": iso(self.finished_at), "containerID": self.container_id}
        if self.message:
            term["message"] = self.message
        return term

    def restarting(self) -> None:
        """A new instance replaces a finished one: it becomes lastState. Only
        its log stays with it (`logs --previous`); older ones go, as the
        kubelet keeps one dead container per container."""
        if self.exit_code is not None:
            self.last = self.termination()
            self.restarts += 1
            self.exit_code, self.reason, self.message = None, "", ""
            try:
                os.remove(os.path.join(self.log_dir, f"{self.restarts - 2}.log"))
            except OSError:
                pass
        self.cid = ""

    def waiting(self, reason: str, message: str, retry_in: float = 0.0) -> bool:
        """Set the waiting reason; True if it changed."""
        changed = (self.waiting_reason, self.waiting_message) != (reason, message)
        self.waiting_reason, self.waiting_message = reason, message
        self.retry_at = time.time() + retry_in if retry_in else 0.0
        return changed

    @property
    def container_id(self) -> str:
        """status containerID: `nsplane://<OCI container id>` (the node's runtime name, as
        containerd's are `containerd://<id>`); the id is what `crun --root ... list` shows."""
        return f"nsplane://{self.cid}" if self.cid else ""

    def close_stdin(self) -> None:
        if self.stdin_fd is not None:
            try:
                os.close(self.stdin_fd)
            except OSError:
                pass
            self.stdin_fd = None


def backoff(restarts: int) -> float:
    """kubelet's crash-loop back-off: 0 for the first restart, then 10 s doubling to 300 s."""
    if restarts <= 0:
        return 0.0
    return min(10.0 * 2 ** (restarts - 1), 300.0)
