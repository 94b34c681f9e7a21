"""The cluster's processes on this machine: detached, with a pidfile that
holds the PID and its start time (so a reused PID is never signalled), logs
under <state>/<cluster>/logs; and waiting for what they serve."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from agent.api.client import APIStatusError
from agent.api.config import ClusterConfig
from agent.node.runtime.kernel import proc_start_ticks as proc_start_time
from dataplane import netns


class ClusterError(Exception):
    pass


def _pidfile(cfg: ClusterConfig, role: str) -> str:
    return os.path.join(cfg.rundir, f"{role}.pid")


def running_pid(cfg: ClusterConfig, role: str) -> int | None:
    try:
        with open(_pidfile(cfg, role)) as f:
            pid, ticks = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        return None
    return pid if proc_start_time(pid) == ticks else None


def spawn(cfg: ClusterConfig, role: str, argv: list[str], net: str | None = None) -> int:
    if net:
        argv = ["nsenter", f"--net={netns.path(net)}", "--", *argv]
    os.makedirs(os.path.join(cfg.dir, "logs"), exist_ok=True)
    os.makedirs(cfg.rundir, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(os.path.join(cfg.dir, "logs", f"{role}.log"), "ab") as log:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             start_new_session=True, env=env, cwd="/")
    with open(_pidfile(cfg, role), "w") as f:
        f.write(f"{p.pid} {proc_start_time(p.pid) or 0}\n")
    return p.pid


def stop_pid(pid: int, ticks: int | None, timeout: float = 10.0) -> None:
    if ticks is None or proc_start_time(pid) != ticks:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc_start_time(pid) == ticks:
        time.sleep(0.05)
    if proc_start_time(pid) == ticks:
        os.kill(pid, signal.SIGKILL)
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop_role(cfg: ClusterConfig, role: str) -> bool:
    pid = running_pid(cfg, role)
    if pid:
        stop_pid(pid, proc_start_time(pid))
    try:
        os.remove(_pidfile(cfg, role))
    except OSError:
        pass
    return pid is not None


def python(cfg: ClusterConfig) -> str:
    return cfg.python or sys.executable


def wait(check, timeout: float, what: str, log_path: str) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, APIStatusError, ValueError) as e:
            last = e
        time.sleep(0.1)
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what} ({last}); see {log_path}")
