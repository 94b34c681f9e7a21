"""The per-container monitor: holds a container's exit status for the agent.

With `create` then `start`, neither crun nor runc keeps the exit status of a
container's process: whoever is its parent must wait(2) for it. If that were
the agent (PR_SET_CHILD_SUBREAPER on the agent itself), an agent restart
would orphan every container to PID 1, which reaps them and throws the status
away. So, like conmon or containerd's shim, one small process per container
outlives the agent:

    agent --Popen--> monitor.py --fork--> monitor (own session, child subreaper)
                        (exits)              |  reads its job: one JSON line on stdin
                                             |-- <runtime> create   (exits)
                                             \\-- container process  (re-parented here)

The agent starts a monitor *before* it needs one (a spare, so Python's
start-up is off the container's critical path) and hands it the job when a
container is created: {"stateDir", "log", "hideUnified", "argv"} and, for a
container that keeps its stdin open, "stdin": a FIFO whose write end the
agent holds. The monitor runs `<runtime> create` with the container's log file
(opened for append) as its stdout and stderr and that FIFO (else /dev/null)
as its stdin, writes `monitor.json` (its PID and start time, the
container's PID and memory cgroup), answers one JSON line on stdout and then
lets go of the agent's pipes. It waits for the container's process, reads
the memory cgroup's OOM-kill counter (the cgroup still exists: the agent
deletes the container only after this file appears), writes `exit.json`
atomically and exits. A restarted agent finds both files in the state dir.
A monitor that reads end-of-file instead of a job (the agent went away)
simply exits.

Run as a script with the standard library only: a monitor never imports the
agent.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

try:
    from . import cgroups, kernel
except ImportError:  # run as a script: import the siblings directly
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import cgroups  # type: ignore[no-redef]
    import kernel  # type: ignore[no-redef]

MONITOR_FILE = "monitor.json"
EXIT_FILE = "exit.json"
PID_FILE = "container.pid"
MONITOR_LOG = "monitor.log"
CREATE_TIMEOUT = 60


def write_json(path: str, data: dict, durable: bool = True) -> None:
    """Write `data` to `path` atomically (tmp file, fsync, rename).

    `durable=False` skips the fsync (milliseconds on a busy disk, on a
    container's start path) for files that only describe live processes:
    after a machine crash those are gone anyway, and an agent crash loses
    nothing of the page cache; the rename still makes the write atomic.
    """
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def _create(argv: list[str], log_path: str, hide: bool, stdin: str = "") -> int:
    """Run `<runtime> create` with the log file as its (and the container's)
    stdout/stderr, and /dev/null or the FIFO `stdin` as its stdin."""
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    pid = os.fork()
    if pid == 0:
        try:
            source = os.open(stdin or os.devnull, os.O_RDONLY)
            os.dup2(source, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            if hide:
                cgroups.hide_unified()
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    os.close(log)
    signal.signal(signal.SIGALRM, lambda *_: os.kill(pid, signal.SIGKILL))
    signal.alarm(CREATE_TIMEOUT)
    _, status = os.waitpid(pid, 0)
    signal.alarm(0)
    return os.waitstatus_to_exitcode(status)


def _exit_record(status: int, memory_dir: str | None) -> dict:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        code = 128 + sig
    else:
        sig = 0
        code = os.WEXITSTATUS(status)
    kills = cgroups.oom_kills(memory_dir)
    return {"exitCode": code, "signal": sig, "oomKilled": kills > 0,
            "oomKills": kills, "finishedAt": time.time()}


def _wait_for(pid: int) -> int:
    """Reap every child until `pid` exits; return its wait status (-1: lost)."""
    while True:
        try:
            reaped, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return -1
        except InterruptedError:
            continue
        if reaped == pid:
            return status


def _let_go(state_dir: str) -> None:
    """Swap the agent's pipes on fds 0-2 for /dev/null and our own log."""
    devnull = os.open(os.devnull, os.O_RDWR)
    log = os.open(os.path.join(state_dir, MONITOR_LOG),
                  os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(devnull)
    os.close(log)


def _report(data: dict) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def _run(job: dict, cgroup_mounts: list | None = None) -> None:
    state_dir = job["stateDir"]
    rc = _create(job["argv"], job["log"], bool(job.get("hideUnified")), job.get("stdin") or "")
    if rc != 0:
        _report({"ok": False, "exitCode": rc})
        return
    with open(os.path.join(state_dir, PID_FILE), encoding="utf-8") as fh:
        pid = int(fh.read().strip())
    memory = cgroups.memory_dir(pid, cgroup_mounts)
    write_json(os.path.join(state_dir, MONITOR_FILE), {
        "pid": os.getpid(), "startTicks": kernel.proc_start_ticks(os.getpid()),
        "containerPid": pid, "containerStartTicks": kernel.proc_start_ticks(pid),
        "memoryCgroup": memory}, durable=False)
    _report({"ok": True, "pid": pid, "monitor": os.getpid()})
    _let_go(state_dir)
    status = _wait_for(pid)
    record = _exit_record(status, memory) if status >= 0 else {
        "exitCode": 255, "signal": 0, "oomKilled": False, "oomKills": 0,
        "finishedAt": time.time(), "lost": True}
    write_json(os.path.join(state_dir, EXIT_FILE), record)


def main() -> None:
    """Detach, become a subreaper, wait for the job, do it."""
    if os.fork():
        os._exit(0)                  # the agent reaps this parent; we live on detached
    os.setsid()
    os.chdir("/")                    # pin no directory (or mount) of the agent's
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    kernel.set_child_subreaper()
    # Read while idle (a spare waits here): the cgroup mounts, for memory_dir.
    cgroup_mounts = [r for r in kernel.mounts() if r.fstype in ("cgroup", "cgroup2")]
    line = sys.stdin.readline()
    if not line.strip():
        os._exit(0)                  # no job: the agent went away
    try:
        _run(json.loads(line), cgroup_mounts)
    except BaseException as err:  # noqa: BLE001 - last words to the agent, then exit
        try:
            _report({"ok": False, "error": repr(err)})
        except OSError:
            pass
        os._exit(1)
    os._exit(0)


if __name__ == "__main__":
    main()
