"""dataplane.iptables, the applier (and the proxier) on the real kernel, in throwaway netns.

The test process stays in the root namespace; every piece of code that writes
iptables rules runs in a child `ip netns exec nsplane-hp-... python -c ...`.
Every applier here runs in verify mode: after each apply it reads the tables
back and raises if the kernel does not hold what was written.
Namespaces (and with them their veths and rules) are removed on every exit
path, and server processes are stopped by PID.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from contextlib import ExitStack, contextmanager

import pytest

pytestmark = pytest.mark.kernel

PY = sys.executable if os.path.exists(sys.executable) else "/opt/nsplane/venv/bin/python"
PREFIX = "nsplane-hp"

if os.geteuid() != 0:
    pytest.skip("kernel tests need root", allow_module_level=True)


def sh(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout)


@contextmanager
def netns(name: str):
    assert name.startswith(PREFIX)
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


def py_in(ns: str, code: str, timeout: float = 60) -> str:
    """Run Python `code` inside netns `ns`; return stdout, fail with its stderr."""
    proc = subprocess.run(["ip", "netns", "exec", ns, PY, "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"in {ns}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def save(ns: str, table: str) -> str:
    return sh("ip", "netns", "exec", ns, "iptables-legacy-save", "-t", table).stdout


RENDER = """
import json
from dataplane.model import Endpoint, NodeInfo, ServicePort
from dataplane import rules, iptables
from dataplane.applier import Applier
applier = Applier(verify="raise")
node = NodeInfo("node-a", "10.244.0.0/16", ("192.168.50.2",))
web = ServicePort("default", "web", "http", "TCP", "10.96.0.20", 80, node_port=30080)
api = ServicePort("default", "api", "", "TCP", "10.96.0.30", 443, load_balancer_ips=("1.2.3.4",),
                  load_balancer_source_ranges=("203.0.113.0/24",), node_port=30443)
dns = ServicePort("kube-system", "kube-dns", "dns", "UDP", "10.96.0.10", 53)
full = {web: [Endpoint("10.244.0.5", 8080), Endpoint("10.244.1.5", 8080)],
        api: [Endpoint("10.244.0.7", 6443)], dns: []}
smaller = {web: [Endpoint("10.244.0.5", 8080)]}
"""


def test_apply_readback_stale_chains_canary_and_cleanup():
    with netns(f"{PREFIX}-ipt") as ns:
        # Someone else's rules, which we must never touch.
        sh("ip", "netns", "exec", ns, "iptables-legacy", "-N", "OTHER-CHAIN")
        sh("ip", "netns", "exec", ns, "iptables-legacy", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
        sh("ip", "netns", "exec", ns, "iptables-legacy", "-t", "nat", "-A", "POSTROUTING", "-o", "lo", "-j", "RETURN")

        out = py_in(ns, RENDER + """
applier.apply(rules.render(full, node))
applier.apply(rules.render(full, node), full=True)   # idempotent: jump rules stay single
print(json.dumps(sorted(rules.render(full, node).chains["nat"])))
print(applier.canary_missing())
""")
        full_chains, canary = out.splitlines()
        assert canary == "False"
        nat = save(ns, "nat")
        for chain in json.loads(full_chains):
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
        out = py_in(ns, RENDER + """
applier.apply(rules.render(smaller, node))
print(" ".join(sorted(rules.render(smaller, node).chains["nat"])))
""")
        kept = set(out.split())
        nat = save(ns, "nat")
        ours = {line[1:].split()[0] for line in nat.splitlines() if line.startswith(":KUBE-")}
        assert ours == kept | {"KUBE-PROXY-CANARY"}
        assert "10.96.0.30" not in nat and "10.244.1.5" not in nat

        # Someone flushes and deletes every nat chain: the canary notices, a resync repairs.
        sh("ip", "netns", "exec", ns, "iptables-legacy", "-t", "nat", "-F")
        sh("ip", "netns", "exec", ns, "iptables-legacy", "-t", "nat", "-X")
        sh("ip", "netns", "exec", ns, "iptables-legacy", "-t", "nat", "-A", "POSTROUTING", "-o", "lo", "-j", "RETURN")
        out = py_in(ns, RENDER + """
