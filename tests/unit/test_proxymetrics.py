"""agent.node.proxy.metrics: kube-proxy's metric names, types and buckets,
fed by real proxier syncs (a recording applier), and the /metrics server."""
from __future__ import annotations

import datetime
import socket
import threading
import time
import urllib.request

from agent.node.proxy.metrics import NETWORK_PROGRAMMING_BUCKETS, SYNC_BUCKETS, ProxyMetrics, serve, trigger_time
from agent.node.proxy.proxier import Proxier
from tests.unit.test_proxier import NODE, FakeConntrack, Recorder, endpoint_slice, service

NAMES = ("kubeproxy_sync_proxy_rules_duration_seconds", "kubeproxy_sync_full_proxy_rules_duration_seconds",
         "kubeproxy_sync_partial_proxy_rules_duration_seconds", "kubeproxy_network_programming_duration_seconds",
         "kubeproxy_sync_proxy_rules_last_timestamp_seconds", "kubeproxy_sync_proxy_rules_iptables_total",
         "kubeproxy_sync_proxy_rules_endpoint_changes_total", "kubeproxy_sync_proxy_rules_service_changes_total")


def values(text: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


def test_buckets_are_kube_proxys():
    assert SYNC_BUCKETS[0] == 0.001 and SYNC_BUCKETS[-1] == 16.384 and len(SYNC_BUCKETS) == 15
    assert NETWORK_PROGRAMMING_BUCKETS[:3] == (0.25, 0.5, 1.0) and NETWORK_PROGRAMMING_BUCKETS[-1] == 300.0
    assert list(NETWORK_PROGRAMMING_BUCKETS) == sorted(set(NETWORK_PROGRAMMING_BUCKETS))


def test_syncs_are_counted_under_kube_proxys_names():
    metrics = ProxyMetrics()
    applied = Recorder()
    proxier = Proxier(NODE, applied, min_sync_period=0.01, conntrack=FakeConntrack(), metrics=metrics)
    before = time.time()
    proxier.on_service(None, service())
    trigger = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=2)
    eps = endpoint_slice("web-1", ips=["10.244.0.5"])
    eps["metadata"]["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time":
                                      trigger.strftime("%Y-%m-%dT%H:%M:%SZ")}
    proxier.on_endpointslice(None, eps)
    proxier.on_endpointslice(None, eps)  # no change: not counted
    text = metrics.render()
    for name in NAMES:
        assert f"# TYPE {name} " in text, name
    v = values(text)
    assert v["kubeproxy_sync_proxy_rules_service_changes_total"] == 1
    assert v["kubeproxy_sync_proxy_rules_endpoint_changes_total"] == 1
    assert v["kubeproxy_sync_proxy_rules_endpoint_changes_pending"] == 1
    assert v["kubeproxy_sync_proxy_rules_duration_seconds_count"] == 0

    assert proxier.sync_once().full
    v = values(metrics.render())
    assert v["kubeproxy_sync_proxy_rules_duration_seconds_count"] == 1
    assert v["kubeproxy_sync_full_proxy_rules_duration_seconds_count"] == 1
    assert v["kubeproxy_sync_partial_proxy_rules_duration_seconds_count"] == 0
    assert v["kubeproxy_sync_proxy_rules_last_timestamp_seconds"] >= before
    assert v["kubeproxy_sync_proxy_rules_endpoint_changes_pending"] == 0
    written = applied.rulesets[-1].tables
    assert v['kubeproxy_sync_proxy_rules_iptables_total{table="nat"}'] == sum(map(len, written["nat"].values()))
    assert v['kubeproxy_sync_proxy_rules_iptables_total{table="filter"}'] == sum(map(len, written["filter"].values()))
    # programmed about 2 s (and at most a few more) after the trigger time
    assert v["kubeproxy_network_programming_duration_seconds_count"] == 1
    assert v['kubeproxy_network_programming_duration_seconds_bucket{le="1"}'] == 0
    assert 1 < v["kubeproxy_network_programming_duration_seconds_sum"] < 60

    proxier.on_endpointslice(eps, endpoint_slice("web-1", ips=["10.244.0.5", "10.244.0.6"]))
    assert not proxier.sync_once().full
    v = values(metrics.render())
    assert v["kubeproxy_sync_partial_proxy_rules_duration_seconds_count"] == 1
    assert v["kubeproxy_sync_proxy_rules_duration_seconds_count"] == 2
    assert v["kubeproxy_network_programming_duration_seconds_count"] == 1  # no trigger time on that one


def test_a_failed_restore_is_counted_and_its_trigger_times_kept():
    metrics = ProxyMetrics()
    applied = Recorder()
    proxier = Proxier(NODE, applied, min_sync_period=0.01, conntrack=FakeConntrack(), metrics=metrics)
    eps = endpoint_slice("web-1", ips=["10.244.0.5"])
    eps["metadata"]["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time": "2020-01-01T00:00:00Z"}
    proxier.on_service(None, service())
    proxier.on_endpointslice(None, eps)
    applied.fail = RuntimeError("iptables-restore: line 3 failed")
    try:
        proxier.sync_once()
    except RuntimeError:
        pass
    assert values(metrics.render())["kubeproxy_sync_proxy_rules_iptables_restore_failures_total"] == 1
    applied.fail = None
    proxier.sync_once()
    v = values(metrics.render())
    assert v["kubeproxy_network_programming_duration_seconds_count"] == 1
    assert v['kubeproxy_network_programming_duration_seconds_bucket{le="+Inf"}'] == 1
    assert v['kubeproxy_network_programming_duration_seconds_bucket{le="300"}'] == 0


def test_trigger_time_parsing():
    assert trigger_time({"metadata": {"annotations": {
        "endpoints.kubernetes.io/last-change-trigger-time": "2021-03-04T05:06:07Z"}}}) == 1614834367.0
    assert trigger_time({"metadata": {}}) is None
    assert trigger_time({"metadata": {"annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "x"}}}) is None


def test_metrics_server_answers_prometheus_text():
    metrics, stop = ProxyMetrics(), threading.Event()
    with socket.socket() as s:  # a free port (serve() does not report the one it got)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    thread = threading.Thread(target=serve, args=(metrics, f"127.0.0.1:{port}", stop), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    body, kind = r.read().decode(), r.headers["Content-Type"]
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert kind.startswith("text/plain; version=0.0.4")
        assert "# HELP kubeproxy_sync_proxy_rules_last_timestamp_seconds [ALPHA] " in body
    finally:
        stop.set()
        thread.join(5)
