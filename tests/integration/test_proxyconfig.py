"""kube-proxy configured like a kubeadm cluster, end to end: ConfigMap
kube-system/kube-proxy exists with kubeadm's config.conf; kubectl apply of
`masqueradeAll: true` makes the server (agnhost netexec /clientip) see the
node's address instead of the client pod's, and setting it back restores
the pod's; an invalid config is refused by kubectl with kube-proxy's message
and the running one stays; /metrics answers on 127.0.0.1:10249 inside the
node's namespace with kube-proxy's names; `localhostNodePorts: false` makes
127.0.0.1:NodePort stop answering inside the node's namespace, and
`nodePortAddresses: [primary]` keeps the NodePort on the node's IP only;
conntrack timeouts land in the node namespace's sysctls."""
import json
import subprocess

import pytest

from tests.integration.cluster import ThrowawayCluster
from tests.integration.manifests import AGNHOST, deployment, documents, netexec, service

pytestmark = pytest.mark.integration

ECHO = documents(
    deployment("echo", image=AGNHOST, replicas=1, args=netexec(8080), ports=[("http", 8080)],
               readiness=("/healthz", "http")),
    service("echo", selector={"app": "echo"}, ports=[{"name": "http", "port": 80, "targetPort": "http"}]),
    service("echo-np", selector={"app": "echo"}, type="NodePort",
            ports=[{"name": "http", "port": 80, "targetPort": "http"}]))


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("cluster")), dns=False) as tc:
        tc.apply(ECHO)
        tc.nsplane("run", "tmp", "--image=curlimages/curl", "--", "sleep", "3600")
        tc.wait_ready("app=echo", 1)
        tc.wait_ready("run=tmp", 1)
        yield tc


def config_text(c) -> str:
    return c.get("-n", "kube-system", "configmap", "kube-proxy")["data"]["config.conf"]


def apply_config(c, text: str, check: bool = True):
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "kube-proxy", "namespace": "kube-system"}, "data": {"config.conf": text}}
    return c.kubectl("apply", "-f", "-", input=json.dumps(cm), check=check)


def client_ip(c) -> str:
    ip = c.get("svc", "echo")["spec"]["clusterIP"]
    r = c.exec("tmp", "curl", "-sS", "--max-time", "3", f"http://{ip}/clientip")
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().rsplit(":", 1)[0]


def node_addresses(c) -> set[str]:
    out = subprocess.run(["ip", "netns", "exec", c.node_netns(), "ip", "-4", "-o", "addr"],
                         capture_output=True, text=True, check=True).stdout
    return {line.split()[3].split("/")[0] for line in out.splitlines()}


def in_node(c, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", c.node_netns(), *argv], capture_output=True, text=True, timeout=20)


def test_configmap_is_kubeadms(c):
    text = config_text(c)
    assert text.startswith("apiVersion: kubeproxy.config.k8s.io/v1alpha1\n")
    for line in ("kind: KubeProxyConfiguration", "  masqueradeAll: false", "clusterCIDR: 10.244.0.0/16",
                 'mode: ""', "  syncPeriod: 30s"):
        assert line in text.splitlines(), line


def test_masquerade_all_makes_the_server_see_the_node(c):
    pod_ip = c.get("pod", "tmp")["status"]["podIP"]
    assert client_ip(c) == pod_ip
    default = config_text(c)
    apply_config(c, default.replace("  masqueradeAll: false", "  masqueradeAll: true"))
    try:
        seen = c.wait(lambda: (ip := client_ip(c)) != pod_ip and ip, what="masqueraded client IP")
        assert seen in node_addresses(c)
    finally:
        apply_config(c, default)
    c.wait(lambda: client_ip(c) == pod_ip, what="the pod's own client IP again")


def test_invalid_config_is_refused_with_kube_proxys_message(c):
    before = config_text(c)
    r = apply_config(c, before.replace("  masqueradeBit: null", "  masqueradeBit: 40"), check=False)
    assert r.returncode != 0
    assert ('The ConfigMap "kube-proxy" is invalid: data[config.conf]: Invalid value: "<config.conf>": '
            "KubeProxyConfiguration.KubeProxyIPTablesConfiguration.MasqueradeBit: Invalid value: 40: "
            "must be within the range [0, 31]") in r.stderr
    r = apply_config(c, before.replace('mode: ""', "mode: ipvs"), check=False)
    assert r.returncode != 0 and 'nsplane implements "iptables" and "nftables" (ipvs is not planned)' in r.stderr
    assert config_text(c) == before
    assert client_ip(c) == c.get("pod", "tmp")["status"]["podIP"]


def test_metrics_answer_in_the_node_namespace(c):
    r = in_node(c, "curl", "-sS", "--max-time", "3", "http://127.0.0.1:10249/metrics")
    assert r.returncode == 0, r.stderr
    values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
              for line in r.stdout.splitlines() if line and not line.startswith("#")}
    assert values["kubeproxy_sync_proxy_rules_duration_seconds_count"] >= 1
    assert values["kubeproxy_sync_full_proxy_rules_duration_seconds_count"] >= 1
    assert values["kubeproxy_sync_proxy_rules_last_timestamp_seconds"] > 0
    assert values['kubeproxy_sync_proxy_rules_iptables_total{table="nat"}'] > 0
    assert values["kubeproxy_sync_proxy_rules_service_changes_total"] >= 2
    assert values["kubeproxy_sync_proxy_rules_endpoint_changes_total"] >= 2
    assert "# TYPE kubeproxy_network_programming_duration_seconds histogram" in r.stdout
    assert values["kubeproxy_network_programming_duration_seconds_count"] >= 1


