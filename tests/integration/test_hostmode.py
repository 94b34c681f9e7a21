"""Host mode (nsplane in a VM's own root namespace) without a hypervisor:
namespaces play the VMs.

    nsplane-hv<tag>-lan   the laptop: bridge nsplane-lan 192.168.56.1/24 (VirtualBox's
                          host-only address), plus 203.0.113.1 on lo as "the internet"
    nsplane-hv<tag>-vm1   VM 1: eth1 192.168.56.10/24, default route via the laptop;
                          `nsplane up --host-mode --iface eth1` runs server + agent here
    nsplane-hv<tag>-vm2   VM 2: eth1 192.168.56.11/24; `nsplane join` runs its agent here

Every nsplane command runs inside its VM namespace (nsenter --net), as it would
in the VM's root namespace; the machine's root namespace gets nothing. The
checks are the Service chapter's: ClusterIP from a pod, NodePort and LoadBalancer from
the laptop, DNS, then what only host mode has: pod egress masquerade, an agent
and a server restart that keep traffic flowing, a second VM joining, and a
`down` that leaves the VM's namespace clean.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from agent.api.config import ClusterConfig
from agent.cli import clusterops as cluster
from tests.integration.cluster import REPO, ThrowawayCluster
from tests.integration.manifests import AGNHOST, deployment, documents, netexec, pod, service

pytestmark = pytest.mark.integration

TAG = f"{os.getpid() % 0xffff:04x}"
LAN, VM1, VM2 = (f"nsplane-hv{TAG}-{n}" for n in ("lan", "vm1", "vm2"))
VM1_IP, VM2_IP, LAPTOP_IP, INTERNET_IP = "192.168.56.10", "192.168.56.11", "192.168.56.1", "203.0.113.1"
LB_POOL = "192.168.56.200-192.168.56.203"

APP = documents(
    deployment("web", replicas=2, node="node-1", ports=[80]),
    service("web", type="NodePort", selector={"app": "web"}, ports=[{"port": 80, "targetPort": 80, "nodePort": 30080}]),
    pod("tmp", command=["sleep", "3600"], node_name="node-1"))


def ip(*args: str) -> str:
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"ip {' '.join(args)}: {r.stderr}"
    return r.stdout


def in_ns(ns: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout)


def laptop_curl(url: str, timeout: int = 5) -> subprocess.CompletedProcess:
    return in_ns(LAN, "curl", "-s", "--max-time", str(timeout), url, timeout=timeout + 5)


class HostModeVM(ThrowawayCluster):
    """One "VM": a namespace where nsplane runs in host mode (state in its own dir)."""

    def __init__(self, tmp: str, cluster_name: str, vm_ns: str):
        os.makedirs(tmp, exist_ok=True)
        self.cfg = ClusterConfig(name=cluster_name, state_dir=tmp)
        self.vm, self.tmp = vm_ns, tmp

    def env(self):
        return dict(super().env(), KUBECONFIG=os.path.join(self.tmp, "kubeconfig"))

    def nsplane(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 90) -> subprocess.CompletedProcess:
        argv = ["nsenter", f"--net=/run/netns/{self.vm}", "--", sys.executable, "-m", "agent.cli", *args]
        r = subprocess.run(argv, capture_output=True, text=True, env=self.env(), input=input, timeout=timeout,
                           cwd=REPO)
        if check and r.returncode != 0:
            raise AssertionError(f"nsplane {' '.join(args)} in {self.vm} failed ({r.returncode}):\n"
                                 f"{r.stdout}\n{r.stderr}")
        return r

    def reload(self) -> ClusterConfig:
        if os.path.exists(self.cfg.path):
            self.cfg = ClusterConfig.load(self.cfg.path)
        return self.cfg

    def down(self, purge: bool = True):
        if os.path.exists(self.cfg.path):
            self.nsplane("down", *(["--purge"] if purge else []), check=False)
        # a safety net for a failed `down`: our processes by pidfile, never by name
        for role in ("server", "node-1", "node-2"):
            cluster.stop_role(self.cfg, role)


def make_lan() -> None:
    ip("netns", "add", LAN)
    ip("-n", LAN, "link", "set", "lo", "up")
    ip("-n", LAN, "addr", "add", f"{INTERNET_IP}/32", "dev", "lo")
    ip("-n", LAN, "link", "add", "nsplane-lan", "type", "bridge")
    ip("-n", LAN, "addr", "add", f"{LAPTOP_IP}/24", "dev", "nsplane-lan")
    ip("-n", LAN, "link", "set", "nsplane-lan", "up")


def make_vm(ns: str, address: str, port: str) -> None:
    ip("netns", "add", ns)
    ip("-n", ns, "link", "set", "lo", "up")
    ip("-n", LAN, "link", "add", port, "type", "veth", "peer", "name", "eth1", "netns", ns)
    ip("-n", LAN, "link", "set", port, "master", "nsplane-lan", "up")
    ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth1")
    ip("-n", ns, "link", "set", "eth1", "up")
    ip("-n", ns, "route", "add", "default", "via", LAPTOP_IP)


def remove_namespaces() -> None:
    for ns in (VM2, VM1, LAN):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("hostmode"))
    vm1 = HostModeVM(os.path.join(tmp, "vm1"), f"nsplane-hv{TAG}a", VM1)
    vm2 = HostModeVM(os.path.join(tmp, "vm2"), f"nsplane-hv{TAG}b", VM2)
    internet = None
    try:
        make_lan()
        make_vm(VM1, VM1_IP, "nsplane-vm1")
        make_vm(VM2, VM2_IP, "nsplane-vm2")
        internet = subprocess.Popen(["ip", "netns", "exec", LAN, sys.executable, "-m", "agent.node.workloads.agnhost",
                                     "netexec", "--http-port=8080", "--udp-port=-1"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
                                    env=dict(os.environ, PYTHONPATH=REPO), start_new_session=True)
        out = vm1.nsplane("up", "--host-mode", "--iface", "eth1", "--node-name", "node-1", "--lb-pool", LB_POOL)
        vm1.up_output = out.stdout
        vm1.reload()
        vm1.apply(APP)
        vm1.wait_ready("app=web", 2)
        vm1.wait(lambda: len([p for p in vm1.get("pods", "-n", "kube-system", "-l", "k8s-app=kube-dns")["items"]
                              if any(c["type"] == "Ready" and c["status"] == "True"
                                     for c in p["status"].get("conditions", []))]) == 2, 60, "coredns ready")
        vm1.wait(lambda: vm1.get("pod", "tmp")["status"].get("phase") == "Running", 30, "tmp running")
        yield {"vm1": vm1, "vm2": vm2}
    finally:
        vm2.reload()
        vm2.down()
        vm1.down()
        if internet is not None:
            os.killpg(internet.pid, signal.SIGTERM)
            internet.wait(10)
        remove_namespaces()


def test_the_namespace_is_the_node(lab):
    vm1 = lab["vm1"]
    node = vm1.get("node", "node-1")
    assert {"type": "InternalIP", "address": VM1_IP} in node["status"]["addresses"]
    assert f"{VM1_IP} on eth1" in vm1.up_output
    assert "nsplane join --server https://192.168.56.10:6443" in vm1.up_output
    # no node namespace, no underlay bridge: the pods' veths sit in the VM's namespace
    assert not [n for n in ip("netns", "list").split() if n.startswith(vm1.cfg.name + "-node")]
    links = ip("-n", VM1, "-o", "link")
    assert vm1.cfg.bridge not in links
    pod_ns = f"{vm1.cfg.name}-default-tmp"
    assert pod_ns in links, "a pod's host-side veth (alias = its netns) lives in the VM namespace"
    token = os.path.join(vm1.cfg.dir, "node-token")
    assert os.stat(token).st_mode & 0o777 == 0o600
    assert json.load(open(token))["server"] == f"https://{VM1_IP}:6443"


def test_clusterip_from_a_pod(lab):
    vm1 = lab["vm1"]
    cip = vm1.get("svc", "web")["spec"]["clusterIP"]
    r = vm1.exec("tmp", "curl", "-s", "--max-time", "5", f"http://{cip}")
    assert "Welcome to nginx!" in r.stdout, r.stderr


def test_nodeport_from_the_laptop(lab):
    r = laptop_curl(f"http://{VM1_IP}:30080")
    assert "Welcome to nginx!" in r.stdout, r.stderr
    rules = in_ns(VM1, "iptables-legacy", "-t", "nat", "-S", "KUBE-NODEPORTS").stdout
    assert '"default/web" -m tcp --dport 30080' in rules


def test_dns_from_a_pod(lab):
    vm1 = lab["vm1"]
    cip = vm1.get("svc", "web")["spec"]["clusterIP"]
    r = vm1.exec("tmp", "dig", "+short", "+time=2", "+tries=2", "web.default.svc.cluster.local")
    assert r.stdout.split() == [cip], r.stderr
    r = vm1.exec("tmp", "dig", "+short", "+time=2", "+tries=2", "kubernetes.default.svc.cluster.local")
    assert r.stdout.split() == ["10.96.0.1"]


def test_loadbalancer_from_the_laptop(lab):
    vm1 = lab["vm1"]
    vm1.nsplane("apply", "-f", os.path.join(REPO, "vagrant", "demo", "web-lb.yaml"))
    svc = vm1.wait(lambda: (s := vm1.get("svc", "web")) and s["status"].get("loadBalancer", {}).get("ingress") and s,
                   30, "an EXTERNAL-IP")
    lb_ip = svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    assert lb_ip == "192.168.56.200", "the pool is a range of the VM's private network"
    vm1.wait(lambda: "Welcome to nginx!" in laptop_curl(f"http://{lb_ip}", 2).stdout, 20, "the LB address to answer")
    neigh = ip("-n", LAN, "neigh", "show", lb_ip)
    vm1_mac = ip("-n", VM1, "-o", "link", "show", "eth1").split("link/ether ")[1].split()[0]
    assert vm1_mac in neigh, "the VM's eth1 answered ARP for the LoadBalancer address"


def test_pod_egress_masquerade_is_opt_in(lab):
    vm1 = lab["vm1"]
    url = f"http://{INTERNET_IP}:8080/clientip"
    off = vm1.exec("tmp", "curl", "-s", "--max-time", "3", url)
    assert off.returncode != 0, "without --masquerade-egress a pod's source address cannot come back"
    vm1.nsplane("up", "--masquerade-egress")
    on = vm1.exec("tmp", "curl", "-s", "--max-time", "5", url)
    assert on.stdout.split(":")[0] == VM1_IP, (on.stdout, on.stderr)
    nat = in_ns(VM1, "iptables-legacy", "-t", "nat", "-S", "NSPLANE-EGRESS").stdout
    assert "-j MASQUERADE" in nat
    vm1.nsplane("up", "--no-masquerade-egress")
    assert "NSPLANE-EGRESS" not in in_ns(VM1, "iptables-legacy-save", "-t", "nat").stdout
    assert vm1.exec("tmp", "curl", "-s", "--max-time", "3", url).returncode != 0


class Prober:
    """curl the NodePort from the laptop in a loop; count answers and failures."""

    def __init__(self, url: str):
        self.url, self.ok, self.failed = url, 0, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        for _ in range(3000):    # bounded: at most ~10 minutes
            if self.stop.is_set():
                return
            r = laptop_curl(self.url, 2)
            if "Welcome to nginx!" in r.stdout:
                self.ok += 1
            else:
                self.failed.append(time.strftime("%X"))
            time.sleep(0.1)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(15)


def pods_state(vm):
    return {p["metadata"]["name"]: (p["metadata"]["uid"], p["status"].get("podIP"))
            for p in vm.get("pods")["items"]}


def container_pids(vm):
    return sorted(pid for pid, ticks in cluster.container_pids(vm.cfg))


@pytest.mark.parametrize("role", ["node-1", "server"])
def test_restart_keeps_pods_and_traffic(lab, role):
    """What `systemctl restart nsplane-agent|nsplane-server` does: the process
    stops and starts again; pods, their IPs and the traffic stay."""
    vm1 = lab["vm1"]
    before, pids = pods_state(vm1), container_pids(vm1)
    with Prober(f"http://{VM1_IP}:30080") as probe:
        time.sleep(0.5)
        assert cluster.stop_role(vm1.cfg, role), f"{role} was not running"
        time.sleep(2)          # traffic must flow while the process is gone
        vm1.nsplane("up")
        time.sleep(1)
    assert probe.ok > 10 and probe.failed == [], f"{probe.ok} answers, failures at {probe.failed}"
    assert cluster.running_pid(vm1.cfg, role)
    assert pods_state(vm1) == before
    assert container_pids(vm1) == pids, "the containers were adopted, not restarted"
    assert all(cluster.proc_start_time(p) for p in pids)


FAR = pod("far", image=AGNHOST, args=netexec(8080), readiness=("/healthz", 8080), labels={"app": "far"},
          node_name="node-2")


def test_second_vm_joins(lab):
    vm1, vm2 = lab["vm1"], lab["vm2"]
    token = os.path.join(vm1.cfg.dir, "node-token")
    out = vm2.nsplane("join", "--server", f"https://{VM1_IP}:6443", "--token-file", token, "--iface", "eth1",
                      "--node-name", "node-2").stdout
    assert f"node node-2 (InternalIP {VM2_IP} on eth1) joined https://{VM1_IP}:6443" in out
    vm2.reload()
    nodes = {n["metadata"]["name"]: n for n in vm1.get("nodes")["items"]}
    assert set(nodes) == {"node-1", "node-2"}
    assert {"type": "InternalIP", "address": VM2_IP} in nodes["node-2"]["status"]["addresses"]
    vm1.apply(FAR)
    far = vm1.wait_ready("app=far", 1)[0]
    assert far["status"]["hostIP"] == VM2_IP
    # pod to pod across the "VMs": routed via node-2's InternalIP on the shared network
    r = vm1.exec("tmp", "curl", "-s", "--max-time", "5", f"http://{far['status']['podIP']}:8080/hostname")
    assert r.stdout == "far", r.stderr
    # the joined kubelet serves the API server with a certificate it got through a CSR: VM 2 has no CA key
    assert "Started HTTP server on port 8080" in vm1.nsplane("logs", "far").stdout
    assert os.path.exists(vm2.cfg.ca_file) and not os.path.exists(os.path.join(vm2.cfg.pki_dir, "ca.key"))
    assert os.path.exists(os.path.join(vm2.cfg.dir, "nodes", "node-2", "pki", "kubelet-server-current.pem"))
    routes = ip("-n", VM1, "route", "show", "proto", "78")
    assert f"{nodes['node-2']['spec']['podCIDR']} via {VM2_IP} dev eth1" in routes
    # the NodePort answers on both VMs; the web pods all run on node-1
    vm1.wait(lambda: "Welcome to nginx!" in laptop_curl(f"http://{VM2_IP}:30080", 2).stdout, 20,
             "the NodePort on VM 2")
    assert '"default/web" -m tcp --dport 30080' in in_ns(VM2, "iptables-legacy", "-t", "nat", "-S",
                                                          "KUBE-NODEPORTS").stdout
    assert "Welcome to nginx!" in laptop_curl(f"http://{VM1_IP}:30080").stdout


def test_down_leaves_the_vms_clean(lab):
    vm1, vm2 = lab["vm1"], lab["vm2"]
    pods = [f"{vm2.cfg.name}-default-far", f"{vm1.cfg.name}-default-tmp"]
    vm2.nsplane("down", "--purge")
    vm1.nsplane("down", "--purge")
    for vm in (VM1, VM2):
        saved = in_ns(vm, "iptables-legacy-save").stdout
        assert "KUBE-" not in saved and "NSPLANE-" not in saved, saved
        assert "nsplane-svc" not in ip("-n", vm, "-o", "link")
        assert ip("-n", vm, "route", "show", "proto", "78") == ""
        assert ip("-n", vm, "-o", "addr", "show", "eth1").count("inet ") == 1, "eth1 keeps its address"
    netns = ip("netns", "list")
    assert not [p for p in pods if p in netns]
    assert laptop_curl(f"http://{VM1_IP}:30080", 2).returncode != 0


def test_provisioning_is_idempotent():
    """After provision.sh ran (CI runs this suite through `provision.sh test`),
    `provision.sh check` finds nothing left to change."""
    stamp = os.path.join(os.environ.get("NSPLANE_VENV", "/opt/nsplane/venv"), ".nsplane-installed")
    try:
        installed_from = open(stamp).read().strip().split(":", 1)[1]
    except (OSError, IndexError):
        pytest.skip("this machine was not set up by vagrant/provision.sh")
    if installed_from != REPO:
        pytest.skip(f"the venv was installed by provision.sh from another checkout ({installed_from})")
    r = subprocess.run(["bash", os.path.join(REPO, "vagrant", "provision.sh"), "check"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "nothing to do" in r.stdout
