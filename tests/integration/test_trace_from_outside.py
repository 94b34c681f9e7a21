"""`nsplane trace --from outside URL`, UDP targets and `--from NODE URL` on a real
two-node cluster: a LoadBalancer with externalTrafficPolicy Cluster, one
with Local (its only endpoint pinned to node-1) and a port the Service does
not have. The node trace names must be the one whose MAC the outside's ARP
cache holds; the pod trace names as the answerer must be the one agnhost's
/hostname says answered; Cluster must masquerade and Local must not. One
cluster serves the module."""
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

WEB = deployment("web", image=AGNHOST, replicas=2, args=netexec(8080, udp_port=8081), ports=[("http", 8080)],
                 readiness=("/healthz", "http"))
PINNED = deployment("pinned", image=AGNHOST, args=netexec(8080), ports=[("http", 8080)], node="node-1",
                    readiness=("/healthz", "http"))
SERVICES = [service("web", selector={"app": "web"}, ports=[{"port": 80, "targetPort": 8080}], type="LoadBalancer"),
            service("udp", selector={"app": "web"}, ports=[{"port": 8081, "protocol": "UDP", "targetPort": 8081}],
                    type="LoadBalancer"),
            service("local", selector={"app": "pinned"}, ports=[{"port": 80, "targetPort": 8080}],
                    type="LoadBalancer", externalTrafficPolicy="Local")]


def lb_ip(c, name):
    ing = (c.get("svc", name).get("status", {}).get("loadBalancer") or {}).get("ingress") or []
    return ing[0]["ip"] if ing else None


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("cluster")), nodes=2) as tc:
        tc.apply(documents(WEB, PINNED, *SERVICES, pod("client", command=["sleep", "3600"])))
        pods = tc.wait_ready("app=web", 2, timeout=90)
        tc.wait_ready("app=pinned", 1, timeout=90)
        tc.wait(lambda: lb_ip(tc, "web") and lb_ip(tc, "local") and lb_ip(tc, "udp"), timeout=60, what="load-balancer IPs")
        tc.wait(lambda: tc.get("pod", "client")["status"].get("phase") == "Running", timeout=60, what="client")
        ns = tc.pod_netns(pods[0]["metadata"]["name"])
        tc.wait(lambda: netns.run(ns, ["dig", "+short", "+time=1", "kubernetes.default.svc.cluster.local"])
                .stdout.strip(), timeout=60, what="cluster DNS answering")
        yield tc


def trace(c, *args):
    r = c.nsplane("trace", *args, "--json", check=False)
    assert r.stdout, r.stderr
    return r.returncode, json.loads(r.stdout)


def test_outside_to_lb_cluster_policy_masquerades_and_names_the_answerer(c):
    ip = lb_ip(c, "web")
    for _ in range(3):
        rc, rep = trace(c, "--from", "outside", f"http://{ip}/hostname")
        assert rc == 0 and rep["reached"], rep
        assert rep["service"]["name"] == "default/web" and rep["service"]["type"] == "LoadBalancer"
        assert rep["node"] in ("node-1", "node-2") and rep["nodeEvidence"].startswith("ARP:"), rep
        chains = {h["chain"] for h in rep["hops"] if h["node"] == rep["node"]}
        assert "KUBE-SERVICES" in chains and any(ch.startswith("KUBE-EXT-") for ch in chains), rep["hops"]
        assert rep["masquerade"] is True and "externalTrafficPolicy Cluster" in rep["masqueradeWhy"], rep
        assert rep["conntrack"]["orig"]["dst"] == ip
        assert rep["answeredBy"] == rep["answer"]["body"].strip(), rep
        assert rep["route"], rep


def test_outside_to_lb_local_policy_keeps_client_ip(c):
    ip = lb_ip(c, "local")
    rc, rep = trace(c, "--from", "outside", f"http://{ip}/hostname")
    assert rc == 0 and rep["reached"], rep
    assert rep["node"] == "node-1", rep           # the only node with a local endpoint announces it
    assert rep["masquerade"] is False and "externalTrafficPolicy Local" in rep["masqueradeWhy"], rep
    assert rep["conntrack"]["reply"]["dst"] == rep["sourceIP"]
    assert rep["answeredBy"].startswith("pinned-") and rep["answeredBy"] == rep["answer"]["body"].strip()


def test_outside_to_node_port(c):
    svc = c.get("svc", "web")
    port = svc["spec"]["ports"][0]["nodePort"]
    node = c.get("node", "node-2")
    addr = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    rc, rep = trace(c, "--from", "outside", f"http://{addr}:{port}/hostname")
    assert rc == 0 and rep["node"] == "node-2", rep
    assert any(h["chain"] == "KUBE-NODEPORTS" and h["node"] == "node-2" for h in rep["hops"]), rep["hops"]
    assert rep["answeredBy"] == rep["answer"]["body"].strip()


