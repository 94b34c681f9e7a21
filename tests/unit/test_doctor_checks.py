"""`nsplane doctor`'s checks over hand-made facts: each broken link is
named first, with its evidence and fix; a healthy Service is all ✓."""
from agent.cli.doctor.checks import (
    FAIL,
    OK,
    SKIP,
    WARN,
    diagnose,
    first_broken,
    near_matches,
    not_ready_reason,
    parse_ss,
    resolve_target,
)

RULES = {"nat": {"KUBE-SERVICES": [
    ('-A KUBE-SERVICES -d 10.96.5.5/32 -p tcp -m comment --comment "default/web cluster IP" -m tcp --dport 80 '
     '-j KUBE-SVC-AAAA')],
    "KUBE-SVC-AAAA": ['-A KUBE-SVC-AAAA -m comment --comment "default/web -> 10.244.1.2:8080" -j KUBE-SEP-B']},
    "filter": {"KUBE-SERVICES": []}}
REJECT = {"nat": {"KUBE-SERVICES": []}, "filter": {"KUBE-SERVICES": [
    ('-A KUBE-SERVICES -d 10.96.5.5/32 -p tcp -m comment --comment "default/web has no endpoints" -m tcp '
     '--dport 80 -j REJECT --reject-with icmp-port-unreachable')]}}