import subprocess
print(applier.canary_missing())
applier.apply(rules.render(smaller, node))
before = iptables.tables_fingerprint()
print(applier.canary_missing())  # nothing written since: answered from the fingerprint
subprocess.run(["iptables-legacy", "-t", "filter", "-A", "INPUT", "-i", "lo", "-j", "ACCEPT"], check=True)
print(iptables.tables_fingerprint() != before, applier.canary_missing())  # someone else's rule: read back
subprocess.run(["iptables-legacy", "-t", "nat", "-F", "KUBE-SERVICES"], check=True)
subprocess.run(["iptables-legacy", "-t", "nat", "-X", "KUBE-PROXY-CANARY"], check=True)
print(applier.canary_missing())
""")
        assert out.split() == ["True", "False", "True", "False", "True"]
        assert "--to-destination 10.244.0.5:8080" in save(ns, "nat")

        # Errors name the failing line.
        out = py_in(ns, RENDER + """
bad = rules.Ruleset({"filter": {"KUBE-SERVICES": ("-A KUBE-SERVICES -m nosuchmatch -j ACCEPT",)}, "nat": {}})
try:
    applier.apply(bad)
except iptables.IptablesRestoreError as err:
    print(err.line)
""")
        assert "nosuchmatch" in out

        # conntrack cleanup tolerates "0 flow entries".
        out = py_in(ns, "from dataplane import conntrack; print(conntrack.clear_udp('10.96.0.10', 53, '10.244.0.9'),"
                        " conntrack.clear_udp_node_port(30053))")
        assert out.split() == ["0", "0"]

        py_in(ns, "from dataplane import iptables; iptables.cleanup(); iptables.cleanup()")
        everything = save(ns, "nat") + save(ns, "filter") + save(ns, "mangle")
        assert "KUBE-" not in everything
        assert ":OTHER-CHAIN - [0:0]" in everything
        assert "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT" in everything
        assert "-A POSTROUTING -o lo -j RETURN" in everything


def test_verify_mode_reports_a_chain_the_kernel_holds_differently():
    """Someone edits one of our chains; a partial sync does not rewrite it.
    Verify mode notices (raise in tests, log in production), and its second,
    full write leaves the kernel as rendered."""
    with netns(f"{PREFIX}-vfy") as ns:
        out = py_in(ns, RENDER + """
import logging, subprocess, sys
logging.basicConfig(level=logging.ERROR, stream=sys.stdout, format="LOG %(message)s")
applier.apply(rules.render(full, node))
subprocess.run(["iptables-legacy", "-t", "filter", "-A", "KUBE-FORWARD", "-j", "RETURN"], check=True)
try:
    applier.apply(rules.render(smaller, node))   # partial: KUBE-FORWARD did not change, so it is not written
except iptables.IptablesError as err:
    print(json.dumps(err.problems))
print(applier.written is None)
subprocess.run(["iptables-legacy", "-t", "filter", "-A", "KUBE-FORWARD", "-j", "RETURN"], check=True)
logged = Applier(verify="log")
logged.apply(rules.render(full, node))           # full: rewrites it, nothing to report
subprocess.run(["iptables-legacy", "-t", "filter", "-A", "KUBE-FORWARD", "-j", "RETURN"], check=True)
logged.apply(rules.render(smaller, node))        # logged, not raised
print(logged.written is not None)
""")
        lines = out.splitlines()
        problems, reset, logged = lines[0], lines[1], lines[-1]
        assert lines[2] == "LOG iptables verify: the kernel does not hold what was written:"
        (problem,) = json.loads(problems)
        assert problem.splitlines()[:2] == ["--- filter KUBE-FORWARD after the apply",
                                            "+++ filter KUBE-FORWARD written again in full"]
        assert "-A KUBE-FORWARD -j RETURN" in problem
        assert (reset, logged) == ("True", "True")
        assert "-A KUBE-FORWARD -j RETURN" not in save(ns, "filter")
        py_in(ns, "from dataplane import iptables; iptables.cleanup()")


# ---------------------------------------------------------------- real traffic

SERVER = """
import socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 8080))
srv.listen(16)
print("ready", flush=True)
for _ in range(50):
    conn, peer = srv.accept()
    conn.sendall(f"hello {peer[0]}\\n".encode())
    conn.close()
