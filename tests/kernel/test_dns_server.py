"""The real DNS server in throwaway namespaces, queried with the real dig.

Topology (all ours, removed on every exit path):

    nsplane-hd-cli 10.99.0.2 --veth-- 10.99.0.1 nsplane-hd-srv 10.99.1.1 --veth-- 10.99.1.2 nsplane-hd-up

The server (dns.server.DNSServer, fed the unit tests' cluster objects) runs
in this process: it is started on this thread inside nsplane-hd-srv
(`netns.entered`), so its sockets live there, and so do the threads it
starts. nsplane-hd-up holds a tiny dnslib upstream, a socket of that
namespace served by a thread here, that answers *.example.test, so
forwarding never touches a real resolver. dig and curl run in nsplane-hd-cli
as a user would run them. Covered: cluster names over UDP and TCP, SRV, PTR,
NXDOMAIN with SOA, truncation and TCP retry, forwarding and ExternalName
CNAME chasing, the health/ready/metrics endpoints, garbage input, refused
AXFR and classes, forwarding loops cut by the loop probe, SRV targets in the
query's zone case, and a second server with non-default kubernetes options.
"""

import os
import random
import socket
import subprocess
import threading
import time
from contextlib import contextmanager

import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from dataplane import netns
from dns.server import DNSServer
from tests.unit.test_dns_records import HTTP, cluster, ep, eps, svc

pytestmark = pytest.mark.kernel

SRV, CLI, UP = "nsplane-hd-srv", "nsplane-hd-cli", "nsplane-hd-up"
SRV_IP, CLI_IP, SRV_IP2, UP_IP = "10.99.0.1", "10.99.0.2", "10.99.1.1", "10.99.1.2"


def cluster_state():
    """The unit tests' cluster, plus a headless Service of 120 endpoints (too
    many for one UDP answer) and an ExternalName pointing upstream."""
    state = cluster()
    state.apply("Service", "ADDED", svc("default", "big", "None", [HTTP]))
    state.apply("EndpointSlice", "ADDED", eps("default", "big", [ep(f"10.244.50.{i}") for i in range(1, 121)],
                                              [HTTP]))
    state.apply("Service", "MODIFIED", svc("default", "extout", type_="ExternalName",
                                           externalName="www.example.test"))
    return state


class RunningServer:
    """A DNSServer started inside SRV, with the threads its start() began."""

    def __init__(self, **args):
        before = set(threading.enumerate())
        with netns.entered(SRV):
            self.server = DNSServer(cluster_state(), **args)
            self.server.start()
        self.threads = set(threading.enumerate()) - before

    def alive(self) -> bool:
        return bool(self.threads) and all(t.is_alive() for t in self.threads)

    def loop_detected(self) -> bool:
        forwarder = self.server.forwarder
        return any(forwarder.looped(i) for i in range(len(forwarder.upstreams)))

    def stop(self) -> None:
        self.server.stop()


def upstream_answer(data: bytes) -> bytes:
    """192.0.2.80 for A of *.example.test, NXDOMAIN for anything else."""
    q = DNSRecord.parse(data)
    r = q.reply()
    name = str(q.q.qname).lower()
    if name.endswith("example.test.") and q.q.qtype == QTYPE.A:
        r.add_answer(RR(q.q.qname, QTYPE.A, rdata=A("192.0.2.80"), ttl=120))
    else:
        r.header.rcode = RCODE.NXDOMAIN
    return r.pack()


@contextmanager
def upstream(ns: str, ip: str):
    """The upstream resolver on ip:53 in `ns`, served by a thread until the block ends."""
    with netns.entered(ns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                sock.sendto(upstream_answer(data), addr)
            except Exception:  # noqa: BLE001 - what dnslib cannot parse gets no answer
                pass

    with sock:
        sock.bind((ip, 53))
        sock.settimeout(0.2)
        thread = threading.Thread(target=serve, name=f"upstream-{ns}", daemon=True)
        thread.start()
        try:
            yield thread
        finally:
            stop.set()
            thread.join(timeout=5)


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
def topology():
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    server = None
    cleanup_netns()
    try:
        for ns in (SRV, CLI, UP):
            run("ip", "netns", "add", ns)
            nsexec(ns, "ip", "link", "set", "lo", "up")
        veth(SRV, "nsplane-hd-s0", SRV_IP, CLI, "nsplane-hd-c0", CLI_IP)
        veth(SRV, "nsplane-hd-s1", SRV_IP2, UP, "nsplane-hd-u0", UP_IP)
        with upstream(UP, UP_IP) as upstream_thread:
            server = RunningServer(listen="0.0.0.0", port=53, upstreams=[UP_IP], local_ips=["10.244.0.5"])
            wait_for_answer()
            yield {"server": server, "upstream": upstream_thread}
    finally:
        if server is not None:
            server.stop()
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
    rng = random.Random(7)
    with netns.entered(CLI):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(5000):
                s.sendto(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300))), (SRV_IP, 53))
        for _ in range(50):
            with socket.create_connection((SRV_IP, 53), timeout=2) as t:
                t.sendall(os.urandom(rng.randint(1, 600)))
    assert topology["server"].alive() and topology["upstream"].is_alive()
    assert dig("+short", "web.default.svc.cluster.local").split() == ["10.96.0.20"]
    assert dig("+short", "+tcp", "web.default.svc.cluster.local").split() == ["10.96.0.20"]


