"""Nodes and pods on the real kernel, in throwaway namespaces only.

Topology: a "host" namespace nsplane-hn-host holds the underlay bridge (so the
machine's root namespace is never touched), two node namespaces sit on it, and
pods hang off each node by routed veths. Covered: node setup and pod routes
(idempotent, only their own, no unreachable next hop), a pod's network shape,
the repair of a half-made pod, a foreign link left alone, pod setup from
inside the node namespace as the agent does it, teardown, no route off the
cluster, and the sweep that removes exactly one cluster's namespaces, links
and files. Traffic is checked with the built-in agnhost workload running
inside pods (HTTP and UDP, same node and across nodes), which also proves the
pod's UTS hostname.
"""

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time

import pytest

from agent.node.workloads import python_module
from dataplane import cleanup, names, netns, node, podnet, uts

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces"),
]

HOST = "nsplane-hn-host"
BRIDGE = "nsplanehnbr0"
UNDERLAY_HOST = "172.28.0.1/24"
POD_CIDRS = {1: ("10.244.0.0/24", "10.244.0.1"), 2: ("10.244.1.0/24", "10.244.1.1")}


def node_ip(k: int) -> str:
    return f"172.28.0.{10 + k}"


def root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True,
                         text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


class Topology:
    """Two nodes on a bridge in a throwaway host namespace."""

    def __init__(self, tmp_path):
        self.cluster = f"nsplane-hn-t{secrets.token_hex(3)}"
        self.uts_dir = str(tmp_path / "uts")
        self.nodes = {k: names.node_netns(self.cluster, f"node-{k}") for k in (1, 2)}
        self.procs: list[subprocess.Popen] = []

    def build(self):
        netns.delete(HOST)
        netns.create(HOST)
        node.ensure_bridge(BRIDGE, UNDERLAY_HOST, host_netns=HOST, alias=self.cluster)
        for k, ns in self.nodes.items():
            node.setup_node(ns, BRIDGE, f"nsplanehnn{k}", f"{node_ip(k)}/24",
                            host_netns=HOST)
        node.set_pod_routes(self.nodes[1], {POD_CIDRS[2][0]: node_ip(2)})
        node.set_pod_routes(self.nodes[2], {POD_CIDRS[1][0]: node_ip(1)})

    def pod(self, k: int, name: str, ip: str, host_if: str) -> str:
        pod_ns = names.pod_netns(self.cluster, "default", name)
        podnet.setup_pod(pod_ns, host_if, ip, POD_CIDRS[k][1],
                         node_netns=self.nodes[k], label=f"default/{name}")
        uts.ensure(uts.uts_path(self.uts_dir, pod_ns), name)
        return pod_ns

    def start_agnhost(self, pod_ns: str, http_port=8080, udp_port=8081):
        argv = python_module("agnhost", "netexec", f"--http-port={http_port}",
                             f"--udp-port={udp_port}")
        proc = subprocess.Popen(
            netns.exec_argv(pod_ns, argv, uts=uts.uts_path(self.uts_dir, pod_ns)),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        return proc

    def stop_processes(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        self.procs.clear()

    def destroy(self) -> cleanup.Swept:
        self.stop_processes()
        try:
            return cleanup.sweep(self.cluster, uts_dir=self.uts_dir, host_netns=HOST)
        finally:
            netns.delete(HOST)
            shutil.rmtree(self.uts_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def topo(tmp_path_factory):
    before = root_links()
    t = Topology(tmp_path_factory.mktemp("nsplane-hn"))
    try:
        t.build()
        yield t
    finally:
        t.destroy()
    assert root_links() == before, "the root namespace's links changed"


def curl(pod_ns: str, url: str, timeout: int = 5) -> subprocess.CompletedProcess:
    return netns.run(pod_ns, ["curl", "-sS", "--max-time", str(timeout), url],
                     timeout=timeout + 5)


def wait_http(pod_ns: str, url: str, deadline: float = 15.0) -> str:
    end = time.monotonic() + deadline
    last = None
    while time.monotonic() < end:
        last = curl(pod_ns, url, timeout=2)
        if last.returncode == 0:
            return last.stdout
        time.sleep(0.1)
    raise AssertionError(f"{url} from {pod_ns}: {last.stderr if last else 'no try'}")


def udp_ask(pod_ns: str, ip: str, port: int, msg: str) -> str:
    """One datagram from `pod_ns` to ip:port and the answer (3 s at most)."""
    with netns.entered(pod_ns):     # a socket belongs to the namespace it is made in
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.settimeout(3)
        sock.sendto(msg.encode(), (ip, port))
        return sock.recv(2048).decode()


# ---- nodes -------------------------------------------------------------------

def test_nodes_are_on_the_bridge_and_forward(topo):
    for k, ns in topo.nodes.items():
        assert netns.exists(ns)
        assert netns.sysctl_get(ns, "net.ipv4.ip_forward") == "1"
        out = netns.run(ns, ["ip", "-4", "-o", "addr", "show", "eth0"]).stdout
        assert f"{node_ip(k)}/24" in out
        routes = netns.run(ns, ["ip", "route", "show", "default"]).stdout
        assert routes.strip() == "", "a node must not get a default route unless told"
    bridge_ports = netns.run(HOST, ["ip", "-o", "link", "show", "master", BRIDGE]).stdout
    assert "nsplanehnn1" in bridge_ports and "nsplanehnn2" in bridge_ports


def test_setup_node_is_idempotent(topo):
    node.setup_node(topo.nodes[1], BRIDGE, "nsplanehnn1", f"{node_ip(1)}/24", host_netns=HOST)
    out = netns.run(topo.nodes[1], ["ip", "-4", "-o", "addr", "show", "eth0"]).stdout
    assert out.count("inet ") == 1


def test_setup_node_needs_the_bridge(topo):
    with pytest.raises(node.NodeNetworkError, match="call ensure_bridge first"):
        node.setup_node(topo.nodes[1], "nsplanehnnone", "nsplanehnn1",
                        f"{node_ip(1)}/24", host_netns=HOST)


def test_set_pod_routes_replaces_only_its_own(topo):
    ns = topo.nodes[1]
    try:
        added, removed = node.set_pod_routes(ns, {"10.244.1.0/24": node_ip(2),
                                                  "10.244.7.0/24": node_ip(2)})
        assert added == ["10.244.7.0/24"] and removed == []
        added, removed = node.set_pod_routes(ns, {"10.244.1.0/24": node_ip(2)})
        assert (added, removed) == ([], ["10.244.7.0/24"])
        assert node.pod_routes(ns) == {"10.244.1.0/24": node_ip(2)}
        assert "172.28.0.0/24" in netns.run(ns, ["ip", "route"]).stdout
    finally:
        node.set_pod_routes(ns, {"10.244.1.0/24": node_ip(2)})


def test_set_pod_routes_rejects_unreachable_next_hop(topo):
    with pytest.raises(node.NodeNetworkError, match="10.9.9.9"):
        node.set_pod_routes(topo.nodes[1], {"10.244.1.0/24": node_ip(2),
                                            "10.244.9.0/24": "10.9.9.9"})
    node.set_pod_routes(topo.nodes[1], {"10.244.1.0/24": node_ip(2)})


# ---- pods --------------------------------------------------------------------

def test_pod_network_shape_and_idempotence(topo):
    pod_ns = topo.pod(1, "shape-a", "10.244.0.20", "nsplanehnps")
    try:
        node_ns = topo.nodes[1]
        podnet.setup_pod(pod_ns, "nsplanehnps", "10.244.0.20", "10.244.0.1",
                         node_netns=node_ns)  # second run: a no-op
        assert podnet.pod_ip_of(pod_ns) == "10.244.0.20"
        assert podnet.healthy(pod_ns, "nsplanehnps", "10.244.0.20", "10.244.0.1",
                              node_netns=node_ns)
        addrs = netns.run(pod_ns, ["ip", "-4", "-o", "addr", "show", "eth0"]).stdout
        assert "inet 10.244.0.20/32" in addrs and addrs.count("inet ") == 1
        routes = netns.run(pod_ns, ["ip", "route"]).stdout
        assert "default via 10.244.0.1 dev eth0" in routes
        assert "10.244.0.1 dev eth0" in routes
        assert "UP" in netns.run(pod_ns, ["ip", "link", "show", "lo"]).stdout
        node_routes = netns.run(node_ns, ["ip", "route"]).stdout
        assert "10.244.0.20 dev nsplanehnps" in node_routes
        assert netns.sysctl_get(node_ns, "net.ipv4.conf.nsplanehnps.proxy_arp") == "0"
        assert uts.hostname_of(uts.uts_path(topo.uts_dir, pod_ns)) == "shape-a"
    finally:
        podnet.teardown_pod(pod_ns, "nsplanehnps", node_netns=topo.nodes[1])


def test_half_made_pod_is_repaired(topo):
    node_ns = topo.nodes[1]
    pod_ns = topo.pod(1, "repair-a", "10.244.0.21", "nsplanehnpr")
    try:
        netns.run(pod_ns, ["ip", "route", "del", "default"])
        netns.run(node_ns, ["ip", "addr", "del", "10.244.0.1/32", "dev", "nsplanehnpr"])
        assert not podnet.healthy(pod_ns, "nsplanehnpr", "10.244.0.21", "10.244.0.1",
                                  node_netns=node_ns)
        podnet.setup_pod(pod_ns, "nsplanehnpr", "10.244.0.21", "10.244.0.1", node_netns=node_ns)
        assert podnet.healthy(pod_ns, "nsplanehnpr", "10.244.0.21", "10.244.0.1",
                              node_netns=node_ns)
        netns.run(pod_ns, ["ip", "link", "del", "eth0"])  # takes the node end too
        assert podnet.pod_ip_of(pod_ns) is None
        podnet.setup_pod(pod_ns, "nsplanehnpr", "10.244.0.21", "10.244.0.1", node_netns=node_ns)
        assert podnet.healthy(pod_ns, "nsplanehnpr", "10.244.0.21", "10.244.0.1",
                              node_netns=node_ns)
    finally:
        podnet.teardown_pod(pod_ns, "nsplanehnpr", node_netns=node_ns)


def test_foreign_link_with_the_pods_name_is_left_alone(topo):
    node_ns = topo.nodes[1]
    netns.run(node_ns, ["ip", "link", "add", "nsplanehnpx", "type", "veth",
                        "peer", "name", "nsplanehnpy"])
    pod_ns = names.pod_netns(topo.cluster, "default", "clash-a")
    try:
        with pytest.raises(podnet.PodNetworkError) as err:
            podnet.setup_pod(pod_ns, "nsplanehnpx", "10.244.0.22", "10.244.0.1",
                             node_netns=node_ns, label="default/clash-a")
        text = str(err.value)
        assert text.startswith("pod default/clash-a")
        assert "nsplanehnpx already exists" in text and "ip link del nsplanehnpx" in text
        assert "nsplanehnpx" in netns.run(node_ns, ["ip", "link"]).stdout
    finally:
        netns.delete_link(node_ns, "nsplanehnpx")
        netns.delete(pod_ns)


def test_setup_pod_from_inside_the_node_like_the_agent(topo):
    """The agent runs in the node netns (nsenter --net, root mount namespace);
    here this thread enters it, and the node side is "the current namespace"."""
    node_ns = topo.nodes[1]
    pod_ns = names.pod_netns(topo.cluster, "default", "inside-a")
    try:
        with netns.entered(node_ns):
            podnet.setup_pod(pod_ns, "nsplanehnpn", "10.244.0.23", "10.244.0.1", label="default/inside-a")
            podnet.setup_pod(pod_ns, "nsplanehnpn", "10.244.0.23", "10.244.0.1", label="default/inside-a")
            with pytest.raises(podnet.PodNetworkError) as err:
                podnet.setup_pod(pod_ns, "lo", "10.244.0.23", "10.244.0.1", label="default/inside-a")
        assert str(err.value).startswith(f"pod default/inside-a on node {node_ns}: link lo")
        assert podnet.healthy(pod_ns, "nsplanehnpn", "10.244.0.23", "10.244.0.1",
                              node_netns=node_ns)
        assert curl(pod_ns, "http://10.244.0.1:1/").returncode == 7  # refused: routed
    finally:
        podnet.teardown_pod(pod_ns, "nsplanehnpn", node_netns=node_ns)


def test_teardown_clears_the_nodes_conntrack_entries_of_the_pod(topo):
    """Entries the node holds for a pod that is gone would steer a reused
    source port to its address (dataplane/conntrack.py); teardown drops them."""
    node_ns = topo.nodes[1]
    pod_ns = topo.pod(1, "tracked", "10.244.0.40", "nsplanehnpt")
    track = ["iptables-legacy", "-t", "filter", "-A", "OUTPUT", "-m", "conntrack", "--ctstate", "NEW",
             "-m", "comment", "--comment", "nsplane test: conntrack on", "-j", "ACCEPT"]
    assert netns.run(node_ns, track).returncode == 0
    try:
        server = subprocess.Popen(netns.exec_argv(pod_ns, [sys.executable, "-c", (
            "import socket, time; s = socket.socket(); s.bind(('0.0.0.0', 8080)); s.listen(); "
            "c, _ = s.accept(); time.sleep(3)")]))
        try:
            wait_http_port = time.monotonic() + 10
            while netns.run(node_ns, ["curl", "-sS", "--max-time", "1", "http://10.244.0.40:8080/"]).returncode == 7 \
                    and time.monotonic() < wait_http_port:      # 7: not listening yet; 28: connected, no answer
                time.sleep(0.1)
        finally:
            server.wait(timeout=10)
        listed = lambda: netns.run(node_ns, ["conntrack", "-L", "--reply-src", "10.244.0.40"]).stdout  # noqa: E731
        assert "10.244.0.40" in listed()
        removed = podnet.teardown_pod(pod_ns, "nsplanehnpt", node_netns=node_ns)
        assert "conntrack entries of 10.244.0.40" in removed
        assert "10.244.0.40" not in listed()
    finally:
        podnet.teardown_pod(pod_ns, "nsplanehnpt", node_netns=node_ns)
        netns.run(node_ns, ["iptables-legacy", "-t", "filter", "-D", *track[4:]])


def test_teardown_is_idempotent(topo):
    node_ns = topo.nodes[2]
    pod_ns = topo.pod(2, "gone-b", "10.244.1.30", "nsplanehnpg")
    removed = podnet.teardown_pod(pod_ns, "nsplanehnpg", node_netns=node_ns)
    assert removed == ["link nsplanehnpg", f"netns {pod_ns}"]
    assert podnet.teardown_pod(pod_ns, "nsplanehnpg", node_netns=node_ns) == []
    assert not netns.exists(pod_ns)
    assert "10.244.1.30" not in netns.run(node_ns, ["ip", "route"]).stdout
    assert podnet.pod_ip_of(pod_ns) is None
    assert uts.remove(uts.uts_path(topo.uts_dir, pod_ns))
    assert not uts.is_mounted(uts.uts_path(topo.uts_dir, pod_ns))


def test_traffic_same_node_and_across_nodes(topo):
    a1 = topo.pod(1, "web-a1", "10.244.0.5", "nsplanehnpa1")
    a2 = topo.pod(1, "web-a2", "10.244.0.6", "nsplanehnpa2")
    b1 = topo.pod(2, "web-b1", "10.244.1.5", "nsplanehnpb1")
    try:
        topo.start_agnhost(a2)
        topo.start_agnhost(b1)
        # same node, pod -> pod: hostname is the pod name (its UTS namespace)
        assert wait_http(a1, "http://10.244.0.6:8080/hostname") == "web-a2"
        # across nodes via the pod-CIDR routes; the source IP is kept (no NAT)
        assert wait_http(a1, "http://10.244.1.5:8080/hostname") == "web-b1"
        client = curl(a1, "http://10.244.1.5:8080/clientip").stdout
        assert client.startswith("10.244.0.5:")
        # UDP across nodes and the node itself reaching its pod
        assert udp_ask(a1, "10.244.1.5", 8081, "hostname") == "web-b1"
        assert udp_ask(a1, "10.244.1.5", 8081, "echo Routed") == "routed"
        assert curl(topo.nodes[1], "http://10.244.0.6:8080/hostname").stdout == "web-a2"
        # a pod's own hostname, seen by a shell in it
        hostname = netns.run(a1, ["hostname"], uts=uts.uts_path(topo.uts_dir, a1))
        assert hostname.stdout.strip() == "web-a1"
    finally:
        topo.stop_processes()
        for pod_ns, host_if, k in ((a1, "nsplanehnpa1", 1), (a2, "nsplanehnpa2", 1),
                                   (b1, "nsplanehnpb1", 2)):
            podnet.teardown_pod(pod_ns, host_if, node_netns=topo.nodes[k])


def test_no_route_off_the_cluster(topo):
    pod_ns = topo.pod(1, "island-a", "10.244.0.40", "nsplanehnpi")
    try:
        out = netns.run(pod_ns, ["ip", "route", "get", "8.8.8.8"])
        assert "via 10.244.0.1" in out.stdout  # to its node, which has no way out
        node_out = netns.run(topo.nodes[1], ["ip", "route", "get", "8.8.8.8"])
        assert node_out.returncode != 0 and "unreachable" in node_out.stderr
    finally:
        podnet.teardown_pod(pod_ns, "nsplanehnpi", node_netns=topo.nodes[1])


# ---- sweep -------------------------------------------------------------------

def test_sweep_removes_everything_of_its_cluster_only(tmp_path):
    before = root_links()
    other = Topology(tmp_path)  # its own cluster and bridge, in the shared host ns
    bridge = names.bridge_name(other.cluster)
    created_host = False
    try:
        if not netns.exists(HOST):
            netns.create(HOST)
            created_host = True
        node.ensure_bridge(bridge, "172.29.0.1/24", host_netns=HOST, alias=other.cluster)
        node_ns = other.nodes[1]
        node.setup_node(node_ns, bridge, "nsplanehnsw1", "172.29.0.11/24", host_netns=HOST)
        pod_ns = names.pod_netns(other.cluster, "default", "sweep-me")
        podnet.setup_pod(pod_ns, "nsplanehnsw2", "10.244.0.9", "10.244.0.1", node_netns=node_ns)
        uts_file = uts.uts_path(other.uts_dir, pod_ns)
        uts.ensure(uts_file, "sweep-me")
        etc = tmp_path / "etc-netns"
        (etc / pod_ns).mkdir(parents=True)
        (etc / pod_ns / "resolv.conf").write_text("nameserver 10.96.0.10\n")
        (etc / "not-ours").mkdir()

        swept = cleanup.sweep(other.cluster, uts_dir=other.uts_dir, host_netns=HOST,
                              etc_dir=str(etc))
        assert set(swept.netns) == {node_ns, pod_ns}
        assert set(swept.links) == {"nsplanehnsw1", bridge}
        assert swept.uts_files == [uts_file]
        assert swept.etc_dirs == [str(etc / pod_ns)]
        assert f"netns {pod_ns}" in swept.lines()
        assert netns.list_names(names.netns_prefix(other.cluster)) == []
        assert not uts.is_mounted(uts_file) and not os.path.exists(uts_file)
        assert (etc / "not-ours").is_dir()
        host_links = netns.run(HOST, ["ip", "-o", "link"]).stdout
        assert bridge not in host_links and "nsplanehnsw1" not in host_links
        assert not cleanup.sweep(other.cluster, uts_dir=other.uts_dir, host_netns=HOST,
                                 etc_dir=str(etc))  # idempotent: nothing left
    finally:
        cleanup.sweep(other.cluster, uts_dir=other.uts_dir, host_netns=HOST)
        if created_host:
            netns.delete(HOST)
    assert root_links() == before
