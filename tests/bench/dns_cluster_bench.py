"""DNS benchmark on a real nsplane cluster: queries per second and latency
through kube-dns, next to dnsmasq and unbound (the "dns" rows of
tests/bench/run's table).

dnsperf runs inside a pod's network namespace and asks 10.96.0.10, so every
query crosses the node's real kube-proxy DNAT to a coredns pod, exactly as a
pod's resolver does. In the same run, from the same pod, it asks:

* our server directly at the coredns pod's IP (no DNAT: the DNAT's cost),
* dnsmasq and unbound (Debian packages), run by PID inside a second pod's
  namespace, given the cluster's Service names as local data, NXDOMAIN for
  the rest of cluster.local, forwarding the rest,
* all three forwarding to the same test upstream: a dnsmasq in the cluster's
  own host namespace answering *.example.test. Nothing leaves the machine.

Three query sets (dns_bench.query_sets): cluster names (A of every Service),
search-path NXDOMAINs (what ndots:5 makes a pod ask first) and forwarded
names (cache hits after the warm-up). Every run is bounded by dnsperf -l.
coredns starts with 2 replicas: cluster names are measured through the DNAT
with both, then it is scaled to 1 (one process, one core: the figure to set
against CoreDNS's published ~16,800 QPS per core) for everything else.

    /opt/nsplane/venv/bin/python tests/bench/dns_cluster_bench.py [--quick] [--services 100]

`run(quick) -> list[dict]` gives the figures to tests/bench/run. Not
collected by pytest (no test_ prefix).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from dataplane import names
from tests.bench import dns_bench as kit
from tests.integration.cluster import ThrowawayCluster

DNS_IP = "10.96.0.10"
COREDNS_QPS_PER_CORE = 16_800          # CoreDNS's published figure for cluster names
SERVICES = 100
CLIENT_POD, BASELINE_POD = "dnsperf", "dns-baseline"
DNSMASQ_PORT, UNBOUND_PORT = 53, 5353
OURS = "nsplane"
VIA_DNAT_2 = f"{OURS} via {DNS_IP}, 2 replicas"
VIA_DNAT = f"{OURS} via {DNS_IP}"
DIRECT = f"{OURS} direct (pod IP)"
BASELINES = ("dnsmasq", "unbound")
ROUNDS = 2                             # interleaved runs per figure; the best one counts


@dataclass
class Row:
    query_set: str
    server: str
    result: kit.Result

    @property
    def answered_as_expected(self) -> bool:
        """At least 99% of answers carry the set's rcode (else the figure measures an error path)."""
        total = sum(self.result.rcodes.values())
        return total > 0 and self.result.rcodes.get(kit.EXPECTED_RCODE[self.query_set], 0) >= 0.99 * total


@dataclass
class Run:
    rows: list[Row]
    seconds: float
    n_services: int
    load: tuple[float, float]          # 1-minute load average before and after: how busy the machine was


# ---- pure: manifests, figures, table ------------------------------------

def services_yaml(n: int) -> str:
    """n selectorless ClusterIP Services in default: each gets an A record."""
    return "".join(f"---\napiVersion: v1\nkind: Service\nmetadata:\n  name: bench-svc-{i}\n"
                   f"spec:\n  ports:\n  - {{name: http, port: 80, protocol: TCP}}\n" for i in range(n))


def cluster_records(service_list: dict) -> list[tuple[str, str]]:
    """(fqdn, clusterIP) of every ClusterIP Service in a `get svc -A` list."""
    out = []
    for s in service_list["items"]:
        ip = s["spec"].get("clusterIP")
        if ip and ip != "None":
            out.append((f"{s['metadata']['name']}.{s['metadata']['namespace']}.svc.{kit.DOMAIN}", ip))
    return sorted(out)


def target_for(row: Row) -> float | None:
    if row.query_set != "cluster names" or not row.server.startswith(OURS):
        return None
    return 2 * COREDNS_QPS_PER_CORE if row.server == VIA_DNAT_2 else COREDNS_QPS_PER_CORE


