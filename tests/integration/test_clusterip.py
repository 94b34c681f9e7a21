"""ClusterIP Services on a real single-node cluster, as the Service chapter
walks through them: real namespaces, veths, iptables and processes. `get svc`
and `get endpoints`, traffic to every endpoint checked with curl from inside
a pod, the client's IP kept, UDP, a pod reaching itself through its Service
(hairpin), the chapter's nginx Deployment and Service, a selector typo that
empties the endpoints and refuses connections, scaling, a deleted pod, bad
input that changes nothing, and a restart that keeps Services and traffic.
Everything runs in both proxy modes (iptables, then nftables: the module's
cluster is made once per mode); the last test restarts it."""
import re
import socket
import subprocess
import time

import pytest

from dataplane import netns
from tests.integration.cluster import ThrowawayCluster
from tests.integration.manifests import AGNHOST, demo, deployment, documents, netexec, service

pytestmark = pytest.mark.integration

ECHO_PORTS = [{"name": "http", "port": 80, "targetPort": "http"},
              {"name": "udp", "port": 81, "targetPort": 8081, "protocol": "UDP"}]
ECHO_DEPLOYMENT = deployment("echo", image=AGNHOST, replicas=3, args=netexec(8080, udp_port=8081),
                             ports=[("http", 8080)], readiness=("/healthz", "http"))


def echo_service(app: str = "echo", ports: list[dict] = ECHO_PORTS) -> str:
    return service("echo", selector={"app": app}, ports=ports)


ECHO = documents(ECHO_DEPLOYMENT, echo_service())

WEB = demo("web.yaml")
WEB_SVC = demo("web-svc.yaml")


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def c(request, tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("cluster")), proxy_mode=request.param) as tc:
        tc.proxy_mode = request.param
        tc.apply(ECHO)
        tc.nsplane("run", "tmp", "--image=curlimages/curl", "--", "sleep", "3600")
        tc.wait_ready("app=echo", 3)
        tc.wait_ready("run=tmp", 1)
        yield tc


def cluster_ip(c, name):
    return c.get("svc", name)["spec"]["clusterIP"]


def curl(c, url, *extra):
    return c.exec("tmp", "curl", "-sS", "--max-time", "3", *extra, url)


def test_rules_are_in_the_modes_kernel_interface(c):
    """nftables mode: `nft list table ip kube-proxy` in the node's namespace
    shows the Service, and iptables holds no KUBE-SERVICES; iptables mode:
    the reverse."""
    node = c.node_netns()
    ip = cluster_ip(c, "echo")
    nft = subprocess.run(["ip", "netns", "exec", node, "nft", "list", "table", "ip", "kube-proxy"],
                         capture_output=True, text=True, timeout=30)
    ipt = subprocess.run(["ip", "netns", "exec", node, "iptables-legacy-save", "-t", "nat"],
                         capture_output=True, text=True, timeout=30).stdout
    if c.proxy_mode == "nftables":
        assert nft.returncode == 0, nft.stderr
        assert f"{ip} . tcp . 80 : goto service-" in nft.stdout and "default/echo/tcp/http" in nft.stdout
        assert "KUBE-SERVICES" not in ipt
    else:
        assert nft.returncode != 0 and ":KUBE-SERVICES" in ipt


