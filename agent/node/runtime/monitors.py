"""The agent's side of the per-container monitors (monitor.py is the other).

`MonitorPool` keeps one monitor process started ahead of need, so that the
interpreter start-up of a monitor (tens of ms) is not part of a container's
start: `hand_over` gives the waiting monitor its job (one JSON line on its
stdin), reads its one-line answer and starts the next spare. The rest reads
what a monitor leaves in a container's state directory: whether it is still
alive (PID + start time, so a recycled PID is not mistaken for it) and the
exit record it writes when the container's process ends.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time

from . import kernel, monitor


def read_json(path: str) -> dict | None:
    """The JSON object in `path`, or None if missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def exit_record(state_dir: str) -> dict | None:
    """What the monitor recorded when the container's process ended, if it has."""
    return read_json(os.path.join(state_dir, monitor.EXIT_FILE))


def info(state_dir: str) -> dict:
    """monitor.json: the monitor's and the container's PIDs and start times."""
    return read_json(os.path.join(state_dir, monitor.MONITOR_FILE)) or {}


def alive(state_dir: str) -> bool:
    """Is the monitor of that container still running?"""
    found = info(state_dir)
    return kernel.process_alive(int(found.get("pid") or 0), found.get("startTicks"))


def wait_exit(state_dir: str, timeout: float | None) -> dict | None:
    """Block until the exit record appears, the monitor dies, or `timeout`."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.002
    while True:
        record = exit_record(state_dir)
        if record is not None or not alive(state_dir):
            return record or exit_record(state_dir)
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


class MonitorPool:
    """Hands container jobs to monitor processes, keeping one spare started."""

    def __init__(self):
        self._spare: subprocess.Popen | None = None
        self._lock = threading.Lock()

    @staticmethod
    def _start() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-S", os.path.abspath(monitor.__file__)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)

    def prestart(self) -> None:
        """Make sure a spare monitor is on its way."""
        with self._lock:
            if self._spare is None:
                self._spare = self._start()

    def hand_over(self, job: dict, timeout: float) -> dict:
        """Give `job` to a monitor (the spare if any); its answer as a dict.

        A spare that died before taking the job (its stdin is a broken pipe)
        is replaced by a fresh monitor once; nothing had been handed over.
        """
        with self._lock:
            mon, self._spare = self._spare, None
        for attempt in (1, 2):
            mon = mon or self._start()
            try:
                mon.stdin.write(json.dumps(job).encode() + b"\n")
                mon.stdin.close()
            except BrokenPipeError:
                mon.stdout.close()
                _reap(mon)
                mon = None
                if attempt == 1:
                    continue
                answer = json.dumps({"ok": False, "error": "monitor died before its job"})
                break
            try:
                answer = _read_line(mon.stdout, timeout)
            finally:
                mon.stdout.close()
                _reap(mon)                  # the monitor's short-lived parent
            break
        self.prestart()
        try:
            return json.loads(answer)
        except ValueError:
            return {"ok": False, "error": f"monitor gave no answer ({answer.strip()!r})"}

    def close(self) -> None:
        """Let the spare go: it reads end-of-file and exits."""
        with self._lock:
            mon, self._spare = self._spare, None
        if mon is not None:
            mon.stdin.close()
            mon.stdout.close()
            _reap(mon)


def _reap(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _read_line(pipe, timeout: float) -> str:
    """One line from `pipe` within `timeout` seconds ("" on end-of-file or timeout)."""
    fd = pipe.fileno()
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")