def node_port_answers(c, address: str) -> bool:
    port = c.get("svc", "echo-np")["spec"]["ports"][0]["nodePort"]
    return in_node(c, "curl", "-sS", "--max-time", "2", f"http://{address}:{port}/hostname").returncode == 0


def test_localhost_node_ports_false(c):
    assert node_port_answers(c, "127.0.0.1")
    default = config_text(c)
    apply_config(c, default.replace("  localhostNodePorts: null", "  localhostNodePorts: false"))
    try:
        c.wait(lambda: not node_port_answers(c, "127.0.0.1"), what="127.0.0.1:NodePort to stop answering")
        node_ip = c.get("node", c.cfg.node_name(1))["status"]["addresses"][0]["address"]
        assert node_port_answers(c, node_ip)
    finally:
        apply_config(c, default)
    c.wait(lambda: node_port_answers(c, "127.0.0.1"), what="127.0.0.1:NodePort to answer again")


def test_node_port_addresses_primary(c):
    node_ip = c.get("node", c.cfg.node_name(1))["status"]["addresses"][0]["address"]
    others = sorted(node_addresses(c) - {node_ip, "127.0.0.1"})
    assert others, "the node has no second address to try"
    assert node_port_answers(c, others[0])
    default = config_text(c)
    apply_config(c, default.replace("nodePortAddresses: null", "nodePortAddresses: [primary]"))
    try:
        c.wait(lambda: not node_port_answers(c, others[0]), what=f"NodePort on {others[0]} to stop answering")
        assert node_port_answers(c, node_ip)
        assert not node_port_answers(c, "127.0.0.1")
    finally:
        apply_config(c, default)
    c.wait(lambda: node_port_answers(c, others[0]), what="the NodePort on every address again")


def node_sysctl(c, name: str) -> str:
    return in_node(c, "cat", f"/proc/sys/net/netfilter/{name}").stdout.strip()


def test_conntrack_timeouts_in_the_node_namespace(c):
    established = "nf_conntrack_tcp_timeout_established"
    assert node_sysctl(c, established) == "86400"  # kube-proxy's default for a null tcpEstablishedTimeout
    host_value = open(f"/proc/sys/net/netfilter/{established}").read().strip()
    default = config_text(c)
    apply_config(c, default.replace("tcpEstablishedTimeout: null", "tcpEstablishedTimeout: 2h")
                 .replace("udpTimeout: 0s", "udpTimeout: 45s"))
    try:
        c.wait(lambda: node_sysctl(c, established) == "7200", what="tcp_timeout_established 7200")
        assert node_sysctl(c, "nf_conntrack_udp_timeout") == "45"
    finally:
        apply_config(c, default)
    c.wait(lambda: node_sysctl(c, established) == "86400", what="tcp_timeout_established back to 86400")
    assert open(f"/proc/sys/net/netfilter/{established}").read().strip() == host_value  # the machine's untouched


def answers(c, url: str) -> bool:
    return in_node(c, "curl", "-sS", "-o", "/dev/null", "--max-time", "2", url).returncode == 0


def test_metrics_and_healthz_bind_addresses(c):
    node_ip = c.get("node", c.cfg.node_name(1))["status"]["addresses"][0]["address"]
    assert not answers(c, f"http://{node_ip}:10249/metrics")  # 127.0.0.1 only by default
    assert answers(c, f"http://{node_ip}:10256/healthz")
    default = config_text(c)
    apply_config(c, default.replace('metricsBindAddress: ""', "metricsBindAddress: 0.0.0.0:10249")
                 .replace('healthzBindAddress: ""', "healthzBindAddress: 127.0.0.1:10266"))
    try:
        c.wait(lambda: answers(c, f"http://{node_ip}:10249/metrics"), what="/metrics on the node IP")
        c.wait(lambda: answers(c, "http://127.0.0.1:10266/healthz"), what="/healthz on 127.0.0.1:10266")
        assert not answers(c, f"http://{node_ip}:10256/healthz")
    finally:
        apply_config(c, default)
    c.wait(lambda: answers(c, f"http://{node_ip}:10256/healthz"), what="/healthz back on :10256")
    c.wait(lambda: not answers(c, f"http://{node_ip}:10249/metrics"), what="/metrics back on 127.0.0.1")