def test_axfr_refused_and_unknown_class(topology):
    assert "Transfer failed" in dig("AXFR", "cluster.local")
    assert "status: REFUSED" in dig("-c", "CH", "web.default.svc.cluster.local")


@contextmanager
def loop_servers(plans):
    """One server per (listen, port, upstream), without HTTP endpoints, for the block."""
    servers = []
    try:
        for listen, port, upstream_addr in plans:
            servers.append(RunningServer(listen=listen, port=port, upstreams=[upstream_addr], local_ips=[SRV_IP],
                                         health_port=None, ready_port=None, metrics_port=None))
        yield servers
    finally:
        for server in servers:
            server.stop()


def wait_for_loop(servers, want):
    """How many of `servers` cut a forwarding loop, once `want` have (15 s at most)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and sum(s.loop_detected() for s in servers) < want:
        time.sleep(0.2)
    return sum(s.loop_detected() for s in servers)


def assert_prompt_servfail(port):
    started = time.monotonic()
    assert "status: SERVFAIL" in dig("www.example.test", port=port)
    assert time.monotonic() - started < 1.5  # answered at once, not after a forward timeout


def test_forwarding_to_itself_is_detected(topology, caplog):
    """Upstream = this server's own other address: the loop probe comes back and is cut."""
    with loop_servers([("0.0.0.0", 5303, f"{SRV_IP2}:5303")]) as servers:
        wait_for_answer(port=5303)
        assert wait_for_loop(servers, 1) == 1
        assert "loop detected" in caplog.text
        assert_prompt_servfail(5303)
        assert dig("+short", "web.default.svc.cluster.local", port=5303).split() == ["10.96.0.20"]


def test_two_servers_forwarding_to_each_other(topology, caplog):
    with loop_servers([(SRV_IP, 5301, f"{SRV_IP}:5302"), (SRV_IP, 5302, f"{SRV_IP}:5301")]) as servers:
        wait_for_answer(port=5301)
        wait_for_answer(port=5302)
        assert wait_for_loop(servers, 1) >= 1
        assert "loop detected" in caplog.text
        assert_prompt_servfail(5301)
        assert_prompt_servfail(5302)


def test_srv_target_case_with_real_dig(topology):
    """CoreDNS's handler_case_test: the zone part of the target in the query's case."""
    out = dig("+noall", "+answer", "+additional", "SRV", "_HtTp._TcP.wEb.Default.svc.cLuStEr.LoCaL")
    assert [" ".join(line.split()) for line in out.splitlines()] == [
        "_HtTp._TcP.wEb.Default.svc.cLuStEr.LoCaL. 30 IN SRV 0 100 80 web.default.svc.cLuStEr.LoCaL.",
        "web.default.svc.cLuStEr.LoCaL. 30 IN A 10.96.0.20"]


def test_kubernetes_options_with_real_dig(topology):
    """A second server with `pods verified`, `ttl 7`, reverse zone 10.96.0.0/24 and no fallthrough,
    next to the kubeadm-default one on :53."""
    from dns.corefile.zones import reverse_zones
    from dns.names import labels_of

    options = {"pods": "verified", "ttl": 7, "fallthrough": None,
               "reverse_zones": tuple(labels_of(z) for z in reverse_zones("10.96.0.0/24"))}
    server = RunningServer(listen=SRV_IP, port=5310, upstreams=[UP_IP], local_ips=["10.244.0.5"],
                           health_port=None, ready_port=None, metrics_port=None, options=options)
    try:
        wait_for_answer(port=5310)
        pod, no_pod = "10-244-1-5.default.pod.cluster.local", "10-244-9-9.default.pod.cluster.local"
        # pods insecure (:53) answers any IP-shaped name; verified only a pod's own
        assert dig("+short", no_pod).split() == ["10.244.9.9"]
        assert dig("+noall", "+answer", pod, port=5310).split() == [f"{pod}.", "7", "IN", "A", "10.244.1.5"]
        out = dig(no_pod, port=5310)
        assert "status: NXDOMAIN" in out and "cluster.local.\t\t7\tIN\tSOA\tns.dns.cluster.local." in out
        # PTRs inside 0.96.10.in-addr.arpa only; the pod's IP is outside it: forwarded upstream
        assert dig("+short", "-x", "10.96.0.20", port=5310).split() == ["web.default.svc.cluster.local."]
        out = dig("-x", "10.96.0.99", port=5310)
        assert "status: NXDOMAIN" in out and "0.96.10.in-addr.arpa.\t7\tIN\tSOA" in out
        out = dig("-x", "10.244.1.5", port=5310)
        assert "status: NXDOMAIN" in out and "ns.dns" not in out   # the upstream's answer, not ours
        assert dig("+short", "-x", "10.244.1.5").split() == ["10-244-1-5.web.default.svc.cluster.local."]
    finally:
        server.stop()
