"""The OCI runtime driver: crun or runc, run the way the kubelet needs them.

Owns the container lifecycle below the kubelet: create (through a
per-container monitor, see monitor.py), start, state, kill, stop, exec, wait
and delete, for containers whose bundles someone else prepared.

- Runtime choice: crun if it is installed (it is what DESIGN.md names and the
  faster delete), else runc; `runtime=` or $NSPLANE_OCI_RUNTIME forces one.
  The choice is remembered in the state dir so a restarted agent manages the
  containers it left. On a hybrid cgroup machine crun's `create` runs in a
  private mount table without the unified mount (cgroups.hide_unified);
  start/kill/exec/delete need nothing special. runc works as is everywhere.
- Isolation from anything else on the machine: the runtime's `--root` is
  `<state_dir>/<runtime>`, every container id starts with `nsplane-`.
- Exit status: a monitor process per container (monitor.py; not
  PR_SET_CHILD_SUBREAPER in the agent) because it outlives an agent restart:
  the restarted agent reads the status the monitor wrote. One monitor is kept
  started ahead (monitors.py), so creating through it costs about what a
  bare `create` costs. A systemd unit running the agent must use
  KillMode=process (as containerd.service does) so restarts spare monitors,
  and the agent must not itself be a child subreaper.
- Logs: the container's stdout and stderr are one file opened for append (a
  pipe would never close, and a file survives the agent).
- OOM: the monitor records the memory cgroup's oom_kill counter before the
  cgroup goes; `status` reports reason OOMKilled (exit 137 for SIGKILL).
- Cleanup: delete removes the runtime's state, then the parent cgroups
  named in cgroupsPath, then the monitor's directory.

Errors are RuntimeLayerError subclasses naming the container and the fix.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field

from . import cgroups, kernel, monitor, monitors, spec
from .errors import (ContainerCreateError, ContainerNotFound, ContainerStartError,
                     OCIRuntimeNotFound, RuntimeLayerError)
from .ociexec import ExecMixin

PREFIX = "nsplane-"
RUNTIMES = ("crun", "runc")
_ID_RE = re.compile(r"^nsplane-[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$")
_TIMEOUT = 30.0
_CHOICE_FILE = "oci-runtime"
_META_FILE = "meta.json"
_STARTED_FILE = "started"
_RUNTIME_LOG = "runtime.log"


@dataclass
class ContainerStatus:
    """What the kubelet needs to know about one container."""
    id: str
    state: str                       # created | running | exited | unknown
    pid: int = 0
    bundle: str = ""
    log_path: str = ""
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    reason: str = ""                 # Completed | Error | OOMKilled | Unknown
    message: str = ""
    annotations: dict = field(default_factory=dict)


def container_id(*parts: str) -> str:
    """A valid container id from parts (pod uid, container name, attempt...)."""
    text = "-".join(re.sub(r"[^A-Za-z0-9_.-]+", "-", str(p)).strip("-.") for p in parts)
    cid = PREFIX + (text or "container")
    if not _ID_RE.match(cid):
        raise ContainerCreateError(f"container id {cid!r} is not valid: use letters, "
                                   "digits, '-', '_' and '.', at most 200 characters")
    return cid


def detect_runtime(preferred: str | None = None) -> tuple[str, str]:
    """(name, path) of the OCI runtime to use: `preferred`, else crun, else runc."""
    names = (preferred,) if preferred else RUNTIMES
    for name in names:
        if name not in RUNTIMES:
            raise OCIRuntimeNotFound(f"OCI runtime {name!r} is not supported: use crun or runc")
        path = shutil.which(name)
        if path and subprocess.run([path, "--version"], capture_output=True,
                                   timeout=_TIMEOUT, check=False).returncode == 0:
            return name, path
    wanted = preferred or "crun or runc"
    raise OCIRuntimeNotFound(f"no working OCI runtime ({wanted}) on this machine: "
                             "install it (apt-get install -y crun runc)")


def _last_error(log_path: str) -> str:
    """The last message the runtime logged (json lines via --log)."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        try:
            return str(json.loads(line).get("msg", "")).strip()
        except ValueError:
            if line.strip():
                return line.strip()
    return ""


def _hint(message: str) -> str:
    text = message.lower()
    if "executable file" in text or "exec:" in text or "no such file" in text:
        return ("check the image's ENTRYPOINT/CMD and the container's command/args "
                "(the program must exist in the image)")
    if "permission denied" in text:
        return "check the program's mode and the container's user (runAsUser)"
    if "cgroup" in text:
        return "check cgroupsPath and that the cgroup hierarchies are mounted"
    return "see the runtime log beside the container's monitor state"


