"""The HTTP side of the DNS pod: /health (:8080), /ready (:8181) and /metrics (:9153).

As in CoreDNS: `health` answers 200 "OK" while the process serves; `ready`
answers 200 "OK" only once the cluster state has had its first sync (503 and
the plugin that is not ready before that), which is what the kube-dns pods'
readiness probe waits for; `prometheus` serves the text exposition format.
Each endpoint is its own small threaded HTTP server so one port can be
probed while another is scraped.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)


def _handler_class(routes: dict):
    class Handler(BaseHTTPRequestHandler):
        server_version = "nsplane-dns"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            route = routes.get(self.path.split("?")[0])
            if route is None:
                status, ctype, body = 404, "text/plain", "404 page not found\n"
            else:
                status, ctype, body = route()
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *args) -> None:
            log.debug("dns http: " + fmt, *args)

    return Handler


class _HealthServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024      # kubelet probes and Prometheus scrapes in bursts: no refusals

class HttpEndpoints:
    """Starts and stops the three HTTP servers; a port of None leaves that one off."""

    def __init__(self, listen: str, *, health_port: int | None, ready_port: int | None,
                 metrics_port: int | None, is_ready, render_metrics) -> None:
        self.listen = listen
        self._plan = [
            (health_port, {"/health": lambda: (200, "text/plain", "OK")}),
            (ready_port, {"/ready": lambda: (200, "text/plain", "OK") if is_ready()
                          else (503, "text/plain", "kubernetes\n")}),
            (metrics_port, {"/metrics": lambda: (200, "text/plain; version=0.0.4", render_metrics())}),
        ]
        self.servers: list[ThreadingHTTPServer] = []
        self.ports: list[int | None] = []

    def start(self) -> None:
        for port, routes in self._plan:
            if port is None:
                self.ports.append(None)
                continue
            try:
                srv = _HealthServer((self.listen, port), _handler_class(routes))
            except OSError as exc:
                self.stop()
                raise OSError(f"dns: cannot listen for {'/'.join(routes)} on {self.listen}:{port} ({exc}); "
                              f"free the port or pass another one") from exc
            threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2},
                             name=f"dns-http-{port}", daemon=True).start()
            self.servers.append(srv)
            self.ports.append(srv.server_address[1])

    def stop(self) -> None:
        for srv in self.servers:
            srv.shutdown()
            srv.server_close()
        self.servers.clear()
