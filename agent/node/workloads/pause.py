"""The registry.k8s.io/pause image (3.10): a process that waits to be killed.

Mirrors build/pause/linux/pause.c in kubernetes/kubernetes. With `-v` (any
case, anywhere in argv) it prints "pause.c v3.10" and exits 0. Otherwise it
warns on stderr unless it is PID 1 ("Warning: pause should be the first
process"), then sleeps; SIGINT or SIGTERM print "Shutting down, got signal:
Interrupt|Terminated" on stderr (psignal) and exit 0, and SIGCHLD reaps any
child that was reparented to it, as the sandbox's init does.
"""

from __future__ import annotations

import os
import signal
import sys

VERSION = "v3.10"
SIGNAL_NAMES = {signal.SIGINT: "Interrupt", signal.SIGTERM: "Terminated"}


def _down(signum: int, _frame) -> None:
    os.write(2, f"Shutting down, got signal: {SIGNAL_NAMES[signum]}\n".encode())
    os._exit(0)


def _reap(_signum: int, _frame) -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(arg.lower() == "-v" for arg in argv):
        sys.stdout.write(f"pause.c {VERSION}\n")
        return 0
    signal.signal(signal.SIGINT, _down)
    signal.signal(signal.SIGTERM, _down)
    signal.signal(signal.SIGCHLD, _reap)
    if os.getpid() != 1:               # after the handlers: a SIGTERM right after must exit 0
        sys.stderr.write("Warning: pause should be the first process\n")
        sys.stderr.flush()
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())
