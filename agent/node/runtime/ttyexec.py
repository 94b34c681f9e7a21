"""`kubectl exec -it`: a process with a terminal inside a running container.

crun and runc only give an exec'd process a terminal in two ways: on their
own controlling terminal (the agent has none) or, detached, by sending the
pty's master end over a console socket. Detached, the runtime exits at once
and the process is re-parented: its exit status would be lost. So this
small helper, run per exec with the standard library only:

- becomes a child subreaper, listens on a console socket in a private temp dir,
- runs `<runtime> exec --detach --console-socket ... --pid-file ...`,
- receives the master fd (SCM_RIGHTS), then relays its stdin to the master
  and the master to its stdout (a terminal merges stdout and stderr), applies
  "ROWS COLS" lines arriving on the control fd as window sizes (TIOCSWINSZ),
- waits for the process and exits with its status (128+N if killed by N).

So the agent holds an ordinary Popen whose pipes carry the terminal and
whose return code is the program's.
"""

from __future__ import annotations

import fcntl
import os
import select
import socket
import struct
import sys
import tempfile
import termios

try:
    from . import kernel
except ImportError:  # run as a script
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import kernel  # type: ignore[no-redef]

_EOT = b"\x04"


def _receive_master(listener: socket.socket, runtime: int) -> tuple[int | None, int]:
    """(pty master fd or None, the runtime's exit code) once the runtime is done."""
    master = None
    status = None
    while status is None:
        if master is None and select.select([listener], [], [], 0.05)[0]:
            conn, _ = listener.accept()
            with conn:
                _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
            master = fds[0] if fds else None
        done, raw = os.waitpid(runtime, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(raw)
    if master is None and status == 0 and select.select([listener], [], [], 0.5)[0]:
        conn, _ = listener.accept()
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
        master = fds[0] if fds else None
    return master, status


def _resize(master: int, line: bytes) -> None:
    try:
        rows, cols = (int(x) for x in line.split()[:2])
    except ValueError:
        return
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _relay(master: int, pid: int, control: int | None) -> int:
    """Copy stdin -> master and master -> stdout until the process has ended and
    the terminal has gone quiet; return the process's exit status."""
    inputs = [fd for fd in (0, master, control) if fd is not None]
    pending = b""
    status = None
    while master in inputs:
        timeout = 0.05 if status is not None else 0.2
        readable, _, _ = select.select(inputs, [], [], timeout)
        if status is not None and master not in readable:
            break                                # exited, and nothing more to say
        for fd in readable:
            try:
                data = os.read(fd, 65536)
            except OSError:                      # EIO: the terminal's last user left
                data = b""
            if fd == master:
                if data:
                    os.write(1, data)
                else:
                    inputs.remove(master)
            elif fd == 0:
                os.write(master, data or _EOT)
                if not data:
                    inputs.remove(0)
            else:
                pending += data
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    _resize(master, line)
                if not data:
                    inputs.remove(fd)
        if status is None:
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = raw
    if status is None:
        _, status = os.waitpid(pid, 0)
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def main(args: list[str]) -> int:
    """args: [--control-fd N] -- <runtime> --root R exec --process P CONTAINER-ID"""
    control = None
    if args[:1] == ["--control-fd"]:
        control, args = int(args[1]), args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    kernel.set_child_subreaper()
    os.chdir("/")
    with tempfile.TemporaryDirectory(prefix="nsplane-tty-") as work:
        sock_path = os.path.join(work, "console.sock")
        pid_file = os.path.join(work, "pid")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(sock_path)
        listener.listen(1)
        cmd = [*args[:-1], "--tty", "--detach", "--console-socket", sock_path,
               "--pid-file", pid_file, args[-1]]
        runtime = os.fork()
        if runtime == 0:
            try:
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
                os.dup2(2, 1)
                os.execvp(cmd[0], cmd)
            finally:
                os._exit(127)
        master, rc = _receive_master(listener, runtime)
        if rc != 0 or master is None:
            return 255 if rc == 0 else rc
        with open(pid_file, encoding="utf-8") as fh:
            pid = int(fh.read().strip())
    return _relay(master, pid, control)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
