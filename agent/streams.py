"""exec, attach and logs -f: the streaming verbs, on both of their hops.

As in Kubernetes, the API server does not run anything: it checks the pod,
then relays the upgraded connection byte for byte to the kubelet of the
pod's node (`proxy_upgrade`), and that kubelet runs the session
(`serve_websocket` + `exec_session` / `attach_session`). So the design holds
for any number of nodes: only the pod's own node touches the pod's
namespaces.

exec runs the command in the pod's network and UTS namespaces, with the
environment of the pod's container (as `nsplane exec` does), on a pty for
`-t`. attach joins a running container: its stdin pipe (kept open by the
kubelet for `stdin: true` containers) and the tail of its log. The session
ends with a Status on the error channel, carrying the exit code as kube's
NonZeroExitCode cause, which kubectl turns into its own exit code.

Both transports kubectl uses are spoken: WebSocket (v5/v4.channel.k8s.io,
kubectl >= 1.30; agent/websocket.py) and SPDY/3.1 (v4..v1, older kubectl;
agent/spdy.py, whose Session offers the same calls as ws.Connection).
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import pty
import socket
import struct
import subprocess
import termios
import threading
import time
import urllib.parse

from agent import spdy
from agent import websocket as ws

log = logging.getLogger("nsplane.streams")
FORWARDED = ("Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Protocol",
             "Sec-WebSocket-Extensions", "X-Stream-Protocol-Version")
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


def _pump_in(conn: ws.Connection, stdin_fd: int | None, resize_fd: int | None, on_close=None) -> None:
    """Client messages: stdin data, resize, v5 close-stream; ends when the client goes."""
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


# ---- API server: relay to the kubelet --------------------------------------------

def proxy_upgrade(handler, address: str, path: str, timeout: float = 10.0) -> None:
    """Forward an upgrade request to the kubelet at `address` (host:port) and
    splice the two connections until either side ends."""
    host, port = address.rsplit(":", 1)
    try:
        up = socket.create_connection((host, int(port)), timeout=timeout)
    except OSError as e:
        raise StreamError(503, f"unable to upgrade connection: cannot reach the kubelet at {address}: {e}") from None
    headers = "".join(f"{h}: {v}\r\n" for h in FORWARDED for v in handler.headers.get_all(h) or [])
    up.sendall(f"GET {path} HTTP/1.1\r\nHost: {address}\r\n{headers}\r\n".encode())
    up.settimeout(None)
    handler.close_connection = True
    client_sock = handler.connection

    def downstream():
        try:
            while True:
                data = up.recv(65536)
                if not data:
                    break
                handler.wfile.write(data)
                handler.wfile.flush()
        except OSError:
            pass
        finally:
            _shutdown(client_sock)
    t = threading.Thread(target=downstream, daemon=True)
    t.start()
    try:
        while True:
            data = handler.rfile.read1(65536)
            if not data:
                break
            up.sendall(data)
    except (OSError, ValueError):
        pass
    finally:
        _shutdown(up, socket.SHUT_WR)
    t.join()
    up.close()


def _shutdown(sock, how=socket.SHUT_RDWR) -> None:
    try:
        sock.shutdown(how)
    except OSError:
        pass


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


def relay_chunked(resp, write_chunk) -> None:
    """Copy an http.client response to the client as it arrives."""
    while True:
        data = resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536)
        if not data:
            return
        write_chunk(data)


# ---- kubelet: the routes ----------------------------------------------------------

def container_env(pid: int | None) -> dict:
    """The environment of a container's process (what exec inherits)."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    if pid:
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(x.split("=", 1) for x in f.read().decode(errors="replace").split("\0") if "=" in x)
        except OSError:
            pass
    return env


def serve_kubelet_stream(handler, kubelet, verb: str, ns: str, name: str, container: str, query: str) -> None:
    """/exec/<ns>/<pod>/<container>?command=..&stdin=&tty= and /attach/...:
    the kubelet's end of `kubectl exec` and `kubectl attach` / `run -i`."""
    from agent.containers import proc_start_time
    from dataplane import netns
    q = urllib.parse.parse_qs(query)

    def flag(k):
        return (q.get(k) or ["false"])[-1] in ("1", "true")
    rt = next((r for r in kubelet.pods.values() if r.key == (ns, name)), None)
    c = rt.containers.get(container) if rt else None
    try:
        if c is None or not c.pid:
            raise StreamError(404 if c is None else 400,
                              f'container {container} of pod {ns}/{name} is not running on this node')
        conn, _ = serve_websocket(handler)
    except StreamError as e:      # code 0: already upgraded, nothing to answer
        return _plain(handler, e.code, str(e)) if e.code else log.info("%s %s/%s: %s", verb, ns, name, e)
    if verb == "exec":
        argv = q.get("command") or []
        env = container_env(c.pid)
        if flag("tty"):
            env.setdefault("TERM", "xterm")
        uts = rt.uts if os.path.exists(rt.uts) else None
        exec_session(conn, netns.exec_argv(rt.netns, argv, uts), env, flag("stdin"), flag("tty"), argv)
        return
    pid, ticks = c.pid, c.start_ticks
    spec = next((x for x in rt.pod.get("spec", {}).get("containers", []) if x.get("name") == container), {})
    stdin_fd = c._stdin_w if flag("stdin") else None
    close = c._close_stdin if spec.get("stdinOnce") else None
    attach_session(conn, c.log_path, lambda: proc_start_time(pid) == ticks, stdin_fd, close)


def serve_log_follow(handler, data: bytes, container) -> None:
    """containerLogs?follow=true: what is there, then what comes, chunked."""
    from agent.containers import proc_start_time
    pid, ticks = container.pid, container.start_ticks
    chunk = start_chunked(handler)
    try:
        start = os.path.getsize(container.log_path)
    except OSError:
        start = 0
    try:
        if data:
            chunk(data)
        follow_log(chunk, container.log_path, start, lambda: bool(pid) and proc_start_time(pid) == ticks)
        handler.wfile.write(b"0\r\n\r\n")
    except OSError:
        pass


def _plain(handler, code: int, text: str) -> None:
    data = text.encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "text/plain")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
