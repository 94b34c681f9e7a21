"""agent.node.proxy.proxier: API objects -> model, change tracking, the sync loop.

The kernel is replaced at the proxier's seams: a fake applier that records
rulesets (and has a canary flag the test flips), a fake conntrack that
records what would be cleared, and fake health servers that record what the
syncs report.
"""
from __future__ import annotations

import copy
import logging
import threading
import time

import pytest

from agent.node.proxy.proxier import (
    ChangeTracker,
    Proxier,
    service_ports,
    slice_endpoints,
)
from dataplane.chains import service_chains
from dataplane.model import Endpoint, NodeInfo, ServicePort

NODE = NodeInfo(name="node-a", cluster_cidr="10.244.0.0/16", node_ips=("192.168.50.2",))


def service(name="web", ns="default", cluster_ip="10.96.0.20", ports=None, **spec):
    ports = ports if ports is not None else [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]
    obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "resourceVersion": "1"},
        "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "ports": ports, **spec},
    }
    return obj


def endpoint_slice(name, service_name="web", ns="default", ips=(), port=8080, port_name="http", protocol="TCP",
                   **endpoint_extra):
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": service_name},
                     "resourceVersion": "1"},
        "addressType": "IPv4",
        "ports": [{"name": port_name, "port": port, "protocol": protocol}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}, **endpoint_extra} for ip in ips],
    }


class FakeConntrack:
    def __init__(self):
        self.calls = []

    def clear_udp(self, service_ip, port=None, endpoint_ip=None):
        self.calls.append(("svc", service_ip, port, endpoint_ip))
        return 0

    def clear_udp_node_port(self, node_port, endpoint_ip=None):
        self.calls.append(("nodeport", node_port, endpoint_ip))
        return 0

    def clear_closed_tcp(self, endpoint_ip, service_ip=None, port=None, node_port=None):
        self.calls.append(("closed-tcp", endpoint_ip, service_ip, port, node_port))
        return 0


class Recorder:
    """A fake dataplane.applier.Applier: records each ruleset and the one a
    partial apply would diff it against (None for a full apply)."""

    def __init__(self):
        self.rulesets = []
        self.previous = []
        self.written = None
        self.canary_gone = False
        self.fail = None  # an exception to raise instead of applying

    def apply(self, ruleset, full=False):
        previous, self.written = (None if full else self.written), None
        if self.fail is not None:
            raise self.fail
        self.rulesets.append(ruleset)
        self.previous.append(previous)
        self.written = ruleset
        return 0

    def canary_missing(self):
        return self.canary_gone


class FakeHealth:
    """Records what the syncs tell the health servers."""

    def __init__(self):
        self.queued = self.updated_count = 0
        self.ports, self.counts = None, None

    def queued_update(self):
        self.queued += 1

    def updated(self):
        self.updated_count += 1

    def sync_services(self, ports):
        self.ports = ports

    def sync_endpoints(self, counts):
        self.counts = counts


@pytest.fixture
def proxier():
    applied, conntrack = Recorder(), FakeConntrack()
    p = Proxier(NODE, applied, min_sync_period=0.01, sync_period=30.0, conntrack=conntrack)
    p.applied, p.conntrack = applied, conntrack
    return p


def dnat_targets(ruleset) -> set[str]:
    return {line.rsplit(" ", 1)[1] for line in ruleset.text.splitlines() if "--to-destination" in line}


# ---------------------------------------------------------------- conversion


def test_service_conversion():
    svc = service(
        type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=31000,
        externalIPs=["192.168.99.1", "fd00::1"], loadBalancerSourceRanges=[" 203.0.113.7/24", "bogus"],
        sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
        ports=[{"name": "http", "port": 80, "nodePort": 30080}, {"name": "dns", "port": 53, "protocol": "UDP"}],
    )
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}, {"ip": "5.6.7.8", "ipMode": "Proxy"},
                                                  {"hostname": "lb.example"}]}}
    http, dns = service_ports(svc)
    assert http == ServicePort(
        "default", "web", "http", "TCP", "10.96.0.20", 80, node_port=30080, external_ips=("192.168.99.1",),
        load_balancer_ips=("1.2.3.4",), load_balancer_source_ranges=("203.0.113.0/24",),
        external_policy_local=True, health_check_node_port=31000, affinity_timeout=60,
    )
    assert (dns.protocol, dns.port, dns.node_port, dns.spn) == ("UDP", 53, 0, "default/web:dns")


