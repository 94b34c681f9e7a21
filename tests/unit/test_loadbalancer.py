"""LoadBalancer Services without root: the load-balancer pool, admission of requested
addresses, type-dependent fields on type changes, the speaker's election,
ARP packets and kube-proxy's health-check answers."""
import json
import re

import pytest

from agent.apiserver.allocation import drop_type_dependent_fields
from agent.apiserver.allocator import AllocationError, LoadBalancerPool
from agent.node import speaker
from agent.node.proxy import healthcheck
from dataplane import arp

MAC_A = bytes.fromhex("02aabbccdd01")
MAC_B = bytes.fromhex("02aabbccdd02")


# ---- pool ---------------------------------------------------------------------------

def test_pool_hands_out_lowest_free_and_knows_its_range():
    pool = LoadBalancerPool("172.28.0.200-172.28.0.202")
    assert pool.size == 3 and str(pool) == "172.28.0.200-172.28.0.202"
    assert pool.allocate(set()) == "172.28.0.200"
    assert pool.allocate({"172.28.0.200"}) == "172.28.0.201"
    assert pool.allocate({"172.28.0.200", "172.28.0.201", "172.28.0.202"}) is None
    assert pool.contains("172.28.0.202") and not pool.contains("172.28.0.203")
    assert LoadBalancerPool("10.0.0.0/30").size == 4


def test_pool_check_names_the_problem():
    pool = LoadBalancerPool("172.28.0.200-172.28.0.210")
    pool.check("172.28.0.205", {"172.28.0.205": "default/me"}, "default/me")   # its own address
    with pytest.raises(AllocationError, match="not in the load-balancer pool 172.28.0.200-172.28.0.210"):
        pool.check("172.28.0.100", {}, "default/me")
    with pytest.raises(AllocationError, match="already allocated to service default/other"):
        pool.check("172.28.0.205", {"172.28.0.205": "default/other"}, "default/me")
    with pytest.raises(AllocationError, match="no load-balancer pool is configured"):
        LoadBalancerPool("none").check("172.28.0.205", {}, "default/me")


@pytest.mark.parametrize("spec", ["172.28.0.210-172.28.0.200", "nonsense", "172.28.0.300-172.28.0.301"])
def test_bad_pool_specs_are_refused(spec):
    with pytest.raises(ValueError, match="load-balancer pool"):
        LoadBalancerPool(spec)


# ---- type changes -------------------------------------------------------------------

def _svc(stype, **spec):
    return {"spec": {"type": stype, "ports": [{"port": 80, "protocol": "TCP"}], **spec}}


def test_leaving_node_port_drops_unchanged_node_ports_and_policy():
    old = _svc("NodePort", externalTrafficPolicy="Cluster")
    old["spec"]["ports"][0]["nodePort"] = 30080
    new = _svc("ClusterIP", externalTrafficPolicy="Cluster")
    new["spec"]["ports"][0]["nodePort"] = 30080
    drop_type_dependent_fields(old, new)
    assert "nodePort" not in new["spec"]["ports"][0] and "externalTrafficPolicy" not in new["spec"]


def test_leaving_load_balancer_drops_its_fields_but_keeps_changed_ones():
    old = _svc("LoadBalancer", allocateLoadBalancerNodePorts=True, healthCheckNodePort=31000,
               externalTrafficPolicy="Local")
    new = _svc("NodePort", allocateLoadBalancerNodePorts=True, healthCheckNodePort=31000,
               externalTrafficPolicy="Local")
    drop_type_dependent_fields(old, new)
    assert "allocateLoadBalancerNodePorts" not in new["spec"] and "healthCheckNodePort" not in new["spec"]
    assert new["spec"]["externalTrafficPolicy"] == "Local"    # still externally accessible
    changed = _svc("ClusterIP", healthCheckNodePort=31001)
    drop_type_dependent_fields(old, changed)
    assert changed["spec"]["healthCheckNodePort"] == 31001     # the user changed it: validation decides