"""

CLIENT = """
import socket, sys, time
ip, port = sys.argv[1], int(sys.argv[2])
start = time.monotonic()
try:
    with socket.create_connection((ip, port), timeout=5) as s:
        print(s.recv(100).decode().strip())
except ConnectionRefusedError:
    print(f"refused {time.monotonic() - start:.3f}")
except OSError as err:
    print(f"error {err}")
"""

PROXIER = """
import json, logging, sys
from agent.node.proxy.proxier import Proxier
from dataplane.applier import Applier
from dataplane.model import NodeInfo
logging.basicConfig(level=logging.INFO)
p = Proxier(NodeInfo("node-a", "10.244.0.0/16", ("192.168.50.2",)), Applier(verify="raise"))
web = {"metadata": {"name": "web", "namespace": "default"},
       "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.20", "ports": [{"port": 80, "targetPort": 8080}]}}
empty = {"metadata": {"name": "empty", "namespace": "default"},
         "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.21", "ports": [{"port": 80}]}}
eps = {"metadata": {"name": "web-abc", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
       "addressType": "IPv4", "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
       "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": True}, "nodeName": "node-a"}]}
p.on_service(None, web)
p.on_service(None, empty)
p.on_endpointslice(None, eps)
print(p.sync_once())
"""


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


def client(pod: str, ip: str, port: int) -> str:
    return sh("ip", "netns", "exec", pod, PY, "-c", CLIENT, ip, str(port), timeout=20).stdout.strip()


@contextmanager
def node_with_pods(tag: str):
    """(node, server pod 10.244.0.5 running SERVER, client pod 10.244.0.6), all
    named `nsplane-hp-<tag>...`. Like a real node, the node has a default route
    (into a veth stub standing in for the underlay), so Service traffic reaches
    FORWARD instead of dying at routing."""
    with ExitStack() as stack:
        node = stack.enter_context(netns(f"{PREFIX}-{tag}node"))
        server_pod = stack.enter_context(netns(f"{PREFIX}-{tag}pa"))
        client_pod = stack.enter_context(netns(f"{PREFIX}-{tag}pb"))
        sh("ip", "netns", "exec", node, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        add_pod(node, server_pod, f"hp-{tag}pa0", "10.244.0.5")
        add_pod(node, client_pod, f"hp-{tag}pb0", "10.244.0.6")
        sh("ip", "-n", node, "link", "add", f"hp-{tag}under0", "type", "veth", "peer", "name", f"hp-{tag}under1")
        sh("ip", "-n", node, "addr", "add", "192.168.50.2/24", "dev", f"hp-{tag}under0")
        for link in (f"hp-{tag}under0", f"hp-{tag}under1"):
            sh("ip", "-n", node, "link", "set", link, "up")
        sh("ip", "-n", node, "route", "add", "default", "via", "192.168.50.1")
        server = subprocess.Popen(["ip", "netns", "exec", server_pod, PY, "-c", SERVER],
                                  stdout=subprocess.PIPE, text=True)
        stack.callback(lambda: (server.kill(), server.wait(timeout=5)))
        assert server.stdout.readline().strip() == "ready"
        yield node, server_pod, client_pod


def test_cluster_ip_traffic_is_dnated_and_no_endpoints_is_refused():
    with node_with_pods("") as (node, server_pod, client_pod):
        py_in(node, PROXIER)
        # DNATed to the pod, source IP preserved (pod -> ClusterIP is not masqueraded).
        assert client(client_pod, "10.96.0.20", 80) == "hello 10.244.0.6"
        assert client(client_pod, "10.96.0.20", 80) == "hello 10.244.0.6"
        reply = client(client_pod, "10.96.0.21", 80)
        assert reply.startswith("refused"), reply
        assert float(reply.split()[1]) < 1.0
        conntrack = sh("ip", "netns", "exec", node, "conntrack", "-L", "-p", "tcp", "--orig-dst", "10.96.0.20").stdout
        assert "dst=10.96.0.20" in conntrack and "src=10.244.0.5" in conntrack

        py_in(node, "from dataplane import iptables; iptables.cleanup()")
        assert "KUBE-" not in save(node, "nat") + save(node, "filter")


TREE_PROXIER = """
import json, logging, sys
from agent.node.proxy.proxier import Proxier
from dataplane.applier import Applier
from dataplane.model import NodeInfo
p = Proxier(NodeInfo("node-a", "10.244.0.0/16", ("192.168.50.2",)), Applier(verify="raise"), tree_threshold=4)
def svc(i, node_port=None):
    port = {"port": 80, "targetPort": 8080, **({"nodePort": node_port} if node_port else {})}
    return {"metadata": {"name": f"s{i}", "namespace": "default"},
            "spec": {"type": "NodePort" if node_port else "ClusterIP", "clusterIP": f"10.{96 + i % 3}.{i}.{i * 7 % 250 + 1}",
                     "ports": [port]}}
