"""`nsplane doctor`, `explain` and `trace` on a real two-node cluster: each
Service is broken on purpose in one way (selector typo, wrong targetPort, no
Ready pod, no endpoints) and doctor's --json must name exactly that cause as
the first broken link, with exit code 1; a healthy Service gets every check
✓ and exit 0. trace's chosen endpoint (from the kernel's conntrack entry)
must be the pod that answered (agnhost's /hostname), and a Service without
endpoints must stop at its REJECT. One cluster serves the module."""
import json

import pytest

from dataplane import netns
from tests.integration.cluster import ThrowawayCluster
from tests.integration.manifests import (
    AGNHOST,
    deployment,
    documents,
    netexec,
    pod,
    service,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GOOD = deployment("good", image=AGNHOST, replicas=2, args=netexec(8080), ports=[("http", 8080)],
                  readiness=("/healthz", "http"))
SICK = deployment("sick", image=AGNHOST, args=netexec(8080), ports=[("http", 8080)],
                  readiness=("/healthz", 8081))   # nothing listens on 8081: never Ready
PINNED = deployment("pinned", image=AGNHOST, args=netexec(8080), ports=[("http", 8080)], node="node-1")
SERVICES = [service("local", selector={"app": "pinned"}, ports=[{"port": 80, "targetPort": 8080}],
                    type="NodePort", externalTrafficPolicy="Local"),
            service("ranged", selector={"app": "good"}, ports=[{"port": 80, "targetPort": 8080}],
                    type="LoadBalancer", loadBalancerSourceRanges=["10.0.0.0/8"]),
            service("good", selector={"app": "good"}, ports=[{"port": 80, "targetPort": "http"}]),
            service("typo", selector={"app": "goood"}, ports=[{"port": 80, "targetPort": 8080}]),
            service("wrongport", selector={"app": "good"}, ports=[{"port": 80, "targetPort": 9090}]),
            service("sick", selector={"app": "sick"}, ports=[{"port": 80, "targetPort": 8080}]),
            service("manual", ports=[{"port": 80, "targetPort": 8080}])]   # no selector, no EndpointSlice


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("cluster")), nodes=2) as tc:
        tc.apply(documents(GOOD, SICK, PINNED, pod("client", command=["sleep", "3600"]),
                           *SERVICES))
        pods = tc.wait_ready("app=good", 2, timeout=90)
        tc.wait_ready("app=pinned", 1, timeout=60)
        tc.wait(lambda: tc.get("pod", "client")["status"].get("phase") == "Running", timeout=60, what="client")
        ns = tc.pod_netns(pods[0]["metadata"]["name"])
        tc.wait(lambda: netns.run(ns, ["dig", "+short", "+time=1", "kubernetes.default.svc.cluster.local"])
                .stdout.strip(), timeout=60, what="cluster DNS answering")
        tc.wait(lambda: any(e["reason"] == "Unhealthy" for e in tc.get("events")["items"]
                            if e["involvedObject"]["name"].startswith("sick-")), timeout=60,
                what="the sick pod's failing readiness probe")
        yield tc


def doctor(c, name):
    r = c.nsplane("doctor", f"svc/{name}", "--json", check=False)
    out = json.loads(r.stdout)
    return r.returncode, out, {ch["name"]: ch for ch in out["checks"]}


def assert_first(out, checks, name):
    assert out["firstBroken"] == name, out
    order = [ch["name"] for ch in out["checks"]]
    before = order[:order.index(name)]
    assert all(checks[n]["status"] != "fail" for n in before), out


def test_healthy_service_all_ok_exit_0(c):
    rc, out, checks = doctor(c, "good")
    assert rc == 0 and out["firstBroken"] is None
    assert {ch["status"] for ch in out["checks"]} == {"ok"}, out
    assert "matches 2 pod(s)" in checks["selector"]["evidence"]
    assert "8080/TCP" in checks["target-port"]["evidence"]
    assert checks["dns"]["evidence"].startswith("good.default.svc.cluster.local")
    assert "node-1:" in checks["node-rules"]["evidence"] and "node-2:" in checks["node-rules"]["evidence"]


def test_selector_typo(c):
    rc, out, checks = doctor(c, "typo")
    assert rc == 1
    assert_first(out, checks, "selector")
    assert "did you mean app=good?" in checks["selector"]["evidence"]


def test_wrong_target_port(c):
    rc, out, checks = doctor(c, "wrongport")
    assert rc == 1
    assert_first(out, checks, "target-port")
    assert "nothing listens on 9090/TCP" in checks["target-port"]["evidence"]
    assert "8080/TCP" in checks["target-port"]["evidence"]


def test_pod_not_ready(c):
    rc, out, checks = doctor(c, "sick")
    assert rc == 1
    assert_first(out, checks, "pods-ready")
    assert "Readiness probe failed" in checks["pods-ready"]["evidence"]


