"""kube-proxy's health servers on a node.

- One HTTP server per Service with a healthCheckNodePort (type LoadBalancer,
  externalTrafficPolicy Local), on that port of every node address, answering
  any path the way kube-proxy's service health server does: 200 when the
  node has a ready local endpoint of the Service, 503 when it has none (so an
  external load balancer sends traffic only to nodes that keep the client's
  source IP *and* can serve it), with the count in the JSON body.
- The proxier's own /healthz and /livez on :10256.

Servers follow the watched state: started when a Service gets the port,
stopped when it loses it.
"""
from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from agent.api.objects import now_iso
from agent.node.speaker import ready_endpoints_by_node

log = logging.getLogger("nsplane.healthcheck")
PROXIER_HEALTH_PORT = 10256


def health_ports(services: list[dict]) -> dict[int, tuple[str, str]]:
    """{healthCheckNodePort: (namespace, name)} for every Service that has one."""
    out = {}
    for svc in services:
        spec = svc.get("spec", {})
        port = spec.get("healthCheckNodePort")
        if port and spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local":
            out[int(port)] = (svc["metadata"].get("namespace", ""), svc["metadata"]["name"])
    return out


def service_health(key: tuple[str, str], local_endpoints: int) -> tuple[int, bytes]:
    """kube-proxy's answer: status code and body."""
    body = json.dumps({"service": {"namespace": key[0], "name": key[1]}, "localEndpoints": local_endpoints,
                       "serviceProxyHealthy": True}, indent="\t")
    return (200 if local_endpoints else 503), body.encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    answer = None  # set per server: () -> (code, body, extra headers)

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - stdlib name
        code, body, headers = self.answer(self.path)
        self.send_response_only(code)   # no Server header, like Go's net/http
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _serve(port: int, answer) -> ThreadingHTTPServer:
    srv = ThreadingHTTPServer(("0.0.0.0", port), type("Health", (_Handler,), {"answer": staticmethod(answer)}))
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, name=f"health-{port}", daemon=True).start()
    return srv


class HealthServers:
    """Keeps one server per healthCheckNodePort, answering from the informers' state."""

    def __init__(self, node_name: str, services, slices):
        self.node, self.services, self.slices = node_name, services, slices
        self.servers: dict[int, ThreadingHTTPServer] = {}
        self.ports: dict[int, tuple[str, str]] = {}
        self._dirty = threading.Event()
        # Which ports to serve follows the Services; the answers read the slices per request.
        services.add_handler(lambda old, new: self._dirty.set()
                             if health_ports([o for o in (old, new) if o]) else None)

    def local_endpoints(self, key: tuple[str, str]) -> int:
        mine = [sl for sl in self.slices.items() if sl["metadata"].get("namespace") == key[0]
                and (sl["metadata"].get("labels") or {}).get("kubernetes.io/service-name") == key[1]]
        return len(ready_endpoints_by_node(mine).get(key, {}).get(self.node, ()))

    def _answer_for(self, port: int):
        def answer(_path):
            key = self.ports.get(port)
            if key is None:
                return 404, b"", {}
            n = self.local_endpoints(key)
            code, body = service_health(key, n)
            return code, body, {"X-Load-Balancing-Endpoint-Weight": str(n)}
        return answer

    def sync(self) -> None:
        want = health_ports(self.services.items())
        self.ports = want
        for port in [p for p in self.servers if p not in want]:
            self.servers.pop(port).shutdown()
            log.info("health check node port %d closed", port)
        for port, key in want.items():
            if port not in self.servers:
                try:
                    self.servers[port] = _serve(port, self._answer_for(port))
                    log.info("health check node port %d for %s/%s", port, *key)
                except OSError as e:
                    log.error("health check node port %d for %s/%s: %s", port, *key, e)

    def run(self, stop: threading.Event) -> None:
        started = now_iso()
        proxier = _serve(PROXIER_HEALTH_PORT, lambda path: (
            (200, json.dumps({"lastUpdated": started, "currentTime": now_iso(), "nodeEligible": True}).encode(), {})
            if path.split("?")[0] in ("/healthz", "/livez") else (404, b"404 page not found\n", {})))
        try:
            while not stop.is_set():
                if self._dirty.wait(0.5):
                    self._dirty.clear()
                    self.sync()
                    stop.wait(0.02)
        finally:
            for srv in [proxier, *self.servers.values()]:
                srv.shutdown()