def test_policies_and_defaults():
    # externalTrafficPolicy only counts for externally accessible Services.
    (plain,) = service_ports(service(externalTrafficPolicy="Local", internalTrafficPolicy="Local",
                                     sessionAffinity="ClientIP"))
    assert not plain.external_policy_local and plain.internal_policy_local
    assert plain.affinity_timeout == 10800
    (unnamed,) = service_ports(service(ports=[{"port": 443}]))
    assert (unnamed.port_name, unnamed.protocol, unnamed.spn) == ("", "TCP", "default/web")


@pytest.mark.parametrize("spec", [
    {"type": "ExternalName", "externalName": "example.com", "clusterIP": ""},
    {"clusterIP": "None"},
    {"clusterIP": ""},
])
def test_external_name_and_headless_are_ignored(spec):
    svc = service()
    svc["spec"].update(spec)
    assert service_ports(svc) == ()


def test_slice_conversion_conditions():
    eps = endpoint_slice("web-1", ips=["10.244.0.5"], nodeName="node-a")
    eps["endpoints"] += [
        {"addresses": ["10.244.1.5"], "conditions": {}},
        {"addresses": ["10.244.1.6"], "conditions": {"ready": False, "serving": True, "terminating": True}},
        {"addresses": []},
    ]
    service_key, ports = slice_endpoints(eps)
    assert service_key == ("default", "web")
    assert ports == ((("http", "TCP"), (
        Endpoint("10.244.0.5", 8080, node_name="node-a"),
        Endpoint("10.244.1.5", 8080),
        Endpoint("10.244.1.6", 8080, ready=False, serving=True, terminating=True),
    )),)
    unlabeled = endpoint_slice("x")
    del unlabeled["metadata"]["labels"]
    assert slice_endpoints(unlabeled) is None
    assert slice_endpoints({**endpoint_slice("y"), "addressType": "IPv6"}) is None


# ---------------------------------------------------------------- change tracking


def test_change_tracker_drops_noops_and_reverts():
    t = ChangeTracker()
    assert t.update("a", 1) and t.pending() == 1
    assert not t.update("a", None)  # added then deleted before a sync: nothing to do
    assert t.pending() == 0
    t.update("a", 1)
    assert t.checkout() == {"a": (None, 1)}
    assert not t.update("a", 1)
    assert t.update("a", 2) and not t.update("a", 1)
    assert t.checkout() == {} and t.applied == {"a": 1}


def test_callbacks_record_only_and_noop_updates_are_dropped(proxier):
    svc = service()
    proxier.on_service(None, svc)
    proxier.on_endpointslice(None, endpoint_slice("web-1", ips=["10.244.0.5"]))
    assert proxier.applied.rulesets == []  # callbacks never apply
    result = proxier.sync_once()
    assert (result.service_ports, result.endpoints, result.services_changed, result.slices_changed) == (1, 1, 1, 1)
    assert len(proxier.applied.rulesets) == 1

    newer = copy.deepcopy(svc)
    newer["metadata"]["resourceVersion"] = "2"
    newer["metadata"]["annotations"] = {"irrelevant": "yes"}
    proxier.on_service(svc, newer)
    assert not proxier.has_pending_changes()
    changed = copy.deepcopy(newer)
    changed["spec"]["ports"][0]["port"] = 81
    proxier.on_service(newer, changed)
    assert proxier.has_pending_changes()
    proxier.on_service(changed, newer)  # changed back before the sync
    assert not proxier.has_pending_changes()


