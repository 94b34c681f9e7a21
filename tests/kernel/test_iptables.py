"""dataplane.iptables, the applier and the proxier on the real kernel, in throwaway netns.

Rules are rendered and applied, read back, broken by "someone else" (flushed
chains, foreign rules) and repaired; then real TCP traffic crosses a node
namespace between pod namespaces: DNAT to the endpoint with the client's
address kept, REJECT for a Service without endpoints, the tree layout above
its threshold, the large-cluster layout's hairpin, and no lost connection
while a Service's only endpoint comes and goes.

The code under test runs in this process, on the calling thread, inside the
namespace (`netns.entered`): the iptables-legacy-restore it starts inherits
that namespace, and a socket belongs to the namespace it was made in, so the
test servers and clients are threads and sockets of this process too.
Every applier here runs in verify mode: after each apply it reads the tables
back and raises if the kernel does not hold what was written.
Namespaces (and with them their veths and rules) are removed on every exit
path, and every server thread is stopped.
"""
from __future__ import annotations

import collections
import os
import socket
import subprocess
import threading
import time
from contextlib import ExitStack, contextmanager

import pytest

from agent.node.proxy.proxier import Proxier
from dataplane import conntrack, iptables, netns, rules
from dataplane.applier import Applier
from dataplane.model import Endpoint, NodeInfo, ServicePort

