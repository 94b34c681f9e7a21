"""The real DNS server in throwaway namespaces, queried with the real dig.

Topology (all ours, removed on every exit path):

    nsplane-hd-cli 10.99.0.2 --veth-- 10.99.0.1 nsplane-hd-srv 10.99.1.1 --veth-- 10.99.1.2 nsplane-hd-up

The server runs in nsplane-hd-srv as its own process (python -m-style, fed
the unit tests' cluster objects); nsplane-hd-up runs a tiny dnslib upstream
that answers *.example.test, so forwarding never touches a real resolver.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.kernel

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRV, CLI, UP = "nsplane-hd-srv", "nsplane-hd-cli", "nsplane-hd-up"
SRV_IP, CLI_IP, SRV_IP2, UP_IP = "10.99.0.1", "10.99.0.2", "10.99.1.1", "10.99.1.2"

SERVER = r"""
import json, logging, sys, threading, signal
sys.path.insert(0, sys.argv[1] + "/tests/unit")
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from test_dns_records import cluster, svc, eps, ep, HTTP
from dns.server import run
args = json.loads(sys.argv[2])
state = cluster()
state.apply("Service", "ADDED", svc("default", "big", "None", [HTTP]))
state.apply("EndpointSlice", "ADDED", eps("default", "big", [ep(f"10.244.50.{i}") for i in range(1, 121)], [HTTP]))
state.apply("Service", "MODIFIED", svc("default", "extout", type_="ExternalName", externalName="www.example.test"))
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: stop.set())
run(state, stop=stop, **args)
"""

UPSTREAM = r"""
import socket, struct, sys, threading
from dnslib import DNSRecord, RR, QTYPE, A, RCODE
def answer(data):
    q = DNSRecord.parse(data)
    r = q.reply()
    name = str(q.q.qname).lower()
    if name.endswith("example.test.") and q.q.qtype == QTYPE.A:
        r.add_answer(RR(q.q.qname, QTYPE.A, rdata=A("192.0.2.80"), ttl=120))
    else:
        r.header.rcode = RCODE.NXDOMAIN
    return r.pack()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
while True:
    data, addr = s.recvfrom(4096)
    try:
        s.sendto(answer(data), addr)
    except Exception:
        pass
"""


def run(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=30, **kw)


def nsexec(ns, *args, **kw):
    return run("ip", "netns", "exec", ns, *args, **kw)


def cleanup_netns():
    for ns in (SRV, CLI, UP):
        run("ip", "netns", "del", ns, check=False)


def veth(a_ns, a_if, a_ip, b_ns, b_if, b_ip):
    run("ip", "link", "add", a_if, "netns", a_ns, "type", "veth", "peer", "name", b_if, "netns", b_ns)
    for ns, ifname, ip in ((a_ns, a_if, a_ip), (b_ns, b_if, b_ip)):
        nsexec(ns, "ip", "addr", "add", f"{ip}/24", "dev", ifname)
        nsexec(ns, "ip", "link", "set", ifname, "up")


def spawn(ns, code, *args, log):
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code, *args],
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def dig(*args, server=SRV_IP, port=53):
    return nsexec(CLI, "dig", f"@{server}", "-p", str(port), "+time=2", "+tries=1", *args, check=False).stdout


def wait_for_answer(server=SRV_IP, port=53, name="web.default.svc.cluster.local"):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if "10.96.0.20" in dig("+short", name, server=server, port=port):
            return
        time.sleep(0.2)
    raise AssertionError(f"DNS server on {server}:{port} did not answer within 15 s")


@pytest.fixture(scope="module")
def topology(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    logdir = tmp_path_factory.mktemp("dns")
    procs = []
    cleanup_netns()
    try:
        for ns in (SRV, CLI, UP):
            run("ip", "netns", "add", ns)
            nsexec(ns, "ip", "link", "set", "lo", "up")
        veth(SRV, "nsplane-hd-s0", SRV_IP, CLI, "nsplane-hd-c0", CLI_IP)
        veth(SRV, "nsplane-hd-s1", SRV_IP2, UP, "nsplane-hd-u0", UP_IP)
        up_log = open(logdir / "upstream.log", "w")
        procs.append(spawn(UP, UPSTREAM, UP_IP, log=up_log))
        srv_log = open(logdir / "server.log", "w")
        args = {"listen": "0.0.0.0", "port": 53, "upstreams": [UP_IP], "local_ips": ["10.244.0.5"]}
        procs.append(spawn(SRV, SERVER, REPO, json.dumps(args), log=srv_log))
        wait_for_answer()
        yield {"logdir": logdir, "procs": procs}
    finally:
        for p in procs:
            stop(p)
        cleanup_netns()


def test_cluster_name_over_udp_and_tcp(topology):
    assert dig("+short", "web.default.svc.cluster.local").split() == ["10.96.0.20"]
    assert dig("+short", "+tcp", "kubernetes.default.svc.cluster.local").split() == ["10.96.0.1"]
    out = dig("Web.Default.SVC.cluster.local")
    assert "status: NOERROR" in out and "flags: qr aa rd" in out
    assert "Web.Default.SVC.cluster.local. 30 IN\tA\t10.96.0.20" in out


def test_srv_ptr_nxdomain(topology):
    assert dig("+short", "SRV", "_http._tcp.web.default.svc.cluster.local").split() == \
        ["0", "100", "80", "web.default.svc.cluster.local."]
    assert dig("+short", "-x", "10.96.0.20").split() == ["web.default.svc.cluster.local."]
    out = dig("nosuch.default.svc.cluster.local")
    assert "status: NXDOMAIN" in out and "hostmaster.cluster.local." in out


def test_truncated_over_udp_complete_over_tcp(topology):
    out = dig("+noedns", "+ignore", "big.default.svc.cluster.local")
    assert "flags: qr aa tc rd" in out
    tcp = dig("+short", "+tcp", "big.default.svc.cluster.local").split()
    assert len(tcp) == 120
    # plain dig sees TC and retries over TCP by itself
    assert len(dig("+short", "big.default.svc.cluster.local").split()) == 120


def test_forwarded_name_and_external_cname_chase(topology):
    assert dig("+short", "www.example.test").split() == ["192.0.2.80"]
    assert dig("+short", "+tcp", "api.example.test").split() == ["192.0.2.80"]
    assert "status: NXDOMAIN" in dig("nothing.invalid")
    out = dig("+short", "extout.default.svc.cluster.local").split()
    assert out == ["www.example.test.", "192.0.2.80"]


def test_health_ready_metrics(topology):
    def get(port, path):
        out = nsexec(CLI, "curl", "-s", "-w", " %{http_code}", f"http://{SRV_IP}:{port}{path}", check=False)
        return out.stdout
    assert get(8080, "/health") == "OK 200"
    assert get(8181, "/ready") == "OK 200"
    metrics = get(9153, "/metrics")
    assert 'coredns_dns_requests_total{server="dns://:53",zone="cluster.local."' in metrics
    assert "coredns_forward_requests_total" in metrics and "coredns_cache_hits_total" in metrics


def test_random_bytes_do_not_stop_the_server(topology):
    code = r"""
