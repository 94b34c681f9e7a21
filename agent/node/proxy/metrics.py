"""kube-proxy's metrics (pkg/proxy/metrics), served as Prometheus text on
the KubeProxyConfiguration's metricsBindAddress (127.0.0.1:10249, in the
node's network namespace) at /metrics.

Names, help texts ("[ALPHA] ..." as component-base prints alpha metrics),
types and buckets are kube-proxy's:

  kubeproxy_sync_proxy_rules_duration_seconds             histogram, every sync
  kubeproxy_sync_full_proxy_rules_duration_seconds        histogram, full syncs
  kubeproxy_sync_partial_proxy_rules_duration_seconds     histogram, partial syncs
  kubeproxy_network_programming_duration_seconds          histogram, from an EndpointSlice's
                                                          endpoints.kubernetes.io/last-change-trigger-time
                                                          to the sync that wrote it
  kubeproxy_sync_proxy_rules_last_timestamp_seconds       gauge
  kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds gauge
  kubeproxy_sync_proxy_rules_iptables_total{table}        gauge, rules written per table
  kubeproxy_sync_proxy_rules_iptables_restore_failures_total counter
    (nftables mode, as kube-proxy registers them there instead of these two:
  kubeproxy_sync_proxy_rules_nftables_sync_failures_total counter
  kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total counter, failed removals of
                                                          the other mode's rules)
  kubeproxy_sync_proxy_rules_endpoint_changes_total       counter
  kubeproxy_sync_proxy_rules_endpoint_changes_pending     gauge
  kubeproxy_sync_proxy_rules_service_changes_total        counter
  kubeproxy_sync_proxy_rules_service_changes_pending      gauge

`ProxyMetrics` is what the proxier records into (thread-safe, cheap);
`render()` is the text; `serve` runs the HTTP server.
"""
from __future__ import annotations

import datetime
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SYNC_BUCKETS = tuple(0.001 * 2 ** i for i in range(15))  # metrics.ExponentialBuckets(0.001, 2, 15)
NETWORK_PROGRAMMING_BUCKETS = (  # kube-proxy's: 0.25 s steps, then 1 s, 5 s and 30 s steps up to 5 min
    (0.25, 0.5) + tuple(float(i) for i in range(1, 60)) + tuple(60.0 + 5 * i for i in range(12))
    + tuple(120.0 + 30 * i for i in range(7)))
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]) -> None:
        self.name, self.help, self.buckets = name, help_text, buckets
        self.counts = [0] * len(buckets)
        self.count, self.sum = 0, 0.0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
                break
        self.count += 1
        self.sum += value

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} [ALPHA] {self.help}", f"# TYPE {self.name} histogram"]
        running = 0
        for bound, n in zip(self.buckets, self.counts):
            running += n
            out.append(f'{self.name}_bucket{{le="{_number(bound)}"}} {running}')
        out += [f'{self.name}_bucket{{le="+Inf"}} {self.count}', f"{self.name}_sum {_number(self.sum)}",
                f"{self.name}_count {self.count}"]
        return out