def test_get_svc_lists_kubernetes_and_echo(c):
    out = c.nsplane("get", "svc").stdout.splitlines()
    assert out[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    rows = {line.split()[0]: line.split() for line in out[1:]}
    assert rows["kubernetes"][1:5] == ["ClusterIP", "10.96.0.1", "<none>", "443/TCP"]
    assert rows["echo"][1] == "ClusterIP" and rows["echo"][4] == "80/TCP,81/UDP"


def test_endpoints_are_the_three_pod_ips(c):
    ips = sorted(p["status"]["podIP"] for p in c.ready_pods("app=echo"))
    line = c.nsplane("get", "endpoints", "echo").stdout.splitlines()[1]
    listed = line.split()[1].split(",")
    assert sorted({e.rsplit(":", 1)[0] for e in listed if not e.startswith("+")}) == ips
    assert all(e.endswith((":8080", ":8081")) for e in listed if ":" in e)


def test_traffic_reaches_all_three_pods(c):
    ip = cluster_ip(c, "echo")
    seen = set()
    for _ in range(30):
        r = curl(c, f"http://{ip}/hostname")
        assert r.returncode == 0, r.stderr
        seen.add(r.stdout.strip())
    assert seen == {p["metadata"]["name"] for p in c.ready_pods("app=echo")}


def test_client_ip_is_preserved(c):
    r = curl(c, f"http://{cluster_ip(c, 'echo')}/clientip")
    tmp_ip = c.get("pod", "tmp")["status"]["podIP"]
    assert r.stdout.strip().rsplit(":", 1)[0] == tmp_ip


def test_udp_service_answers(c):
    ip = cluster_ip(c, "echo")
    names = {p["metadata"]["name"] for p in c.ready_pods("app=echo")}
    with netns.entered(c.pod_netns("tmp")):     # a socket belongs to the namespace it is made in
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.settimeout(2)
        sock.sendto(b"hostname", (ip, 81))
        assert sock.recv(100).decode().strip() in names


def test_hairpin_pod_reaches_itself_through_its_service(c):
    pod = c.ready_pods("app=echo")[0]["metadata"]["name"]
    ip = cluster_ip(c, "echo")
    seen = set()
    for _ in range(40):  # 3 endpoints: missing itself 40 times in a row has odds of 1 in 10^7
        r = c.exec(pod, "curl", "-sS", "--max-time", "3", f"http://{ip}/hostname")
        assert r.returncode == 0, r.stderr
        seen.add(r.stdout.strip())
        if pod in seen:
            break
    assert pod in seen, seen


def test_nginx_welcome_page_through_cluster_ip(c):
    c.apply(WEB)
    assert c.apply(WEB_SVC).strip() == "service/web created"
    assert c.apply(WEB_SVC).strip() == "service/web unchanged"
    c.wait_ready("app=web", 3)
    ip = cluster_ip(c, "web")
    assert re.fullmatch(r"10\.(9[6-9]|10[0-9]|11[01])\.\d+\.\d+", ip)
    r = c.wait(lambda: (r := curl(c, f"http://{ip}")).returncode == 0 and r, 10, "nginx via ClusterIP")
    assert r.stdout.startswith("<!DOCTYPE html>") and "Welcome to nginx!" in r.stdout
    if c.proxy_mode == "nftables":
        rules = subprocess.run(["ip", "netns", "exec", c.node_netns(), "nft", "list", "map", "ip", "kube-proxy",
                                "service-ips"], capture_output=True, text=True).stdout
        assert f"{ip} . tcp . 80 : goto service-" in rules and "default/web/tcp/" in rules
    else:
        rules = subprocess.run(["ip", "netns", "exec", c.node_netns(), "iptables-legacy", "-t", "nat", "-S",
                                "KUBE-SERVICES"], capture_output=True, text=True).stdout
        assert f'-d {ip}/32 -p tcp -m comment --comment "default/web cluster IP"' in rules or \
            ("default/web cluster IP" in rules and f"{ip}/32" in rules)
    logs = "".join(c.nsplane("logs", p["metadata"]["name"]).stdout for p in c.ready_pods("app=web"))
    assert '"GET / HTTP/1.1" 200' in logs


def test_selector_typo_empties_endpoints_and_refuses(c):
    ip = cluster_ip(c, "echo")
    c.nsplane("apply", "-f", "-", input=documents(ECHO_DEPLOYMENT, echo_service(app="echoo")))
    c.wait(lambda: "<none>" in c.nsplane("get", "ep", "echo").stdout, 10, "endpoints to empty")
    time.sleep(0.3)
    with netns.entered(c.pod_netns("tmp")):
        sock = socket.socket()
    with sock, pytest.raises(ConnectionRefusedError):
        sock.settimeout(5)
        started = time.monotonic()
        sock.connect((ip, 80))
    assert time.monotonic() - started < 1.0
    assert curl(c, f"http://{ip}/hostname").returncode == 7   # curl: couldn't connect
    c.apply(ECHO)
    c.wait(lambda: curl(c, f"http://{ip}/hostname").returncode == 0, 10, "traffic back")


def test_scale_down_and_up_is_followed(c):
    ip = cluster_ip(c, "echo")
    c.nsplane("scale", "deploy", "echo", "--replicas=1")
    survivor = c.wait(lambda: (p := c.ready_pods("app=echo")) and len(p) == 1 and
                      len(c.get("ep", "echo")["subsets"][0]["addresses"]) == 1 and p, 30, "scale to 1")
    name = survivor[0]["metadata"]["name"]
    assert {curl(c, f"http://{ip}/hostname").stdout.strip() for _ in range(8)} == {name}
    c.nsplane("scale", "deploy", "echo", "--replicas=3")
    c.wait_ready("app=echo", 3)
    c.wait(lambda: len(c.get("ep", "echo")["subsets"][0]["addresses"]) == 3, 10, "3 endpoints")
    seen = {curl(c, f"http://{ip}/hostname").stdout.strip() for _ in range(30)}
    assert len(seen) == 3


def test_deleted_pod_never_answers_again(c):
    ip = cluster_ip(c, "echo")
    victim = c.ready_pods("app=echo")[0]["metadata"]["name"]
    c.nsplane("delete", "pod", victim)
    c.wait_ready("app=echo", 3)
    seen = {curl(c, f"http://{ip}/hostname").stdout.strip() for _ in range(30)}
    assert victim not in seen and len(seen) == 3


def test_bad_input_changes_nothing(c):
    before = c.get("svc", "echo")
    too_big = [{**ECHO_PORTS[0], "port": 70000}, ECHO_PORTS[1]]
    r = c.nsplane("apply", "-f", "-", check=False, input=echo_service(ports=too_big))
    assert r.returncode != 0
    assert 'Service "echo" is invalid: spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive' \
        in r.stderr
    assert c.get("svc", "echo")["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    r = c.nsplane("apply", "-f", "-", check=False, input="kind: Service\napiVersion: v1\nmetadata:\n  name: [x\n")
    assert r.returncode != 0 and "line" in r.stderr


def test_restart_keeps_services_and_traffic(c):
    ip = cluster_ip(c, "echo")
    pids = subprocess.run(["pgrep", "-f", "--", f"--config {c.cfg.path}"], capture_output=True, text=True).stdout.split()
    assert pids
    for pid in pids:
        subprocess.run(["kill", "-9", pid])
    c.up()
    assert cluster_ip(c, "echo") == ip
    c.wait(lambda: len({curl(c, f"http://{ip}/hostname").stdout.strip() for _ in range(15)} - {""}) == 3,
           30, "traffic to all 3 pods after restart")
