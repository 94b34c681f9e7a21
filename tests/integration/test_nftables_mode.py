"""kube-proxy's nftables mode on a real 3-node cluster, and switching a
running cluster between modes.

The cluster starts in iptables mode. The first test switches it to
nftables (`nsplane up --proxy-mode nftables`) and back to iptables (an edit
of ConfigMap kube-system/kube-proxy) while a client pod connects to a
ClusterIP Service in a bounded loop; failed connections are counted and
printed, and at most a few are allowed. After each switch every node holds
its Service rules in the new mode's kernel interface only. The other tests
run in nftables mode: `nft list table ip kube-proxy` readable in every
node's namespace, ClusterIP traffic across nodes, NodePorts from outside on
every node (not on 127.0.0.1: kube-proxy's nftables mode never serves
NodePorts on localhost), externalTrafficPolicy Local keeping the client's
address and dropping on nodes without an endpoint, session affinity, and a
Service without endpoints refused."""
import json
import os
import subprocess
import tempfile
import time

import pytest

from tests.integration.cluster import ThrowawayCluster
from tests.integration.manifests import documents
from tests.integration.test_multinode import (ECHO, TMP_POD, TO_8080, apply_svc, curl_args, echo_pods, hostnames,
                                             node_ip, outside, run_in, svc)

pytestmark = pytest.mark.integration
NODES = (1, 2, 3)


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("cluster")), nodes=3, dns=False) as tc:
        tc.apply(documents(ECHO, TMP_POD))
        apply_svc(tc, "echo", ports=TO_8080)
        tc.wait_ready("app=echo", 3)
        tc.wait_ready("app=solo", 1)
        tc.wait(lambda: tc.get("pod", "tmp")["status"].get("phase") == "Running", 30, "tmp running")
        yield tc


def nft_table(c, k: int) -> subprocess.CompletedProcess:
    return run_in(c.node_netns(k), "nft", "list", "table", "ip", "kube-proxy")


def programmed_in(c, mode: str, cluster_ip: str) -> bool:
    """Every node holds the Service in `mode`'s interface and nothing in the other's."""
    for k in NODES:
        nft = nft_table(c, k)
        ipt = run_in(c.node_netns(k), "iptables-legacy-save", "-t", "nat").stdout
        in_nft = nft.returncode == 0 and f"{cluster_ip} . tcp . 80" in nft.stdout
        in_ipt = f"-d {cluster_ip}/32" in ipt
        if (mode == "nftables") != in_nft or (mode == "iptables") != in_ipt:
            return False
        if mode == "nftables" and ":KUBE-SERVICES" in ipt:
            return False
    return True


def set_mode_by_configmap(c, mode: str) -> None:
    cm = c.get("-n", "kube-system", "configmap", "kube-proxy")
    text = cm["data"]["config.conf"]
    lines = [f"mode: {mode}" if line.startswith("mode:") else line for line in text.splitlines()]
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
          "data": {"config.conf": "\n".join(lines) + "\n"}}
    c.kubectl("apply", "-f", "-", input=json.dumps(cm))


def ensure_nftables(c) -> str:
    ip = svc(c, "echo")["spec"]["clusterIP"]
    if not programmed_in(c, "nftables", ip):
        set_mode_by_configmap(c, "nftables")
        c.wait(lambda: programmed_in(c, "nftables", ip), 30, "every node in nftables mode")
    return ip


def test_switching_a_running_cluster_keeps_services_answering(c):
    ip = svc(c, "echo")["spec"]["clusterIP"]
    c.wait(lambda: programmed_in(c, "iptables", ip), 30, "every node in iptables mode")
    pods = echo_pods(c)
    with tempfile.TemporaryDirectory(prefix="nsplane-switch-") as tmp:
        stop, log = os.path.join(tmp, "stop"), os.path.join(tmp, "log")
        # At most 1,500 attempts of at most 1 s each, until told to stop.
        loop = (f'i=0; while [ ! -e {stop} ] && [ $i -lt 1500 ]; do i=$((i+1)); '
                f'out=$(curl -sS --max-time 1 http://{ip}/hostname 2>/dev/null); rc=$?; '
                f'echo "$rc $out" >> {log}; sleep 0.02; done')
        client = subprocess.Popen(["ip", "netns", "exec", c.pod_netns("tmp"), "sh", "-c", loop])
        try:
            time.sleep(1)
            c.nsplane("up", "--proxy-mode", "nftables", timeout=120)
            c.wait(lambda: programmed_in(c, "nftables", ip), 30, "every node switched to nftables")
            time.sleep(1)
            set_mode_by_configmap(c, "iptables")
            c.wait(lambda: programmed_in(c, "iptables", ip), 30, "every node switched back to iptables")
            time.sleep(1)
        finally:
            open(stop, "w").close()
            client.wait(timeout=60)
        results = [line.split(" ", 1) + [""] for line in open(log).read().splitlines()]
    codes = [r[0] for r in results]
    failed = [r for r in results if r[0] != "0" or r[1] not in pods]
    refused = codes.count("7")
    print(f"\nmode switch iptables -> nftables -> iptables: {len(results)} connections, "
          f"{len(results) - len(failed)} answered, {refused} refused, {len(failed) - refused} other failures")
    assert len(results) > 20  # the loop ran across both switches
    assert len(failed) <= 3, failed


