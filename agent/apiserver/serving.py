"""The API server's listeners: HTTPS on TCP (loopback and the host's underlay
address; every request authenticated) and plain HTTP on a Unix socket (mode
0600, root only: the local admin socket, trusted). Each request runs on its
own thread through `Handler` (agent/apiserver/handler.py); `APIServer` owns the
listeners, the registry they serve and what requests ask of the cluster
beyond it (where a node's kubelet listens and how to call it, whether the
server is stopping).
"""
from __future__ import annotations

import logging
import os
import socket
import socketserver
import ssl
import threading
import time
from http.server import ThreadingHTTPServer

from agent.api import pki
from agent.api.objects import internal_ip
from agent.apiserver.authz import Authorizer
from agent.apiserver.handler import Handler
from agent.apiserver.registry import APIError, Registry

log = logging.getLogger("nsplane.apiserver")
BACKLOG = 4096        # the kernel caps it at net.core.somaxconn; 500 concurrent clients must not see EAGAIN


class _TCPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = BACKLOG
    tls: ssl.SSLContext | None = None
    trusted = False            # TCP clients must authenticate (agent/apiserver/authn/)

    def finish_request(self, request, client_address):
        """TLS handshake on the request's own thread, so a slow client never
        blocks accept()."""
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)     # no Nagle wait behind a delayed ACK
        if self.tls is not None:
            request.settimeout(10)
            if pki.refused_plain_http(request):
                return
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                log.debug("TLS handshake with %s failed: %s", client_address, e)
                return
            request.settimeout(None)
        super().finish_request(request, client_address)


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = BACKLOG
    trusted = True             # mode 0600, root only: the local admin socket

    def get_request(self):
        conn, _ = self.socket.accept()
        return conn, ("unix", 0)


class ReadDeadlines:
    """Connections whose request must have arrived by a deadline: a client
    that trickles its headers or body a byte at a time (each read within the
    read timeout) is cut off when the whole request has taken longer, its
    socket shut down under the reading thread. One thread checks them all."""

    def __init__(self, stopping: threading.Event):
        self._due: dict[socket.socket, float] = {}
        self._lock = threading.Lock()
        self._stopping = stopping
        threading.Thread(target=self._run, name="api-read-deadlines", daemon=True).start()

    def start(self, conn: socket.socket, seconds: float) -> None:
        with self._lock:
            self._due[conn] = time.monotonic() + seconds

    def end(self, conn: socket.socket) -> None:
        with self._lock:
            self._due.pop(conn, None)

    def _run(self) -> None:
        while not self._stopping.wait(0.25):
            now = time.monotonic()
            with self._lock:
                late = [c for c, due in self._due.items() if due <= now]
                for c in late:
                    del self._due[c]
            for c in late:
                log.info("a client took too long to send its request; closing its connection")
                try:
                    socket.socket.shutdown(c, socket.SHUT_RDWR)     # wakes the thread reading it
                except OSError:
                    pass


class APIServer:
    """Owns the listeners; `registry` does the work."""

    def __init__(self, registry: Registry, addresses: list[tuple[str, int]], unix_path: str | None = None,
                 kubelet_port: int = 10250, tls: ssl.SSLContext | None = None, authenticator=None,
                 kubelet_tls: ssl.SSLContext | None = None, tokens=None,
                 read_timeout: float = 32.0, idle_timeout: float = 90.0, read_deadline: float = 60.0):
        """tls: serve HTTPS on the TCP addresses; authenticator: an
        agent.apiserver.authn.Authenticator every TCP request must pass (None:
        open); kubelet_tls: call kubelets over HTTPS with this client context
        (agent.api.pki.kubelet_client_context; None: plain HTTP); tokens: the
        ServiceAccount token issuer (agent.apiserver.tokenrequest.
        ServiceAccountTokens; None: no serviceaccounts/token, selfsubjectreviews
        or issuer discovery); read_timeout: seconds a client may take to send
        each part of a request; idle_timeout: seconds a kept-alive connection
        may wait for its next request (kube-apiserver's ReadHeaderTimeout and
        IdleTimeout); read_deadline: seconds a whole request (line, headers,
        body) may take to arrive."""
        self.registry = registry
        self.tokens = tokens
        self.stopping = threading.Event()
        self.kubelet_port = kubelet_port
        self.kubelet_tls = kubelet_tls
        self.authenticator = authenticator
        self.authz = Authorizer(registry.store)      # system:masters, Node, RBAC (agent/apiserver/authz.py)
        self.read_timeout, self.idle_timeout, self.read_deadline = read_timeout, idle_timeout, read_deadline
        self.deadlines = ReadDeadlines(self.stopping)
        handler = type("BoundHandler", (Handler,), {"api": self})
        self.servers: list[socketserver.BaseServer] = [_TCPServer(a, handler) for a in addresses]
        for s in self.servers:
            s.tls = tls
        if unix_path:
            if os.path.exists(unix_path):
                os.unlink(unix_path)
            self.servers.append(_UnixServer(unix_path, handler))
            os.chmod(unix_path, 0o600)
        self.unix_path = unix_path

    def kubelet_address(self, node_name: str) -> str:
        node = self.registry.store.get("nodes", "", node_name)
        ip = internal_ip(node)
        if ip is None:
            raise APIError(503, "ServiceUnavailable", f"node {node_name} has no InternalIP")
        port = node.get("status", {}).get("daemonEndpoints", {}).get("kubeletEndpoint", {}).get("Port")
        return f"{ip}:{port or self.kubelet_port}"

    def start(self) -> None:
        for s in self.servers:
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.5},
                             name=f"api-{s.server_address}", daemon=True).start()

    def stop(self) -> None:
        self.stopping.set()
        for s in self.servers:
            s.shutdown()
            s.server_close()
        if self.unix_path and os.path.exists(self.unix_path):
            os.unlink(self.unix_path)
