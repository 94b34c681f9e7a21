"""exec, attach and logs -f: the streaming verbs, on both of their hops.

As in Kubernetes, the API server does not run anything: it checks the pod,
then relays the upgraded connection byte for byte to the kubelet of the
pod's node (`proxy_upgrade`), and that kubelet runs the session
(`serve_websocket` + `exec_session` / `attach_session`). So the design holds
for any number of nodes: only the pod's own node touches the pod's
namespaces.

exec runs a command on a pty for `-t` (`exec_session`), or relays a process
the kubelet already started inside the container through its runtime
(`process_session`: the runtime's exec, which holds the terminal itself). attach joins a running container: its stdin pipe (kept open by the
kubelet for `stdin: true` containers) and the tail of its log. The session
ends with a Status on the error channel, carrying the exit code as kube's
NonZeroExitCode cause, which kubectl turns into its own exit code.

Both transports kubectl uses are spoken: WebSocket (v5/v4.channel.k8s.io,
kubectl >= 1.30; agent/streams/websocket.py) and SPDY/3.1 (v4..v1, older kubectl;
agent/streams/spdy.py, whose Session offers the same calls as ws.Connection).
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import pty
import struct
import subprocess
import termios
import threading
import time

from agent.streams import spdy
from agent.streams import websocket as ws

log = logging.getLogger("nsplane.streams")
FOLLOW_LIMIT = 24 * 3600.0      # a `logs -f` stream ends after a day at the latest


class StreamError(Exception):
    """`code` is the HTTP status to answer with."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


# ---- status on the error channel -------------------------------------------

def exit_status(code: int, argv: list[str]) -> dict:
    """What the kubelet writes on channel 3 when the command ended."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"[{' '.join(argv)}], exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def upgrade_kind(headers) -> str:
    """'websocket', 'spdy' or '' for a request's Upgrade header."""
    up = (headers.get("Upgrade") or "").lower()
    if up == "websocket":
        return "websocket"
    if up.startswith("spdy"):
        return "spdy"
    return ""


# ---- kubelet: the WebSocket end ---------------------------------------------

def serve_websocket(handler) -> tuple[ws.Connection, str]:
    """Answer the upgrade on a BaseHTTPRequestHandler; the connection is the
    session's from then on. SPDY/3.1 upgrades get an spdy.Session."""
    kind = upgrade_kind(handler.headers)
    if kind == "spdy":
        try:
            return spdy.upgrade(handler)
        except spdy.UpgradeError as e:
            raise StreamError(e.code, str(e)) from None
    proto = ws.choose_protocol(handler.headers.get("Sec-WebSocket-Protocol"))
    key = handler.headers.get("Sec-WebSocket-Key")
    if kind != "websocket" or not key or not proto:
        raise StreamError(400, "Upgrade request required: exec and attach need a WebSocket upgrade with "
                          f"subprotocol {' or '.join(ws.PROTOCOLS)}")
    handler.wfile.write(ws.handshake_response(key, proto))
    handler.wfile.flush()
    handler.close_connection = True
    return ws.Connection(handler.rfile, handler.wfile), proto


def _set_winsize(fd: int, payload: bytes) -> None:
    try:
        size = json.loads(payload)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", int(size.get("Height", 24)),
                                                        int(size.get("Width", 80)), 0, 0))
    except (ValueError, OSError, TypeError, AttributeError):
        pass


def _controlling_tty():
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _pump_out(fd: int, conn: ws.Connection, stream: int) -> None:
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:       # EIO: the pty's other side closed
            return
        if not data:
            return
        try:
            conn.send_channel(stream, data)
        except OSError:
            return


def _resize_with(resize, payload: bytes) -> None:
    try:
        size = json.loads(payload)
        resize(int(size.get("Height", 24)), int(size.get("Width", 80)))
    except (ValueError, OSError, TypeError, AttributeError):
        pass


def _pump_in(conn: ws.Connection, stdin_fd: int | None, resize_fd, on_close=None) -> None:
    """Client messages: stdin data, resize, v5 close-stream; ends when the client goes.
    `resize_fd` is a pty's fd, or a callable (rows, cols)."""
    try:
        while True:
            msg = conn.receive()
            if msg is None:
                break
            _, data = msg
            if not data:
                continue
            stream, body = data[0], data[1:]
            if stream == ws.STDIN and stdin_fd is not None and body:
                os.write(stdin_fd, body)
            elif stream == ws.RESIZE and callable(resize_fd):
                _resize_with(resize_fd, body)
            elif stream == ws.RESIZE and resize_fd is not None:
                _set_winsize(resize_fd, body)
            elif stream == ws.CLOSE and body[:1] == bytes([ws.STDIN]) and stdin_fd is not None:
                if on_close:
                    on_close()
                stdin_fd = None
    except (OSError, ws.ProtocolError) as e:
        log.debug("stream input ended: %s", e)
    if on_close and stdin_fd is not None:
        on_close()