def figures(rows: list[Row]) -> list[dict]:
    """One dict per figure (QPS, avg ms, p99 ms per row answered as expected).
    Our rows carry the better of dnsmasq/unbound for the same set as baseline;
    our cluster-name QPS rows carry CoreDNS's published figure as target
    (and target_met, which tests/bench/run shows)."""
    metrics = (("qps", "qps", "qps", max), ("avg latency", "avg_ms", "ms", min),
               ("p99 latency", "p99_ms", "ms", min))
    good = [r for r in rows if r.answered_as_expected]
    out = []
    for row in good:
        for metric, attr, unit, better in metrics:
            baseline, baseline_name = None, None
            if row.server.startswith(OURS):
                peers = [(getattr(b.result, attr), b.server) for b in good
                         if b.query_set == row.query_set and b.server in BASELINES]
                if peers:
                    baseline, baseline_name = better(peers)
            digits = 1 if unit == "qps" else 3
            value = round(float(getattr(row.result, attr)), digits)
            target = target_for(row) if unit == "qps" else None
            out.append({"name": f"dns {row.query_set} {metric}, {row.server}", "value": value, "unit": unit,
                        "baseline": None if baseline is None else round(float(baseline), digits),
                        "baseline_name": baseline_name,
                        "target": target, "target_met": None if target is None else value >= target})
    return out


def format_table(run: Run) -> str:
    rows, seconds = run.rows, run.seconds
    lines = [(f"{'query set':<21} {'server':<33} {'QPS':>8} {'avg ms':>7} {'p99 ms':>7} {'max ms':>7} "
              f"{'lost %':>6}  rcodes")]
    last = None
    for row in rows:
        r = row.result
        flag = "" if row.answered_as_expected else f"  <- expected {kit.EXPECTED_RCODE[row.query_set]}"
        lines.append(f"{row.query_set if row.query_set != last else '':<21} {row.server:<33} {r.qps:>8.0f} "
                     f"{r.avg_ms:>7.3f} {r.p99_ms:>7.3f} {r.max_ms:>7.2f} {r.lost_pct:>6.2f}  "
                     f"{r.rcode_summary()}{flag}")
        last = row.query_set
    lines.append("")
    for row in rows:
        target = target_for(row)
        if target and row.answered_as_expected:
            lines.append(f"{row.server}: {row.result.qps:,.0f} QPS = {row.result.qps / target:.2f}x "
                         f"CoreDNS's published {target:,.0f} ({target / COREDNS_QPS_PER_CORE:.0f} core"
                         f"{'s' if target > COREDNS_QPS_PER_CORE else ''} x ~16,800 QPS)")
    by = {(r.query_set, r.server): r.result for r in rows}
    for qs in kit.SET_NAMES:
        dnat, direct = by.get((qs, VIA_DNAT)), by.get((qs, DIRECT))
        if dnat and direct and direct.qps:
            lines.append(f"DNAT cost, {qs}: {dnat.qps:,.0f} QPS via {DNS_IP} / {direct.qps:,.0f} direct "
                         f"= {dnat.qps / direct.qps:.2f}; avg latency {dnat.avg_ms - direct.avg_ms:+.3f} ms")
    lines.append(f"\n{run.n_services} Services (+ kubernetes, kube-dns); per figure: best of {ROUNDS} interleaved "
                 f"runs of {seconds / ROUNDS:g} s after a warm-up; "
                 f"dnsperf -c {kit.DNSPERF_CLIENTS} -q {kit.DNSPERF_OUTSTANDING} in pod {CLIENT_POD}'s netns; "
                 f"latency at saturation; p99 from every answer (dnsperf -v); {os.cpu_count()} CPUs shared by "
                 f"dnsperf, servers and the cluster; dnsmasq/unbound in pod {BASELINE_POD}, 1 thread each; "
                 f"load average {run.load[0]:.1f} before, {run.load[1]:.1f} after.")
    return "\n".join(lines)


# ---- the cluster and the processes we add to it -----------------------------

