"""kube-proxy's health servers on a node (pkg/proxy/healthcheck), fed by the proxier's syncs.

- `ProxierHealthServer`, :10256 /healthz and /livez. The proxier calls
  `queued_update()` when it records a change it has yet to write and
  `updated()` after every successful sync. It is healthy unless a change has
  been waiting longer than `health_timeout` (kube-proxy: 2 x the sync
  period); /healthz also needs the node to be eligible (not being deleted,
  not tainted ToBeDeletedByClusterAutoscaler). 200 or 503, and kube-proxy's
  body `{"lastUpdated": ...,"currentTime": ..., "nodeEligible": ...}` with
  times as Go prints them; like kube-proxy, a healthy answer gives the
  current time as lastUpdated, an unhealthy one the last successful sync
  (Go's zero time when there was none yet: kube-proxy would give the time
  its sync loop started).
- `ServiceHealthServer`: one HTTP server per Service with a
  healthCheckNodePort (type LoadBalancer, externalTrafficPolicy Local), on
  that port of every node address, answering any path: 200 when this node
  has a ready local endpoint of the Service and the proxier is healthy, 503
  otherwise (so an external load balancer sends traffic only to nodes that
  keep the client's source IP *and* can serve it), with the count in the
  JSON body. The proxier's sync hands over the ports (`sync_services`) and
  the local ready endpoint counts (`sync_endpoints`, unique IPs per Service)
  from the same Service and endpoint maps it rendered; a thread of its own
  opens and closes the listeners, so a sync never waits for a socket.
"""
from __future__ import annotations

import datetime
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Mapping

log = logging.getLogger("nsplane.healthcheck")
PROXIER_HEALTH_PORT = 10256
TO_BE_DELETED_TAINT = "ToBeDeletedByClusterAutoscaler"
GO_ZERO_TIME = "0001-01-01 00:00:00 +0000 UTC"

ServiceKey = tuple[str, str]  # (namespace, name)
Answer = tuple[int, bytes, dict[str, str]]  # status, body, headers
_MONOTONIC_BASE = time.monotonic_ns()  # Go's monotonic readings count from the process start


def go_time(wall_ns: int, monotonic_ns: int | None = None) -> str:
    """A time as Go's time.Time.String() prints it (kube-proxy formats its
    health answers with %q): "2006-01-02 15:04:05.999999999 -0700 MST m=+0.000000001"."""
    seconds, nanos = divmod(wall_ns, 1_000_000_000)
    local = datetime.datetime.fromtimestamp(seconds).astimezone()
    fraction = f".{nanos:09d}".rstrip("0") if nanos else ""
    text = f"{local:%Y-%m-%d %H:%M:%S}{fraction} {local:%z} {local.tzname()}"
    if monotonic_ns is not None:
        elapsed = monotonic_ns - _MONOTONIC_BASE
        sign, elapsed = ("-", -elapsed) if elapsed < 0 else ("+", elapsed)
        text += f" m={sign}{elapsed // 1_000_000_000}.{elapsed % 1_000_000_000:09d}"
    return text


def service_health(key: ServiceKey, local_endpoints: int, proxy_healthy: bool = True) -> tuple[int, bytes]:
    """kube-proxy's answer for one Service: status code and body."""
    body = json.dumps({"service": {"namespace": key[0], "name": key[1]}, "localEndpoints": local_endpoints,
                       "serviceProxyHealthy": proxy_healthy}, indent="\t")
    return (200 if local_endpoints and proxy_healthy else 503), body.encode()


# ---------------------------------------------------------------- :10256


