"""Services on a real 3-node cluster: every Service type, traffic policies,
session affinity, the load-balancer pool and its failover, checked with real
curl / nc from pods, from nodes and from the outside (the cluster's host
namespace, which is what the machine's shell is for a cluster made by
`nsplane up`). One cluster serves the module; the node-removal test runs last."""
import json
import re
import subprocess

import pytest

from tests.integration.cluster import ThrowawayCluster
from tests.integration.manifests import AGNHOST, deployment, documents, netexec, pod, service

pytestmark = pytest.mark.integration

ECHO = documents(
    deployment("echo", image=AGNHOST, replicas=3, args=netexec(8080, udp_port=8080), ports=[("http", 8080)],
               readiness=("/healthz", "http")),
    deployment("solo", image=AGNHOST, args=netexec(8080), readiness=("/healthz", 8080), node="node-2"))
TMP_POD = pod("tmp", command=["sleep", "3600"], labels={"run": "tmp"}, node_name="node-1")


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    tc = ThrowawayCluster(str(tmp_path_factory.mktemp("cluster")), nodes=3, dns=False)
    net = tc.cfg.underlay_cidr.rsplit(".", 1)[0]
    tc.cfg.lb_pool = f"{net}.200-{net}.203"
    with tc:
        tc.apply(documents(ECHO, TMP_POD))
        tc.wait_ready("app=echo", 3)
        tc.wait_ready("app=solo", 1)
        tc.wait(lambda: tc.get("pod", "tmp")["status"].get("phase") == "Running", 30, "tmp running")
        yield tc


def node_ip(c, k):
    return c.cfg.node_ip(k)


def run_in(netns_name, *argv, timeout=15):
    return subprocess.run(["ip", "netns", "exec", netns_name, *argv], capture_output=True, text=True,
                          timeout=timeout)


def outside(c, *argv):
    """A command on the underlay's host side: "the machine's shell"."""
    return run_in(c.cfg.host_netns, *argv)


def curl_args(url, seconds=2):
    return ["curl", "-sS", "--max-time", str(seconds), url]


def hostnames(c, who, url, n=12):
    """Which pods answered `n` requests from `who` (a callable running argv)."""
    seen = set()
    for _ in range(n):
        r = who(*curl_args(url))
        assert r.returncode == 0, (url, r.stderr)
        seen.add(r.stdout.strip())
    return seen


def svc(c, name):
    return c.get("svc", name)


def nat_rules(c, k=1, chain=None):
    return run_in(c.node_netns(k), "iptables-legacy", "-t", "nat", "-S", *([chain] if chain else [])).stdout


TO_8080 = [{"port": 80, "targetPort": 8080}]     # the Service port most tests use


def apply_svc(c, name, app="echo", **spec):
    """Create or change Service `name` selecting app=`app` (None: no selector);
    `spec` holds its other fields by their Kubernetes names."""
    return c.apply(service(name, selector={"app": app} if app else None, **spec))


def echo_pods(c):
    return {p["metadata"]["name"] for p in c.ready_pods("app=echo")}


# ---- nodes -------------------------------------------------------------------------