class ProxyMetrics:
    """kube-proxy's metrics for one node's proxier."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sync = Histogram("kubeproxy_sync_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds",
                              SYNC_BUCKETS)
        self.full = Histogram("kubeproxy_sync_full_proxy_rules_duration_seconds",
                              "SyncProxyRules latency in seconds for full resyncs", SYNC_BUCKETS)
        self.partial = Histogram("kubeproxy_sync_partial_proxy_rules_duration_seconds",
                                 "SyncProxyRules latency in seconds for partial resyncs", SYNC_BUCKETS)
        self.programming = Histogram("kubeproxy_network_programming_duration_seconds",
                                     "In Cluster Network Programming Latency in seconds", NETWORK_PROGRAMMING_BUCKETS)
        self.last_sync = 0.0
        self.last_queued = 0.0
        self.rules: dict[str, int] = {}
        self.restore_failures = 0
        self.cleanup_failures = 0
        self.mode = "iptables"
        self.endpoint_changes = 0
        self.service_changes = 0
        self.endpoint_pending = 0
        self.service_pending = 0

    def changed(self, kind: str, pending: int) -> None:
        """A Service ("service") or EndpointSlice ("endpoint") change was recorded."""
        with self._lock:
            if kind == "service":
                self.service_changes += 1
                self.service_pending = pending
            else:
                self.endpoint_changes += 1
                self.endpoint_pending = pending
            self.last_queued = time.time()

    def synced(self, seconds: float, full: bool, rules: dict[str, int], trigger_times: list[float],
               mode: str = "iptables") -> None:
        """A successful sync in proxy `mode` that took `seconds` and wrote tables with
        these rule counts; `trigger_times` are the last-change-trigger-times (Unix
        seconds) it programmed."""
        now = time.time()
        with self._lock:
            if mode != self.mode:
                self.mode, self.restore_failures = mode, 0
            self.sync.observe(seconds)
            (self.full if full else self.partial).observe(seconds)
            for trigger in trigger_times:
                self.programming.observe(max(0.0, now - trigger))
            self.last_sync = now
            self.rules = dict(rules)
            self.endpoint_pending = self.service_pending = 0

    def restore_failed(self) -> None:
        """A sync's write failed (iptables-restore or the nft transaction)."""
        with self._lock:
            self.restore_failures += 1

    def cleanup_failed(self) -> None:
        with self._lock:
            self.cleanup_failures += 1

    def render(self) -> str:
        with self._lock:
            out: list[str] = []
            for hist in (self.programming, self.full, self.sync, self.partial):
                out += hist.lines()
            out += _gauge("kubeproxy_sync_proxy_rules_endpoint_changes_pending",
                          "Pending proxy rules Endpoint changes", self.endpoint_pending)
            out += _counter("kubeproxy_sync_proxy_rules_endpoint_changes_total",
                            "Cumulative proxy rules Endpoint changes", self.endpoint_changes)
            if self.mode == "nftables":
                out += _counter("kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total",
                                "Cumulative proxy nftables cleanup failures", self.cleanup_failures)
                out += _counter("kubeproxy_sync_proxy_rules_nftables_sync_failures_total",
                                "Cumulative proxy nftables sync failures", self.restore_failures)
            else:
                out += [f"# HELP kubeproxy_sync_proxy_rules_iptables_total [ALPHA] "
                        "Total number of iptables rules owned by kube-proxy",
                        "# TYPE kubeproxy_sync_proxy_rules_iptables_total gauge"]
                out += [f'kubeproxy_sync_proxy_rules_iptables_total{{table="{table}"}} {n}'
                        for table, n in sorted(self.rules.items())]
                out += _counter("kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
                                "Cumulative proxy iptables restore failures", self.restore_failures)
            out += _gauge("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
                          "The last time a sync of proxy rules was queued", self.last_queued)
            out += _gauge("kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                          "The last time proxy rules were successfully synced", self.last_sync)
            out += _gauge("kubeproxy_sync_proxy_rules_service_changes_pending",
                          "Pending proxy rules Service changes", self.service_pending)
            out += _counter("kubeproxy_sync_proxy_rules_service_changes_total",
                            "Cumulative proxy rules Service changes", self.service_changes)
        return "\n".join(out) + "\n"


TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"


def trigger_time(endpoint_slice: dict) -> float | None:
    """The slice's last-change-trigger-time annotation (RFC 3339), in Unix seconds."""
    text = ((endpoint_slice.get("metadata") or {}).get("annotations") or {}).get(TRIGGER_TIME)
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _gauge(name: str, help_text: str, value: float) -> list[str]:
    return [f"# HELP {name} [ALPHA] {help_text}", f"# TYPE {name} gauge", f"{name} {_number(value)}"]


def _counter(name: str, help_text: str, value: int) -> list[str]:
    return [f"# HELP {name} [ALPHA] {help_text}", f"# TYPE {name} counter", f"{name} {value}"]


def _number(value: float) -> str:
    """As Prometheus' Go client prints a float (strconv 'g', shortest)."""
    return repr(float(value)).removesuffix(".0") if float(value).is_integer() and abs(value) < 1e21 else f"{value:.17g}"


def serve(metrics: ProxyMetrics, address: str, stop: threading.Event) -> None:
    """/metrics on `address` ("IP:port") until `stop`; other paths 404."""
    host, _, port = address.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802 - stdlib name
            if self.path.split("?", 1)[0] == "/metrics":
                code, body, kind = 200, metrics.render().encode(), PROMETHEUS_TEXT
            else:
                code, body, kind = 404, b"404 page not found\n", "text/plain; charset=utf-8"
            self.send_response_only(code)
            self.send_header("Date", self.date_time_string())
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((host.strip("[]"), int(port)), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="kube-proxy-metrics", daemon=True).start()
    stop.wait()
    server.shutdown()
    server.server_close()