def eps(i, ip):
    return {"metadata": {"name": f"s{i}-x", "namespace": "default", "labels": {"kubernetes.io/service-name": f"s{i}"}},
            "addressType": "IPv4", "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}]}
for i in range(40):
    p.on_service(None, svc(i, 30000 + i if i % 2 else None))
    p.on_endpointslice(None, eps(i, "10.244.0.5" if i in (7, 8, 21) else f"10.244.7.{i + 1}"))
first = p.sync_once()
p.on_endpointslice(eps(8, "10.244.0.5"), None)   # s8 loses its endpoint: REJECT
p.on_service(None, svc(40))                        # a new Service reaching the pod
p.on_endpointslice(None, eps(40, "10.244.0.5"))
second = p.sync_once()
print(json.dumps([first.full, second.full, first.chains_written, second.chains_written]))
"""


def test_services_above_the_tree_threshold_are_reachable_and_partial_syncs_work():
    with node_with_pods("t") as (node, server_pod, client_pod):
        full, partial, written_full, written_partial = json.loads(py_in(node, TREE_PROXIER))
        assert (full, partial) == (True, False) and 0 < written_partial < written_full / 4
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
        py_in(node, "from dataplane import iptables; iptables.cleanup()")
        assert "KUBE-" not in save(node, "nat") + save(node, "filter")


LARGE_PROXIER = """
from agent.node.proxy.proxier import Proxier
from dataplane.applier import Applier
from dataplane.model import NodeInfo
p = Proxier(NodeInfo("node-a", "10.244.0.0/16", ("192.168.50.2",)), Applier(verify="raise"), large_threshold=0)
for i in range(2):
    p.on_service(None, {"metadata": {"name": f"s{i}", "namespace": "default"},
                        "spec": {"type": "ClusterIP", "clusterIP": f"10.96.0.{30 + i}",
                                 "ports": [{"port": 80, "targetPort": 8080}]}})
    p.on_endpointslice(None, {
        "metadata": {"name": f"s{i}-x", "namespace": "default", "labels": {"kubernetes.io/service-name": f"s{i}"}},
        "addressType": "IPv4", "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": True}, "nodeName": "node-a"}]})
p.sync_once()
"""


def test_large_cluster_layout_dnats_from_the_service_chain_and_hairpins():
    """The large-cluster layout (no KUBE-SEP chains) on the kernel: a pod is
    DNATed with its address kept, and the endpoint reaching itself through its
    Service works only thanks to the KUBE-POSTROUTING hairpin rule."""
    with node_with_pods("l") as (node, server_pod, client_pod):
        py_in(node, LARGE_PROXIER)
        nat = save(node, "nat")
        assert ":KUBE-SEP-" not in nat and "-j DNAT --to-destination 10.244.0.5:8080" in nat
        hairpin = [line for line in nat.splitlines() if "hairpin" in line]
        assert len(hairpin) == 1 and "-s 10.244.0.5/32 -d 10.244.0.5/32" in hairpin[0], hairpin
        assert client(client_pod, "10.96.0.30", 80) == "hello 10.244.0.6"
        assert client(server_pod, "10.96.0.31", 80) == "hello 10.244.0.1"  # masqueraded to the node's side
        sh("ip", "netns", "exec", node, "iptables-legacy", "-t", "nat", "-D", "KUBE-POSTROUTING", "1")
        assert not client(server_pod, "10.96.0.31", 80).startswith("hello")  # the rule is what made it work
        py_in(node, "from dataplane import iptables; iptables.cleanup()")
        assert "KUBE-" not in save(node, "nat") + save(node, "filter")


TOGGLER = """
import sys, time
from agent.node.proxy.proxier import Proxier
from dataplane.applier import Applier
from dataplane.model import NodeInfo
p = Proxier(NodeInfo("node-a", "10.244.0.0/16", ("192.168.50.2",)), Applier(verify="raise"))
p.on_service(None, {"metadata": {"name": "flip", "namespace": "default"},
                    "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.40", "ports": [{"port": 80, "targetPort": 8081}]}})