def test_nft_list_table_is_readable_in_every_node(c):
    ip = ensure_nftables(c)
    for k in NODES:
        r = nft_table(c, k)
        assert r.returncode == 0, r.stderr
        assert "table ip kube-proxy {" in r.stdout and f"{ip} . tcp . 80 : goto service-" in r.stdout
        assert "chain service-" in r.stdout and "numgen random mod 3 vmap" in r.stdout
    metrics = run_in(c.node_netns(1), "curl", "-sS", "--max-time", "3", "http://127.0.0.1:10249/metrics").stdout
    assert "kubeproxy_sync_proxy_rules_nftables_sync_failures_total 0" in metrics
    assert "kubeproxy_sync_proxy_rules_iptables_total" not in metrics


def test_cluster_ip_reaches_pods_on_every_node(c):
    ip = ensure_nftables(c)
    assert hostnames(c, lambda *a: c.exec("tmp", *a), f"http://{ip}/hostname", 15) == echo_pods(c)


def test_node_port_answers_on_every_node_but_not_on_localhost(c):
    ensure_nftables(c)
    apply_svc(c, "np", type="NodePort", ports=[{"port": 80, "targetPort": 8080, "nodePort": 30090}])
    pods = echo_pods(c)
    for k in NODES:
        url = f"http://{node_ip(c, k)}:30090/hostname"
        assert c.wait(lambda: outside(c, *curl_args(url)).returncode == 0, 10, f"NodePort on node-{k}")
        assert hostnames(c, lambda *a: outside(c, *a), url, 6) <= pods
    r = run_in(c.node_netns(1), *curl_args("http://127.0.0.1:30090/hostname", 1))
    assert r.returncode == 7, (r.returncode, r.stdout)  # refused: nothing listens, no rule for localhost


def test_external_traffic_policy_local_keeps_client_ip_and_drops_elsewhere(c):
    ensure_nftables(c)
    apply_svc(c, "loc", app="solo", type="NodePort", externalTrafficPolicy="Local",
              ports=[{"port": 80, "targetPort": 8080, "nodePort": 30110}])
    url2 = f"http://{node_ip(c, 2)}:30110/clientip"
    r = c.wait(lambda: (r := outside(c, *curl_args(url2))).returncode == 0 and r, 10, "ETP Local on node-2")
    assert r.stdout.rsplit(":", 1)[0] == c.cfg.host_ip
    for k in (1, 3):
        # until node-k has seen solo's endpoint it rejects (no endpoints at all): wait for its drop
        c.wait(lambda: any("tcp . 30110" in line and line.rstrip(" ,}").endswith(": drop") for line in run_in(
            c.node_netns(k), "nft", "list", "map", "ip", "kube-proxy", "no-endpoint-nodeports").stdout.splitlines()),
            10, f"node-{k}'s drop")
        assert outside(c, *curl_args(f"http://{node_ip(c, k)}:30110/clientip", 1)).returncode == 28


def test_session_affinity_sticks(c):
    ensure_nftables(c)
    apply_svc(c, "sticky", sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
              ports=TO_8080)
    ip = svc(c, "sticky")["spec"]["clusterIP"]
    c.wait(lambda: c.exec("tmp", *curl_args(f"http://{ip}/hostname")).returncode == 0, 10, "sticky up")
    assert len(hostnames(c, lambda *a: c.exec("tmp", *a), f"http://{ip}/hostname", 15)) == 1


