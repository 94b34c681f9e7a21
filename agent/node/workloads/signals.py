"""Signals reach a stand-in's main thread, never one of its worker threads.

The real programs (Go's signal.Notify, nginx's and httpd's master process)
act on SIGTERM the moment it arrives. In Python only the main thread runs
signal handlers, and the kernel may hand a process-directed signal to any
thread that does not block it; a signal given to a thread blocked in
accept() or recv() would then wait until the main thread next runs Python
code (an hour, for a main thread asleep on an Event). So every worker thread
blocks the signals the stand-ins handle: `spawn` starts such a thread, and
`WorkerThreadsBlockSignals` does it for socketserver's per-connection threads.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

MAIN_THREAD_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP, signal.SIGWINCH}


def block_in_this_thread() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, MAIN_THREAD_SIGNALS)


def spawn(target: Callable, *args, name: str | None = None) -> threading.Thread:
    """A daemon thread (a goroutine, a worker) that leaves signals to the main thread."""
    def run() -> None:
        block_in_this_thread()
        target(*args)
    thread = threading.Thread(target=run, daemon=True, name=name)
    thread.start()
    return thread


class WorkerThreadsBlockSignals:
    """Mix into a socketserver.ThreadingMixIn server, before it."""

    def process_request_thread(self, request, client_address) -> None:
        block_in_this_thread()
        super().process_request_thread(request, client_address)