def test_no_endpoints_is_rejected_on_every_node(c):
    rc, out, checks = doctor(c, "manual")
    assert rc == 1
    assert_first(out, checks, "endpoints")
    assert checks["node-rules"]["status"] == "ok"
    assert checks["node-rules"]["evidence"].count("REJECT (no endpoints)") == 2


def test_missing_service(c):
    rc, out, _ = doctor(c, "nope")
    assert rc == 1 and out["firstBroken"] == "service"


def test_text_output_names_the_first_broken_link(c):
    r = c.nsplane("doctor", "svc/typo", check=False)
    first = r.stdout.splitlines()[0]
    assert first.startswith("first broken link: selector:") and "did you mean app=good?" in first
    assert "✗ selector" in r.stdout and "✓ service" in r.stdout


def test_explain_groups_the_rules(c):
    out = json.loads(c.nsplane("explain", "svc/good", "--node", "node-2", "--json").stdout)
    chains = [g["chain"] for g in out["chains"]]
    assert chains[0] == "KUBE-SERVICES" and chains[1].startswith("KUBE-SVC-")
    assert sum(ch.startswith("KUBE-SEP-") for ch in chains) == 2
    dispatch = [r["meaning"] for r in out["chains"][1]["rules"]]
    assert any("with probability 0.500" in m for m in dispatch)
    text = c.nsplane("explain", "svc/good").stdout
    assert "entry point for every Service" in text and "DNAT to endpoint" in text


def test_bad_target_is_a_clear_error(c):
    r = c.nsplane("doctor", "deploy/good", check=False)
    assert r.returncode != 0 and "give a Service as svc/NAME" in r.stderr


def test_etp_local_on_the_node_without_endpoints(c):
    r = c.nsplane("doctor", "svc/local", "--node", "node-2", "--json", check=False)
    out = json.loads(r.stdout)
    checks = {ch["name"]: ch for ch in out["checks"]}
    assert r.returncode == 1
    assert_first(out, checks, "external-traffic-policy")
    assert "arrives at node-2, which has no local endpoint" in checks["external-traffic-policy"]["evidence"]
    rc, out, checks = doctor(c, "local")   # no client node given: a warning only
    assert rc == 0 and checks["external-traffic-policy"]["status"] == "warn"
    assert "node-2 has no local endpoint" in checks["external-traffic-policy"]["evidence"]


def test_source_range_excluding_the_client(c):
    r = c.nsplane("doctor", "svc/ranged", "--client", c.cfg.host_ip, "--json", check=False)
    out = json.loads(r.stdout)
    checks = {ch["name"]: ch for ch in out["checks"]}
    assert r.returncode == 1
    assert_first(out, checks, "source-ranges")
    assert f"client {c.cfg.host_ip} is outside loadBalancerSourceRanges 10.0.0.0/8" in \
        checks["source-ranges"]["evidence"]
    assert doctor(c, "ranged")[0] == 0


def trace(c, *args):
    r = c.nsplane("trace", "client", *args, "--json", check=False)
    return r.returncode, json.loads(r.stdout)


def test_trace_endpoint_is_the_pod_that_answered(c):
    seen = set()
    for _ in range(20):
        rc, rep = trace(c, "http://good/hostname")
        assert rc == 0 and rep["reached"], rep
        assert rep["dns"]["name"] == "good.default.svc.cluster.local"
        assert rep["service"]["name"] == "default/good"
        assert rep["answeredBy"] == rep["answer"]["body"].strip(), rep
        assert rep["dnat"] and not rep["masquerade"]
        chains = [h["chain"] for h in rep["hops"]]
        assert chains[0] == "KUBE-SERVICES" and chains[1].startswith("KUBE-SVC-") and chains[2].startswith("KUBE-SEP-")
        assert rep["endpoint"].split(":")[0] in rep["hops"][2]["rule"]
        seen.add(rep["answeredBy"])
    assert len(seen) == 2   # both pods are chosen over 20 connections (each 1/2: 2^-19 to miss one)


def test_trace_stops_at_the_reject_of_a_service_without_endpoints(c):
    rc, rep = trace(c, "manual:80")
    assert rc == 1 and not rep["reached"]
    assert rep["verdict"].startswith("rejected by filter KUBE-SERVICES"), rep
    rejects = [h for h in rep["hops"] if h["chain"] == "KUBE-SERVICES" and "REJECT" in h["rule"]]
    assert rejects and rejects[0]["packets"] >= 1 and "default/manual has no endpoints" in rejects[0]["rule"]


def test_trace_port_the_service_does_not_have(c):
    rc, rep = trace(c, "http://good:81")
    assert rc == 1 and rep["service"] is None
    assert rep["verdict"].startswith("no Service has ")


def test_trace_name_that_does_not_resolve(c):
    rc, rep = trace(c, "http://nope.default.svc.cluster.local")
    assert rc == 1 and rep["dns"]["address"] is None
    assert "does not resolve" in rep["verdict"]