class OCIRuntime(ExecMixin):
    """One OCI runtime binary with our own state root."""

    def __init__(self, state_dir: str, runtime: str | None = None,
                 cgroup_layout: str | None = None):
        self.state_dir = os.path.abspath(state_dir)
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        choice_file = os.path.join(self.state_dir, _CHOICE_FILE)
        preferred = runtime or os.environ.get("NSPLANE_OCI_RUNTIME") or None
        if preferred is None:
            try:
                with open(choice_file, encoding="utf-8") as fh:
                    remembered = fh.read().strip()
                if remembered in RUNTIMES and shutil.which(remembered):
                    preferred = remembered
            except OSError:
                pass
        self.name, self.binary = detect_runtime(preferred)
        with open(choice_file, "w", encoding="utf-8") as fh:
            fh.write(self.name + "\n")
        self.root = os.path.join(self.state_dir, self.name)
        self.containers_dir = os.path.join(self.state_dir, "containers")
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        os.makedirs(self.containers_dir, mode=0o700, exist_ok=True)
        self.cgroup_layout = cgroup_layout or cgroups.layout()
        self.hide_unified = self.name == "crun" and self.cgroup_layout == cgroups.HYBRID
        self._monitors = monitors.MonitorPool()

    # ---- plumbing ----------------------------------------------------------
    def _argv(self, *args: str) -> list[str]:
        return [self.binary, "--root", self.root, *args]

    def _log_args(self, cid: str) -> list[str]:
        path = os.path.join(self._dir(cid), _RUNTIME_LOG)
        dest = f"file:{path}" if self.name == "crun" else path
        return ["--log", dest, "--log-format", "json"]

    def _known(self, cid: str) -> bool:
        """Does the runtime hold state for `cid`? (crun and runc both keep <root>/<id>/)"""
        return os.path.isdir(os.path.join(self.root, cid))

    def _dir(self, cid: str) -> str:
        return os.path.join(self.containers_dir, cid)

    def _run(self, args: list[str], timeout: float = _TIMEOUT) -> subprocess.CompletedProcess:
        return subprocess.run(self._argv(*args), capture_output=True, text=True,
                              timeout=timeout, check=False)

    @staticmethod
    def _check_id(cid: str) -> None:
        if not _ID_RE.match(cid):
            raise ContainerNotFound(f"container {cid!r}: not one of ours (ids start with "
                                    f"{PREFIX!r}); build ids with oci.container_id()")

    # ---- lifecycle ---------------------------------------------------------
    def create(self, cid: str, bundle: str, log_path: str, timeout: float = 60.0,
               stdin: str = "") -> int:
        """Create container `cid` from `bundle`; its output appends to `log_path`.

        `stdin` is a FIFO the container reads as its stdin (the caller holds
        its write end open, O_RDWR, before calling); default /dev/null.
        Returns the PID of the container's process (not yet running the
        program: `start` does that).
        """
        return self._create(cid, bundle, log_path, timeout, ["create"], stdin)

    def run(self, cid: str, bundle: str, log_path: str, timeout: float = 60.0,
            stdin: str = "") -> int:
        """create + start in one runtime call (`run --detach`): the fast path
        when nothing has to happen between the two. Returns the PID."""
        pid = self._create(cid, bundle, log_path, timeout, ["run", "--detach"], stdin)
        self._mark_started(cid)
        return pid

    def _create(self, cid: str, bundle: str, log_path: str, timeout: float,
                verb: list[str], stdin: str = "") -> int:
        self._check_id(cid)
        bundle = os.path.abspath(bundle)
        config = monitors.read_json(os.path.join(bundle, "config.json"))
        if config is None:
            raise ContainerCreateError(f"container {cid}: no readable config.json in bundle "
                                       f"{bundle}; write the spec (spec.container_spec) first")
        if self._known(cid):
            raise ContainerCreateError(f"container {cid} already exists under {self.root}; "
                                       "delete it first")
        cdir = self._dir(cid)
        shutil.rmtree(cdir, ignore_errors=True)
        os.makedirs(cdir, mode=0o700)
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
        monitor.write_json(os.path.join(cdir, _META_FILE), {
            "bundle": bundle, "log": os.path.abspath(log_path), "createdAt": time.time(),
            "cgroupsPath": config.get("linux", {}).get("cgroupsPath", ""),
            "annotations": config.get("annotations") or {}}, durable=False)
        job = {"stateDir": cdir, "log": os.path.abspath(log_path),
               "hideUnified": self.hide_unified, "stdin": stdin,
               "argv": self._argv(*self._log_args(cid), *verb, "--bundle", bundle,
                                  "--pid-file", os.path.join(cdir, monitor.PID_FILE), cid)}
        report = self._monitors.hand_over(job, timeout)
        if report.get("ok"):
            return int(report["pid"])
        message = _last_error(os.path.join(cdir, _RUNTIME_LOG)) or report.get("error", "")
        self._forget(cid)
        raise ContainerStartError(f"container {cid}: {self.name} {verb[0]} failed: {message}; "
                                  f"{_hint(message)}")

    def prestart(self) -> None:
        """Start the spare monitor now, so the first container does not wait for it."""
        self._monitors.prestart()

    def close(self) -> None:
        """Let the spare monitor go. Containers and their monitors are untouched."""
        self._monitors.close()

    def start(self, cid: str) -> None:
        """Run the container's program (the process `create` prepared)."""
        self._check_id(cid)
        proc = self._run(self._log_args(cid) + ["start", cid])
        if proc.returncode != 0:
            message = (_last_error(os.path.join(self._dir(cid), _RUNTIME_LOG))
                       or proc.stderr.strip())
            raise ContainerStartError(f"container {cid}: {self.name} start failed: {message}; "
                                      f"{_hint(message)}")
        self._mark_started(cid)

    def _mark_started(self, cid: str) -> None:
        with open(os.path.join(self._dir(cid), _STARTED_FILE), "w", encoding="utf-8") as fh:
            fh.write(f"{time.time()}\n")

    def raw_state(self, cid: str) -> dict | None:
        """The runtime's own `state` JSON, or None if it does not know `cid`."""
        proc = self._run(["state", cid])
        if proc.returncode != 0:
            return None
        try:
            return json.loads(proc.stdout)
        except ValueError:
            return None

    def kill(self, cid: str, sig: int = signal.SIGTERM, all_processes: bool = False) -> bool:
        """Send `sig` to the container's process (or all its processes).

        Returns False if the container was no longer running.
        """
        self._check_id(cid)
        args = ["kill"] + (["--all"] if all_processes else []) + [cid, str(int(sig))]
        proc = self._run(args)
        if proc.returncode == 0:
            return True
        if self.raw_state(cid) is None:
            raise ContainerNotFound(f"container {cid}: not found under {self.root}")
        return False

    def wait(self, cid: str, timeout: float | None = None) -> ContainerStatus:
        """Block until the container has exited (or `timeout`); return its status.

        Watches the monitor's files rather than asking the runtime each time.
        """
        monitors.wait_exit(self._dir(cid), timeout)
        return self.status(cid)

    def stop(self, cid: str, grace: float = 30.0) -> ContainerStatus:
        """SIGTERM, up to `grace` seconds, then SIGKILL: the kubelet's stop."""
        status = self.status(cid)
        if status.state == "running":
            self.kill(cid, signal.SIGTERM)
            status = self.wait(cid, grace)
        if status.state in ("running", "created"):
            self.kill(cid, signal.SIGKILL, all_processes=True)
            status = self.wait(cid, 10.0)
        return status

    def delete(self, cid: str, force: bool = False) -> ContainerStatus | None:
        """Remove the container (killing it first if `force`); return its last status.

        Removes the runtime state, the parent cgroups named in cgroupsPath and
        the monitor's directory. Deleting an unknown id returns None.
        """
        self._check_id(cid)
        try:
            status = self.status(cid)
        except ContainerNotFound:
            self._forget(cid)
            return None
        if status.state in ("running", "created"):
            if not force:
                raise RuntimeLayerError(f"container {cid} is {status.state}: stop it first "
                                        "or delete with force=True", reason="ContainerRunning")
            self.kill(cid, signal.SIGKILL, all_processes=status.state == "running")
            status = self.wait(cid, 10.0)
        proc = self._run(["delete", cid])
        if proc.returncode != 0 and self.raw_state(cid) is not None:
            proc = self._run(["delete", "--force", cid])
            if proc.returncode != 0 and self.raw_state(cid) is not None:
                raise RuntimeLayerError(f"container {cid}: {self.name} delete failed: "
                                        f"{proc.stderr.strip()}; run `{self.name} --root "
                                        f"{self.root} delete -f {cid}`")
        self._forget(cid)
        return status

    def _forget(self, cid: str) -> None:
        """Drop what we keep for `cid`: runtime leftovers, cgroups, monitor dir."""
        if self._known(cid):
            self._run(["delete", "--force", cid])
        meta = monitors.read_json(os.path.join(self._dir(cid), _META_FILE)) or {}
        if meta.get("cgroupsPath"):
            cgroups.remove(meta["cgroupsPath"])
        shutil.rmtree(self._dir(cid), ignore_errors=True)

    # ---- status ------------------------------------------------------------
    def status(self, cid: str) -> ContainerStatus:
        """State, exit code and reason of container `cid`.

        Answered from the monitor's files while the monitor lives (no runtime
        call: the kubelet asks often); the runtime is asked only when the
        monitor is gone without a record.
        """
        self._check_id(cid)
        cdir = self._dir(cid)
        meta = monitors.read_json(os.path.join(cdir, _META_FILE))
        if meta is None:
            return self._status_from_runtime(cid, ContainerStatus(id=cid, state="unknown"))
        status = ContainerStatus(
            id=cid, state="unknown", bundle=meta.get("bundle", ""), log_path=meta.get("log", ""),
            created_at=meta.get("createdAt"),
            started_at=_read_float(os.path.join(cdir, _STARTED_FILE)),
            annotations=meta.get("annotations") or {})
        exited = monitors.exit_record(cdir)
        if exited is None and monitors.alive(cdir):
            info = monitors.info(cdir)
            pid = int(info.get("containerPid") or 0)
            if kernel.process_alive(pid, info.get("containerStartTicks")):
                status.state = "running" if status.started_at else "created"
                status.pid = pid
                return status
            exited = monitors.wait_exit(cdir, 2.0)    # the monitor is writing it now
        if exited is not None:
            return _exited(status, exited)
        return self._status_from_runtime(cid, status)

    def _status_from_runtime(self, cid: str, status: ContainerStatus) -> ContainerStatus:
        """No monitor and no record: what the runtime still knows."""
        raw = self.raw_state(cid)
        if raw is None:
            if not os.path.isdir(self._dir(cid)):
                raise ContainerNotFound(f"container {cid}: not found under {self.root}")
            status.reason = "Unknown"
            status.message = "the runtime has no state for it and its exit status was not recorded"
            return status
        status.bundle = status.bundle or raw.get("bundle", "")
        status.annotations = status.annotations or raw.get("annotations") or {}
        state = raw.get("status", "unknown")
        if state == "stopped":
            status.state, status.reason, status.exit_code = "unknown", "Unknown", 255
            status.message = "exit status lost: the container's monitor is gone"
            return status
        status.state = "running" if state in ("running", "paused") else state
        status.pid = int(raw.get("pid") or 0)
        status.message = "its monitor is gone: the exit status will not be recorded"
        return status

    def list(self) -> list[ContainerStatus]:
        """Every container of ours: known to the runtime or with a monitor dir."""
        ids = set()
        proc = self._run(["list", "--format", "json"])
        if proc.returncode == 0 and proc.stdout.strip() not in ("", "null"):
            try:
                ids |= {c["id"] for c in json.loads(proc.stdout)}
            except (ValueError, KeyError, TypeError):
                pass
        try:
            ids |= set(os.listdir(self.containers_dir))
        except OSError:
            pass
        found = []
        for cid in sorted(i for i in ids if _ID_RE.match(i)):
            try:
                found.append(self.status(cid))
            except ContainerNotFound:
                continue
        return found

    def _exec_process(self, cid: str, argv: list[str], env: dict | None, cwd: str | None,
                      tty: bool, user: str | None) -> dict:
        meta = monitors.read_json(os.path.join(self._dir(cid), _META_FILE)) or {}
        config = monitors.read_json(os.path.join(meta.get("bundle", ""), "config.json"))
        if config is None:
            raise ContainerNotFound(f"exec in container {cid}: its bundle is gone; "
                                    "is the container still there?")
        return spec.exec_process(config.get("process") or {}, argv, env=env, cwd=cwd,
                                 tty=tty, user=user)

    # ---- cleanup -------------------------------------------------------------
    def sweep(self) -> list[str]:
        """Force-delete every container of ours (agent start-up, `nsplane down`)."""
        gone = []
        for status in self.list():
            self.delete(status.id, force=True)
            gone.append(status.id)
        return gone


def _read_float(path: str) -> float | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return float(fh.read().strip())
    except (OSError, ValueError):
        return None


def _exited(status: ContainerStatus, record: dict) -> ContainerStatus:
    status.state = "exited"
    status.exit_code = int(record.get("exitCode", 255))
    status.finished_at = record.get("finishedAt")
    if record.get("oomKilled"):
        status.reason = "OOMKilled"
    elif record.get("lost"):
        status.reason, status.message = "Unknown", "the monitor lost the container's process"
    else:
        status.reason = "Completed" if status.exit_code == 0 else "Error"
    return status
