"""`python -m agent.node.workloads MODULE ARGS...`: how a Python stand-in runs
as its container's PID 1.

The kernel gives a PID namespace's first process no default action for
SIGTERM and SIGINT: without a handler they are dropped, and `kubectl delete`
would wait out the whole grace period. The real images' programs exit on
them (Go's runtime ends a PID 1 with status 2 on an unhandled SIGTERM, as
agnhost does), so the stand-in does the same unless its module installs its
own handlers (nginx's shutdowns, agnhost pause's exit codes). Output is
written through, as a Go program's is, so `kubectl logs` sees it at once.
"""
import os
import runpy
import signal
import sys


def _exit(signum, _frame) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(2)


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m agent.node.workloads MODULE [ARGS...]")
    module = f"agent.node.workloads.{sys.argv[1]}"
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True, write_through=True)
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


main()
