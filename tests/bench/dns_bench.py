"""DNS benchmark: our server against dnsmasq, same names, same run, own namespaces only.

Run as root:  /opt/nsplane/venv/bin/python tests/bench/dns_bench.py [--seconds 5] [--services 200]

Topology (created here, removed on every exit path):

    nsplane-hd-bcli 10.98.0.2 --veth-- 10.98.0.1 nsplane-hd-bsrv 10.98.1.1 --veth-- 10.98.1.2 nsplane-hd-bup

nsplane-hd-bsrv runs our server on :53 and, as the baseline, dnsmasq on
:5353 answering the same cluster names from a hosts file (NXDOMAIN for the
rest of cluster.local, forwarding the rest). nsplane-hd-bup runs a dnsmasq
that answers *.example.test, the upstream both forward to. dnsperf (Debian
package) runs in nsplane-hd-bcli. Three query sets: cluster names, search-path
NXDOMAINs (what ndots:5 makes a pod ask first) and forwarded names (cache
hits after the first round). Every run is bounded by --seconds.

Not collected by pytest (no test_ prefix); the lead keeps tests/bench out of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRV, CLI, UP = "nsplane-hd-bsrv", "nsplane-hd-bcli", "nsplane-hd-bup"
SRV_IP, CLI_IP, SRV_IP2, UP_IP = "10.98.0.1", "10.98.0.2", "10.98.1.1", "10.98.1.2"

SERVER = r"""
import json, sys, threading, signal, logging
logging.basicConfig(level=logging.WARNING)
from dns.cluster import ClusterState
from dns.server import run
objs, args = json.loads(open(sys.argv[1]).read()), json.loads(sys.argv[2])
state = ClusterState()
for kind in ("Namespace", "Service", "EndpointSlice"):
    state.replace(kind, objs[kind])
