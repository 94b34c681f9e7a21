"""Running a built-in workload as a subprocess on 127.0.0.1, for the unit tests.

`serve(argv, tcp_port=...)` starts it with NSPLANE_AGNHOST_BIND=127.0.0.1,
waits (at most 10 s) until the port accepts, and always stops it: SIGTERM
(or the signal asked for), then SIGKILL after 10 s. `raw(port, request)` sends bytes and returns every
byte the server sends back before closing (so a test sees the exact response
head), `get(port, path)` is a one-request HTTP GET.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time

from agent.node.workloads import python_module

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports(n: int, kind: int = socket.SOCK_STREAM) -> list[int]:
    """n distinct free ports (held open together while chosen)."""
    socks = [socket.socket(socket.AF_INET, kind) for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def wait_listening(port: int, proc: subprocess.Popen, deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {deadline}s")


def start(argv: list[str], env: dict | None = None) -> subprocess.Popen:
    full = dict(os.environ, PYTHONPATH=REPO, NSPLANE_AGNHOST_BIND="127.0.0.1", **(env or {}))
    return subprocess.Popen(argv, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO)


def stop(proc: subprocess.Popen, signum: int = signal.SIGTERM) -> tuple[str, str]:
    if proc.poll() is None:
        proc.send_signal(signum)
    try:
        return proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate(timeout=10)


@contextlib.contextmanager
def serve(argv: list[str], tcp_port: int | None = None, env: dict | None = None,
          stop_signal: int = signal.SIGTERM):
    """The workload running until the block ends (then sent `stop_signal`);
    `.output` holds (stdout, stderr) after."""
    proc = start(argv, env)
    try:
        if tcp_port is not None:
            wait_listening(tcp_port, proc)
        else:
            time.sleep(0.5)
        yield proc
    finally:
        proc.output = stop(proc, stop_signal)


def agnhost(*args: str) -> list[str]:
    return python_module("agnhost", *args)


def raw(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send `request`, read until the server closes (or `timeout` passes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        try:
            while data := sock.recv(65536):
                chunks.append(data)
        except (TimeoutError, ConnectionResetError):
            pass
        return b"".join(chunks)


def get(port: int, path: str, method: str = "GET", headers: dict | None = None, body=None):
    """(status, headers as a dict, body text, our local port)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read().decode(errors="replace")
        return resp.status, dict(resp.getheaders()), data, conn.sock.getsockname()[1] if conn.sock else 0
    finally:
        conn.close()


def udp(port: int, payload: bytes, timeout: float = 5.0) -> tuple[bytes, int]:
    """One datagram to 127.0.0.1:port; (the answer, our local port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.bind(("127.0.0.1", 0))
        sock.sendto(payload, ("127.0.0.1", port))
        return sock.recv(4096), sock.getsockname()[1]


def run(argv: list[str], env: dict | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    full = dict(os.environ, PYTHONPATH=REPO, **(env or {}))
    return subprocess.run(argv, env=full, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          check=False)


PY = sys.executable
