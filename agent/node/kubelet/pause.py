"""The pod's PID 1 when its containers share a PID namespace
(`shareProcessNamespace: true`), as the kubelet's pause container is: it
sleeps, reaps every orphan re-parented to it, and exits on SIGTERM or SIGINT.

Run as a script with the standard library only (`python -S pause.py`).
"""
import os
import signal
import sys


def _reap(*_):
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    signal.signal(signal.SIGCHLD, _reap)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
