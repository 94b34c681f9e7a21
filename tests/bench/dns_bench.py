"""DNS benchmark toolkit, and its no-cluster mode: our server against dnsmasq
and unbound, same names, same run, in throwaway namespaces of our own.

The toolkit (used by dns_cluster_bench.py, which measures a real cluster):
installing dnsperf/dnsmasq/unbound without leaving a system service enabled
or running; the three query sets (cluster names, the search-path NXDOMAINs
that ndots:5 makes a pod ask first, forwarded names); the baselines' local
data and command lines; and dnsperf run with -v so that every answered
query's latency is seen and p99 is computed, not guessed. Rendering and
parsing are pure functions; the rest is argument lists and processes we
started, stopped by PID.

No-cluster mode, as root:
    /opt/nsplane/venv/bin/python tests/bench/dns_bench.py [--seconds 5] [--services 200]

    nsplane-hd-bcli 10.98.0.2 --veth-- 10.98.0.1 nsplane-hd-bsrv 10.98.1.1 --veth-- 10.98.1.2 nsplane-hd-bup

nsplane-hd-bsrv runs our server on :53 (fed the objects directly, no API),
dnsmasq on :5353 and unbound on :5354; nsplane-hd-bup runs the upstream all
three forward to (a dnsmasq answering *.example.test). dnsperf runs in
nsplane-hd-bcli. Not collected by pytest (no test_ prefix).
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
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DOMAIN = "cluster.local"
FORWARD_ZONE = "example.test"          # answered only by our own upstream, never a real resolver
FORWARD_ANSWER = "192.0.2.80"          # TEST-NET-1
UPSTREAM_TTL = 300                     # long enough for every cache to keep forwarded answers
SET_NAMES = ("cluster names", "search-path NXDOMAIN", "forwarded names")
EXPECTED_RCODE = {"cluster names": "NOERROR", "search-path NXDOMAIN": "NXDOMAIN", "forwarded names": "NOERROR"}
DNSPERF_CLIENTS = 8                    # UDP sockets (so 8 conntrack flows through a DNAT)
DNSPERF_OUTSTANDING = 100              # dnsperf's default -q

class BenchError(RuntimeError):
    """A benchmark could not run (missing tool, server not answering); says what to fix."""


# ---- tools: present, or installed without a running service ------------

PACKAGES = {"dnsperf": "dnsperf", "dnsmasq": "dnsmasq-base", "unbound": "unbound", "dig": "bind9-dnsutils"}
SERVICE_UNITS = {"unbound": ("unbound.service", "unbound-resolvconf.service")}   # per package we install
POLICY_RC_D = "/usr/sbin/policy-rc.d"


def which(tool: str) -> str | None:
    """`tool`'s path, looking in the sbin directories too (unbound lives in /usr/sbin)."""
    return shutil.which(tool) or next((f"{d}/{tool}" for d in ("/usr/sbin", "/sbin")
                                       if os.access(f"{d}/{tool}", os.X_OK)), None)


def ensure_tools(tools=tuple(PACKAGES), say=print) -> dict[str, str]:
    """Paths of `tools`; installs the Debian packages of the missing ones
    (dnsmasq from dnsmasq-base: the binary without the system service)."""
    missing = [t for t in tools if not which(t)]
    if missing:
        packages = [PACKAGES[t] for t in missing]
        say(f"installing {' '.join(packages)} (apt-get; services kept stopped and disabled)")
        apt_install(packages)
    paths = {t: which(t) for t in tools}
    lost = [t for t, p in paths.items() if not p]
    if lost:
        raise BenchError(f"dns bench: {', '.join(lost)} still missing after apt-get install; install "
                         f"{' '.join(PACKAGES[t] for t in lost)} by hand")
    return paths


def apt_install(packages: list[str]) -> None:
    """apt-get install with service starts refused (policy-rc.d exit 101, placed
    only if none exists, removed after), then the units disabled and stopped."""
    placed = not os.path.exists(POLICY_RC_D)
    if placed:
        with open(POLICY_RC_D, "w") as f:
            f.write("#!/bin/sh\n# placed by nsplane tests/bench/dns_bench.py during apt-get install\nexit 101\n")
        os.chmod(POLICY_RC_D, 0o755)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    argv = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    try:
        if subprocess.run(argv, check=False, env=env, capture_output=True, timeout=600).returncode != 0:
            subprocess.run(["apt-get", "update"], check=False, env=env, capture_output=True, timeout=600)
            r = subprocess.run(argv, check=False, env=env, capture_output=True, text=True, timeout=600)
            if r.returncode != 0:
                raise BenchError(f"dns bench: apt-get install {' '.join(packages)} failed:\n{r.stderr[-2000:]}")
    finally:
        if placed:
            os.remove(POLICY_RC_D)
        quiesce_services([u for p in packages for u in SERVICE_UNITS.get(p, ())])