import os, random, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rng = random.Random(7)
for i in range(5000):
    s.sendto(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300))), (sys.argv[1], 53))
for i in range(50):
    t = socket.create_connection((sys.argv[1], 53), timeout=2)
    t.sendall(os.urandom(rng.randint(1, 600)))
    t.close()
"""
    nsexec(CLI, sys.executable, "-c", code, SRV_IP)
    assert all(p.poll() is None for p in topology["procs"])
    assert dig("+short", "web.default.svc.cluster.local").split() == ["10.96.0.20"]
    assert dig("+short", "+tcp", "web.default.svc.cluster.local").split() == ["10.96.0.20"]


def test_axfr_refused_and_unknown_class(topology):
    assert "Transfer failed" in dig("AXFR", "cluster.local")
    assert "status: REFUSED" in dig("-c", "CH", "web.default.svc.cluster.local")


def start_loop_servers(tmp_path, plans):
    procs, logs = [], []
    for listen, port, upstream in plans:
        log = tmp_path / f"loop-{port}.log"
        args = {"listen": listen, "port": port, "upstreams": [upstream], "local_ips": [SRV_IP],
                "health_port": None, "ready_port": None, "metrics_port": None}
        procs.append(spawn(SRV, SERVER, REPO, json.dumps(args), log=open(log, "w")))
        logs.append(log)
    return procs, logs


def wait_for_loop(logs, want):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and sum("loop detected" in p.read_text() for p in logs) < want:
        time.sleep(0.2)
    return sum("loop detected" in p.read_text() for p in logs)


def assert_prompt_servfail(port):
    started = time.monotonic()
    assert "status: SERVFAIL" in dig("www.example.test", port=port)
    assert time.monotonic() - started < 1.5  # answered at once, not after a forward timeout


def test_forwarding_to_itself_is_detected(topology, tmp_path):
    """Upstream = this server's own other address: the loop probe comes back and is cut."""
    procs, logs = start_loop_servers(tmp_path, [("0.0.0.0", 5303, f"{SRV_IP2}:5303")])
    try:
        wait_for_answer(port=5303)
        assert wait_for_loop(logs, 1) == 1
        assert_prompt_servfail(5303)
        assert dig("+short", "web.default.svc.cluster.local", port=5303).split() == ["10.96.0.20"]
    finally:
        for p in procs:
            stop(p)


def test_two_servers_forwarding_to_each_other(topology, tmp_path):
    procs, logs = start_loop_servers(tmp_path, [(SRV_IP, 5301, f"{SRV_IP}:5302"),
                                                (SRV_IP, 5302, f"{SRV_IP}:5301")])
    try:
        wait_for_answer(port=5301)
        wait_for_answer(port=5302)
        assert wait_for_loop(logs, 1) >= 1
        assert_prompt_servfail(5301)
        assert_prompt_servfail(5302)
    finally:
        for p in procs:
            stop(p)