pytestmark = [pytest.mark.kernel,
              # python-iptables' own regular expressions, compiled on its first import here
              pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")]

PREFIX = "nsplane-hp"
NODE = NodeInfo("node-a", "10.244.0.0/16", ("192.168.50.2",))

if os.geteuid() != 0:
    pytest.skip("kernel tests need root", allow_module_level=True)


def sh(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout)


@contextmanager
def scratch_netns(name: str):
    assert name.startswith(PREFIX)
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


def save(ns: str, table: str) -> str:
    return sh("ip", "netns", "exec", ns, "iptables-legacy-save", "-t", table).stdout


def release_table_handles() -> None:
    """python-iptables keeps one libiptc handle per table, and with it a socket
    of the namespace it last read; let go of them so that namespace can go."""
    import iptc

    for table in iptables.CANARY_TABLES:
        iptc.Table(table).close()


WEB = ServicePort("default", "web", "http", "TCP", "10.96.0.20", 80, node_port=30080)
API = ServicePort("default", "api", "", "TCP", "10.96.0.30", 443, load_balancer_ips=("1.2.3.4",),
                  load_balancer_source_ranges=("203.0.113.0/24",), node_port=30443)
DNS = ServicePort("kube-system", "kube-dns", "dns", "UDP", "10.96.0.10", 53)
FULL = {WEB: [Endpoint("10.244.0.5", 8080), Endpoint("10.244.1.5", 8080)],
        API: [Endpoint("10.244.0.7", 6443)], DNS: []}
SMALLER = {WEB: [Endpoint("10.244.0.5", 8080)]}


def test_apply_readback_stale_chains_canary_and_cleanup():
    with scratch_netns(f"{PREFIX}-ipt") as ns:
        # Someone else's rules, which we must never touch.
        sh("ip", "netns", "exec", ns, "iptables-legacy", "-N", "OTHER-CHAIN")
        sh("ip", "netns", "exec", ns, "iptables-legacy", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
        sh("ip", "netns", "exec", ns, "iptables-legacy", "-t", "nat", "-A", "POSTROUTING", "-o", "lo", "-j", "RETURN")

        with netns.entered(ns):
            applier = Applier(verify="raise")
            applier.apply(rules.render(FULL, NODE))
            applier.apply(rules.render(FULL, NODE), full=True)   # idempotent: jump rules stay single
            full_chains = sorted(rules.render(FULL, NODE).chains["nat"])
            assert not applier.canary_missing()
        nat = save(ns, "nat")
        for chain in full_chains:
            assert f":{chain} - " in nat
        assert '-A KUBE-SERVICES -d 10.96.0.20/32 -p tcp -m comment --comment "default/web:http cluster IP" ' \
               "-m tcp --dport 80 -j KUBE-SVC-" in nat
        assert "-j DNAT --to-destination 10.244.1.5:8080" in nat
        assert "-j MASQUERADE --random-fully" in nat
        assert nat.count('-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES') == 1
        assert nat.count('-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING') == 1
        filt = save(ns, "filter")
        assert '"kube-system/kube-dns:dns has no endpoints" -m udp --dport 53 -j REJECT' in filt
        assert filt.count("-A FORWARD -m conntrack --ctstate NEW -m comment --comment "
                          '"kubernetes service portals" -j KUBE-SERVICES') == 1
        assert ":KUBE-PROXY-CANARY" in save(ns, "mangle")

        # A smaller ruleset: chains of the deleted Services and endpoints go away.
        with netns.entered(ns):
            Applier(verify="raise").apply(rules.render(SMALLER, NODE))
        kept = set(rules.render(SMALLER, NODE).chains["nat"])
        nat = save(ns, "nat")
        ours = {line[1:].split()[0] for line in nat.splitlines() if line.startswith(":KUBE-")}
        assert ours == kept | {"KUBE-PROXY-CANARY"}
        assert "10.96.0.30" not in nat and "10.244.1.5" not in nat

        # Someone flushes and deletes every nat chain: the canary notices, a resync repairs.
        sh("ip", "netns", "exec", ns, "iptables-legacy", "-t", "nat", "-F")
        sh("ip", "netns", "exec", ns, "iptables-legacy", "-t", "nat", "-X")
        sh("ip", "netns", "exec", ns, "iptables-legacy", "-t", "nat", "-A", "POSTROUTING", "-o", "lo", "-j", "RETURN")
        with netns.entered(ns):
            applier = Applier(verify="raise")
            try:
                assert applier.canary_missing()
                applier.apply(rules.render(SMALLER, NODE))
                before = iptables.tables_fingerprint()
                assert not applier.canary_missing()  # nothing written since: answered from the fingerprint
                sh("iptables-legacy", "-t", "filter", "-A", "INPUT", "-i", "lo", "-j", "ACCEPT")
                # someone else's rule: the fingerprint changes and the canaries are read back
                assert iptables.tables_fingerprint() != before
                assert not applier.canary_missing()
                sh("iptables-legacy", "-t", "nat", "-F", "KUBE-SERVICES")
                sh("iptables-legacy", "-t", "nat", "-X", "KUBE-PROXY-CANARY")
                assert applier.canary_missing()
            finally:
                release_table_handles()
        assert "--to-destination 10.244.0.5:8080" in save(ns, "nat")

        # Errors name the failing line.
        bad = rules.Ruleset({"filter": {"KUBE-SERVICES": ("-A KUBE-SERVICES -m nosuchmatch -j ACCEPT",)}, "nat": {}})
        with netns.entered(ns), pytest.raises(iptables.IptablesRestoreError) as err:
            Applier(verify="raise").apply(bad)
        assert "nosuchmatch" in err.value.line

        # conntrack cleanup tolerates "0 flow entries".
        with netns.entered(ns):
            assert conntrack.clear_udp("10.96.0.10", 53, "10.244.0.9") == 0
            assert conntrack.clear_udp_node_port(30053) == 0

            iptables.cleanup()
            iptables.cleanup()
        everything = save(ns, "nat") + save(ns, "filter") + save(ns, "mangle")
        assert "KUBE-" not in everything
        assert ":OTHER-CHAIN - [0:0]" in everything
        assert "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT" in everything
        assert "-A POSTROUTING -o lo -j RETURN" in everything


def test_verify_mode_reports_a_chain_the_kernel_holds_differently(caplog):
    """Someone edits one of our chains; a partial sync does not rewrite it.
    Verify mode notices (raise in tests, log in production), and its second,
    full write leaves the kernel as rendered."""
    edit = ("iptables-legacy", "-t", "filter", "-A", "KUBE-FORWARD", "-j", "RETURN")
    with scratch_netns(f"{PREFIX}-vfy") as ns, netns.entered(ns):
        try:
            applier = Applier(verify="raise")
            applier.apply(rules.render(FULL, NODE))
            sh(*edit)
            with pytest.raises(iptables.IptablesError) as err:
                applier.apply(rules.render(SMALLER, NODE))   # partial: KUBE-FORWARD unchanged, not written
            (problem,) = err.value.problems
            assert problem.splitlines()[:2] == ["--- filter KUBE-FORWARD after the apply",
                                                "+++ filter KUBE-FORWARD written again in full"]
            assert "-A KUBE-FORWARD -j RETURN" in problem
            assert applier.written is None
            sh(*edit)
            logged = Applier(verify="log")
            logged.apply(rules.render(FULL, NODE))            # full: rewrites it, nothing to report
            sh(*edit)
            with caplog.at_level("ERROR"):
                logged.apply(rules.render(SMALLER, NODE))     # logged, not raised
            assert "iptables verify: the kernel does not hold what was written:" in caplog.text
            assert logged.written is not None
            assert "-A KUBE-FORWARD -j RETURN" not in save(ns, "filter")
            iptables.cleanup()
        finally:
            release_table_handles()


# ---------------------------------------------------------------- real traffic

def service(name: str, cluster_ip: str, target_port: int | None = 8080, node_port: int | None = None) -> dict:
    """A Service as the informer hands it to the proxier: port 80 to `target_port`."""
    port: dict = {"port": 80}
    if target_port:
        port["targetPort"] = target_port
    if node_port:
        port["nodePort"] = node_port
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "NodePort" if node_port else "ClusterIP", "clusterIP": cluster_ip, "ports": [port]}}