def quiesce_services(units: list[str]) -> None:
    """The units our install added left disabled and stopped (dnsmasq comes from
    dnsmasq-base, which has none; units someone else enabled are not ours to touch)."""
    if not shutil.which("systemctl"):
        return
    for unit in units:
        subprocess.run(["systemctl", "disable", unit], check=False, capture_output=True, timeout=60)
        if os.path.isdir("/run/systemd/system"):
            subprocess.run(["systemctl", "stop", unit], check=False, capture_output=True, timeout=60)


# ---- query sets (pure) ---------------------------------------------------

def query_sets(services: list[tuple[str, str]], n_misses: int, n_forwarded: int) -> dict[str, list[str]]:
    """dnsperf input lines per set. `services` are (namespace, name) pairs.

    Search-path NXDOMAINs are the first names a pod with ndots:5 and search
    `<ns>.svc.cluster.local svc.cluster.local cluster.local` asks: for an
    outside name (www3.example.test -> +default.svc.cluster.local, +svc...,
    +cluster.local) and for a Service FQDN typed without its final dot (4 dots).
    """
    cluster = [f"{name}.{ns}.svc.{DOMAIN} A" for ns, name in services]
    misses = []
    for i in range(n_misses):
        ns, name = services[i % len(services)]
        outside = f"www{i}.{FORWARD_ZONE}"
        misses += [f"{outside}.{ns}.svc.{DOMAIN} A", f"{outside}.svc.{DOMAIN} A", f"{outside}.{DOMAIN} A",
                   f"{name}.{ns}.svc.{DOMAIN}.{ns}.svc.{DOMAIN} A"]
    forwarded = [f"www{i}.{FORWARD_ZONE} A" for i in range(n_forwarded)]
    return dict(zip(SET_NAMES, (cluster, misses, forwarded)))


def write_query_files(sets: dict[str, list[str]], directory: str) -> dict[str, str]:
    paths = {}
    for label, lines in sets.items():
        paths[label] = os.path.join(directory, label.split()[0].split("-")[0] + ".queries")
        with open(paths[label], "w") as f:
            f.write("\n".join(lines) + "\n")
    return paths


# ---- baselines' configuration (pure) ------------------------------------

def hosts_file(records: list[tuple[str, str]]) -> str:
    """/etc/hosts lines for (fqdn, ipv4) records: dnsmasq's local data."""
    return "".join(f"{ip} {fqdn}\n" for fqdn, ip in records)


def dnsmasq_argv(binary: str, listen: str, port: int, *, hosts: str | None = None,
                 upstream: str | None = None, address_zone: str | None = None) -> list[str]:
    """A foreground dnsmasq on listen:port. With `hosts`: answers those names,
    NXDOMAIN for the rest of cluster.local, forwards everything else to
    `upstream`, caching. With `address_zone`: the test upstream, answering
    every name of that zone with FORWARD_ANSWER for UPSTREAM_TTL seconds."""
    argv = [binary, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--pid-file=", "--user=root",
            "--bind-interfaces", f"--listen-address={listen}", f"--port={port}", "--dns-forward-max=1000",
            "--log-facility=-"]
    if hosts:
        argv += [f"--addn-hosts={hosts}", f"--local=/{DOMAIN}/", "--cache-size=10000"]
    if upstream:
        argv.append(f"--server={upstream}")
    if address_zone:
        argv += [f"--address=/{address_zone}/{FORWARD_ANSWER}", f"--local-ttl={UPSTREAM_TTL}", "--cache-size=0"]
    return argv


