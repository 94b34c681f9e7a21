"""Proxier benchmarks: figures 1-4 of tests/bench/run's table (full sync,
incremental sync, connections through the rules, throughput) and the
proxier's side of figure 8 (memory).

Not collected by pytest; `tests/bench/run` calls `run(quick)`. Everything
happens in throwaway network namespaces named `nsplane-hb-*`:

    nsplane-hb-cli (10.244.0.6) ==veth== nsplane-hb-node ==veth== nsplane-hb-srv (10.244.0.5)
                                          rules live here;         a TCP "hello" server on :8080
                                          hb-under0 stub gives     and a byte sink on :9000
                                          it a default route

The node's rules are written by worker processes started inside
nsplane-hb-node (`python -m tests.bench.proxier_bench node-...`), client load
runs in nsplane-hb-cli. Each figure is measured next to a baseline taken in
the same run (the machines are noisy): the kernel floor for the same restore
text, one Service instead of 10,000, the pod IP instead of the ClusterIP.
Every loop is bounded in count and time; the namespaces (and with them every
rule and link) and the server process are removed on every exit path.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = sys.executable
NODE, SRV, CLI = "nsplane-hb-node", "nsplane-hb-srv", "nsplane-hb-cli"
NFT_NS = "nsplane-hb-nft"  # figure 2's nftables reference, rules only, no links
SRV_IP, CLI_IP, GW = "10.244.0.5", "10.244.0.6", "10.244.0.1"
HELLO_PORT, SINK_PORT = 8080, 9000
DEADLINE = 900.0  # no worker process lives longer than this


# ---------------------------------------------------------------- topology


def sh(*argv: str, timeout: float = 60, check: bool = True) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=check).stdout


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": ROOT}


def _add_pod(pod: str, host_if: str, ip: str) -> None:
    sh("ip", "link", "add", host_if, "netns", NODE, "type", "veth", "peer", "name", "eth0", "netns", pod)
    sh("ip", "-n", pod, "addr", "add", f"{ip}/32", "dev", "eth0")
    sh("ip", "-n", pod, "link", "set", "eth0", "up")
    sh("ip", "-n", pod, "route", "add", GW, "dev", "eth0")
    sh("ip", "-n", pod, "route", "add", "default", "via", GW, "dev", "eth0")
    sh("ip", "-n", NODE, "addr", "add", f"{GW}/32", "dev", host_if)
    sh("ip", "-n", NODE, "link", "set", host_if, "up")
    sh("ip", "-n", NODE, "route", "add", f"{ip}/32", "dev", host_if)


def unthrottle_icmp(ns: str) -> None:
    """REJECT answers are ICMP, which the kernel rate-limits (a burst, then
    about 1/s): unthrottled in `ns`, a refusal measures the rules, not the
    limiter (a throttled one reads as a 1 s stall)."""
    for knob in ("icmp_ratelimit=0", "icmp_msgs_per_sec=100000", "icmp_msgs_burst=100000"):
        sh("ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"net.ipv4.{knob}")


@contextmanager
def topology():
    """The three namespaces, their veths and the server; all gone afterwards."""
    with ExitStack() as stack:
        for ns in (NODE, SRV, CLI):
            sh("ip", "netns", "add", ns)
            stack.callback(sh, "ip", "netns", "del", ns, check=False)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", NODE, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        unthrottle_icmp(NODE)
        _add_pod(SRV, "hb-srv0", SRV_IP)
        _add_pod(CLI, "hb-cli0", CLI_IP)
        sh("ip", "-n", NODE, "link", "add", "hb-under0", "type", "veth", "peer", "name", "hb-under1")
        sh("ip", "-n", NODE, "addr", "add", "192.168.50.2/24", "dev", "hb-under0")
        for link in ("hb-under0", "hb-under1"):
            sh("ip", "-n", NODE, "link", "set", link, "up")
        sh("ip", "-n", NODE, "route", "add", "default", "via", "192.168.50.1")
        server = subprocess.Popen(["ip", "netns", "exec", SRV, PY, "-m", "tests.bench.proxier_bench", "server"],
                                  stdout=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
        stack.callback(lambda: (server.kill(), server.wait(timeout=10)))
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError("benchmark server in nsplane-hb-srv did not start")
        yield


def in_ns(ns: str, *args: str, timeout: float = 600) -> dict:
    """Run a worker of this module inside `ns`; its last stdout line is JSON."""
    proc = subprocess.run(["ip", "netns", "exec", ns, PY, "-m", "tests.bench.proxier_bench", *args],
                          capture_output=True, text=True, timeout=timeout, env=_env(), cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} in {ns} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- workers: servers and clients


def serve() -> None:
    """In nsplane-hb-srv: :8080 says hello and closes, :9000 counts bytes until EOF."""
    import threading

    def hello() -> None:
        srv = socket.create_server(("0.0.0.0", HELLO_PORT), backlog=512, reuse_port=True)
        while True:
            conn, _ = srv.accept()
            conn.sendall(b"hi")
            conn.close()

    def sink() -> None:
        srv = socket.create_server(("0.0.0.0", SINK_PORT), backlog=16)
        while True:
            conn, _ = srv.accept()
            total = 0
            while chunk := conn.recv(1 << 20):
                total += len(chunk)
            conn.sendall(str(total).encode())
            conn.close()

    for target in (hello, sink):
        threading.Thread(target=target, daemon=True).start()
    print("ready", flush=True)
    time.sleep(DEADLINE)


def connect_once(ip: str, port: int, timeout: float = 2.0) -> str:
    """"ok" when the hello server answered, else "refused"/"timeout"/"error"."""
    try:
        with socket.create_connection((ip, port), timeout=timeout) as s:
            return "ok" if s.recv(2) == b"hi" else "error"
    except ConnectionRefusedError:
        return "refused"
    except socket.timeout:
        return "timeout"
    except OSError:
        return "error"


def client_connections(ip: str, port: int, count: int) -> dict:
    """In nsplane-hb-cli: `count` sequential short connections; latencies in seconds."""
    latencies, failures = [], 0
    start = time.monotonic()
    for _ in range(count):
        t = time.perf_counter()
        if connect_once(ip, port) != "ok":
            failures += 1
        latencies.append(time.perf_counter() - t)
        if time.monotonic() - start > 120:
            break
    return {"latencies": latencies, "failures": failures, "seconds": time.monotonic() - start}


def client_stream(ip: str, port: int, total: int) -> dict:
    """In nsplane-hb-cli: send `total` bytes over one connection; seconds taken."""
    chunk = b"\0" * (1 << 20)
    with socket.create_connection((ip, port), timeout=30) as s:
        t = time.perf_counter()
        sent = 0
        while sent < total:
            s.sendall(chunk)
            sent += len(chunk)
        s.shutdown(socket.SHUT_WR)
        received = int(s.recv(64).decode())
        seconds = time.perf_counter() - t
    return {"bytes": received, "seconds": seconds}


def client_loop() -> None:
    """In nsplane-hb-cli: answer "ip port" lines with a connection's outcome (bounded)."""
    start = time.monotonic()
    for line in sys.stdin:
        if time.monotonic() - start > DEADLINE:
            break
        ip, port = line.split()
        print(connect_once(ip, int(port), timeout=3.0), flush=True)


