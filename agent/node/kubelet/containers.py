"""Containers as processes: start one inside a pod's namespaces, watch it,
stop it (SIGTERM, grace period, SIGKILL), and find it again after the agent
restarts (pid + start time recorded in the pod's state file, so a reused PID
is never mistaken for our container).

Each container runs in its own session (process group), with stdout and
stderr appended to a log file that `logs` reads.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (clock ticks since boot), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()
    if rest[0] == b"Z":
        return None
    return int(rest[19])


@dataclass
class Container:
    """One running (or last-run) instance of a container of a pod."""
    name: str
    log_path: str
    pid: int = 0
    start_ticks: int = 0
    started_at: float = 0.0
    restarts: int = 0
    exit_code: int | None = None
    finished_at: float = 0.0
    reason: str = ""          # waiting/terminated reason (ErrImagePull-like, Error, Completed, CrashLoopBackOff)
    message: str = ""
    backoff_until: float = 0.0
    ready: bool = False
    probe_ok: dict = field(default_factory=dict)   # probe kind -> (successes, failures)
    _proc: subprocess.Popen | None = None
    _stdin_w: int | None = None

    # ---- state ------------------------------------------------------
    def running(self) -> bool:
        if not self.pid:
            return False
        if self._proc is not None:
            code = self._proc.poll()
            if code is None:
                return True
            self._finish(code)
            return False
        if proc_start_time(self.pid) == self.start_ticks:
            return True
        self._finish(None)   # adopted and gone: its exit code is unknowable
        return False

    def _finish(self, code: int | None) -> None:
        if code is not None and code < 0:
            code = 128 - code   # killed by signal N -> 128+N, as a shell reports
        self.exit_code = code if code is not None else 137
        self.finished_at = time.time()
        self.reason = "Completed" if self.exit_code == 0 else "Error"
        self.pid, self._proc = 0, None
        self._close_stdin()
        self.ready = False
        self.probe_ok.clear()

    def _close_stdin(self) -> None:
        if self._stdin_w is not None:
            os.close(self._stdin_w)
            self._stdin_w = None

    def to_state(self) -> dict:
        return {"name": self.name, "log_path": self.log_path, "pid": self.pid, "start_ticks": self.start_ticks,
                "started_at": self.started_at, "restarts": self.restarts, "exit_code": self.exit_code,
                "finished_at": self.finished_at, "reason": self.reason}

    @classmethod
    def from_state(cls, d: dict) -> "Container":
        c = cls(**{k: d[k] for k in ("name", "log_path", "pid", "start_ticks", "started_at", "restarts",
                                     "exit_code", "finished_at", "reason") if k in d})
        if c.pid and proc_start_time(c.pid) != c.start_ticks:
            c.pid = 0
        return c

    # ---- actions ----------------------------------------------------
    def start(self, argv: list[str], env: dict[str, str], cwd: str = "/", stdin: bool = False) -> None:
        """Start the process. With stdin (a container with `stdin: true`), it
        reads from a pipe the kubelet holds open, so a shell waits instead of
        exiting at end of input, as under a container runtime."""
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        self._close_stdin()
        read_end = subprocess.DEVNULL
        if stdin:
            read_end, self._stdin_w = os.pipe()
        try:
            with open(self.log_path, "ab") as log:
                self._proc = subprocess.Popen(argv, stdin=read_end, stdout=log, stderr=log,
                                              env=env, cwd=cwd, start_new_session=True, close_fds=True)
        finally:
            if stdin:
                os.close(read_end)
        self.pid = self._proc.pid
        self.start_ticks = proc_start_time(self.pid) or 0
        self.started_at = time.time()
        self.exit_code, self.reason, self.message = None, "", ""

    def signal(self, sig: int) -> None:
        if not self.pid:
            return
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(self.pid, sig)

    def stop(self, grace: float) -> None:
        """SIGTERM, wait up to `grace` seconds, then SIGKILL the process group."""
        if not self.running():
            return
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + max(grace, 0)
        while time.monotonic() < deadline and self.running():
            time.sleep(0.02)
        if self.running():
            self.signal(signal.SIGKILL)
            for _ in range(250):
                if not self.running():
                    break
                time.sleep(0.02)


def backoff(restarts: int) -> float:
    """kubelet's crash-loop back-off: 0 for the first restart, then 10 s doubling to 300 s."""
    if restarts <= 0:
        return 0.0
    return min(10.0 * 2 ** (restarts - 1), 300.0)