def unbound_conf(listen: str, port: int, records: list[tuple[str, str]], upstream: str, threads: int = 1) -> str:
    """A foreground unbound: `records` as local data in a static cluster.local
    zone (so NXDOMAIN for the rest of it), everything else forwarded to
    `upstream`, no DNSSEC validation, no chroot, no remote control."""
    lines = ["server:", f"  interface: {listen}", f"  port: {port}", "  do-ip6: no", "  do-daemonize: no",
             '  chroot: ""', '  username: ""', '  pidfile: ""', "  use-syslog: no", "  verbosity: 0",
             f"  num-threads: {threads}", '  module-config: "iterator"', "  access-control: 0.0.0.0/0 allow",
             '  local-zone: "test." nodefault', "  do-not-query-localhost: no",
             "  msg-cache-size: 16m", "  rrset-cache-size: 32m",
             f'  local-zone: "{DOMAIN}." static']
    lines += [f'  local-data: "{fqdn}. 30 IN A {ip}"' for fqdn, ip in records]
    lines += ["remote-control:", "  control-enable: no",
              "forward-zone:", '  name: "."', f"  forward-addr: {upstream}"]
    return "\n".join(lines) + "\n"


# ---- dnsperf ---------------------------------------------------------------

@dataclass
class Result:
    qps: float
    avg_ms: float
    p99_ms: float
    max_ms: float
    lost_pct: float
    rcodes: dict = field(default_factory=dict)

    def rcode_summary(self) -> str:
        total = sum(self.rcodes.values()) or 1
        return ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in sorted(self.rcodes.items(), key=lambda kv: -kv[1]))


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (nan when empty)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), -(-len(sorted_values) * p // 100)))
    return sorted_values[int(rank) - 1]


def parse_dnsperf(lines) -> Result:
    """A Result from dnsperf -v output: "> RCODE name TYPE seconds" per answer,
    then the statistics block. Latencies come from the per-answer lines."""
    latencies, summary = [], []
    for line in lines:
        if line.startswith("> "):
            try:
                latencies.append(float(line.rsplit(None, 1)[1]))
            except (ValueError, IndexError):
                continue
        else:
            summary.append(line)
    text = "".join(summary)
    latencies.sort()

    def grab(pattern: str) -> float:
        m = re.search(pattern, text)
        return float(m.group(1)) if m else float("nan")
    rcodes = {k: int(v) for k, v in re.findall(r"([A-Z]+) (\d+) \([\d.]+%\)", _line(text, "Response codes:"))}
    return Result(qps=grab(r"Queries per second:\s+([\d.]+)"),
                  avg_ms=grab(r"Average Latency \(s\):\s+([\d.]+)") * 1000,
                  p99_ms=percentile(latencies, 99) * 1000,
                  max_ms=grab(r"Average Latency \(s\):.*max ([\d.]+)") * 1000,
                  lost_pct=grab(r"Queries lost:\s+\d+ \(([\d.]+)%\)"),
                  rcodes=rcodes)


def _line(text: str, head: str) -> str:
    m = re.search(rf"{re.escape(head)}(.*)", text)
    return m.group(1) if m else ""


def dnsperf(netns: str, server: str, port: int, qfile: str, seconds: float, out_path: str,
            clients: int = DNSPERF_CLIENTS) -> Result:
    """dnsperf inside `netns` for `seconds` (killed after seconds + 20)."""
    argv = ["ip", "netns", "exec", netns, "dnsperf", "-s", server, "-p", str(port), "-d", qfile,
            "-l", f"{seconds:g}", "-c", str(clients), "-T", "1", "-t", "2", "-q", str(DNSPERF_OUTSTANDING), "-v"]
    with open(out_path, "w") as out:
        subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=seconds + 20, check=False)
    with open(out_path) as f:
        result = parse_dnsperf(f)
    os.remove(out_path)
    return result


# ---- processes we start, stopped by PID ------------------------------------

def spawn(netns: str, argv: list[str], log) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", netns, *argv], cwd=REPO, stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT)


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