def test_three_ready_nodes_with_addresses_and_pod_cidrs(c):
    nodes = {n["metadata"]["name"]: n for n in c.get("nodes")["items"]}
    assert sorted(nodes) == ["node-1", "node-2", "node-3"]
    cidrs = set()
    for k in (1, 2, 3):
        n = nodes[f"node-{k}"]
        assert {"type": "InternalIP", "address": node_ip(c, k)} in n["status"]["addresses"]
        assert any(x["type"] == "Ready" and x["status"] == "True" for x in n["status"]["conditions"])
        cidrs.add(n["spec"]["podCIDR"])
    assert len(cidrs) == 3 and all(re.fullmatch(r"10\.244\.\d+\.0/24", x) for x in cidrs)
    wide = c.nsplane("get", "nodes", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[:6] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP"]
    assert [line.split()[5] for line in wide[1:]] == [node_ip(c, k) for k in (1, 2, 3)]


def test_pods_spread_and_node_selector_is_honoured(c):
    assert len({p["spec"]["nodeName"] for p in c.ready_pods("app=echo")}) >= 2
    assert [p["spec"]["nodeName"] for p in c.ready_pods("app=solo")] == ["node-2"]


def test_pod_to_pod_across_nodes_keeps_source_ip(c):
    tmp_ip = c.get("pod", "tmp")["status"]["podIP"]
    for p in c.ready_pods("app=echo"):
        r = c.exec("tmp", *curl_args(f"http://{p['status']['podIP']}:8080/clientip"))
        assert r.returncode == 0, r.stderr
        assert r.stdout.rsplit(":", 1)[0] == tmp_ip


# ---- NodePort ----------------------------------------------------------------------

def test_node_port_answers_on_every_node_from_outside_pods_and_nodes(c):
    out = apply_svc(c, "np", type="NodePort", ports=[
        {"name": "tcp", "port": 80, "targetPort": 8080, "nodePort": 30080},
        {"name": "udp", "port": 80, "targetPort": 8080, "protocol": "UDP", "nodePort": 30080}])
    assert out.strip() == "service/np created"
    s = svc(c, "np")
    assert [p["nodePort"] for p in s["spec"]["ports"]] == [30080, 30080]
    pods = echo_pods(c)
    for k in (1, 2, 3):
        url = f"http://{node_ip(c, k)}:30080/hostname"
        assert c.wait(lambda: outside(c, *curl_args(url)).returncode == 0, 10, f"NodePort on node-{k}")
        assert hostnames(c, lambda *a: outside(c, *a), url, 6) <= pods
        assert hostnames(c, lambda *a: c.exec("tmp", *a), url, 3) <= pods
        assert hostnames(c, lambda *a, k=k: run_in(c.node_netns(k), *a), url, 3) <= pods
    assert hostnames(c, lambda *a: run_in(c.node_netns(1), *a), "http://127.0.0.1:30080/hostname", 3) <= pods
    udp = outside(c, "sh", "-c", f"echo hostname | nc -u -w1 {node_ip(c, 3)} 30080")
    assert udp.stdout.strip() in pods, udp.stderr
    assert "-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS" in nat_rules(c, 2, "KUBE-SERVICES")


def test_node_port_conflict_and_range_errors_change_nothing(c):
    before = c.get("svc")["items"]
    r = c.nsplane("apply", "-f", "-", check=False, input=(
        "apiVersion: v1\nkind: Service\nmetadata: {name: np2}\nspec:\n  type: NodePort\n  selector: {app: echo}\n"
        "  ports:\n  - {port: 80, targetPort: 8080, nodePort: 30080}\n"))
    assert r.returncode != 0
    assert 'Service "np2" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated' \
        in r.stderr
    r = c.nsplane("apply", "-f", "-", check=False, input=(
        "apiVersion: v1\nkind: Service\nmetadata: {name: np3}\nspec:\n  type: NodePort\n  selector: {app: echo}\n"
        "  ports:\n  - {port: 80, targetPort: 8080, nodePort: 29999}\n"))
    assert r.returncode != 0 and "provided port is not in the valid range. The range of valid ports is 30000-32767" \
        in r.stderr
    assert c.get("svc")["items"] == before


def test_node_port_stops_answering_when_the_service_is_deleted(c):
    apply_svc(c, "gone", type="NodePort", ports=[{"port": 80, "targetPort": 8080, "nodePort": 30090}])
    url = f"http://{node_ip(c, 2)}:30090/hostname"
    c.wait(lambda: outside(c, *curl_args(url)).returncode == 0, 10, "NodePort up")
    c.nsplane("delete", "svc", "gone")
    c.wait(lambda: outside(c, *curl_args(url, 1)).returncode != 0, 10, "NodePort gone")
    assert "30090" not in nat_rules(c, 2)


# ---- traffic policies --------------------------------------------------------------

def test_external_traffic_policy_local_keeps_client_ip_and_drops_without_local_endpoint(c):
    apply_svc(c, "loc", app="solo", type="NodePort", externalTrafficPolicy="Local",
              ports=[{"port": 80, "targetPort": 8080, "nodePort": 30100}])
    host_ip = c.cfg.host_ip
    url2 = f"http://{node_ip(c, 2)}:30100/clientip"
    r = c.wait(lambda: (r := outside(c, *curl_args(url2))).returncode == 0 and r, 10, "ETP Local on node-2")
    assert r.stdout.rsplit(":", 1)[0] == host_ip          # source IP preserved
    for k in (1, 3):                                       # no local endpoint: dropped
        # node-2 answering says nothing about when node-1 and node-3 saw the endpoint
        # (until then they REJECT for "no endpoints"): wait for their DROP rule.
        c.wait(lambda: '"default/loc has no local endpoints"' in run_in(
            c.node_netns(k), "iptables-legacy", "-S", "KUBE-EXTERNAL-SERVICES").stdout, 10, f"node-{k}'s DROP")
        assert outside(c, *curl_args(f"http://{node_ip(c, k)}:30100/clientip", 1)).returncode == 28
    filter_rules = run_in(c.node_netns(1), "iptables-legacy", "-S", "KUBE-EXTERNAL-SERVICES").stdout
    assert "-j DROP" in filter_rules
    solo = c.ready_pods("app=solo")[0]["metadata"]["name"]   # pods still reach every endpoint
    assert c.exec("tmp", *curl_args(f"http://{svc(c, 'loc')['spec']['clusterIP']}/hostname")).stdout == solo


def test_external_traffic_policy_cluster_masquerades(c):
    apply_svc(c, "clu", app="solo", type="NodePort", ports=[{"port": 80, "targetPort": 8080, "nodePort": 30101}])
    url = f"http://{node_ip(c, 3)}:30101/clientip"
    r = c.wait(lambda: (r := outside(c, *curl_args(url))).returncode == 0 and r, 10, "ETP Cluster")
    assert r.stdout.rsplit(":", 1)[0] != c.cfg.host_ip      # SNAT'd on node-3 towards node-2


def test_internal_traffic_policy_local(c):
    apply_svc(c, "itp", app="solo", internalTrafficPolicy="Local", ports=TO_8080)
    ip = svc(c, "itp")["spec"]["clusterIP"]
    c.wait(lambda: '"default/itp has no local endpoints"' in run_in(c.node_netns(1), "iptables-legacy", "-S").stdout,
           10, "the DROP kube-proxy writes for internalTrafficPolicy Local without a local endpoint")
    # tmp runs on node-1, solo on node-2: no local endpoint, so the connection is dropped.
    assert c.exec("tmp", *curl_args(f"http://{ip}/hostname", 1)).returncode == 28


# ---- session affinity --------------------------------------------------------------

def test_session_affinity_client_ip_and_switching_back(c):
    apply_svc(c, "sticky", sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
              ports=TO_8080)
    ip = svc(c, "sticky")["spec"]["clusterIP"]
    c.wait(lambda: c.exec("tmp", *curl_args(f"http://{ip}/hostname")).returncode == 0, 10, "sticky up")
    assert len(hostnames(c, lambda *a: c.exec("tmp", *a), f"http://{ip}/hostname", 15)) == 1
    assert "--rcheck --seconds 60 --reap" in nat_rules(c, 1)
    apply_svc(c, "sticky", sessionAffinity="None", ports=TO_8080)
    c.wait(lambda: "--rcheck" not in nat_rules(c, 1), 10, "affinity rules gone")
    assert len(hostnames(c, lambda *a: c.exec("tmp", *a), f"http://{ip}/hostname", 20)) > 1


def test_bad_affinity_timeout_and_etp_on_cluster_ip_are_rejected(c):
    r = c.nsplane("apply", "-f", "-", check=False, input=(
        "apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec:\n  selector: {app: echo}\n"
        "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 90000}}\n"
        "  externalTrafficPolicy: Local\n  ports:\n  - {port: 80}\n"))
    assert r.returncode != 0
    assert "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 90000" in r.stderr
    assert 'spec.externalTrafficPolicy: Invalid value: "Local": may only be set for externally-accessible services' \
        in r.stderr
    assert "bad" not in {s["metadata"]["name"] for s in c.get("svc")["items"]}


# ---- selector-less Service, two hand-made slices -----------------------------------

def test_selectorless_service_reaches_endpoints_of_two_slices(c):
    pods = sorted(c.ready_pods("app=echo"), key=lambda p: p["metadata"]["name"])
    slices = []
    for i, group in enumerate((pods[:1], pods[1:])):
        eps = "".join(f"  - addresses: [{p['status']['podIP']}]\n    nodeName: {p['spec']['nodeName']}\n"
                      for p in group)
        slices.append(f"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: manual-{i}\n"
                      f"  labels: {{kubernetes.io/service-name: manual}}\naddressType: IPv4\n"
                      f"ports: [{{port: 8080, protocol: TCP}}]\nendpoints:\n{eps}")
    c.apply(documents(service("manual", ports=[{"port": 80}]), *slices))
    ip = svc(c, "manual")["spec"]["clusterIP"]
    c.wait(lambda: c.exec("tmp", *curl_args(f"http://{ip}/hostname")).returncode == 0, 10, "manual up")
    assert hostnames(c, lambda *a: c.exec("tmp", *a), f"http://{ip}/hostname", 30) == echo_pods(c)


# ---- LoadBalancer ------------------------------------------------------------------

def ingress(c, name):
    return [i["ip"] for i in svc(c, name)["status"].get("loadBalancer", {}).get("ingress", [])]


def test_load_balancer_gets_a_pool_address_reachable_from_outside(c):
    apply_svc(c, "lb", type="LoadBalancer", ports=TO_8080)
    ip = c.wait(lambda: ingress(c, "lb"), 10, "an address")[0]
    net = c.cfg.underlay_cidr.rsplit(".", 1)[0]
    assert ip == f"{net}.200"
    row = c.nsplane("get", "svc", "lb").stdout.splitlines()[1].split()
    assert row[1] == "LoadBalancer" and row[3] == ip and re.fullmatch(r"80:3\d{4}/TCP", row[4])
    c.wait(lambda: outside(c, *curl_args(f"http://{ip}/hostname")).returncode == 0, 10, "LB answers")
    # every ready echo pod answers, once the announcing node's rules hold them all (an echo
    # pod replaced by an earlier test may be Ready a moment before its endpoint is programmed)
    assert c.wait(lambda: hostnames(c, lambda *a: outside(c, *a), f"http://{ip}/hostname", 15) == echo_pods(c),
                  20, "every echo pod answering through the LB")
    events = c.get("events")["items"]
    assert any(e["reason"] == "IPAllocated" and e["involvedObject"]["name"] == "lb" for e in events)
    assert c.wait(lambda: [e for e in c.get("events")["items"] if e["reason"] == "nodeAssigned"
                           and e["involvedObject"]["name"] == "lb"], 10, "nodeAssigned event")


def test_requested_address_pool_errors_and_exhaustion(c):
    net = c.cfg.underlay_cidr.rsplit(".", 1)[0]
    apply_svc(c, "lb-req", type="LoadBalancer", loadBalancerIP=f"{net}.203", allocateLoadBalancerNodePorts=False,
              ports=TO_8080)
    assert c.wait(lambda: ingress(c, "lb-req"), 10, "requested address") == [f"{net}.203"]
    assert "nodePort" not in svc(c, "lb-req")["spec"]["ports"][0]
    c.wait(lambda: outside(c, *curl_args(f"http://{net}.203/hostname")).returncode == 0, 10, "lb-req answers")
    for bad, why in ((f"{net}.100", "not in the load-balancer pool"),
                     (f"{net}.203", "address already allocated to service default/lb-req")):
        r = c.nsplane("apply", "-f", "-", check=False, input=(
            "apiVersion: v1\nkind: Service\nmetadata: {name: lb-bad}\nspec:\n  type: LoadBalancer\n"
            f"  loadBalancerIP: {bad}\n  selector: {{app: echo}}\n  ports:\n  - {{port: 80}}\n"))
        assert r.returncode != 0 and f'spec.loadBalancerIP: Invalid value: "{bad}": {why}' in r.stderr
    assert "lb-bad" not in {s["metadata"]["name"] for s in c.get("svc")["items"]}
    for name in ("lb-a", "lb-b"):      # .201 and .202 left; the third waits
        apply_svc(c, name, type="LoadBalancer", ports=TO_8080)
    apply_svc(c, "lb-c", type="LoadBalancer", ports=TO_8080)
    c.wait(lambda: ingress(c, "lb-a") and ingress(c, "lb-b"), 10, "two more addresses")
    assert ingress(c, "lb-c") == []
    assert c.nsplane("get", "svc", "lb-c").stdout.splitlines()[1].split()[3] == "<pending>"
    failed = c.wait(lambda: [e for e in c.get("events")["items"] if e["reason"] == "AllocationFailed"
                             and e["involvedObject"]["name"] == "lb-c"], 10, "AllocationFailed event")
    assert failed[0]["type"] == "Warning" and "no available IPs" in failed[0]["message"]
    c.nsplane("delete", "svc", "lb-a")                  # released: the pending one gets it
    assert c.wait(lambda: ingress(c, "lb-c"), 10, "lb-c address") == [f"{net}.201"]
    c.nsplane("delete", "svc", "lb-b", "lb-c", "lb-req")


def test_source_ranges_and_health_check_node_port(c):
    apply_svc(c, "lbl", app="solo", type="LoadBalancer", externalTrafficPolicy="Local",
              loadBalancerSourceRanges=["10.0.0.0/8"], ports=TO_8080)
    ip = c.wait(lambda: ingress(c, "lbl"), 10, "an address")[0]
    c.wait(lambda: "KUBE-FW-" in nat_rules(c, 2), 10, "firewall chain")
    assert outside(c, *curl_args(f"http://{ip}/clientip", 1)).returncode == 28   # 172.28.x.1 not allowed
    apply_svc(c, "lbl", app="solo", type="LoadBalancer", externalTrafficPolicy="Local",
              loadBalancerSourceRanges=[f"{c.cfg.host_ip}/32"], ports=TO_8080)
    r = c.wait(lambda: (r := outside(c, *curl_args(f"http://{ip}/clientip"))).returncode == 0 and r, 10, "allowed")
    assert r.stdout.rsplit(":", 1)[0] == c.cfg.host_ip
    hc = svc(c, "lbl")["spec"]["healthCheckNodePort"]
    answers = {}
    for k in (1, 2, 3):
        r = outside(c, "curl", "-s", "-w", "\n%{http_code}", f"http://{node_ip(c, k)}:{hc}/healthz")
        body, code = r.stdout.rsplit("\n", 1)
        answers[k] = (code, json.loads(body)["localEndpoints"])
        assert json.loads(body)["service"] == {"namespace": "default", "name": "lbl"}
    assert answers == {1: ("503", 0), 2: ("200", 1), 3: ("503", 0)}
    # Only node-2 has a local endpoint, so only node-2 may announce the address.
    assert c.wait(lambda: [e for e in c.get("events")["items"] if e["reason"] == "nodeAssigned"
                           and e["involvedObject"]["name"] == "lbl"], 10, "event")[0]["message"] == \
        'announcing from node "node-2" with protocol "layer2"'
    c.nsplane("delete", "svc", "lbl")


# ---- type changes ------------------------------------------------------------------

def test_type_changes_in_every_direction_allocate_and_release(c):
    apply_svc(c, "tc", app=None, type="ExternalName", externalName="example.com")
    assert "clusterIP" not in svc(c, "tc")["spec"]
    assert "default/tc" not in nat_rules(c, 1)
    apply_svc(c, "tc", type="ClusterIP", ports=TO_8080)
    cip = svc(c, "tc")["spec"]["clusterIP"]
    assert re.fullmatch(r"10\.\d+\.\d+\.\d+", cip)
    c.wait(lambda: c.exec("tmp", *curl_args(f"http://{cip}/hostname")).returncode == 0, 10, "ClusterIP")
    apply_svc(c, "tc", type="NodePort", ports=TO_8080)
    s = svc(c, "tc")
    port = s["spec"]["ports"][0]["nodePort"]
    assert s["spec"]["clusterIP"] == cip and 30000 <= port <= 32767
    c.wait(lambda: outside(c, *curl_args(f"http://{node_ip(c, 1)}:{port}/hostname")).returncode == 0, 10, "NP")
    apply_svc(c, "tc", type="LoadBalancer", ports=TO_8080)
    assert svc(c, "tc")["spec"]["ports"][0]["nodePort"] == port
    lb = c.wait(lambda: ingress(c, "tc"), 10, "LB address")[0]
    c.wait(lambda: outside(c, *curl_args(f"http://{lb}/hostname")).returncode == 0, 10, "LB")
    apply_svc(c, "tc", type="ClusterIP", ports=TO_8080)
    s = c.wait(lambda: (s := svc(c, "tc")) and not ingress(c, "tc") and s, 10, "address released")
    assert "nodePort" not in s["spec"]["ports"][0] and s["spec"]["clusterIP"] == cip
    c.wait(lambda: f"{port}" not in nat_rules(c, 1) and lb not in nat_rules(c, 1), 10, "rules follow")
    apply_svc(c, "tc", app=None, type="ExternalName", externalName="example.com")
    assert "clusterIP" not in svc(c, "tc")["spec"]
    c.wait(lambda: "default/tc" not in nat_rules(c, 1), 10, "no rules for ExternalName")
    c.nsplane("delete", "svc", "tc")


def test_external_ips_are_forwarded(c):
    net = c.cfg.underlay_cidr.rsplit(".", 1)[0]
    apply_svc(c, "xip", externalIPs=[f"{net}.150"], ports=[{"port": 8081, "targetPort": 8080}])
    c.wait(lambda: "default/xip external IP" in nat_rules(c, 3), 10, "KUBE-EXT rules")
    # Routing an external IP to a node is the network's job; the outside does it with a route.
    outside(c, "ip", "route", "replace", f"{net}.150/32", "via", node_ip(c, 3))
    try:
        assert hostnames(c, lambda *a: outside(c, *a), f"http://{net}.150:8081/hostname", 6) <= echo_pods(c)
    finally:
        outside(c, "ip", "route", "del", f"{net}.150/32")


def test_headless_has_no_cluster_ip_and_no_rules(c):
    apply_svc(c, "hl", clusterIP="None", ports=TO_8080)
    assert svc(c, "hl")["spec"]["clusterIP"] == "None"
    c.wait(lambda: c.get("endpointslices", "-l", "kubernetes.io/service-name=hl")["items"], 10, "slices")
    assert "default/hl" not in nat_rules(c, 1)


# ---- node removal (last: it changes the cluster) -----------------------------------

def test_load_balancer_address_moves_when_its_node_is_removed(c):
    ip = ingress(c, "lb")[0]
    ev = c.wait(lambda: [e for e in c.get("events")["items"] if e["reason"] == "nodeAssigned"
                         and e["involvedObject"]["name"] == "lb"], 10, "event")
    owner = re.search(r'node "(node-\d)"', ev[0]["message"]).group(1)
    assert outside(c, *curl_args(f"http://{ip}/hostname")).returncode == 0
    c.nsplane("node", "remove", owner)
    assert owner not in {n["metadata"]["name"] for n in c.get("nodes")["items"]}
    c.wait(lambda: outside(c, *curl_args(f"http://{ip}/hostname", 1)).returncode == 0, 15, "LB after failover")
    neigh = outside(c, "ip", "neigh", "show", ip).stdout.split()
    macs = {k: run_in(c.node_netns(k), "cat", "/sys/class/net/eth0/address").stdout.strip()
            for k in (1, 2, 3) if f"node-{k}" != owner}
    assert neigh[neigh.index("lladdr") + 1] in macs.values()
    assert all(p["spec"].get("nodeName") != owner for p in c.get("pods")["items"])
    assert c.nsplane("node", "remove", "node-9", check=False).stderr.startswith('error: node "node-9" not found')