def pod(name="web-1", labels=None, ready=True, ip="10.244.1.2", ports=(("http", 8080),), statuses=None):
    return {"metadata": {"name": name, "namespace": "default", "labels": labels or {"app": "web"}},
            "spec": {"nodeName": "node-1", "containers": [
                {"name": "c", "ports": [{"name": n, "containerPort": p} for n, p in ports]}]},
            "status": {"phase": "Running", "podIP": ip, "containerStatuses": statuses or [],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def facts(**over):
    svc = {"metadata": {"name": "web"}, "spec": {"type": "ClusterIP", "clusterIP": "10.96.5.5",
                                                 "selector": {"app": "web"},
                                                 "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}
    f = {"namespace": "default", "name": "web", "service": svc, "pods": [pod()], "events": [],
         "slices": [{"metadata": {"name": "web-x"}, "endpoints": [
             {"addresses": ["10.244.1.2"], "conditions": {"ready": True}, "nodeName": "node-1"}]}],
         "listening": {"web-1": [("TCP", 8080)]}, "nodes": ["node-1"], "node_rules": {"node-1": RULES},
         "dns": {"name": "web.default.svc.cluster.local", "from": "pod default/web-1", "answers": ["10.96.5.5"],
                 "error": ""}, "client": None}
    f.update(over)
    return f


def statuses(checks):
    return {c.name: c.status for c in checks}


def test_healthy_service_is_all_ok():
    checks = diagnose(facts())
    assert first_broken(checks) is None
    assert set(statuses(checks).values()) == {OK}


def test_missing_service_is_the_first_link_and_skips_the_rest():
    checks = diagnose(facts(service=None))
    assert first_broken(checks).name == "service"
    assert 'services "web" not found in namespace default' in checks[0].evidence
    assert {c.status for c in checks[1:]} == {SKIP}


def test_selector_typo_suggests_the_near_label():
    f = facts()
    f["service"]["spec"]["selector"] = {"app": "webb"}
    checks = diagnose(f)
    broken = first_broken(checks)
    assert broken.name == "selector"
    assert "did you mean app=web?" in broken.evidence
    assert statuses(checks)["pods-ready"] == SKIP


def test_near_matches_needs_the_other_pairs_to_match():
    pods = [pod(labels={"app": "web", "tier": "fe"}), pod(name="b", labels={"app": "web", "tier": "db"})]
    assert near_matches({"app": "webb", "tier": "fe"}, pods) == [("app=web,tier=fe", 1)]
    assert near_matches({"app": "zzz"}, pods) == []
    assert near_matches({"ap": "web"}, pods) == [("app=web", 2)]


def test_pod_not_ready_names_the_failing_probe():
    events = [{"involvedObject": {"name": "web-1"}, "reason": "Unhealthy", "count": 4,
               "message": "Readiness probe failed: HTTP probe failed with statuscode: 500"}]
    checks = diagnose(facts(pods=[pod(ready=False)], events=events, slices=[]))
    broken = first_broken(checks)
    assert broken.name == "pods-ready"
    assert "Readiness probe failed" in broken.evidence


def test_not_ready_reasons_from_container_states():
    crash = pod(ready=False, statuses=[{"name": "c", "state": {"waiting": {"reason": "CrashLoopBackOff",
                                                                           "message": "back-off"}},
                                        "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}])
    assert "CrashLoopBackOff" in not_ready_reason(crash, []) and "exit code 1" in not_ready_reason(crash, [])
    cfg = pod(ready=False, statuses=[{"name": "c", "state": {"waiting": {
        "reason": "CreateContainerConfigError", "message": 'secret "s" not found'}}}])
    assert not_ready_reason(cfg, []) == 'container c: CreateContainerConfigError: secret "s" not found'


def test_one_of_two_pods_not_ready_is_a_warning():
    pods = [pod(), pod(name="web-2", ip="10.244.1.3", ready=False)]
    assert statuses(diagnose(facts(pods=pods)))["pods-ready"] == WARN


def test_wrong_target_port_names_what_listens():
    f = facts(listening={"web-1": [("TCP", 80)]})
    broken = first_broken(diagnose(f))
    assert broken.name == "target-port"
    assert "nothing listens on 8080/TCP in pod web-1 (listening: 80/TCP" in broken.evidence


def test_named_target_port_missing_from_the_pod():
    f = facts()
    f["service"]["spec"]["ports"][0]["targetPort"] = "web"
    broken = first_broken(diagnose(f))
    assert broken.name == "target-port" and "'web' names no TCP port" in broken.evidence


def test_resolve_target_by_name_and_number():
    p = pod()
    assert resolve_target({"port": 80, "targetPort": "http"}, p) == 8080
    assert resolve_target({"port": 80}, p) == 80
    assert resolve_target({"port": 80, "targetPort": "nope"}, p) is None


def test_no_ready_endpoints():
    f = facts(slices=[{"metadata": {"name": "web-x"}, "endpoints": []}], node_rules={"node-1": REJECT})
    broken = first_broken(diagnose(f))
    assert broken.name == "endpoints" and "no ready endpoint" in broken.evidence


def test_node_without_the_rules():
    f = facts(nodes=["node-1", "node-2"], node_rules={"node-1": RULES, "node-2": {"nat": {}, "filter": {}}})
    broken = first_broken(diagnose(f))
    assert broken.name == "node-rules" and broken.evidence.startswith("node-2: no KUBE-SERVICES rule")


def test_dns_nxdomain():
    f = facts(dns={"name": "web.default.svc.cluster.local", "from": "pod x", "answers": [], "error": ""})
    broken = first_broken(diagnose(f))
    assert broken.name == "dns" and "NXDOMAIN" in broken.evidence


def test_etp_local_on_every_node_without_endpoints_fails_on_some_warns():
    f = facts(nodes=["node-1", "node-2"], node_rules={"node-1": RULES, "node-2": RULES})
    f["service"]["spec"].update(type="NodePort", externalTrafficPolicy="Local", healthCheckNodePort=32000)
    assert statuses(diagnose(f))["external-traffic-policy"] == WARN
    f["slices"][0]["endpoints"][0]["nodeName"] = "node-9"
    assert first_broken(diagnose(f)).name == "external-traffic-policy"


def test_source_ranges_excluding_the_client():
    f = facts(client="192.168.1.5")
    f["service"]["spec"].update(type="LoadBalancer", loadBalancerSourceRanges=["10.0.0.0/8"])
    broken = first_broken(diagnose(f))
    assert broken.name == "source-ranges" and "192.168.1.5 is outside" in broken.evidence
    assert first_broken(diagnose(facts(client="10.1.2.3", service=f["service"]))) is None


def test_parse_ss():
    text = ("tcp   LISTEN 0 511   0.0.0.0:80   0.0.0.0:*\n"
            "tcp   LISTEN 0 511      [::]:80      [::]:*\n"
            "udp   UNCONN 0 0     0.0.0.0:8081 0.0.0.0:*\n")
    assert parse_ss(text) == [("TCP", 80), ("UDP", 8081)]


def test_status_constants_are_distinct():
    assert len({OK, FAIL, WARN, SKIP}) == 4


def test_external_name_skips_the_proxy_checks():
    f = facts()
    f["service"]["spec"] = {"type": "ExternalName", "externalName": "example.com"}
    checks = diagnose(f)
    assert first_broken(checks) is None and "CNAME to example.com" in checks[1].evidence


def test_selectorless_service_without_slices_fails_at_endpoints():
    f = facts(slices=[], node_rules={"node-1": REJECT})
    del f["service"]["spec"]["selector"]
    checks = diagnose(f)
    assert statuses(checks)["selector"] == WARN and statuses(checks)["pods-ready"] == SKIP
    assert first_broken(checks).name == "endpoints"


def test_etp_local_fails_for_the_node_the_client_arrives_at():
    f = facts(nodes=["node-1", "node-2"], node_rules={"node-1": RULES, "node-2": RULES}, via_node="node-2")
    f["service"]["spec"].update(type="NodePort", externalTrafficPolicy="Local", healthCheckNodePort=32000)
    broken = first_broken(diagnose(f))
    assert broken.name == "external-traffic-policy"
    assert broken.evidence.startswith("client traffic arrives at node-2, which has no local endpoint")
    f["via_node"] = "node-1"
    assert first_broken(diagnose(f)) is None