# ---------------------------------------------------------------- workers: the node's rules


def cluster(n: int, node_ports: bool, target_ip: str | None = None) -> dict:
    """n Services x 3 endpoints (plain data). Cluster IPs are spread over
    10.96.0.0/12 like the allocator's; NodePorts are 20000+i so that 10,000
    fit (kube-proxy's rules do not care about the apiserver's range)."""
    import random

    from dataplane.model import Endpoint, ServicePort

    rng = random.Random(n)
    offsets = rng.sample(range(256, 1 << 20), n)
    services = {}
    for i, off in enumerate(offsets):
        ip = f"10.{96 + off // 65536}.{off // 256 % 256}.{off % 256}"
        sp = ServicePort("bench", f"svc-{i:05d}", "http", "TCP", ip, 80, node_port=20000 + i if node_ports else 0)
        services[sp] = [Endpoint(f"10.{245 + (3 * i + k) // 62500}.{(3 * i + k) // 250 % 250}.{(3 * i + k) % 250 + 1}",
                                 8080, node_name=_node_of(3 * i + k)) for k in range(3)]
    if target_ip:  # the Service the clients use, in the middle of kube-proxy's order, reaching the server pod
        middle = sorted(services, key=lambda sp: sp.spn)[n // 2]
        del services[middle]
        services[ServicePort("bench", middle.name, "http", "TCP", target_ip, 80)] = [
            Endpoint(SRV_IP, HELLO_PORT, node_name=_node().name)]
        services[ServicePort("bench", middle.name, "sink", "TCP", target_ip, 81)] = [
            Endpoint(SRV_IP, SINK_PORT, node_name=_node().name)]
    return services


def _node_of(endpoint: int) -> str:
    """Endpoints are spread over a 100-node cluster; 1 in 100 is on the bench node."""
    return "bench-node" if endpoint % 100 == 0 else f"node-{endpoint % 100}"


def _node():
    from dataplane.model import NodeInfo

    return NodeInfo("bench-node", "10.244.0.0/16", ("192.168.50.2",))


def node_full_sync(n: int, node_ports: bool) -> dict:
    """Render + apply from empty, then the same text through iptables-legacy-restore alone."""
    from dataplane import iptables, rules
    from dataplane.applier import Applier

    iptables.cleanup()
    services = cluster(n, node_ports)
    empty = iptables.read_tables()
    t0 = time.perf_counter()
    ruleset = rules.render(services, _node())
    t1 = time.perf_counter()
    Applier().apply(ruleset)
    t2 = time.perf_counter()
    text = iptables.compose_restore(ruleset, empty)  # what apply wrote
    iptables.cleanup()
    t3 = time.perf_counter()
    iptables.restore(text)
    t4 = time.perf_counter()
    iptables.cleanup()
    return {"render": t1 - t0, "apply": t2 - t1, "floor": t4 - t3, "rules": ruleset.rules()}


def node_rules(n: int, threshold: int, target_ip: str) -> dict:
    """Leave n Services' rules in the kernel (one of them reaching the server pod)."""
    from dataplane import rules
    from dataplane.applier import Applier

    ruleset = rules.render(cluster(n, False, target_ip), _node(), tree_threshold=threshold)
    Applier().apply(ruleset)
    return {"rules": ruleset.rules()}


def node_incremental(n: int, rounds: int) -> dict:
    """A Proxier with n Services; one Service's endpoint is added / removed and
    each time we measure change -> sync -> a real connection from the client
    pod reaching the new endpoint (or being refused after the removal)."""
    from agent.node.proxy.proxier import Proxier
    from dataplane import iptables

    rss_before = _rss_mb()
    proxier = Proxier(_node())
    for sp, eps in cluster(n, False).items():
        proxier.on_service(None, _service_dict(sp))
        proxier.on_endpointslice(None, _slice_dict(sp.name, [(ep.ip, ep.node_name) for ep in eps]))
    target = {"metadata": {"name": "target", "namespace": "bench"},
              "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.100", "ports": [{"name": "http", "port": 80}]}}
    proxier.on_service(None, target)
    proxier.sync_once()
    rss_after = _rss_mb()
    client_loop = subprocess.Popen(["ip", "netns", "exec", CLI, PY, "-m", "tests.bench.proxier_bench", "cli-loop"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
    added, removed, partial_apply, unexpected = [], [], [], []
    try:
        slice_with = _slice_dict("target", [(SRV_IP, _node().name)], port=HELLO_PORT)
        for i in range(rounds):
            for latencies, new, want in ((added, slice_with, "ok"), (removed, None, "refused")):
                t = time.perf_counter()
                proxier.on_endpointslice(None if new else slice_with, new)
                result = proxier.sync_once()
                client_loop.stdin.write("10.96.0.100 80\n")
                client_loop.stdin.flush()
                outcome = client_loop.stdout.readline().strip()
                latencies.append(time.perf_counter() - t)
                partial_apply.append(result.apply_seconds)
                if outcome != want:  # counted and reported, not hidden
                    unexpected.append(f"round {i}: expected {want}, got {outcome}")
        floor = []
        for _ in range(max(3, rounds // 2)):  # a one-chain restore at this table size
            t = time.perf_counter()
            iptables.restore("*nat\n:KUBE-SVC-BENCHFLOOR - [0:0]\n-X KUBE-SVC-BENCHFLOOR\nCOMMIT\n")
            floor.append(time.perf_counter() - t)
    finally:
        client_loop.stdin.close()
        client_loop.kill()
        client_loop.wait(timeout=10)
        iptables.cleanup()
    return {"added": added, "removed": removed, "apply": partial_apply, "floor": floor, "unexpected": unexpected,
            "rss_before": rss_before, "rss_after": rss_after}


NFT_RESTORE = "iptables-nft-restore"


def node_nft_floor(n: int, rounds: int) -> dict:
    """The same rules through iptables-nft (the nftables kernel API, which
    changes a chain in place) instead of legacy xtables: load them, then time
    the one-chain restore that is the legacy floor. A reference only: nsplane
    writes legacy rules (DESIGN.md)."""
    from dataplane import rules

    text = rules.render(cluster(n, False), _node()).text
    t = time.perf_counter()
    subprocess.run([NFT_RESTORE, "--noflush"], input=text, text=True, check=True, timeout=600)
    load = time.perf_counter() - t
    one = []
    for _ in range(rounds):
        t = time.perf_counter()
        subprocess.run([NFT_RESTORE, "--noflush"], text=True, check=True, timeout=60,
                       input="*nat\n:KUBE-SVC-BENCHFLOOR - [0:0]\n-X KUBE-SVC-BENCHFLOOR\nCOMMIT\n")
        one.append(time.perf_counter() - t)
    return {"load": load, "one": one}


def _service_dict(sp) -> dict:
    return {"metadata": {"name": sp.name, "namespace": sp.namespace},
            "spec": {"type": "ClusterIP", "clusterIP": sp.cluster_ip, "ports": [{"name": sp.port_name, "port": sp.port}]}}


def _slice_dict(service: str, ips: list[tuple[str, str]], port: int = 8080) -> dict:
    return {"metadata": {"name": f"{service}-abcde", "namespace": "bench",
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}, "nodeName": node} for ip, node in ips]}


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- figures


def _fig(name, value, unit, baseline, baseline_name, target, met) -> dict:
    return {"name": name, "value": round(value, 4), "unit": unit, "baseline": round(baseline, 4),
            "baseline_name": baseline_name, "target": target, "target_met": met}


def fig_full_sync(quick: bool) -> list[dict]:
    out = []
    for node_ports in (False, True):
        kind = "NodePort" if node_ports else "ClusterIP"
        for n in (100, 1000, 10000):
            runs = [in_ns(NODE, "node-full-sync", str(n), str(int(node_ports))) for _ in range(1 if quick else 3)]
            best = min(runs, key=lambda r: r["render"] + r["apply"])
            total, floor = best["render"] + best["apply"], min(r["floor"] for r in runs)
            big = n == 10000
            out.append(_fig(f"1 full sync {n} {kind} x3 eps: render+apply", total, "s", floor,
                            "iptables-legacy-restore alone, same text", "<= 1 s at 10k" if big else "",
                            total <= 1.0 if big else None))
            share = best["render"] / total
            out.append(_fig(f"1 full sync {n} {kind}: render share", share, "ratio", best["render"],
                            "render seconds", "<= 0.30" if big else "", share <= 0.30 if big else None))
    return out


def render_modes(n: int, rounds: int) -> dict:
    """Pure renders of n Services x 3 endpoints (NodePorts), iptables and
    nftables mode interleaved, without a render cache (both keep chain-name
    hashes after the first round), best of `rounds`;
    nftables' `text()` (its `nft -f` input) timed apart."""
    from dataplane import rules
    from dataplane.nft import render as nft_render

    services = cluster(n, True)
    ipt, nft, text = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        rules.render(services, _node())
        t1 = time.perf_counter()
        ruleset = nft_render.render(services, _node())
        t2 = time.perf_counter()
        ruleset.text()
        t3 = time.perf_counter()
        ipt.append(t1 - t0)
        nft.append(t2 - t1)
        text.append(t3 - t2)
    return {"iptables": min(ipt), "nftables": min(nft), "text": min(text)}


def fig_render_modes(quick: bool) -> list[dict]:
    r = render_modes(10000, 2 if quick else 5)
    ratio = r["nftables"] / r["iptables"]
    print(f"# render 10k x3: iptables {r['iptables']:.3f} s, nftables {r['nftables']:.3f} s "
          f"(+ text {r['text']:.3f} s), ratio {ratio:.2f}", file=sys.stderr)
    return [_fig("1 render 10k NodePort x3 eps: nftables / iptables", ratio, "ratio", r["iptables"],
                 "iptables render seconds, same run", "<= 1.5", ratio <= 1.5)]


def fig_incremental(quick: bool) -> list[dict]:
    rounds = 5 if quick else 20
    out = []
    small = in_ns(NODE, "node-incremental", "100", str(rounds))
    big = in_ns(NODE, "node-incremental", "10000", str(rounds))
    for what in ("added", "removed"):
        med, p99 = _median(big[what]), _pct(big[what], 0.99)
        out.append(_fig(f"2 incremental 10k: endpoint {what} -> connection, median", med, "s",
                        _median(small[what]), "same at 100 Services", "<= 0.1 s", med <= 0.1))
        out.append(_fig(f"2 incremental 10k: endpoint {what} -> connection, p99", p99, "s",
                        _median(big["floor"]), "one-chain restore at 10k (kernel floor)", "", None))
    out += _nft_reference(rounds, _median(big["floor"]))
    wrong = len(small["unexpected"]) + len(big["unexpected"])
    out.append(_fig("2 incremental: connections with the wrong outcome", wrong, "count", 0, "expected", "0", wrong == 0))
    for note in small["unexpected"] + big["unexpected"]:
        print(f"# incremental: {note}", file=sys.stderr)
    out.append(_fig("8 proxier RSS at 10k Services / 30k endpoints", big["rss_after"], "MB", big["rss_before"],
                    "same process before loading", "<= 200 MB (agent)", big["rss_after"] <= 200))
    return out


def _nft_reference(rounds: int, legacy_floor: float) -> list[dict]:
    """Figure 2's floor under nftables, in a namespace of its own (skipped
    without iptables-nft)."""
    if not shutil.which(NFT_RESTORE):
        print(f"# incremental: {NFT_RESTORE} not installed, no nftables reference", file=sys.stderr)
        return []
    sh("ip", "netns", "add", NFT_NS)
    try:
        nft = in_ns(NFT_NS, "node-nft-floor", "10000", str(rounds))
    finally:
        sh("ip", "netns", "del", NFT_NS, check=False)
    return [_fig("2 reference: one-chain restore at 10k through iptables-nft (nftables)", _median(nft["one"]), "s",
                 legacy_floor, "the same through iptables-legacy", "", None)]


def fig_connections(quick: bool) -> list[dict]:
    """Sequential short connections to one ClusterIP with 1 vs 10,000 Services
    (tree, and kube-proxy's flat list), interleaved with the same load straight
    to the pod IP under each configuration."""
    count = 1000 if quick else 3000
    target = "10.96.0.100"
    results: dict[str, list[dict]] = {}
    for label, n, threshold in (("1 Service", 1, 1000), ("10k tree", 10000, 1000),
                                ("10k flat (kube-proxy)", 10000, 10**9)):
        in_ns(NODE, "node-rules", str(n), str(threshold), target)
        in_ns(CLI, "cli-connect", target, "80", "200")  # warm-up
        for _ in range(2):
            results.setdefault(label, []).append(in_ns(CLI, "cli-connect", target, "80", str(count // 2)))
            results.setdefault("pod IP", []).append(in_ns(CLI, "cli-connect", SRV_IP, str(HELLO_PORT), str(count // 2)))
    in_ns(NODE, "node-cleanup")
    merged = {label: _merge(runs) for label, runs in results.items()}
    base = merged["1 Service"]
    out = []
    for label in ("10k tree", "10k flat (kube-proxy)", "pod IP", "1 Service"):
        r = merged[label]
        is_target = label == "10k tree"
        out.append(_fig(f"3 new connection latency, {label}", r["median"] * 1e6, "us", base["median"] * 1e6,
                        "1 Service", "<= 1.2x 1 Service" if is_target else "",
                        r["median"] <= 1.2 * base["median"] if is_target else None))
        out.append(_fig(f"3 new connection rate, {label}", r["rate"], "conn/s", base["rate"], "1 Service", "", None))
    return out


def _merge(runs: list[dict]) -> dict:
    latencies = [x for r in runs for x in r["latencies"]]
    failures = sum(r["failures"] for r in runs)
    if failures:
        raise RuntimeError(f"{failures} of {len(latencies)} benchmark connections failed")
    return {"median": _median(latencies), "rate": len(latencies) / sum(r["seconds"] for r in runs)}


def fig_throughput(quick: bool) -> list[dict]:
    total = (1024 if quick else 2048) << 20
    in_ns(NODE, "node-rules", "1", "1000", "10.96.0.100")
    via, direct = [], []
    for _ in range(3 if quick else 5):  # interleaved, best of each
        r = in_ns(CLI, "cli-stream", "10.96.0.100", "81", str(total))
        via.append(r["bytes"] / r["seconds"])
        r = in_ns(CLI, "cli-stream", SRV_IP, str(SINK_PORT), str(total))
        direct.append(r["bytes"] / r["seconds"])
    in_ns(NODE, "node-cleanup")
    ratio = max(via) / max(direct)
    return [_fig(f"4 throughput via ClusterIP ({total >> 20} MB, best of {len(via)})", max(via) / 1e9, "GB/s",
                 max(direct) / 1e9, "pod IP", "", None),
            _fig("4 throughput ratio ClusterIP / pod IP", ratio, "ratio", 1.0, "pod IP", ">= 0.95", ratio >= 0.95)]


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _pct(xs: list[float], q: float) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run(quick: bool = False) -> list[dict]:
    """All proxier figures, each with its in-run baseline."""
    if os.geteuid() != 0:
        raise RuntimeError("the proxier benchmarks need root (they create network namespaces)")
    results = []
    with topology():
        for fig in (fig_full_sync, fig_render_modes, fig_incremental, fig_connections, fig_throughput):
            t = time.monotonic()
            results += fig(quick)
            print(f"# {fig.__name__} took {time.monotonic() - t:.1f} s", file=sys.stderr, flush=True)
    return results


# ---------------------------------------------------------------- worker entry point


def _worker(argv: list[str]) -> None:
    role, args = argv[0], argv[1:]
    if role == "server":
        serve()
        return
    if role == "cli-loop":
        client_loop()
        return
    if role == "node-cleanup":
        from dataplane import iptables

        iptables.cleanup()
        result: dict = {}
    elif role == "render-modes":  # pure, no namespace needed
        result = render_modes(int(args[0]), int(args[1]))
    elif role == "node-full-sync":
        result = node_full_sync(int(args[0]), bool(int(args[1])))
    elif role == "node-rules":
        result = node_rules(int(args[0]), int(args[1]), args[2])
    elif role == "node-nft-floor":
        result = node_nft_floor(int(args[0]), int(args[1]))
    elif role == "node-incremental":
        result = node_incremental(int(args[0]), int(args[1]))
    elif role == "cli-connect":
        result = client_connections(args[0], int(args[1]), int(args[2]))
    elif role == "cli-stream":
        result = client_stream(args[0], int(args[1]), int(args[2]))
    else:
        raise SystemExit(f"unknown benchmark worker role {role!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    _worker(sys.argv[1:])