def test_service_without_endpoints_is_refused(c):
    ensure_nftables(c)
    apply_svc(c, "nobody", app="nothing-has-this-label", ports=TO_8080)
    ip = svc(c, "nobody")["spec"]["clusterIP"]
    c.wait(lambda: f"{ip} . tcp . 80" in run_in(c.node_netns(1), "nft", "list", "map", "ip", "kube-proxy",
                                                 "no-endpoint-services").stdout, 10, "the reject element")
    assert c.exec("tmp", *curl_args(f"http://{ip}/hostname", 2)).returncode == 7


def test_trace_and_doctor_read_the_nftables_table(c):
    """`nsplane trace` walks the connection through node's table ip kube-proxy
    and names the endpoint chain whose DNAT the conntrack entry shows, which
    is the pod that answered; `nsplane doctor` finds the Service's elements
    on every node and `explain` lists its chains; `trace --from outside` to a
    NodePort walks the taking node's external- chain and masquerade; a
    Service without endpoints stops in reject-chain."""
    ip = ensure_nftables(c)
    seen = set()
    for _ in range(4):
        r = c.nsplane("trace", "tmp", f"http://{ip}/hostname", "--json", check=False)
        rep = json.loads(r.stdout)
        assert r.returncode == 0 and rep["mode"] == "nftables", rep
        assert rep["answeredBy"] == rep["answer"]["body"].strip() and rep["answeredBy"] in echo_pods(c), rep
        chains = [h["chain"] for h in rep["hops"]]
        assert chains[:2] == ["nat-prerouting", "services"], rep["hops"]
        assert chains[2].startswith("service-") and chains[2].endswith("-default/echo/tcp/"), chains
        dnat = [h for h in rep["hops"] if h["rule"].endswith(f"dnat to {rep['endpoint']}")]
        assert len(dnat) == 1 and dnat[0]["chain"].startswith("endpoint-"), rep["hops"]
        assert dnat[0]["chain"].endswith(f"__{rep['endpoint'].replace(':', '/')}"), dnat
        seen.add(rep["answeredBy"])
    text = c.nsplane("trace", "tmp", f"http://{ip}/hostname").stdout
    assert " ip kube-proxy services  ip daddr . meta l4proto . th dport vmap @service-ips  => " in text, text

    r = c.nsplane("doctor", "svc/echo", "--json", check=False)
    checks = {ch["name"]: ch for ch in json.loads(r.stdout)["checks"]}
    assert checks["node-rules"]["status"] == "ok", checks["node-rules"]
    for k in NODES:
        assert f"node-{k}: {ip} . tcp . 80 in @service-ips: goto service-" in checks["node-rules"]["evidence"]
    assert checks["endpoints"]["status"] == "ok" and "3 ready endpoint(s)" in checks["endpoints"]["evidence"]
    explained = c.nsplane("explain", "svc/echo").stdout
    assert "(nftables mode: nft list table ip kube-proxy)" in explained and "numgen random mod 3 vmap" in explained

    apply_svc(c, "np", type="NodePort", ports=[{"port": 80, "targetPort": 8080, "nodePort": 30090}])
    url = f"http://{node_ip(c, 2)}:30090/hostname"
    c.wait(lambda: outside(c, *curl_args(url)).returncode == 0, 10, "NodePort on node-2")
    rep = json.loads(c.nsplane("trace", "--from", "outside", url, "--json").stdout)
    assert rep["node"] == "node-2" and rep["mode"] == "nftables" and rep["answeredBy"] in echo_pods(c), rep
    rules = [(h["node"], h["chain"], h["rule"]) for h in rep["hops"]]
    assert ("node-2", "services", "ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports") in rules
    assert any(chain.startswith("external-") for _, chain, _ in rules), rules
    assert rules[-1] == ("node-2", "masquerading", "masquerade fully-random") and rep["masquerade"], rules

    apply_svc(c, "nobody", app="nothing-has-this-label", ports=TO_8080)
    gone = svc(c, "nobody")["spec"]["clusterIP"]
    c.wait(lambda: f"{gone} . tcp . 80" in nft_table(c, 1).stdout, 10, "the reject element")
    r = c.nsplane("trace", "tmp", f"http://{gone}/hostname", "--json", check=False)
    rep = json.loads(r.stdout)
    assert r.returncode == 1 and rep["verdict"].startswith("rejected by ip kube-proxy reject-chain: reject: the "
                                                            "Service has no endpoints"), rep
    r = c.nsplane("doctor", "svc/nobody", "--json", check=False)
    checks = {ch["name"]: ch for ch in json.loads(r.stdout)["checks"]}
    assert checks["node-rules"]["status"] == "ok" and "@no-endpoint-services: goto reject-chain" in \
        checks["node-rules"]["evidence"], checks["node-rules"]