state.mark_synced()
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: stop.set())
run(state, stop=stop, **args)
"""


def sh(*args, check=True):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=120)


def nsexec(ns, *args, check=True):
    return sh("ip", "netns", "exec", ns, *args, check=check)


def cluster_objects(n: int) -> dict:
    namespaces = [{"metadata": {"name": ns}} for ns in ("default", "kube-system")]
    services, slices = [], []
    for i in range(n):
        ip = f"10.96.{1 + i // 250}.{1 + i % 250}"
        services.append({"metadata": {"namespace": "default", "name": f"svc{i}"},
                         "spec": {"type": "ClusterIP", "clusterIP": ip,
                                  "ports": [{"name": "http", "protocol": "TCP", "port": 80}]}})
        slices.append({"metadata": {"namespace": "default", "name": f"svc{i}-x",
                                    "labels": {"kubernetes.io/service-name": f"svc{i}"}},
                       "ports": [{"name": "http", "protocol": "TCP", "port": 80}],
                       "endpoints": [{"addresses": [f"10.244.{i // 250}.{1 + i % 250}"],
                                      "conditions": {"ready": True}}]})
    return {"Namespace": namespaces, "Service": services, "EndpointSlice": slices}


def query_sets(n: int) -> dict[str, list[str]]:
    return {
        "cluster names": [f"svc{i}.default.svc.cluster.local A" for i in range(n)],
        "search-path NXDOMAIN": [f"www{i}.example.test.default.svc.cluster.local A" for i in range(n // 2)]
        + [f"www{i}.example.test.svc.cluster.local A" for i in range(n // 2)],
        "forwarded names": [f"www{i}.example.test A" for i in range(n)],
    }


def hosts_file(objs: dict) -> str:
    return "".join(f"{s['spec']['clusterIP']} {s['metadata']['name']}.default.svc.cluster.local\n"
                   for s in objs["Service"])


def dnsperf(server: str, port: int, qfile: str, seconds: int) -> dict:
    out = nsexec(CLI, "timeout", str(seconds + 15), "dnsperf", "-s", server, "-p", str(port), "-d", qfile,
                 "-l", str(seconds), "-c", "8", "-T", "1", "-t", "2", check=False).stdout
    def grab(pattern):
        m = re.search(pattern, out)
        return float(m.group(1)) if m else float("nan")
    return {"qps": grab(r"Queries per second:\s+([\d.]+)"),
            "lat_ms": grab(r"Average Latency \(s\):\s+([\d.]+)") * 1000,
            "lost_pct": grab(r"Queries lost:\s+\d+ \(([\d.]+)%\)")}


def setup_network() -> None:
    for ns in (SRV, CLI, UP):
        sh("ip", "netns", "add", ns)
        nsexec(ns, "ip", "link", "set", "lo", "up")
    for a_ns, a_if, a_ip, b_ns, b_if, b_ip in ((SRV, "nsplane-hd-bs0", SRV_IP, CLI, "nsplane-hd-bc0", CLI_IP),
                                               (SRV, "nsplane-hd-bs1", SRV_IP2, UP, "nsplane-hd-bu0", UP_IP)):
        sh("ip", "link", "add", a_if, "netns", a_ns, "type", "veth", "peer", "name", b_if, "netns", b_ns)
        for ns, ifname, ip in ((a_ns, a_if, a_ip), (b_ns, b_if, b_ip)):
            nsexec(ns, "ip", "addr", "add", f"{ip}/24", "dev", ifname)
            nsexec(ns, "ip", "link", "set", ifname, "up")


def teardown(procs) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
    for ns in (SRV, CLI, UP):
        sh("ip", "netns", "del", ns, check=False)


def spawn(ns, *args, log) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", ns, *args], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def dnsmasq(ns, listen, port, *extra, log) -> subprocess.Popen:
    return spawn(ns, "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--pid-file=",
                 "--user=root", "--bind-interfaces", f"--listen-address={listen}", f"--port={port}",
                 "--dns-forward-max=1000", *extra, log=log)


def wait_answer(port: int, name: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        out = nsexec(CLI, "dig", f"@{SRV_IP}", "-p", str(port), "+short", "+time=1", "+tries=1", name, check=False)
        if out.stdout.strip():
            return
        time.sleep(0.2)
    raise SystemExit(f"server on {SRV_IP}:{port} did not answer {name} within 15 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=5, choices=range(1, 31), metavar="1..30")
    ap.add_argument("--services", type=int, default=200, choices=range(10, 5001), metavar="10..5000")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("dns_bench: needs root (it creates network namespaces)")
    for tool in ("dnsperf", "dnsmasq", "dig"):
        if not shutil.which(tool):
            raise SystemExit(f"dns_bench: {tool} is missing; apt-get install -y dnsperf dnsmasq-base bind9-dnsutils")
    tmp = tempfile.mkdtemp(prefix="nsplane-hd-bench-")
    objs = cluster_objects(args.services)
    with open(f"{tmp}/objects.json", "w") as f:
        json.dump(objs, f)
    with open(f"{tmp}/hosts", "w") as f:
        f.write(hosts_file(objs))
    qfiles = {}
    for label, lines in query_sets(args.services).items():
        qfiles[label] = f"{tmp}/{label.split()[0]}.txt"
        with open(qfiles[label], "w") as f:
            f.write("\n".join(lines) + "\n")
    procs = []
    log = open(f"{tmp}/servers.log", "w")
    teardown([])
    try:
        setup_network()
        procs.append(dnsmasq(UP, UP_IP, 53, "--address=/example.test/192.0.2.80", "--cache-size=0", log=log))
        srv_args = {"listen": "0.0.0.0", "port": 53, "upstreams": [UP_IP], "local_ips": [SRV_IP],
                    "health_port": None, "ready_port": None, "metrics_port": None}
        procs.append(spawn(SRV, sys.executable, "-c", SERVER, f"{tmp}/objects.json", json.dumps(srv_args), log=log))
        procs.append(dnsmasq(SRV, SRV_IP, 5353, f"--addn-hosts={tmp}/hosts", "--local=/cluster.local/",
                             f"--server={UP_IP}", "--cache-size=10000", log=log))
        wait_answer(53, "svc0.default.svc.cluster.local")
        wait_answer(5353, "svc0.default.svc.cluster.local")
        results = []
        for label, qfile in qfiles.items():
            for name, port in (("nsplane dns", 53), ("dnsmasq", 5353)):
                dnsperf(SRV_IP, port, qfile, 1)  # warm-up: fills the forward caches
                results.append((label, name, dnsperf(SRV_IP, port, qfile, args.seconds)))
        print(f"\n{'query set':<22} {'server':<12} {'QPS':>10} {'avg ms':>8} {'lost %':>7}")
        for label, name, r in results:
            print(f"{label:<22} {name:<12} {r['qps']:>10.0f} {r['lat_ms']:>8.3f} {r['lost_pct']:>7.2f}")
        print(f"\n{args.services} services, {args.seconds} s per run, dnsperf -c 8 over a veth pair, "
              f"{os.cpu_count()} CPUs shared by client and servers")
    finally:
        teardown(procs)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
