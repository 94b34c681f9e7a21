"""The kubelet's port as it listens: HTTPS with the node's serving
certificate (agent/node/certificates.py), every request authenticated and
authorized first (agent/node/kubeletauth.py), so that only the API server,
with its kubelet client certificate, reads logs, runs exec and attach, or
reaches /pods and /healthz (which `nodes/proxy` forwards to).

The routes themselves are agent/node/kubeletapi.py's; this wraps them with
the gate and adds the two read-only ones a kubelet also serves: /healthz and
/pods (the PodList of the pods this node runs).
"""
from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import urllib.parse
from http.server import ThreadingHTTPServer

from agent.api import pki
from agent.node import kubeletauth
from agent.node.kubelet.kubelet import Kubelet
from agent.node.kubeletapi import KubeletAPI

log = logging.getLogger("nsplane.kubelet.api")


def serving_context(cert_pem: str, ca_file: str) -> ssl.SSLContext:
    """Server side: the node's certificate and key (one PEM), and client
    certificates requested and verified against the cluster CA when given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_pem)
    ctx.load_verify_locations(ca_file)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class AuthorizedKubeletAPI(KubeletAPI):
    """KubeletAPI behind the kubelet's auth filter."""

    def _gate(self) -> bool:
        getpeercert = getattr(self.connection, "getpeercert", None)
        denied = kubeletauth.decide(getpeercert() if getpeercert else None, self.command,
                                    urllib.parse.urlsplit(self.path).path)
        if denied:
            self.close_connection = True
            self._send(*denied)
            return False
        return True

    def do_GET(self):
        if not self._gate():
            return
        path = urllib.parse.urlsplit(self.path).path
        if path == "/healthz":
            return self._send(200, "ok")
        if path == "/pods":
            items = [rt.pod for rt in list(self.kubelet.pods.values())]
            return self._send_json({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
        return super().do_GET()

    def _not_allowed(self):
        if self._gate():
            self._send(405, "405: Method Not Allowed")

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _not_allowed

    def _send_json(self, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024      # socketserver's 5 refuses a burst of log/exec calls
    tls: ssl.SSLContext

    def finish_request(self, request, client_address):
        """TLS handshake on the request's own thread (a slow or refused
        client never blocks accept())."""
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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


def serve(kubelet: Kubelet, ip: str, port: int, tls: ssl.SSLContext, stop: threading.Event) -> ThreadingHTTPServer:
    """Listen on ip:port until `stop` is set; returns the server (its
    server_address says the port when `port` was 0)."""
    handler = type("BoundKubeletAPI", (AuthorizedKubeletAPI,), {"kubelet": kubelet})
    srv = _TLSServer((ip, port), handler)
    srv.tls = tls
    threading.Thread(target=srv.serve_forever, name="kubelet-api", daemon=True).start()
    threading.Thread(target=lambda: (stop.wait(), srv.shutdown(), srv.server_close()), daemon=True).start()
    log.info("kubelet API on https://%s:%d (client certificates of the cluster CA only)", ip, srv.server_address[1])
    return srv