def test_from_node_to_cluster_ip(c):
    ip = c.get("svc", "web")["spec"]["clusterIP"]
    rc, rep = trace(c, "--from", "node-2", f"http://{ip}/hostname")
    assert rc == 0 and rep["node"] == "node-2", rep
    assert any(h["chain"].startswith("KUBE-SVC-") and h["node"] == "node-2" for h in rep["hops"]), rep["hops"]
    assert rep["answeredBy"] == rep["answer"]["body"].strip()
    # the node is not a pod: KUBE-SVC- marks it and the reply comes to the node's address (another port)
    assert rep["masquerade"] is True and rep["masqueradeWhy"].startswith("masquerade: the source is the node"), rep


def test_pod_trace_names_the_dns_pod_and_the_route(c):
    rc, rep = trace(c, "client", "http://web/hostname")
    assert rc == 0 and rep["dns"]["name"] == "web.default.svc.cluster.local", rep
    by = rep["dns"]["answeredBy"]
    dns_pods = {p["metadata"]["name"]: p["status"]["podIP"]
                for p in c.get("pods", "-n", "kube-system", "-l", "k8s-app=kube-dns")["items"]}
    assert by and by["pod"] in dns_pods and by["endpoint"].startswith(dns_pods[by["pod"]] + ":"), (by, dns_pods)
    assert by["service"].endswith(":53")
    assert rep["route"].startswith(rep["endpoint"].rpartition(":")[0]), rep
    assert rep["masquerade"] is False and rep["answeredBy"] == rep["answer"]["body"].strip()


def test_pod_trace_to_a_port_the_cluster_ip_lacks_says_where_it_routes(c):
    ip = c.get("svc", "web")["spec"]["clusterIP"]
    rc, rep = trace(c, "client", f"{ip}:81")
    assert rc == 1 and rep["service"] is None and rep["conntrack"] is None, rep
    assert rep["verdict"].startswith(f"no Service has {ip}:81: no rule of KUBE-SERVICES matches, the kernel "
                                     f"routes it "), rep
    assert " dev " in rep["verdict"], rep


def test_outside_to_a_port_the_service_lacks(c):
    ip = lb_ip(c, "web")
    rc, rep = trace(c, "--from", "outside", f"http://{ip}:81/")
    assert rc == 1 and not rep["reached"] and rep["service"] is None, rep
    assert rep["verdict"].startswith(f"no Service has {ip}:81"), rep


def test_bad_origin_and_names_are_refused(c):
    r = c.nsplane("trace", "--from", "node-9", "http://10.0.0.1", check=False)
    assert r.returncode != 0 and "--from node-9: no such node" in r.stderr
    r = c.nsplane("trace", "--from", "outside", "http://web", check=False)
    assert r.returncode != 0 and "give an address" in r.stderr
    r = c.nsplane("trace", "http://web", check=False)
    assert r.returncode != 0 and "give a pod" in r.stderr


def test_udp_from_a_pod_one_datagram_through_the_service(c):
    rc, rep = trace(c, "client", "udp://udp:8081")
    assert rc == 0 and rep["reached"] and rep["service"]["name"] == "default/udp", rep
    assert rep["conntrack"]["proto"] == "udp" and rep["conntrack"]["orig"]["dport"] == "8081", rep
    assert any(h["chain"].startswith("KUBE-SEP-") for h in rep["hops"]), rep["hops"]
    assert rep["endpoint"].endswith(":8081") and rep["answeredBy"] == rep["answer"]["body"], rep


def test_udp_from_outside_to_the_load_balancer(c):
    ip = lb_ip(c, "udp")
    rc, rep = trace(c, "--from", "outside", f"udp://{ip}:8081")
    assert rc == 0 and rep["reached"] and rep["nodeEvidence"].startswith("ARP:"), rep
    assert any(h["chain"].startswith("KUBE-EXT-") and h["node"] == rep["node"] for h in rep["hops"]), rep["hops"]
    assert rep["conntrack"]["proto"] == "udp" and rep["masquerade"] is True, rep
    assert rep["answeredBy"] == rep["answer"]["body"], rep


def test_udp_target_needs_a_port(c):
    r = c.nsplane("trace", "client", "udp://udp", check=False)
    assert r.returncode != 0 and "a UDP target needs its port" in r.stderr


def test_outside_to_local_policy_node_port_on_a_node_without_endpoint_is_dropped(c):
    port = c.get("svc", "local")["spec"]["ports"][0]["nodePort"]
    node = c.get("node", "node-2")       # the only endpoint is pinned to node-1
    addr = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    rc, rep = trace(c, "--from", "outside", f"http://{addr}:{port}/")
    assert rc == 1 and not rep["reached"] and rep["node"] == "node-2", rep
    assert rep["verdict"].startswith("dropped by filter KUBE-EXTERNAL-SERVICES"), rep
    assert any(h["node"] == "node-2" and h["table"] == "filter" and " -j DROP" in h["rule"] for h in rep["hops"])