def test_slices_are_merged(proxier):
    proxier.on_service(None, service())
    proxier.on_endpointslice(None, endpoint_slice("web-1", ips=["10.244.0.5", "10.244.0.6"]))
    proxier.on_endpointslice(None, endpoint_slice("web-2", ips=["10.244.1.5", "10.244.0.6"]))
    proxier.on_endpointslice(None, endpoint_slice("other-1", service_name="other", ips=["10.244.9.9"]))
    proxier.sync_once()
    assert dnat_targets(proxier.applied.rulesets[-1]) == {"10.244.0.5:8080", "10.244.0.6:8080", "10.244.1.5:8080"}
    proxier.on_endpointslice(endpoint_slice("web-1", ips=[]), None)
    proxier.sync_once()
    assert dnat_targets(proxier.applied.rulesets[-1]) == {"10.244.0.6:8080", "10.244.1.5:8080"}


def test_ports_matched_by_name_and_protocol(proxier):
    proxier.on_service(None, service(ports=[{"name": "dns", "port": 53, "protocol": "UDP"},
                                            {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]))
    proxier.on_endpointslice(None, endpoint_slice("a", ips=["10.244.0.9"], port=5353, port_name="dns", protocol="UDP"))
    proxier.sync_once()
    text = proxier.applied.rulesets[-1].text
    assert "-m udp -p udp -j DNAT --to-destination 10.244.0.9:5353" in text
    assert '"default/web:dns-tcp has no endpoints"' in text


def test_service_without_slices_rejects_and_deleted_service_goes(proxier):
    proxier.on_service(None, service())
    proxier.sync_once()
    assert '"default/web:http has no endpoints"' in proxier.applied.rulesets[-1].text
    proxier.on_service(service(), None)
    proxier.sync_once()
    last = proxier.applied.rulesets[-1]
    assert "default/web" not in last.text
    assert service_chains("default/web:http", "TCP").svc not in last.chains["nat"]


def test_external_name_and_headless_produce_no_rules(proxier):
    proxier.on_service(None, service(name="ext", type="ExternalName", externalName="example.com", cluster_ip=""))
    proxier.on_service(None, service(name="db", cluster_ip="None"))
    proxier.on_endpointslice(None, endpoint_slice("db-1", service_name="db", ips=["10.244.0.7"]))
    assert not proxier._services.pending()
    proxier.sync_once()
    text = proxier.applied.rulesets[-1].text
    assert "default/ext" not in text and "default/db" not in text


def test_node_name_decides_local_endpoints(proxier):
    proxier.on_service(None, service(type="NodePort", externalTrafficPolicy="Local",
                                     ports=[{"name": "http", "port": 80, "nodePort": 30080}]))
    eps = endpoint_slice("web-1", ips=["10.244.0.5"], nodeName="node-b")
    proxier.on_endpointslice(None, eps)
    proxier.sync_once()
    svl = service_chains("default/web:http", "TCP").svl
    assert svl not in proxier.applied.rulesets[-1].chains["nat"]
    proxier.set_node(NodeInfo("node-b", NODE.cluster_cidr))
    proxier.sync_once()
    assert svl in proxier.applied.rulesets[-1].chains["nat"]


def test_wait_for_initial_sync():
    applied = Recorder()
    p = Proxier(NODE, applied, conntrack=FakeConntrack(), wait_for_initial_sync=True)
    p.on_service(None, service())
    assert p.sync_once() is None and applied.rulesets == []
    p.services_synced()
    p.endpointslices_synced()
    assert p.sync_once() is not None and len(applied.rulesets) == 1


def test_failed_apply_is_retried_with_full_state(proxier):
    proxier.applied.fail = RuntimeError("iptables-restore: line 3 failed")
    proxier.on_service(None, service())
    with pytest.raises(RuntimeError):
        proxier.sync_once()
    assert proxier.has_pending_changes()
    proxier.applied.fail = None
    proxier.sync_once()
    assert "default/web:http" in proxier.applied.rulesets[-1].text


# ---------------------------------------------------------------- conntrack


def test_udp_conntrack_cleanup(proxier):
    dns = service(name="dns", cluster_ip="10.96.0.10", ports=[{"name": "dns", "port": 53, "protocol": "UDP"}])
    proxier.on_service(None, dns)
    proxier.sync_once()
    assert proxier.conntrack.calls == []  # no endpoints yet: nothing to clear
    proxier.on_endpointslice(None, endpoint_slice("dns-1", service_name="dns", ips=["10.244.0.9", "10.244.1.9"],
                                                  port=53, port_name="dns", protocol="UDP"))
    proxier.sync_once()
    # First endpoints: entries cached while the Service rejected must go.
    assert proxier.conntrack.calls == [("svc", "10.96.0.10", 53, None)]
    proxier.conntrack.calls.clear()
    proxier.on_endpointslice(None, endpoint_slice("dns-1", service_name="dns", ips=["10.244.0.9"],
                                                  port=53, port_name="dns", protocol="UDP"))
    proxier.sync_once()
    assert proxier.conntrack.calls == [("svc", "10.96.0.10", 53, "10.244.1.9")]


def test_closed_tcp_entries_of_an_endpoint_that_left_are_cleared(proxier):
    """A terminating endpoint keeps its entries (it drains established
    connections); once it leaves the slices, its CLOSE/TIME_WAIT entries go
    for the ClusterIP and the NodePort, so no reused source port follows them."""
    web = service(type="NodePort", ports=[{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}])
    proxier.on_service(None, web)
    proxier.on_endpointslice(None, endpoint_slice("web-1", ips=["10.244.0.5", "10.244.0.6"]))
    proxier.sync_once()
    assert proxier.conntrack.calls == []
    terminating = endpoint_slice("web-1", ips=["10.244.0.5", "10.244.0.6"])
    terminating["endpoints"][1]["conditions"] = {"ready": False, "serving": True, "terminating": True}
    proxier.on_endpointslice(None, terminating)
    proxier.sync_once()
    assert proxier.conntrack.calls == []
    proxier.on_endpointslice(None, endpoint_slice("web-1", ips=["10.244.0.5"]))
    proxier.sync_once()
    assert proxier.conntrack.calls == [("closed-tcp", "10.244.0.6", "10.96.0.20", 80, None),
                                       ("closed-tcp", "10.244.0.6", None, None, 30080)]
    proxier.conntrack.calls.clear()
    proxier.on_service(None, dict(web, metadata={**web["metadata"], "resourceVersion": "2",
                                                 "annotations": {"a": "b"}}))
    proxier.sync_once()
    assert proxier.conntrack.calls == []          # an update that removes no endpoint clears nothing


def test_udp_conntrack_cleanup_follows_the_endpoints_the_rules_use(proxier):
    """internalTrafficPolicy Local: the rules use only this node's endpoints,
    so only those are cleared when they go; an unchanged port costs nothing."""
    dns = service(name="dns", cluster_ip="10.96.0.10", internalTrafficPolicy="Local",
                  ports=[{"name": "dns", "port": 53, "protocol": "UDP"}])
    proxier.on_service(None, dns)
    local = {"addresses": ["10.244.0.9"], "conditions": {"ready": True}, "nodeName": "node-a"}
    remote = {"addresses": ["10.244.1.9"], "conditions": {"ready": True}, "nodeName": "node-b"}
    eps = endpoint_slice("dns-1", service_name="dns", port=53, port_name="dns", protocol="UDP")
    proxier.on_endpointslice(None, {**eps, "endpoints": [local, remote]})
    proxier.sync_once()
    assert proxier.conntrack.calls == [("svc", "10.96.0.10", 53, None)]
    proxier.conntrack.calls.clear()
    proxier.on_endpointslice(None, {**eps, "endpoints": [local]})  # the remote one was never used here
    proxier.on_service(None, service(name="other"))
    proxier.sync_once()
    assert proxier.conntrack.calls == []
    proxier.on_endpointslice(None, {**eps, "endpoints": []})
    proxier.sync_once()
    assert proxier.conntrack.calls == [("svc", "10.96.0.10", 53, "10.244.0.9")]


# ---------------------------------------------------------------- health


def test_syncs_feed_the_health_servers():
    health = FakeHealth()
    applied = Recorder()
    p = Proxier(NODE, applied, conntrack=FakeConntrack(), wait_for_initial_sync=True, healthz=health,
                service_health=health)
    lb = service(type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=31000,
                 ports=[{"name": "http", "port": 80, "nodePort": 30080},
                        {"name": "alt", "port": 81, "nodePort": 30081}])
    p.on_service(None, lb)
    p.on_service(None, service(name="plain", cluster_ip="10.96.0.21"))
    assert health.queued == 0  # kube-proxy queues nothing before the initial lists are in
    p.services_synced()
    p.endpointslices_synced()
    p.sync_once()
    assert (health.updated_count, health.ports, health.counts) == (1, {("default", "web"): 31000}, {})

    here = {"conditions": {"ready": True}, "nodeName": "node-a"}
    alt = endpoint_slice("web-alt", port=8081, port_name="alt")
    alt["endpoints"] = [{"addresses": ["10.244.0.5"], **here}]
    p.on_endpointslice(None, alt)
    assert health.queued == 1
    http = endpoint_slice("web-http")
    http["endpoints"] = [{"addresses": ["10.244.0.5"], **here},   # the same pod on both ports: one endpoint
                         {"addresses": ["10.244.0.6"], **here},
                         {"addresses": ["10.244.0.7"], "conditions": {"ready": False}, "nodeName": "node-a"},
                         {"addresses": ["10.244.1.5"], "conditions": {"ready": True}, "nodeName": "node-b"}]
    p.on_endpointslice(None, http)
    applied.fail = RuntimeError("restore failed")
    with pytest.raises(RuntimeError):
        p.sync_once()
    assert (health.updated_count, health.counts) == (1, {})  # a failed sync reports nothing
    applied.fail = None
    p.sync_once()
    assert (health.updated_count, health.counts) == (2, {("default", "web"): 2})
    p.on_service(lb, None)
    p.sync_once()
    assert (health.ports, health.counts) == ({}, {})


# ---------------------------------------------------------------- the loop


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_run_loop_syncs_batches_and_resyncs_on_missing_canary(caplog):
    applied = Recorder()
    p = Proxier(NODE, applied, min_sync_period=0.2, sync_period=30.0, conntrack=FakeConntrack())
    stop = threading.Event()
    thread = threading.Thread(target=p.run, args=(stop,), daemon=True)
    caplog.set_level(logging.INFO, logger="nsplane.proxier")
    thread.start()
    try:
        assert wait_for(lambda: len(applied.rulesets) == 1)  # initial full sync
        for i in range(20):  # a burst of changes is rate-limited into few syncs
            p.on_endpointslice(None, endpoint_slice("web-1", ips=[f"10.244.0.{i + 1}"]))
        p.on_service(None, service())
        assert wait_for(lambda: "10.244.0.20:8080" in applied.rulesets[-1].text)
        assert len(applied.rulesets) <= 4
        count = len(applied.rulesets)
        time.sleep(0.5)
        assert len(applied.rulesets) == count  # idle: no syncs
        applied.canary_gone = True
        assert wait_for(lambda: len(applied.rulesets) > count, timeout=3.0)
        applied.canary_gone = False
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
    assert any("synced 1 service ports" in r.getMessage() for r in caplog.records)
    assert any("KUBE-PROXY-CANARY is gone" in r.getMessage() for r in caplog.records)


def test_run_loop_writes_everything_once_per_full_sync_period_even_while_changes_stream_in():
    applied = Recorder()
    p = Proxier(NODE, applied, min_sync_period=0.02, full_sync_period=0.5, conntrack=FakeConntrack())
    stop = threading.Event()
    thread = threading.Thread(target=p.run, args=(stop,), daemon=True)
    thread.start()
    try:
        p.on_service(None, service())
        deadline = time.monotonic() + 1.4
        i = 0
        while time.monotonic() < deadline:  # a partial sync about every 50 ms
            i += 1
            p.on_endpointslice(None, endpoint_slice("web-1", ips=[f"10.244.0.{i % 200 + 1}"]))
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=5)
    full = [previous is None for previous in applied.previous]
    assert len(full) > 10 and 2 <= sum(full) <= 4, full  # the first, then one per 0.5 s