class ClusterBench:
    """A ThrowawayCluster plus the upstream and the baselines we run by PID."""

    def __init__(self, tmp: str, tools: dict, say) -> None:
        self.tmp, self.tools, self.say = tmp, tools, say
        self.tc = ThrowawayCluster(os.path.join(tmp, "cluster"))
        self.tc.cfg.upstream_dns = [self.tc.cfg.host_ip]     # coredns forwards to our test upstream
        self.procs: list[subprocess.Popen] = []
        self.log = open(os.path.join(tmp, "servers.log"), "w")
        self.qfiles: dict[str, str] = {}

    def pod_netns(self, pod: str) -> str:
        return names.pod_netns(self.tc.cfg.name, "default", pod)

    def pod_ip(self, pod: str, namespace: str = "default") -> str:
        return self.tc.get("pod", pod, "-n", namespace)["status"]["podIP"]

    def up(self, n_services: int) -> None:
        t0 = time.monotonic()
        os.makedirs(self.tc.cfg.state_dir, exist_ok=True)
        self.tc.up()
        cfg = self.tc.cfg
        self.procs.append(kit.spawn(cfg.host_netns, kit.dnsmasq_argv(
            self.tools["dnsmasq"], cfg.host_ip, 53, address_zone=kit.FORWARD_ZONE), self.log))
        self.tc.apply(services_yaml(n_services))
        for pod in (CLIENT_POD, BASELINE_POD):
            self.tc.nsplane("run", pod, "--image=busybox", "--", "sleep", "3600")
        try:
            self.tc.wait_ready(f"run in ({CLIENT_POD},{BASELINE_POD})", 2, timeout=60)
            self.wait_coredns(2)
        except AssertionError as e:
            raise kit.BenchError(f"dns_cluster_bench: cluster {cfg.name} not ready: {e}\n{self.diagnosis()}") from e
        records = cluster_records(self.tc.get("svc", "-A"))
        services = [(fqdn.split(".")[1], fqdn.split(".")[0]) for fqdn, _ in records]
        self.qfiles = kit.write_query_files(kit.query_sets(services, max(1, len(services) // 4), len(services)),
                                            self.tmp)
        kit.wait_answer(self.pod_netns(CLIENT_POD), DNS_IP, 53, records[-1][0], timeout=30)
        self.start_baselines(records)
        self.say(f"cluster {cfg.name} ready with {len(records)} Services in {time.monotonic() - t0:.1f} s")

    def diagnosis(self) -> str:
        """Pods and the tail of every log of the cluster (they go with the cluster)."""
        out = [self.tc.nsplane("get", "pods", "-A", "-o", "wide", check=False).stdout]
        logs = os.path.join(self.tc.cfg.dir, "logs")
        for name in sorted(os.listdir(logs)) if os.path.isdir(logs) else []:
            with open(os.path.join(logs, name), errors="replace") as f:
                out.append(f"--- {name} (last 8 lines)\n" + "".join(f.readlines()[-8:]))
        return "\n".join(out)

    def coredns_endpoints(self) -> list[str]:
        slices = self.tc.get("endpointslices", "-n", "kube-system", "-l", "kubernetes.io/service-name=kube-dns")
        return [a for s in slices["items"] for e in s.get("endpoints") or []
                if (e.get("conditions") or {}).get("ready") for a in e["addresses"]]

    def wait_coredns(self, n: int) -> list[str]:
        """Until kube-dns has exactly n ready endpoints; returns their IPs."""
        return self.tc.wait(lambda: (ips := self.coredns_endpoints()) and len(ips) == n and ips, 60,
                            f"{n} ready kube-dns endpoint(s)")

    def start_baselines(self, records: list[tuple[str, str]]) -> None:
        ip, netns, upstream = self.pod_ip(BASELINE_POD), self.pod_netns(BASELINE_POD), self.tc.cfg.host_ip
        hosts, conf = os.path.join(self.tmp, "hosts"), os.path.join(self.tmp, "unbound.conf")
        with open(hosts, "w") as f:
            f.write(kit.hosts_file(records))
        with open(conf, "w") as f:
            f.write(kit.unbound_conf(ip, UNBOUND_PORT, records, upstream))
        self.procs.append(kit.spawn(netns, kit.dnsmasq_argv(self.tools["dnsmasq"], ip, DNSMASQ_PORT, hosts=hosts,
                                                            upstream=upstream), self.log))
        self.procs.append(kit.spawn(netns, [self.tools["unbound"], "-d", "-c", conf], self.log))
        for port in (DNSMASQ_PORT, UNBOUND_PORT):
            kit.wait_answer(self.pod_netns(CLIENT_POD), ip, port, records[0][0])

    def measure_set(self, query_set: str, targets: list[tuple[str, str, int]], seconds: float,
                    warm: float) -> list[Row]:
        """Each target warmed once (fills caches and prepared answers), then
        ROUNDS interleaved runs of seconds/ROUNDS; the best run is its figure,
        so a burst of load from elsewhere on the machine hits no server alone."""
        client, qfile = self.pod_netns(CLIENT_POD), self.qfiles[query_set]
        out = os.path.join(self.tmp, "dnsperf.out")
        for _, host, port in targets:
            kit.dnsperf(client, host, port, qfile, warm, out)
        best: dict[str, kit.Result] = {}
        for _ in range(ROUNDS):
            for server, host, port in targets:
                r = kit.dnsperf(client, host, port, qfile, seconds / ROUNDS, out)
                if server not in best or r.qps > best[server].qps:
                    best[server] = r
        for server, _, _ in targets:
            self.say(f"  {query_set:<21} {server:<33} {best[server].qps:>8.0f} QPS")
        return [Row(query_set, server, best[server]) for server, _, _ in targets]

    def measure_all(self, seconds: float, warm: float) -> list[Row]:
        rows = self.measure_set("cluster names", [(VIA_DNAT_2, DNS_IP, 53)], seconds, warm)
        self.tc.nsplane("scale", "deployment", "coredns", "--replicas=1", "-n", "kube-system")
        coredns_ip = self.wait_coredns(1)[0]
        baseline_ip = self.pod_ip(BASELINE_POD)
        targets = [(VIA_DNAT, DNS_IP, 53), (DIRECT, coredns_ip, 53),
                   ("dnsmasq", baseline_ip, DNSMASQ_PORT), ("unbound", baseline_ip, UNBOUND_PORT)]
        for query_set in kit.SET_NAMES:
            rows += self.measure_set(query_set, targets, seconds, warm)
        return rows

    def down(self) -> None:
        kit.stop(self.procs)
        self.log.close()
        self.tc.down()
        left = self.tc.leftovers()
        if left:
            print(f"dns_cluster_bench: warning: cluster {self.tc.cfg.name} left {left}; remove them with "
                  f"NSPLANE_STATE_DIR={self.tc.cfg.state_dir} nsplane --cluster {self.tc.cfg.name} down",
                  file=sys.stderr)


def measure(quick: bool = False, n_services: int = SERVICES, say=lambda *_: None) -> Run:
    """Bring a throwaway cluster up, measure every row, take it all down."""
    if os.geteuid() != 0:
        raise kit.BenchError("dns_cluster_bench: needs root (it runs a cluster of network namespaces)")
    tools = kit.ensure_tools(("dnsperf", "dnsmasq", "unbound", "dig"), say=say)
    seconds, warm = (2.0, 0.5) if quick else (5.0, 1.0)
    tmp = tempfile.mkdtemp(prefix="nsplane-hd-cbench-")
    bench = None
    try:
        bench = ClusterBench(tmp, tools, say)
        load = os.getloadavg()[0]
        bench.up(n_services)
        rows = bench.measure_all(seconds, warm)
        return Run(rows, seconds, n_services, (load, os.getloadavg()[0]))
    finally:
        if bench:
            bench.down()
        shutil.rmtree(tmp, ignore_errors=True)


def run(quick: bool = False) -> list[dict]:
    """The figures for tests/bench/run: QPS, avg and p99 latency per server and query set."""
    return figures(measure(quick).rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 s per figure instead of 5")
    ap.add_argument("--services", type=int, default=SERVICES, choices=range(10, 2001), metavar="10..2000")
    args = ap.parse_args()
    t0 = time.monotonic()
    try:
        result = measure(args.quick, args.services, say=lambda *a: print(*a, file=sys.stderr, flush=True))
    except kit.BenchError as e:
        raise SystemExit(str(e)) from None
    print(format_table(result))
    print(f"total {time.monotonic() - t0:.0f} s (cluster up, measurements, teardown)")


if __name__ == "__main__":
    main()
