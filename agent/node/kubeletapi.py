"""The kubelet's port (10250): container logs (plain and followed), and the
node's end of exec and attach, which the API server relays to it
(agent/streams/relay.py). Sessions themselves are agent/streams/sessions.py;
the HTTPS server, and who may call it, agent/node/kubeletserver.py."""
from __future__ import annotations

import logging
import os
import urllib.parse
from http.server import BaseHTTPRequestHandler

from agent.node.kubelet.containers import proc_start_time
from agent.node.kubelet.kubelet import Kubelet
from agent.streams import sessions
from dataplane import netns

log = logging.getLogger("nsplane.kubelet.api")


class KubeletAPI(BaseHTTPRequestHandler):
    """The kubelet's port: /containerLogs/<ns>/<pod>?container=&tailLines=&previous=,
    which the API server's pods/log proxies to."""
    kubelet: Kubelet
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        url = urllib.parse.urlsplit(self.path)
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        parts = url.path.strip("/").split("/")
        if len(parts) == 4 and parts[0] in ("exec", "attach"):   # kubectl exec / attach, via the API server
            return serve_kubelet_stream(self, self.kubelet, *parts, url.query)
        if len(parts) != 3 or parts[0] != "containerLogs":
            return self._send(404, "not found")
        ns, name = parts[1], parts[2]
        rt = next((r for r in self.kubelet.pods.values() if r.key == (ns, name)), None)
        if rt is None:
            return self._send(404, f'pod "{name}" not found on this node')
        cname = q.get("container") or next(iter(rt.containers), None)
        c = rt.containers.get(cname)
        if c is None:
            names = " ".join(rt.containers)
            return self._send(400, f'container {cname} is not valid for pod {name}' +
                              (f"; choose one of: [{names}]" if names else ""))
        try:
            with open(c.log_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
        if q.get("tailLines"):
            n = int(q["tailLines"])
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-n:]) if n else b""
        if q.get("follow") in ("1", "true"):
            return serve_log_follow(self, data, c)
        self._send(200, data)

    def _send(self, code: int, body) -> None:
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


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
    q = urllib.parse.parse_qs(query)

    def flag(k):
        return (q.get(k) or ["false"])[-1] in ("1", "true")
    rt = next((r for r in kubelet.pods.values() if r.key == (ns, name)), None)
    c = rt.containers.get(container) if rt else None
    try:
        if c is None or not c.pid:
            raise sessions.StreamError(404 if c is None else 400,
                              f'container {container} of pod {ns}/{name} is not running on this node')
        conn, _ = sessions.serve_websocket(handler)
    except sessions.StreamError as e:      # code 0: already upgraded, nothing to answer
        return _plain(handler, e.code, str(e)) if e.code else log.info("%s %s/%s: %s", verb, ns, name, e)
    if verb == "exec":
        argv = q.get("command") or []
        env = container_env(c.pid)
        if flag("tty"):
            env.setdefault("TERM", "xterm")
        uts = rt.uts if os.path.exists(rt.uts) else None
        sessions.exec_session(conn, netns.exec_argv(rt.netns, argv, uts), env, flag("stdin"), flag("tty"), argv)
        return
    pid, ticks = c.pid, c.start_ticks
    spec = next((x for x in rt.pod.get("spec", {}).get("containers", []) if x.get("name") == container), {})
    stdin_fd = c._stdin_w if flag("stdin") else None
    close = c._close_stdin if spec.get("stdinOnce") else None
    sessions.attach_session(conn, c.log_path, lambda: proc_start_time(pid) == ticks, stdin_fd, close)


def serve_log_follow(handler, data: bytes, container) -> None:
    """containerLogs?follow=true: what is there, then what comes, chunked."""
    pid, ticks = container.pid, container.start_ticks
    chunk = sessions.start_chunked(handler)
    try:
        start = os.path.getsize(container.log_path)
    except OSError:
        start = 0
    try:
        if data:
            chunk(data)
        sessions.follow_log(chunk, container.log_path, start, lambda: bool(pid) and proc_start_time(pid) == ticks)
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