def eps(ips):
    return {"metadata": {"name": "flip-x", "namespace": "default", "labels": {"kubernetes.io/service-name": "flip"}},
            "addressType": "IPv4", "ports": [{"name": "", "port": 8081, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}, "nodeName": "node-a"} for ip in ips]}
current = eps([])
p.on_endpointslice(None, current)
p.sync_once()
print("ready", flush=True)
sys.stdin.readline()
full = sys.argv[1] == "full"
for i in range(8):  # no endpoints (REJECT) <-> one endpoint (DNAT)
    time.sleep(0.25)
    new = eps(["10.244.0.5"] if i % 2 == 0 else [])
    p.on_endpointslice(current, new)
    current = new
    if full:
        p.services_synced()  # what a relist signals: the next sync rewrites everything
    assert p.sync_once().full == full
time.sleep(0.25)
"""

PROBE = """
import collections, json, socket, sys, threading, time
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
counts = collections.Counter()
deadline = time.monotonic() + 20
while not stop.is_set() and time.monotonic() < deadline and counts.total() < 200000:
    try:
        with socket.create_connection(("10.96.0.40", 80), timeout=0.5) as s:
            s.recv(100)
        counts["ok"] += 1
    except ConnectionRefusedError:
        counts["refused"] += 1
    except OSError:
        counts["lost"] += 1
print(json.dumps(counts))
"""

LOOP_SERVER = """
import socket, time
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 8081))
srv.listen(128)
srv.settimeout(30)
print("ready", flush=True)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    conn, peer = srv.accept()
    conn.sendall(b"hello")
    conn.close()
"""


@pytest.mark.parametrize("sync", ["partial", "full"])
def test_a_service_gaining_or_losing_its_only_endpoint_never_loses_a_connection(sync):
    """A client hammering a Service whose only endpoint comes and goes sees
    answers or refusals, never a lost SYN (filter and nat commit separately)."""
    with node_with_pods(sync[0]) as (node, server_pod, client_pod), ExitStack() as stack:
        def start(ns: str, code: str, *args: str, **kw) -> subprocess.Popen:
            proc = subprocess.Popen(["ip", "netns", "exec", ns, PY, "-c", code, *args], stdout=subprocess.PIPE,
                                    text=True, **kw)
            stack.callback(lambda: (proc.kill(), proc.wait(timeout=5)))
            return proc

        # REJECT answers are ICMP, which the kernel rate-limits (a burst, then 1/s):
        # lift that here so that a silence means a lost SYN, not a throttled refusal.
        for knob in ("icmp_ratelimit=0", "icmp_msgs_per_sec=100000", "icmp_msgs_burst=100000"):
            sh("ip", "netns", "exec", node, "sysctl", "-q", "-w", f"net.ipv4.{knob}")
        server = start(server_pod, LOOP_SERVER)
        assert server.stdout.readline().strip() == "ready"
        toggler = start(node, TOGGLER, sync, stdin=subprocess.PIPE)
        assert toggler.stdout.readline().strip() == "ready"
        probe = start(client_pod, PROBE, stdin=subprocess.PIPE)
        toggler.stdin.write("go\n")
        toggler.stdin.flush()
        assert toggler.wait(timeout=30) == 0
        counts = json.loads(probe.communicate("", timeout=30)[0])
        assert counts.get("ok") and counts.get("refused") and not counts.get("lost"), counts


@pytest.fixture(autouse=True)
def no_leftovers():
    yield
    left = [ns for ns in sh("ip", "netns", "list").stdout.split() if ns.startswith(PREFIX)]
    assert not left, f"namespaces left behind: {left}"