def endpoint_slice(service_name: str, ips: list[str], port: int = 8080, node: str | None = "node-a",
                   name: str | None = None) -> dict:
    """An EndpointSlice of ready endpoints `ips` (on `node`, when given)."""
    on_node = {"nodeName": node} if node else {}
    return {"metadata": {"name": name or f"{service_name}-x", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4", "ports": [{"name": "", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}, **on_node} for ip in ips]}


def sync(node: str, proxier: Proxier):
    """One proxier sync, written into `node`'s namespace."""
    with netns.entered(node):
        return proxier.sync_once()


def cleanup(node: str) -> None:
    with netns.entered(node):
        iptables.cleanup()


@contextmanager
def tcp_server(pod: str, port: int):
    """A TCP server in `pod` that answers each connection with "hello <client
    address>": its listening socket is made in the pod's namespace, and a
    thread of this process serves it until the block ends."""
    with netns.entered(pod):
        srv = socket.socket()
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, peer = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.sendall(f"hello {peer[0]}\n".encode())

    with srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("0.0.0.0", port))
        srv.listen(128)
        srv.settimeout(0.2)
        thread = threading.Thread(target=serve, name=f"{pod}:{port}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)


def client(pod: str, ip: str, port: int) -> str:
    """Connect from `pod` to ip:port: the server's greeting, "refused <seconds>"
    or "error <why>"."""
    with netns.entered(pod):
        sock = socket.socket()
    with sock:
        sock.settimeout(5)
        start = time.monotonic()
        try:
            sock.connect((ip, port))
            return sock.recv(100).decode().strip()
        except ConnectionRefusedError:
            return f"refused {time.monotonic() - start:.3f}"
        except OSError as err:
            return f"error {err}"


def add_pod(node: str, pod: str, host_if: str, ip: str) -> None:
    """A routed pod: veth with one end as eth0 in `pod`, /32 routes both ways."""
    run = lambda *a: sh("ip", *a)  # noqa: E731
    run("link", "add", host_if, "netns", node, "type", "veth", "peer", "name", "eth0", "netns", pod)
    run("-n", pod, "addr", "add", f"{ip}/32", "dev", "eth0")
    run("-n", pod, "link", "set", "eth0", "up")
    run("-n", pod, "route", "add", "10.244.0.1", "dev", "eth0")
    run("-n", pod, "route", "add", "default", "via", "10.244.0.1", "dev", "eth0")
    run("-n", node, "addr", "add", "10.244.0.1/32", "dev", host_if)
    run("-n", node, "link", "set", host_if, "up")
    run("-n", node, "route", "add", f"{ip}/32", "dev", host_if)


@contextmanager
def node_with_pods(tag: str):
    """(node, server pod 10.244.0.5 with a tcp_server on :8080, client pod
    10.244.0.6), all named `nsplane-hp-<tag>...`. Like a real node, the node
    has a default route (into a veth stub standing in for the underlay), so
    Service traffic reaches FORWARD instead of dying at routing."""
    with ExitStack() as stack:
        node = stack.enter_context(scratch_netns(f"{PREFIX}-{tag}node"))
        server_pod = stack.enter_context(scratch_netns(f"{PREFIX}-{tag}pa"))
        client_pod = stack.enter_context(scratch_netns(f"{PREFIX}-{tag}pb"))
        sh("ip", "netns", "exec", node, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        add_pod(node, server_pod, f"hp-{tag}pa0", "10.244.0.5")
        add_pod(node, client_pod, f"hp-{tag}pb0", "10.244.0.6")
        sh("ip", "-n", node, "link", "add", f"hp-{tag}under0", "type", "veth", "peer", "name", f"hp-{tag}under1")
        sh("ip", "-n", node, "addr", "add", "192.168.50.2/24", "dev", f"hp-{tag}under0")
        for link in (f"hp-{tag}under0", f"hp-{tag}under1"):
            sh("ip", "-n", node, "link", "set", link, "up")
        sh("ip", "-n", node, "route", "add", "default", "via", "192.168.50.1")
        stack.enter_context(tcp_server(server_pod, 8080))
        yield node, server_pod, client_pod


def test_cluster_ip_traffic_is_dnated_and_no_endpoints_is_refused():
    with node_with_pods("") as (node, server_pod, client_pod):
        proxier = Proxier(NODE, Applier(verify="raise"))
        proxier.on_service(None, service("web", "10.96.0.20"))
        proxier.on_service(None, service("empty", "10.96.0.21", target_port=None))
        proxier.on_endpointslice(None, endpoint_slice("web", ["10.244.0.5"], name="web-abc"))
        sync(node, proxier)
        # DNATed to the pod, source IP preserved (pod -> ClusterIP is not masqueraded).
        assert client(client_pod, "10.96.0.20", 80) == "hello 10.244.0.6"
        assert client(client_pod, "10.96.0.20", 80) == "hello 10.244.0.6"
        reply = client(client_pod, "10.96.0.21", 80)
        assert reply.startswith("refused"), reply
        assert float(reply.split()[1]) < 1.0
        tracked = sh("ip", "netns", "exec", node, "conntrack", "-L", "-p", "tcp", "--orig-dst", "10.96.0.20").stdout
        assert "dst=10.96.0.20" in tracked and "src=10.244.0.5" in tracked

        cleanup(node)
        assert "KUBE-" not in save(node, "nat") + save(node, "filter")


def tree_service(i: int, node_port: int | None = None) -> dict:
    return service(f"s{i}", f"10.{96 + i % 3}.{i}.{i * 7 % 250 + 1}", node_port=node_port)


def test_services_above_the_tree_threshold_are_reachable_and_partial_syncs_work():
    with node_with_pods("t") as (node, server_pod, client_pod):
        proxier = Proxier(NODE, Applier(verify="raise"), tree_threshold=4)
        for i in range(40):
            proxier.on_service(None, tree_service(i, 30000 + i if i % 2 else None))
            ip = "10.244.0.5" if i in (7, 8, 21) else f"10.244.7.{i + 1}"
            proxier.on_endpointslice(None, endpoint_slice(f"s{i}", [ip], node=None))
        first = sync(node, proxier)
        proxier.on_endpointslice(endpoint_slice("s8", ["10.244.0.5"], node=None), None)  # s8 loses its endpoint
        proxier.on_service(None, tree_service(40))                                       # a new Service
        proxier.on_endpointslice(None, endpoint_slice("s40", ["10.244.0.5"], node=None))  # reaching the pod
        second = sync(node, proxier)
        assert (first.full, second.full) == (True, False)
        assert 0 < second.chains_written < first.chains_written / 4
        nat = save(node, "nat")
        assert ":KUBE-SVCS-" in nat and ":KUBE-NP-TCP-" in nat
        kube_services = [line for line in nat.splitlines() if line.startswith("-A KUBE-SERVICES ")]
        assert len(kube_services) < 10  # a handful of prefixes, not 40 Services
        # Through the tree: s7 and the new s40 reach the pod, s8 (no endpoints now) is refused.
        assert client(client_pod, "10.97.7.50", 80) == "hello 10.244.0.6"
        assert client(client_pod, "10.97.40.31", 80) == "hello 10.244.0.6"
        assert client(client_pod, "10.96.21.148", 80) == "hello 10.244.0.6"
        assert client(client_pod, "10.98.8.57", 80).startswith("refused")
        # NodePort of s7 (30007) through the port tree, to the node's own address.
        assert client(client_pod, "10.244.0.1", 30007) == "hello 10.244.0.1"
        cleanup(node)
        assert "KUBE-" not in save(node, "nat") + save(node, "filter")


def test_large_cluster_layout_dnats_from_the_service_chain_and_hairpins():
    """The large-cluster layout (no KUBE-SEP chains) on the kernel: a pod is
    DNATed with its address kept, and the endpoint reaching itself through its
    Service works only thanks to the KUBE-POSTROUTING hairpin rule."""
    with node_with_pods("l") as (node, server_pod, client_pod):
        proxier = Proxier(NODE, Applier(verify="raise"), large_threshold=0)
        for i in range(2):
            proxier.on_service(None, service(f"s{i}", f"10.96.0.{30 + i}"))
            proxier.on_endpointslice(None, endpoint_slice(f"s{i}", ["10.244.0.5"]))
        sync(node, proxier)
        nat = save(node, "nat")
        assert ":KUBE-SEP-" not in nat and "-j DNAT --to-destination 10.244.0.5:8080" in nat
        hairpin = [line for line in nat.splitlines() if "hairpin" in line]
        assert len(hairpin) == 1 and "-s 10.244.0.5/32 -d 10.244.0.5/32" in hairpin[0], hairpin
        assert client(client_pod, "10.96.0.30", 80) == "hello 10.244.0.6"
        assert client(server_pod, "10.96.0.31", 80) == "hello 10.244.0.1"  # masqueraded to the node's side
        sh("ip", "netns", "exec", node, "iptables-legacy", "-t", "nat", "-D", "KUBE-POSTROUTING", "1")
        assert not client(server_pod, "10.96.0.31", 80).startswith("hello")  # the rule is what made it work
        cleanup(node)
        assert "KUBE-" not in save(node, "nat") + save(node, "filter")


class Probe:
    """Connects to `address` from `pod` over and over, on a thread of its own
    inside the pod's namespace, for at most 20 s and 200,000 tries: counts
    answers ("ok"), refusals and connections lost (no answer in 0.5 s)."""

    def __init__(self, pod: str, address: tuple[str, int]):
        self.pod, self.address = pod, address
        self.counts: collections.Counter = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"probe-{pod}", daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 20
        with netns.entered(self.pod):
            while not self._stop.is_set() and time.monotonic() < deadline and self.counts.total() < 200000:
                try:
                    with socket.create_connection(self.address, timeout=0.5) as s:
                        s.recv(100)
                    self.counts["ok"] += 1
                except ConnectionRefusedError:
                    self.counts["refused"] += 1
                except OSError:
                    self.counts["lost"] += 1

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@pytest.mark.parametrize("sync_kind", ["partial", "full"])
def test_a_service_gaining_or_losing_its_only_endpoint_never_loses_a_connection(sync_kind):
    """A client hammering a Service whose only endpoint comes and goes sees
    answers or refusals, never a lost SYN (filter and nat commit separately)."""
    full = sync_kind == "full"
    with node_with_pods(sync_kind[0]) as (node, server_pod, client_pod), tcp_server(server_pod, 8081):
        # REJECT answers are ICMP, which the kernel rate-limits (a burst, then 1/s):
        # lift that here so that a silence means a lost SYN, not a throttled refusal.
        for knob in ("icmp_ratelimit=0", "icmp_msgs_per_sec=100000", "icmp_msgs_burst=100000"):
            sh("ip", "netns", "exec", node, "sysctl", "-q", "-w", f"net.ipv4.{knob}")
        proxier = Proxier(NODE, Applier(verify="raise"))
        proxier.on_service(None, service("flip", "10.96.0.40", target_port=8081))
        current = endpoint_slice("flip", [], port=8081)
        proxier.on_endpointslice(None, current)
        sync(node, proxier)
        with Probe(client_pod, ("10.96.0.40", 80)) as probe:
            for i in range(8):  # no endpoints (REJECT) <-> one endpoint (DNAT)
                time.sleep(0.25)
                new = endpoint_slice("flip", ["10.244.0.5"] if i % 2 == 0 else [], port=8081)
                proxier.on_endpointslice(current, new)
                current = new
                if full:
                    proxier.services_synced()  # what a relist signals: the next sync rewrites everything
                assert sync(node, proxier).full == full
            time.sleep(0.25)
        counts = probe.counts
        assert counts.get("ok") and counts.get("refused") and not counts.get("lost"), counts


@pytest.fixture(autouse=True)
def no_leftovers():
    yield
    left = [ns for ns in sh("ip", "netns", "list").stdout.split() if ns.startswith(PREFIX)]
    assert not left, f"namespaces left behind: {left}"