def wait_answer(netns: str, server: str, port: int, name: str, timeout: float = 20.0) -> None:
    """Until `server`:`port` answers `name` with an address, seen from `netns`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["ip", "netns", "exec", netns, "dig", f"@{server}", "-p", str(port), "+short",
                              "+time=1", "+tries=1", name], check=False, capture_output=True, text=True,
                             timeout=10).stdout
        if re.search(r"^\d+\.\d+\.\d+\.\d+$", out, re.MULTILINE):
            return
        time.sleep(0.2)
    raise BenchError(f"dns bench: {server}:{port} did not answer {name} within {timeout:.0f} s "
                     f"(seen from netns {netns}); see the servers' log")


# ---- no-cluster mode -------------------------------------------------------

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


def _sh(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True, timeout=30)


def setup_network() -> None:
    for ns in (SRV, CLI, UP):
        _sh("ip", "netns", "add", ns)
        _sh("ip", "-n", ns, "link", "set", "lo", "up")
    for a_ns, a_if, a_ip, b_ns, b_if, b_ip in ((SRV, "nsplane-hd-bs0", SRV_IP, CLI, "nsplane-hd-bc0", CLI_IP),
                                               (SRV, "nsplane-hd-bs1", SRV_IP2, UP, "nsplane-hd-bu0", UP_IP)):
        _sh("ip", "link", "add", a_if, "netns", a_ns, "type", "veth", "peer", "name", b_if, "netns", b_ns)
        for ns, ifname, ip in ((a_ns, a_if, a_ip), (b_ns, b_if, b_ip)):
            _sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", ifname)
            _sh("ip", "-n", ns, "link", "set", ifname, "up")


def remove_network() -> None:
    for ns in (SRV, CLI, UP):
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True, timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=5, choices=range(1, 31), metavar="1..30")
    ap.add_argument("--services", type=int, default=200, choices=range(10, 5001), metavar="10..5000")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("dns_bench: needs root (it creates network namespaces)")
    tools = ensure_tools()
    tmp = tempfile.mkdtemp(prefix="nsplane-hd-bench-")
    objs = cluster_objects(args.services)
    records = [(f"{s['metadata']['name']}.default.svc.{DOMAIN}", s["spec"]["clusterIP"]) for s in objs["Service"]]
    with open(f"{tmp}/objects.json", "w") as f:
        json.dump(objs, f)
    with open(f"{tmp}/hosts", "w") as f:
        f.write(hosts_file(records))
    with open(f"{tmp}/unbound.conf", "w") as f:
        f.write(unbound_conf(SRV_IP, 5354, records, UP_IP))
    services = [("default", s["metadata"]["name"]) for s in objs["Service"]]
    qfiles = write_query_files(query_sets(services, args.services // 4, args.services), tmp)
    procs, log = [], open(f"{tmp}/servers.log", "w")
    remove_network()
    try:
        setup_network()
        procs.append(spawn(UP, dnsmasq_argv(tools["dnsmasq"], UP_IP, 53, address_zone=FORWARD_ZONE), log))
        srv_args = {"listen": "0.0.0.0", "port": 53, "upstreams": [UP_IP], "local_ips": [SRV_IP],
                    "health_port": None, "ready_port": None, "metrics_port": None}
        procs.append(spawn(SRV, [sys.executable, "-c", SERVER, f"{tmp}/objects.json", json.dumps(srv_args)], log))
        procs.append(spawn(SRV, dnsmasq_argv(tools["dnsmasq"], SRV_IP, 5353, hosts=f"{tmp}/hosts",
                                             upstream=UP_IP), log))
        procs.append(spawn(SRV, [tools["unbound"], "-d", "-c", f"{tmp}/unbound.conf"], log))
        servers = (("nsplane dns", 53), ("dnsmasq", 5353), ("unbound", 5354))
        for _, port in servers:
            wait_answer(CLI, SRV_IP, port, f"svc0.default.svc.{DOMAIN}")
        print(f"\n{'query set':<22} {'server':<12} {'QPS':>9} {'avg ms':>7} {'p99 ms':>7} {'lost %':>6}  rcodes")
        for label, qfile in qfiles.items():
            for name, port in servers:
                dnsperf(CLI, SRV_IP, port, qfile, 1, f"{tmp}/warm.out")   # fills the forward caches
                r = dnsperf(CLI, SRV_IP, port, qfile, args.seconds, f"{tmp}/run.out")
                print(f"{label:<22} {name:<12} {r.qps:>9.0f} {r.avg_ms:>7.3f} {r.p99_ms:>7.3f} {r.lost_pct:>6.2f}"
                      f"  {r.rcode_summary()}")
        print(f"\n{args.services} services, {args.seconds} s per run, dnsperf -c {DNSPERF_CLIENTS} "
              f"-q {DNSPERF_OUTSTANDING} over a veth pair, {os.cpu_count()} CPUs shared by client and servers")
    finally:
        stop(procs)
        log.close()
        remove_network()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        raise SystemExit(str(e)) from None