class ProxierHealthServer:
    """kube-proxy's proxierHealthServer: see the module docstring."""

    def __init__(self, health_timeout: float, port: int = PROXIER_HEALTH_PORT) -> None:
        self.health_timeout = health_timeout
        self.port = port
        self._lock = threading.Lock()
        self._last_updated: tuple[int, int] | None = None  # (wall ns, monotonic ns) of the last successful sync
        self._oldest_pending: int | None = None  # monotonic ns of the oldest change not yet written
        self.node_eligible = True  # while starting, and until the Node says otherwise

    def queued_update(self) -> None:
        """A change was recorded that the next sync has to write."""
        with self._lock:
            if self._oldest_pending is None:
                self._oldest_pending = time.monotonic_ns()

    def updated(self) -> None:
        """A sync wrote everything recorded before it."""
        with self._lock:
            self._oldest_pending = None
            self._last_updated = (time.time_ns(), time.monotonic_ns())

    def sync_node(self, node: dict | None) -> None:
        """Our Node changed (None: deleted): eligible unless it is being
        deleted or tainted ToBeDeletedByClusterAutoscaler."""
        spec = (node or {}).get("spec") or {}
        self.node_eligible = bool(node) and not node["metadata"].get("deletionTimestamp") and not any(
            t.get("key") == TO_BE_DELETED_TAINT for t in spec.get("taints") or [])

    def is_healthy(self) -> bool:
        """The proxier's own health, the node left out (kube-proxy's IsHealthy)."""
        return self._state()[0]

    def _state(self) -> tuple[bool, str, str]:
        """(healthy, lastUpdated, currentTime) as kube-proxy answers them."""
        now = (time.time_ns(), time.monotonic_ns())
        with self._lock:
            pending, last = self._oldest_pending, self._last_updated
        healthy = pending is None or (now[1] - pending) / 1e9 < self.health_timeout
        current = go_time(*now)
        if healthy:
            return True, current, current  # kube-proxy: a healthy answer's lastUpdated is "now"
        return False, go_time(*last) if last else GO_ZERO_TIME, current

    def answer(self, path: str) -> Answer:
        path = path.split("?", 1)[0]
        if path not in ("/healthz", "/livez"):
            return 404, b"404 page not found\n", {"Content-Type": "text/plain; charset=utf-8"}
        healthy, last, current = self._state()
        head = f'{{"lastUpdated": {json.dumps(last)},"currentTime": {json.dumps(current)}'
        if path == "/livez":
            return (200 if healthy else 503), f"{head}}}".encode(), {}
        eligible = self.node_eligible
        body = f'{head}, "nodeEligible": {json.dumps(eligible)}}}'
        return (200 if healthy and eligible else 503), body.encode(), {}

    def run(self, stop: threading.Event, address: str | None = None) -> None:
        """Serve /healthz and /livez until `stop`, on `address` ("IP:port",
        healthzBindAddress; default every address, :10256)."""
        host, port = ("0.0.0.0", self.port) if address is None else (address.rpartition(":")[0].strip("[]"),
                                                                     int(address.rpartition(":")[2]))
        try:
            server = _serve(port, self.answer, host)
        except OSError as err:
            log.error("proxier health server on %s:%d: %s", host, port, err)
            return
        stop.wait()
        _close(server)


# ---------------------------------------------------------------- healthCheckNodePorts


class ServiceHealthServer:
    """kube-proxy's service health server: see the module docstring."""

    def __init__(self, node_name: str, proxier_health: ProxierHealthServer | None = None) -> None:
        self.node = node_name
        self._proxier_health = proxier_health
        self._lock = threading.Lock()
        self._wanted: dict[ServiceKey, int] = {}
        self._endpoints: dict[ServiceKey, int] = {}
        self._open: dict[ServiceKey, tuple[int, ThreadingHTTPServer]] = {}
        self._changed = threading.Event()

    def sync_services(self, ports: Mapping[ServiceKey, int]) -> None:
        """The Services that have a healthCheckNodePort, and which (from a sync)."""
        with self._lock:
            self._wanted = dict(ports)
            if self._wanted != {key: port for key, (port, _) in self._open.items()}:
                self._changed.set()  # also retries ports that could not be opened before

    def sync_endpoints(self, counts: Mapping[ServiceKey, int]) -> None:
        """Local ready endpoints per Service (from a sync); missing means none."""
        with self._lock:
            self._endpoints = dict(counts)

    def answer(self, key: ServiceKey) -> Answer:
        with self._lock:
            if key not in self._wanted:
                return 404, b"", {}
            count = self._endpoints.get(key, 0)
        healthy = self._proxier_health.is_healthy() if self._proxier_health is not None else True
        code, body = service_health(key, count, healthy)
        return code, body, {"X-Load-Balancing-Endpoint-Weight": str(count)}

    def reconcile(self) -> None:
        """Close listeners no longer wanted (or on another port), open the missing ones."""
        with self._lock:
            wanted = dict(self._wanted)
            closing = [(key, self._open.pop(key)) for key, (port, _) in list(self._open.items())
                       if wanted.get(key) != port]
        for key, (port, server) in closing:
            _close(server)
            log.info("health check node port %d for %s/%s closed", port, *key)
        for key, port in wanted.items():
            with self._lock:
                if key in self._open:
                    continue
            try:
                server = _serve(port, lambda _path, key=key: self.answer(key))
            except OSError as err:
                log.error("node %s failed to start health check %s/%s on port %d: %s", self.node, *key, port, err)
                continue
            with self._lock:
                self._open[key] = (port, server)
            log.info("health check node port %d for %s/%s", port, *key)

    def run(self, stop: threading.Event) -> None:
        """Follow `sync_services` until `stop`, then close every listener."""
        try:
            while not stop.is_set():
                if self._changed.wait(0.5):
                    self._changed.clear()
                    self.reconcile()
        finally:
            with self._lock:
                servers, self._open = [server for _, server in self._open.values()], {}
            for server in servers:
                _close(server)


# ---------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    answer: Callable[[str], Answer]  # set per server

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - stdlib name
        code, body, headers = self.answer(self.path)
        self.send_response_only(code)  # no Server header, like Go's net/http
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _HealthServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024      # a load balancer probing every node at once must not see refusals


def _serve(port: int, answer: Callable[[str], Answer], host: str = "0.0.0.0") -> ThreadingHTTPServer:
    server = _HealthServer((host, port), type("Health", (_Handler,), {"answer": staticmethod(answer)}))
    threading.Thread(target=server.serve_forever, name=f"health-{port}", daemon=True).start()
    return server


def _close(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()  # the listening socket too, so the port can be opened again