# ---------------------------------------------------------------- partial syncs


def test_syncs_are_partial_after_the_first_and_full_after_a_failure(proxier):
    proxier.on_service(None, service())
    first = proxier.sync_once()
    assert first.full and proxier.applied.previous[-1] is None
    proxier.on_endpointslice(None, endpoint_slice("web-1", ips=["10.244.0.5"]))
    second = proxier.sync_once()
    assert not second.full and proxier.applied.previous[-1] is proxier.applied.rulesets[-2]
    assert dnat_targets(proxier.applied.rulesets[-1]) == {"10.244.0.5:8080"}

    proxier.applied.fail = RuntimeError("restore failed")
    proxier.on_endpointslice(None, endpoint_slice("web-1", ips=["10.244.0.6"]))
    with pytest.raises(RuntimeError):
        proxier.sync_once()
    proxier.applied.fail = None
    assert proxier.sync_once().full and proxier.applied.previous[-1] is None
    assert dnat_targets(proxier.applied.rulesets[-1]) == {"10.244.0.6:8080"}


def test_incremental_port_map_equals_a_fresh_one():
    """Random Service / EndpointSlice churn: after every partial sync the rules
    equal those a fresh proxier renders from the same final objects."""
    import random

    rng = random.Random(5)
    live = Proxier(NODE, Recorder(), conntrack=FakeConntrack())
    services, slices = {}, {}
    for step in range(60):
        name = f"s{rng.randrange(8)}"
        if rng.random() < 0.4:
            new = None if rng.random() < 0.2 else service(name=name, cluster_ip=f"10.96.0.{rng.randrange(2, 250)}")
            live.on_service(services.get(name), new)
            services[name] = new
        else:
            key = f"{name}-{rng.randrange(2)}"
            new = None if rng.random() < 0.2 else endpoint_slice(
                key, service_name=rng.choice([name, "s0"]), ips=[f"10.244.0.{rng.randrange(2, 250)}"])
            live.on_endpointslice(slices.get(key), new)
            slices[key] = new
        if step % 3 == 0:
            live.sync_once()
    live.sync_once()
    fresh = Proxier(NODE, Recorder(), conntrack=FakeConntrack())
    for obj in services.values():
        if obj:
            fresh.on_service(None, obj)
    for obj in slices.values():
        if obj:
            fresh.on_endpointslice(None, obj)
    fresh.sync_once()
    assert live._applier.written.tables == fresh._applier.written.tables