def exec_session(conn: ws.Connection, argv: list[str], env: dict, stdin: bool, tty: bool,
                 shown_argv: list[str]) -> int:
    """Run argv with its stdio on the WebSocket; returns its exit code."""
    if tty:
        master, slave = pty.openpty()
        proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd="/",
                                start_new_session=True, preexec_fn=_controlling_tty, close_fds=True)
        os.close(slave)
        outs = [(master, ws.STDOUT)]
        stdin_fd, resize_fd = (master if stdin else None), master
    else:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd="/",
                                start_new_session=True, close_fds=True)
        outs = [(proc.stdout.fileno(), ws.STDOUT), (proc.stderr.fileno(), ws.STDERR)]
        stdin_fd, resize_fd = (proc.stdin.fileno() if stdin else None), None

    def close_stdin():
        if not tty and proc.stdin:
            proc.stdin.close()
        elif tty:
            try:
                os.write(master, b"\x04")     # ^D: end of input on a terminal
            except OSError:
                pass
    pumps = [threading.Thread(target=_pump_out, args=(fd, conn, s), daemon=True) for fd, s in outs]
    for t in pumps:
        t.start()
    reader = threading.Thread(target=_pump_in, args=(conn, stdin_fd, resize_fd, close_stdin), daemon=True)
    reader.start()
    code = _wait(proc, reader)
    for t in pumps:
        t.join(2.0)
    if tty:
        os.close(master)
    _finish(conn, exit_status(code, shown_argv))
    return code


def process_session(conn: ws.Connection, proc: subprocess.Popen, stdin: bool, tty: bool,
                    shown_argv: list[str], resize=None) -> int:
    """Like exec_session, for a process someone else started with pipes (a
    container runtime's exec): its stdout (and, without a terminal, stderr) to
    the client, the client's stdin to it, resize events to `resize(rows,
    cols)`. With a terminal, stdout carries it and stderr only the runtime's
    own complaints, which are logged. Returns the exit code."""
    outs = [(proc.stdout.fileno(), ws.STDOUT)]
    if not tty:
        outs.append((proc.stderr.fileno(), ws.STDERR))
    else:
        threading.Thread(target=lambda: [log.info("exec %s: %s", shown_argv[:1], line.decode(
            errors="replace").rstrip()) for line in proc.stderr], daemon=True).start()
    stdin_fd = proc.stdin.fileno() if stdin and proc.stdin else None

    def close_stdin():
        if proc.stdin:
            try:
                proc.stdin.close()
            except OSError:
                pass
    pumps = [threading.Thread(target=_pump_out, args=(fd, conn, s), daemon=True) for fd, s in outs]
    for t in pumps:
        t.start()
    reader = threading.Thread(target=_pump_in, args=(conn, stdin_fd, resize, close_stdin), daemon=True)
    reader.start()
    gone = 0.0
    while True:
        try:
            code = _exit_code(proc.wait(timeout=0.2))
            break
        except subprocess.TimeoutExpired:
            if not reader.is_alive():      # client disconnected: like kubelet, end the exec
                gone = gone or time.monotonic()
                (proc.kill if time.monotonic() - gone > 5 else proc.terminate)()
    for t in pumps:
        t.join(2.0)
    _finish(conn, exit_status(code, shown_argv))
    return code


def _wait(proc: subprocess.Popen, reader: threading.Thread) -> int:
    """The exit code; the process group is killed if the client went away."""
    while True:
        try:
            return _exit_code(proc.wait(timeout=0.2))
        except subprocess.TimeoutExpired:
            if not reader.is_alive():      # client disconnected: like kubelet, end the exec
                try:
                    os.killpg(proc.pid, 9)
                except (ProcessLookupError, PermissionError):
                    pass


def _exit_code(code: int) -> int:
    return 128 - code if code < 0 else code


def _finish(conn: ws.Connection, status: dict) -> None:
    try:
        conn.send_channel(ws.ERROR, json.dumps(status).encode())
        conn.close()
    except OSError:
        pass


def attach_session(conn: ws.Connection, log_path: str, alive, stdin_fd: int | None,
                   close_stdin=None, poll: float = 0.1) -> None:
    """Join a running container: its new log output to stdout, stdin to its
    pipe; ends when the container stops or the client leaves."""
    reader = threading.Thread(target=_pump_in, args=(conn, stdin_fd, None, close_stdin), daemon=True)
    reader.start()
    try:
        pos = os.path.getsize(log_path)
    except OSError:
        pos = 0
    while reader.is_alive():
        pos = _send_new(conn, log_path, pos)
        if not alive():
            _send_new(conn, log_path, pos)
            break
        time.sleep(poll)
    _finish(conn, {"metadata": {}, "status": "Success"})


def _send_new(conn: ws.Connection, path: str, pos: int) -> int:
    try:
        with open(path, "rb") as f:
            f.seek(pos)
            data = f.read()
    except OSError:
        return pos
    if data:
        conn.send_channel(ws.STDOUT, data)
    return pos + len(data)


# ---- kubelet: logs -f ---------------------------------------------------------

def follow_log(write_chunk, path: str, start: int, alive, poll: float = 0.2) -> None:
    """Send what the log gains from `start` until the container stops, the
    client leaves (write raises) or FOLLOW_LIMIT passes."""
    deadline = time.monotonic() + FOLLOW_LIMIT
    pos = start
    while time.monotonic() < deadline:
        try:
            with open(path, "rb") as f:
                f.seek(pos)
                data = f.read()
        except OSError:
            data = b""
        if data:
            write_chunk(data)
            pos += len(data)
        elif not alive():
            return
        else:
            time.sleep(poll)


def start_chunked(handler):
    """Send a 200 text/plain chunked response's head; returns the function writing one chunk."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/plain")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    handler.close_connection = True

    def chunk(data: bytes) -> None:
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        handler.wfile.flush()
    return chunk
