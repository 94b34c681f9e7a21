"""exec into a running container (the runtime's `exec --process`), for
OCIRuntime (oci.py): streams with pipes or through the ttyexec helper that
holds a terminal, window resizes, and exec-and-wait for probes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from . import ttyexec
from .errors import RuntimeLayerError


class ExecMixin:
    """exec, resize and exec_sync; the runtime supplies _check_id, status,
    _argv and _exec_process (the container's own process spec with argv)."""

    def exec(self, cid: str, argv: list[str], *, env: dict | None = None,
             cwd: str | None = None, tty: bool = False, user: str | None = None,
             stdin: bool = True, inherit_stdio: bool = False) -> subprocess.Popen:
        """Run `argv` inside the running container; a Popen with pipes.

        The process is the container's own process spec (user, capabilities,
        environment, noNewPrivileges) with `argv`; `env` replaces or adds
        variables, `user` is "uid[:gid]". The spec reaches the runtime through
        a memfd (`--process /proc/self/fd/N`), so no file is left behind. The
        Popen's return code is the program's exit status. With `tty`, the
        process gets a terminal held by the ttyexec helper: stdout carries the
        terminal (stderr only the runtime's errors) and `resize` sets its size.
        With `inherit_stdio` the process uses the caller's own stdin, stdout
        and stderr (a command-line tool on a user's terminal), and `tty` is the
        runtime's own `--tty`, which relays the caller's terminal.
        """
        self._check_id(cid)
        if not argv:
            raise RuntimeLayerError(f"exec in container {cid}: no command given",
                                    reason="InvalidExecCommand")
        state = self.status(cid).state
        if state != "running":
            raise RuntimeLayerError(f"exec in container {cid}: it is {state}, not running; "
                                    "exec needs a started, running container",
                                    reason="ContainerNotRunning")
        process = self._exec_process(cid, argv, env, cwd, tty, user)
        fd = os.memfd_create("nsplane-exec-process", 0)
        control_r = control_w = -1
        try:
            os.write(fd, json.dumps(process).encode())
            args = self._argv("exec", "--process", f"/proc/self/fd/{fd}", cid)
            pass_fds = [fd]
            if inherit_stdio:
                if tty:
                    args = self._argv("exec", "--tty", "--process", f"/proc/self/fd/{fd}", cid)
                return subprocess.Popen(args, stdin=None if stdin else subprocess.DEVNULL,
                                        pass_fds=pass_fds)
            if tty:                       # through the helper that holds the terminal
                control_r, control_w = os.pipe()
                pass_fds.append(control_r)
                args = [sys.executable, "-S", os.path.abspath(ttyexec.__file__),
                        "--control-fd", str(control_r), "--", *args]
            proc = subprocess.Popen(args, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    pass_fds=pass_fds)
            if tty:
                proc.tty_control = os.fdopen(control_w, "wb", buffering=0)
                control_w = -1
            return proc
        finally:
            for spare_fd in (fd, control_r, control_w):
                if spare_fd >= 0:
                    os.close(spare_fd)

    @staticmethod
    def resize(proc: subprocess.Popen, rows: int, cols: int) -> None:
        """Set the window size of a tty exec (kubectl's resize events)."""
        control = getattr(proc, "tty_control", None)
        if control is None:
            raise RuntimeLayerError("resize: this exec has no terminal (exec with tty=True)",
                                    reason="NoTTY")
        try:
            control.write(f"{int(rows)} {int(cols)}\n".encode())
        except BrokenPipeError:
            pass

    def exec_sync(self, cid: str, argv: list[str], timeout: float = 10.0,
                  **kwargs) -> tuple[int, bytes, bytes]:
        """exec and wait (exec probes, `kubectl exec` without a stream)."""
        proc = self.exec(cid, argv, stdin=False, **kwargs)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()      # the runtime forwards SIGTERM to the program
            try:
                out, err = proc.communicate(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            raise RuntimeLayerError(f"exec in container {cid}: {argv[0]} did not finish "
                                    f"within {timeout:g}s", reason="ExecTimeout") from None
        return proc.returncode, out, err
