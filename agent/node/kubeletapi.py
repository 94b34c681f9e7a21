"""The kubelet's port (10250): container logs (plain, followed, previous), and
the node's end of exec, attach and port-forward, which the API server relays
to it (agent/streams/relay.py): exec runs inside the container through the
OCI runtime, attach joins the container's stdin FIFO and log, port-forward
connects to the pod's localhost from inside its network namespace. Sessions
themselves are agent/streams/sessions.py and portforward.py; the HTTPS
server, and who may call it, agent/node/kubeletserver.py."""
from __future__ import annotations

import errno
import logging
import os
import socket
import urllib.parse
from http.server import BaseHTTPRequestHandler

from agent.node.kubelet.kubelet import Kubelet
from agent.node.runtime.errors import RuntimeLayerError
from agent.streams import portforward, sessions
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
        if len(parts) in (3, 4) and parts[0] == "portForward":   # kubectl port-forward, via the API server
            return serve_port_forward(self, self.kubelet, parts[1], parts[2])
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
        path = c.log_path
        if q.get("previous") in ("1", "true"):
            path = c.previous_log_path()
            if path is None or not os.path.exists(path):
                return self._send(400, f'previous terminated container "{cname}" in pod "{name}" not found')
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
        if q.get("tailLines"):
            n = int(q["tailLines"])
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-n:]) if n else b""
        if q.get("follow") in ("1", "true") and path == c.log_path:
            return serve_log_follow(self, data, path, lambda cid=c.cid: _running(self.kubelet, cid))
        self._send(200, data)

    def _send(self, code: int, body) -> None:
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _running(kubelet, cid: str) -> bool:
    st = kubelet.runtime.status(cid) if cid else None
    return st is not None and st.state == "running"


def serve_kubelet_stream(handler, kubelet, verb: str, ns: str, name: str, container: str, query: str) -> None:
    """/exec/<ns>/<pod>/<container>?command=..&stdin=&tty= and /attach/...:
    the kubelet's end of `kubectl exec` and `kubectl attach` / `run -i`. exec
    runs the command inside the container through its runtime (the
    container's user, capabilities, environment and namespaces)."""
    q = urllib.parse.parse_qs(query)

    def flag(k):
        return (q.get(k) or ["false"])[-1] in ("1", "true")
    rt = next((r for r in kubelet.pods.values() if r.key == (ns, name)), None)
    c = rt.containers.get(container) if rt else None
    proc = None
    try:
        if c is None or not c.running:
            raise sessions.StreamError(404 if c is None else 400,
                                       f'container {container} of pod {ns}/{name} is not running on this node')
        if verb == "exec":
            argv = q.get("command") or []
            try:
                proc = kubelet.runtime.runtime.exec(c.cid, argv, tty=flag("tty"), stdin=flag("stdin"))
            except RuntimeLayerError as e:
                raise sessions.StreamError(400 if e.reason == "InvalidExecCommand" else 500, str(e)) from None
        conn, _ = sessions.serve_websocket(handler)
    except sessions.StreamError as e:      # code 0: already upgraded, nothing to answer
        if proc is not None:
            proc.kill()
            proc.wait()
        return _plain(handler, e.code, str(e)) if e.code else log.info("%s %s/%s: %s", verb, ns, name, e)
    if verb == "exec":
        resize = (lambda rows, cols: kubelet.runtime.runtime.resize(proc, rows, cols)) if flag("tty") else None
        sessions.process_session(conn, proc, flag("stdin"), flag("tty"), argv, resize)
        return
    spec = next((x for x in rt.pod.get("spec", {}).get("containers", []) if x.get("name") == container), {})
    stdin_fd = c.stdin_fd if flag("stdin") else None
    close = c.close_stdin if spec.get("stdinOnce") else None
    sessions.attach_session(conn, c.log_path, lambda cid=c.cid: _running(kubelet, cid), stdin_fd, close)


def serve_port_forward(handler, kubelet, ns: str, name: str) -> None:
    """/portForward/<ns>/<pod>: the kubelet's end of `kubectl port-forward`;
    every forwarded connection goes to the pod's localhost:<port>."""
    rt = next((r for r in kubelet.pods.values() if r.key == (ns, name)), None)
    if rt is None or rt.ip is None:
        return _plain(handler, 404, f'pod "{name}" in namespace "{ns}" is not running on this node')
    sandbox_id = rt.pause_cid or rt.uid
    try:
        portforward.serve(handler, lambda port: dial_pod(rt.sandbox.netns, sandbox_id, port), f"pod {ns}/{name}")
    except sessions.StreamError as e:
        _plain(handler, e.code, str(e))


def dial_pod(pod_netns: str, sandbox_id: str, port: int, timeout: float = 10.0) -> socket.socket:
    """A TCP connection to localhost:<port> inside the pod, IPv4 then IPv6,
    or DialError with the kubelet's and containerd's message."""
    errors = []
    for family, host, net in ((socket.AF_INET, "127.0.0.1", "tcp4"), (socket.AF_INET6, "::1", "tcp6")):
        try:
            sock = netns.socket_in(pod_netns, family)
        except (OSError, netns.NetworkSetupError) as e:
            errors.append(f"{net} socket in the pod: {e}")
            continue
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
        except OSError as e:
            sock.close()
            where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
            errors.append(f"dial {net} {where}: connect: {_reason(e)}")
            continue
        sock.settimeout(None)
        return sock
    raise portforward.DialError(
        f"error forwarding port {port} to pod {sandbox_id}, uid : failed to execute portforward in network "
        f'namespace "{netns.path(pod_netns)}": failed to connect to localhost:{port} inside namespace '
        f'"{sandbox_id}", IPv4: {errors[0]} IPv6 {errors[-1]} ')


def _reason(e: OSError) -> str:
    if isinstance(e, TimeoutError) or e.errno == errno.ETIMEDOUT:
        return "i/o timeout"
    return (e.strerror or str(e)).lower()


def serve_log_follow(handler, data: bytes, path: str, alive) -> None:
    """containerLogs?follow=true: what is there, then what comes, chunked."""
    chunk = sessions.start_chunked(handler)
    try:
        start = os.path.getsize(path)
    except OSError:
        start = 0
    try:
        if data:
            chunk(data)
        sessions.follow_log(chunk, path, start, alive)
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