def test_external_name_and_back():
    families = {"ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster"}
    old = _svc("ClusterIP", clusterIP="10.96.1.2", clusterIPs=["10.96.1.2"], **families)
    new = _svc("ExternalName", clusterIP="10.96.1.2", clusterIPs=["10.96.1.2"], externalName="example.com",
               **families)
    drop_type_dependent_fields(old, new)
    assert "clusterIP" not in new["spec"] and "clusterIPs" not in new["spec"]
    assert not set(families) & set(new["spec"])       # as kube-apiserver stores an ExternalName Service
    back = _svc("ClusterIP", externalName="example.com")
    drop_type_dependent_fields(new, back)
    assert "externalName" not in back["spec"]


# ---- speaker election ---------------------------------------------------------------

def _node(name, ready=True, **labels):
    return {"metadata": {"name": name, "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def _lb(name, ip, etp="Cluster"):
    return {"metadata": {"namespace": "default", "name": name},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": etp},
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}


def _slice(svc, *node_names, ready=True):
    return {"metadata": {"namespace": "default", "labels": {"kubernetes.io/service-name": svc}},
            "endpoints": [{"addresses": [f"10.244.{i}.2"], "nodeName": n, "conditions": {"ready": ready}}
                          for i, n in enumerate(node_names)]}


def test_every_node_elects_the_same_single_winner_and_addresses_spread():
    nodes = [_node(f"node-{k}") for k in (1, 2, 3)]
    services = [_lb(f"s{i}", f"172.28.0.{200 + i}") for i in range(30)]
    won = speaker.assignments(services, nodes, [])
    assert len(won) == 30
    assert speaker.assignments(list(reversed(services)), list(reversed(nodes)), []) == won
    assert len({node for node, _ in won.values()}) == 3


def test_a_leaving_node_hands_its_addresses_to_another():
    nodes = [_node(f"node-{k}") for k in (1, 2, 3)]
    svc = _lb("web", "172.28.0.200")
    owner = speaker.assignments([svc], nodes, [])["172.28.0.200"][0]
    rest = [n for n in nodes if n["metadata"]["name"] != owner]
    new_owner = speaker.assignments([svc], rest, [])["172.28.0.200"][0]
    assert new_owner != owner
    not_ready = [n if n["metadata"]["name"] != owner else _node(owner, ready=False) for n in nodes]
    assert speaker.assignments([svc], not_ready, [])["172.28.0.200"][0] == new_owner
    excluded = [n if n["metadata"]["name"] != owner else
                _node(owner, **{"node.kubernetes.io/exclude-from-external-load-balancers": ""}) for n in nodes]
    assert speaker.assignments([svc], excluded, [])["172.28.0.200"][0] == new_owner


def test_local_policy_announces_only_from_nodes_with_a_ready_endpoint():
    nodes = [_node(f"node-{k}") for k in (1, 2, 3)]
    svc = _lb("web", "172.28.0.200", etp="Local")
    assert speaker.assignments([svc], nodes, [_slice("web", "node-3")])["172.28.0.200"][0] == "node-3"
    assert speaker.assignments([svc], nodes, [_slice("web", "node-3", ready=False)]) == {}
    assert speaker.assignments([svc], nodes, []) == {}


# ---- ARP ----------------------------------------------------------------------------

def test_arp_reply_only_for_our_addresses():
    request = arp.frame(arp.REQUEST, MAC_B, arp.BROADCAST, MAC_B, "172.28.0.1", b"\0" * 6, "172.28.0.200")
    reply = arp.reply_for(request, MAC_A, {"172.28.0.200"})
    assert arp.parse(reply) == (arp.REPLY, MAC_A, "172.28.0.200", MAC_B, "172.28.0.1")
    assert reply[:6] == MAC_B and reply[6:12] == MAC_A
    assert arp.reply_for(request, MAC_A, {"172.28.0.201"}) is None
    assert arp.reply_for(reply, MAC_A, {"172.28.0.200"}) is None            # not a request
    assert arp.reply_for(arp.gratuitous(MAC_B, "172.28.0.200"), MAC_A, {"172.28.0.200"}) is None
    assert arp.parse(b"\x00" * 10) is None


def test_gratuitous_arp_is_a_broadcast_request_for_itself():
    g = arp.gratuitous(MAC_A, "172.28.0.200")
    assert g[:6] == arp.BROADCAST
    assert arp.parse(g) == (arp.REQUEST, MAC_A, "172.28.0.200", b"\0" * 6, "172.28.0.200")


# ---- health check node port ---------------------------------------------------------

def test_health_answers_like_kube_proxy():
    code, body = healthcheck.service_health(("default", "web"), 2)
    assert code == 200 and json.loads(body) == {"service": {"namespace": "default", "name": "web"},
                                                "localEndpoints": 2, "serviceProxyHealthy": True}
    assert body.decode().splitlines()[:3] == ["{", '\t"service": {', '\t\t"namespace": "default",']
    assert healthcheck.service_health(("default", "web"), 0)[0] == 503
    code, body = healthcheck.service_health(("default", "web"), 2, proxy_healthy=False)
    assert code == 503 and json.loads(body)["serviceProxyHealthy"] is False


def test_health_ports_only_for_load_balancers_with_local_policy():
    from agent.node.proxy.changes import service_ports
    lb = _lb("web", "172.28.0.200", etp="Local")
    lb["spec"].update(clusterIP="10.96.0.20", healthCheckNodePort=31000, ports=[{"port": 80, "nodePort": 30080}])
    np = {"metadata": {"namespace": "default", "name": "np"},
          "spec": {"type": "NodePort", "clusterIP": "10.96.0.21", "externalTrafficPolicy": "Local",
                   "healthCheckNodePort": 31001, "ports": [{"port": 80, "nodePort": 30080}]}}
    assert [sp.health_check_node_port for sp in service_ports(lb) + service_ports(np)] == [31000, 0]


def test_service_health_answers_from_the_last_sync():
    healthz = healthcheck.ProxierHealthServer(health_timeout=60)
    server = healthcheck.ServiceHealthServer("node-1", healthz)
    server.sync_services({("default", "web"): 31000})
    assert server.answer(("default", "web"))[0] == 503  # no endpoints reported yet
    server.sync_endpoints({("default", "web"): 2})
    code, body, headers = server.answer(("default", "web"))
    assert (code, json.loads(body)["localEndpoints"], headers) == (200, 2, {"X-Load-Balancing-Endpoint-Weight": "2"})
    healthz.queued_update()
    healthz.health_timeout = 0  # the change has waited too long: the proxier is unhealthy
    assert server.answer(("default", "web"))[0] == 503
    server.sync_services({})
    assert server.answer(("default", "web"))[0] == 404


def test_proxier_healthz_follows_syncs_and_the_node():
    healthz = healthcheck.ProxierHealthServer(health_timeout=60)
    code, body, _ = healthz.answer("/healthz")
    answer = json.loads(body)
    assert code == 200 and answer["nodeEligible"] is True and answer["lastUpdated"] == answer["currentTime"]
    assert body.decode().startswith('{"lastUpdated": "') and '","currentTime": "' in body.decode()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? [+-]\d{4} \S+ m=\+\d+\.\d{9}",
                        answer["currentTime"])
    healthz.queued_update()
    assert healthz.answer("/healthz")[0] == 200  # queued, not late yet
    healthz.health_timeout = 0
    code, body, _ = healthz.answer("/healthz?verbose")
    assert code == 503 and json.loads(body)["lastUpdated"] == healthcheck.GO_ZERO_TIME  # never synced
    assert healthz.answer("/livez")[0] == 503
    healthz.updated()
    assert healthz.answer("/healthz")[0] == 200
    healthz.queued_update()
    code, body, _ = healthz.answer("/livez")
    answer = json.loads(body)
    assert code == 503 and answer.keys() == {"lastUpdated", "currentTime"}
    assert answer["lastUpdated"] != answer["currentTime"]  # the last successful sync
    healthz.updated()
    healthz.sync_node({"metadata": {"name": "node-1"},
                       "spec": {"taints": [{"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}]}})
    code, body, _ = healthz.answer("/healthz")
    assert code == 503 and json.loads(body)["nodeEligible"] is False
    assert healthz.answer("/livez")[0] == 200
    healthz.sync_node({"metadata": {"name": "node-1"}, "spec": {}})
    assert healthz.answer("/healthz")[0] == 200
    healthz.sync_node(None)
    assert healthz.answer("/healthz")[0] == 503
    assert healthz.answer("/metrics")[:2] == (404, b"404 page not found\n")


def test_go_time_prints_like_go():
    # 2023-11-14 22:13:20.12 UTC, in the local zone; Go drops trailing zeros of the fraction.
    assert re.fullmatch(r"2023-11-1[45] \d\d:\d\d:20\.12 [+-]\d{4} \S+", healthcheck.go_time(1_700_000_000_120_000_000))
    assert re.search(r":20 [+-]\d{4} ", healthcheck.go_time(1_700_000_000_000_000_000))
    base = healthcheck._MONOTONIC_BASE
    assert healthcheck.go_time(1_700_000_000_000_000_000, base + 9_473_637_017_346).endswith(" m=+9473.637017346")


# ---- registry admission + the controller, on a real store ---------------------------

@pytest.fixture
def reg(tmp_path):
    from agent.apiserver.registry import Registry
    from agent.apiserver.store import Store
    from agent.controllers import bootstrap
    store = Store(str(tmp_path / "store.db"))
    registry = Registry(store, lb_pool="172.28.0.200-172.28.0.201")
    bootstrap.bootstrap(registry, "172.28.0.1", 6443)
    yield registry
    store.close()


def _create(reg, name, **spec):
    from agent.api.kinds import BY_RESOURCE
    body = {"metadata": {"name": name}, "spec": {"selector": {"app": "x"}, **spec}}
    body["spec"].setdefault("ports", [{"port": 80}])
    return reg.create(BY_RESOURCE["services"], "default", body)


def test_same_node_port_for_tcp_and_udp_of_one_service_but_not_across_services(reg):
    from agent.apiserver.registry import APIError
    s = _create(reg, "dns", type="NodePort", ports=[{"name": "u", "port": 53, "protocol": "UDP", "nodePort": 30053},
                                                    {"name": "t", "port": 53, "protocol": "TCP", "nodePort": 30053}])
    assert [p["nodePort"] for p in s["spec"]["ports"]] == [30053, 30053]
    with pytest.raises(APIError, match="spec.ports\\[0\\].nodePort: Invalid value: 30053: provided port is already"):
        _create(reg, "other", type="NodePort", ports=[{"port": 53, "protocol": "UDP", "nodePort": 30053}])


def test_health_check_node_port_allocated_for_local_load_balancers_only(reg):
    from agent.apiserver.registry import APIError
    lb = _create(reg, "lb", type="LoadBalancer", externalTrafficPolicy="Local")
    hc = lb["spec"]["healthCheckNodePort"]
    assert 30000 <= hc <= 32767 and hc != lb["spec"]["ports"][0]["nodePort"]
    assert "healthCheckNodePort" not in _create(reg, "lbc", type="LoadBalancer")["spec"]
    with pytest.raises(APIError, match="healthCheckNodePort: Invalid value: 31000: may only be set when"):
        _create(reg, "np", type="NodePort", healthCheckNodePort=31000)


def test_requested_load_balancer_ip_is_checked_at_admission_and_the_controller_assigns(reg):
    from agent.apiserver.registry import APIError
    from agent.controllers.loadbalancer import LoadBalancerController
    ctl = LoadBalancerController(reg.store, reg)
    with pytest.raises(APIError, match='spec.loadBalancerIP: Invalid value: "172.28.0.9": not in the load-bal'):
        _create(reg, "bad", type="LoadBalancer", loadBalancerIP="172.28.0.9")
    _create(reg, "want", type="LoadBalancer", loadBalancerIP="172.28.0.201")
    with pytest.raises(APIError, match="already allocated to service default/want"):
        _create(reg, "bad", type="LoadBalancer", loadBalancerIP="172.28.0.201")
    _create(reg, "auto", type="LoadBalancer")
    _create(reg, "late", type="LoadBalancer")
    for name in ("want", "auto", "late"):
        ctl.sync(("default", name))
    ing = {n: reg.store.get("services", "default", n)["status"]["loadBalancer"].get("ingress") for n in
           ("want", "auto", "late")}
    assert ing == {"want": [{"ip": "172.28.0.201", "ipMode": "VIP"}],
                   "auto": [{"ip": "172.28.0.200", "ipMode": "VIP"}], "late": None}
    assert ctl.pending == {("default", "late")}
    events = [e for e in reg.store.list("events")[0] if e["involvedObject"]["name"] == "late"]
    assert events[0]["reason"] == "AllocationFailed" and events[0]["type"] == "Warning"