def test_switching_modes_writes_everything_in_the_new_mode_then_cleans_the_old_one():
    from dataplane.nft.ruleset import NftRuleset
    from dataplane.rules import Ruleset

    ipt, nft, cleaned = Recorder(), Recorder(), []
    from agent.node.proxy.metrics import ProxyMetrics
    metrics = ProxyMetrics()
    p = Proxier(NODE, ipt, conntrack=FakeConntrack(), metrics=metrics, appliers={"nftables": nft},
                cleanup=lambda mode: cleaned.append(mode) or "")
    p.on_service(None, service())
    p.on_endpointslice(None, endpoint_slice("web-1", ips=("10.244.1.5",)))
    p.sync_once()
    assert isinstance(ipt.written, Ruleset) and cleaned == ["iptables"]  # at start: the other mode's leftovers
    assert "kubeproxy_sync_proxy_rules_iptables_total" in metrics.render()
    with pytest.raises(ValueError, match='unsupported proxy mode "ipvs"'):
        p.set_mode("ipvs")
    p.set_mode("nftables")
    assert p.has_pending_changes()
    result = p.sync_once()
    assert result.full and p.mode == "nftables" and isinstance(nft.written, NftRuleset)
    assert nft.previous == [None] and cleaned == ["iptables", "nftables"]
    sp = next(iter(nft.written.services))
    assert [ep.ip for ep in nft.written.reachable(sp)] == [ep.ip for ep in ipt.written.reachable(sp)]
    text = metrics.render()
    assert "kubeproxy_sync_proxy_rules_nftables_sync_failures_total 0" in text
    assert "kubeproxy_sync_proxy_rules_iptables_total" not in text
    # a failing cleanup is counted, and tried again after the next sync
    p.set_mode("iptables")
    p._cleanup = lambda mode: (_ for _ in ()).throw(RuntimeError("nft gone"))
    p.sync_once()
    assert p._cleanup_due and isinstance(ipt.written, Ruleset)
    p.set_mode("nftables")
    p.sync_once()
    assert "kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total 2" in metrics.render()
