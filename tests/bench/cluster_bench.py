"""Whole-cluster benchmarks, figures 2, 6, 7 and 8 of tests/bench/run's
table, on a real throwaway nsplane cluster (one node, no DNS), each next to
a baseline from the same run:

6. pods: N pods (agnhost pause, which starts at once) created to Ready and
   deleted; the kubelet's own per-pod sandbox time (namespace, UTS, veth,
   addresses, routes, resolver files), next to the same kernel work done by
   plain `ip` commands for N throwaway namespaces (the iproute2 floor).
7. convergence: a pod deleted -> its IP gone from the node's rules; a pod
   Ready -> its IP in the EndpointSlice and in the rules; medians over a few
   rounds, next to one `iptables-legacy-restore` of a one-chain change on
   that node (the kernel floor of any rule change).
2. incremental, end to end on the loaded cluster: an EndpointSlice update
   through the API -> a connection from a pod reaches the new endpoint (or
   is refused once it is removed), next to one restore on that node.
8. memory: server and node-agent RSS after loading S Services with 3
   endpoints each (selector-less Services + EndpointSlices through the API,
   their endpoints spread over 100 node names as in a real cluster),
   next to their RSS on the empty cluster.
9. containers: pod created -> Ready, one pod at a time, p50, for a stand-in
   (agnhost pause over the host view) and for a real image loaded with
   `nsplane image load` (busybox sleep over overlayfs); the memory of N
   running pods (their runtime monitors and container processes) next to the
   agent's; and C cycles of creating and deleting a batch of pods, with the
   agent's RSS, open fds and threads after the first and the last cycle (a
   leak grows them) and what is left on the machine at the end (mounts,
   monitors, cgroups: none).

    /opt/nsplane/venv/bin/python tests/bench/cluster_bench.py [--quick]

`run(quick) -> list[dict]` gives the figures to tests/bench/run. Everything
runs in the cluster's own namespaces; every wait is bounded.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from agent.cli import clusterops  # noqa: E402
from agent.api.client import Client  # noqa: E402
from tests.integration.cluster import ThrowawayCluster  # noqa: E402

PAUSE = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - {{name: pause, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [pause]}}
"""


def _fig(name, value, unit, baseline, baseline_name, target=None, met=None) -> dict:
    return {"name": name, "value": round(value, 4), "unit": unit,
            "baseline": None if baseline is None else round(baseline, 4), "baseline_name": baseline_name,
            "target": target, "target_met": met}


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kb / 1024


def _wait(fn, timeout: float, what: str, step: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def _ready(pod: dict) -> bool:
    """Ready and not terminating (a deleted pod stays Ready through its grace period)."""
    return not pod["metadata"].get("deletionTimestamp") and any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def _rules(tc: ThrowawayCluster) -> str:
    return subprocess.run(["ip", "netns", "exec", tc.node_netns(), "iptables-legacy-save", "-t", "nat"],
                          capture_output=True, text=True, timeout=30).stdout


# ---- 6: pods ------------------------------------------------------------------------

def iproute2_floor(n: int) -> float:
    """Seconds per pod for the same kernel work with plain `ip` commands."""
    tag = f"nsplane-hk{os.getpid() % 10000}"
    node = f"{tag}-n"
    script = [f"netns add {node}"]
    for i in range(n):
        ns, host = f"{tag}-p{i}", f"nsplanehk{i}"
        script += [f"netns add {ns}", f"link add {host} netns {node} type veth peer name eth0 netns {ns}",
                   f"-n {node} addr add 10.250.0.1/32 dev {host}", f"-n {node} link set {host} up",
                   f"-n {node} route add 10.250.{i // 250}.{i % 250 + 2}/32 dev {host}",
                   f"-n {ns} addr add 10.250.{i // 250}.{i % 250 + 2}/32 dev eth0", f"-n {ns} link set eth0 up",
                   f"-n {ns} link set lo up", f"-n {ns} route add 10.250.0.1 dev eth0",
                   f"-n {ns} route add default via 10.250.0.1"]
    t = time.monotonic()
    try:
        for line in script:    # one process per command, as a shell script would run them
            subprocess.run(["ip", *line.split()], check=True, capture_output=True, timeout=30)
        return (time.monotonic() - t) / n
    finally:
        for i in range(n):
            subprocess.run(["ip", "netns", "del", f"{tag}-p{i}"], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", node], capture_output=True, timeout=30)


def fig_pods(tc: ThrowawayCluster, client: Client, n: int) -> list[dict]:
    log = os.path.join(tc.cfg.dir, "logs", "node-1.log")
    start_at = os.path.getsize(log)
    t0 = time.monotonic()
    tc.apply(PAUSE.format(name="many", replicas=n))
    _wait(lambda: sum(_ready(p) for p in client.list("pods", "default", label_selector="app=many")["items"]) == n,
          30 + n, f"{n} pods Ready", 0.05)
    to_ready = time.monotonic() - t0
    with open(log) as f:
        f.seek(start_at)
        sandbox_ms = [float(m.group(1)) for m in re.finditer(r"sandbox \S+ ip \S+ ready in (\d+) ms", f.read())]
    t1 = time.monotonic()
    tc.nsplane("delete", "deploy", "many")
    _wait(lambda: not client.list("pods", "default", label_selector="app=many")["items"], 30 + n,
          f"{n} pods gone", 0.05)
    to_gone = time.monotonic() - t1
    floor = iproute2_floor(min(n, 50))
    per_pod = statistics.mean(sandbox_ms) / 1000 if sandbox_ms else float("nan")
    return [
        _fig(f"6 pods: sandbox per pod (namespace, UTS, veth, addresses, routes, files), mean of {len(sandbox_ms)}",
             per_pod * 1000, "ms", floor * 1000, "same kernel work with `ip` commands", "<= 50 ms", per_pod <= 0.05),
        _fig(f"6 pods: {n} created -> all Ready, per pod", to_ready / n * 1000, "ms", floor * 1000,
             "same kernel work with `ip` commands"),
        _fig(f"6 pods: {n} deleted -> all gone, per pod", to_gone / n * 1000, "ms", None, "-"),
    ]


# ---- 7: convergence -----------------------------------------------------------------

def restore_floor(tc: ThrowawayCluster) -> float:
    text = "*nat\n:KUBE-NSPLANE-BENCH - [0:0]\n-A KUBE-NSPLANE-BENCH -j RETURN\nCOMMIT\n"
    t = time.monotonic()
    subprocess.run(["ip", "netns", "exec", tc.node_netns(), "iptables-legacy-restore", "--noflush"],
                   input=text, text=True, check=True, timeout=30)
    took = time.monotonic() - t
    for flag in ("-F", "-X"):
        subprocess.run(["ip", "netns", "exec", tc.node_netns(), "iptables-legacy", "-t", "nat", flag,
                        "KUBE-NSPLANE-BENCH"], check=True, timeout=30)
    return took


def fig_convergence(tc: ThrowawayCluster, client: Client, rounds: int) -> list[dict]:
    tc.apply(PAUSE.format(name="conv", replicas=2).replace("args: [pause]", 'args: [netexec, "--http-port=8080"]')
             + "---\napiVersion: v1\nkind: Service\nmetadata: {name: conv}\nspec:\n  selector: {app: conv}\n"
               "  ports: [{port: 80, targetPort: 8080}]\n")
    _wait(lambda: sum(_ready(p) for p in client.list("pods", "default", label_selector="app=conv")["items"]) == 2,
          60, "conv pods", 0.05)
    gone, added = [], []
    for i in range(rounds):
        pods = [p for p in client.list("pods", "default", label_selector="app=conv")["items"] if _ready(p)]
        victim = pods[0]
        ip = victim["status"]["podIP"]
        t = time.monotonic()
        client.delete("pods", victim["metadata"]["name"], "default")
        _wait(lambda: f"--to-destination {ip}:" not in _rules(tc), 30, "the deleted pod's rules gone")
        gone.append(time.monotonic() - t)
        # The ReplicaSet replaces it: from the moment the new pod is seen Ready to its IP in the rules.
        new = _wait(lambda: [p for p in client.list("pods", "default", label_selector="app=conv")["items"]
                             if _ready(p) and p["metadata"]["uid"] not in {q["metadata"]["uid"] for q in pods}],
                    60, "the replacement Ready", 0.005)[0]
        seen_ready = time.monotonic()
        _wait(lambda: f"--to-destination {new['status']['podIP']}:" in _rules(tc), 30, "the new pod in the rules")
        added.append(time.monotonic() - seen_ready)
    floor = statistics.median(restore_floor(tc) for _ in range(3))
    tc.nsplane("delete", "deploy", "conv")
    tc.nsplane("delete", "svc", "conv")
    med_gone, med_added = statistics.median(gone), statistics.median(added)
    return [
        _fig(f"7 convergence: pod deleted -> out of the rules, median of {rounds}", med_gone * 1000, "ms",
             floor * 1000, "one iptables-legacy-restore on the node", "<= 100 ms", med_gone <= 0.1),
        _fig(f"7 convergence: pod Ready -> in the rules, median of {rounds}", med_added * 1000, "ms",
             floor * 1000, "one iptables-legacy-restore on the node", "<= 100 ms", med_added <= 0.1),
    ]


# ---- 2: incremental through the API at scale ------------------------------------------

PROBE = """
import socket, sys
for line in sys.stdin:  # "ip port" -> the HTTP body of /hostname, "refused" or "error ..."
    ip, port = line.split()
    try:
        with socket.create_connection((ip, int(port)), timeout=1.0) as s:
            s.sendall(b"GET /hostname HTTP/1.0\\r\\n\\r\\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        print(data.split(b"\\r\\n\\r\\n", 1)[-1].decode().strip(), flush=True)
    except ConnectionRefusedError:
        print("refused", flush=True)
    except OSError as err:
        print(f"error {err}", flush=True)
"""

INC_PODS = """
apiVersion: v1
kind: Pod
metadata: {name: inc-server, labels: {bench: inc}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - {name: netexec, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [netexec, "--http-port=8080"]}
---
apiVersion: v1
kind: Pod
metadata: {name: inc-client, labels: {bench: inc}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - {name: pause, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [pause]}
"""


def start_incremental_pods(tc: ThrowawayCluster, client: Client) -> None:
    """The server and client pods of fig_incremental, started before the cluster is loaded."""
    tc.apply(INC_PODS)
    _wait(lambda: sum(_ready(p) for p in client.list("pods", "default", label_selector="bench=inc")["items"]) == 2,
          60, "the inc pods", 0.05)


def fig_incremental(tc: ThrowawayCluster, client: Client, services: int, rounds: int) -> list[dict]:
    """Figure 2 end to end on a loaded cluster: an EndpointSlice update through
    the API -> watch -> node agent -> rules -> a real connection from a pod
    reaching the new endpoint (or being refused once it is removed)."""
    from dataplane import names
    from tests.bench.proxier_bench import unthrottle_icmp

    server_ip = client.get("pods", "inc-server", "default")["status"]["podIP"]
    svc = client.create("services", {"metadata": {"name": "inc"}, "spec": {"ports": [{"port": 80}]}}, "default")
    ip = svc["spec"]["clusterIP"]

    client.create("endpointslices", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "inc-1", "labels": {"kubernetes.io/service-name": "inc"}},
        "addressType": "IPv4", "ports": [{"port": 8080, "protocol": "TCP"}], "endpoints": []}, "default")
    unthrottle_icmp(tc.node_netns())  # the probe is refused in a tight loop
    probe = subprocess.Popen(["ip", "netns", "exec", names.pod_netns(tc.cfg.name, "default", "inc-client"),
                              sys.executable, "-c", PROBE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask() -> str:
        probe.stdin.write(f"{ip} 80\n")
        probe.stdin.flush()
        return probe.stdout.readline().strip()

    def until(answer: str, what: str) -> None:
        deadline = time.monotonic() + 30
        while ask() != answer:
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after 30 s waiting for {what}")

    added, removed = [], []
    try:
        until("refused", "the inc Service's REJECT rule")
        for _ in range(rounds):
            current = client.get("endpointslices", "inc-1", "default")
            current["endpoints"] = [{"addresses": [server_ip], "conditions": {"ready": True}, "nodeName": "node-1"}]
            t = time.monotonic()
            client.update("endpointslices", current)
            until("inc-server", "the endpoint to answer")
            added.append(time.monotonic() - t)
            current = client.get("endpointslices", "inc-1", "default")
            current["endpoints"] = []
            t = time.monotonic()
            client.update("endpointslices", current)
            until("refused", "the endpoint to be gone")
            removed.append(time.monotonic() - t)
    finally:
        probe.stdin.close()
        probe.kill()
        probe.wait(timeout=10)
    floor = statistics.median(restore_floor(tc) for _ in range(3))
    big = services >= 10000
    rows = []
    for what, xs in (("endpoint added -> a connection reaches it", added),
                     ("endpoint removed -> connections refused", removed)):
        med, worst = statistics.median(xs), max(xs)
        rows.append(_fig(f"2 incremental through the API at {services} Services: {what}, median of {rounds}",
                         med * 1000, "ms", floor * 1000, "one iptables-legacy-restore on the node",
                         "<= 100 ms at 10k" if big else None, med <= 0.1 if big else None))
        rows.append(_fig(f"2 incremental through the API at {services} Services: {what}, worst of {rounds}",
                         worst * 1000, "ms", floor * 1000, "one iptables-legacy-restore on the node"))
    return rows


# ---- 8: memory ----------------------------------------------------------------------

def _node_of(endpoint: int) -> str:
    """As in a 100-node cluster: 1 endpoint in 100 is on our node-1."""
    return f"node-{endpoint % 100 + 1}"


def _load_services(client: Client, count: int) -> None:
    def one(i: int) -> None:
        name = f"m{i}"
        client.create("services", {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}}, "default")
        client.create("endpointslices", {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-1", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [f"10.{250 + j}.{i // 250}.{i % 250 + 1}"], "nodeName": _node_of(3 * i + j)}
                          for j in range(3)]}, "default")
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(count)))


def fig_memory(tc: ThrowawayCluster, client: Client, services: int) -> list[dict]:
    server, agent = clusterops.running_pid(tc.cfg, "server"), clusterops.running_pid(tc.cfg, "node-1")
    empty = (_rss_mb(server), _rss_mb(agent))
    t = time.monotonic()
    _load_services(client, services)
    _wait(lambda: f"default/m{services - 1} cluster IP" in _rules(tc), 300, "the rules of every Service", 0.5)
    loaded_in = time.monotonic() - t
    full = (_rss_mb(server), _rss_mb(agent))
    big = services >= 10000
    return [
        _fig(f"8 memory: server RSS at {services} Services / {3 * services} endpoints", full[0], "MB", empty[0],
             "empty cluster", "<= 300 MB at 10k" if big else None, full[0] <= 300 if big else None),
        _fig(f"8 memory: node agent RSS at {services} Services / {3 * services} endpoints", full[1], "MB", empty[1],
             "empty cluster", "<= 200 MB at 10k" if big else None, full[1] <= 200 if big else None),
        _fig(f"8 load: {services} Services + slices through the API to rules on the node", loaded_in, "s", None, "-"),
    ]


# ---- 9: containers ---------------------------------------------------------------------

ONE_POD = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{bench: one}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: c, image: {image}, {how}}}
"""
STANDIN = ("registry.k8s.io/e2e-test-images/agnhost:2.47", "args: [pause]")
LOADED = ("nsplane-bench/busybox:1", "command: [sleep, '3600']")


def load_bench_image(tc: ThrowawayCluster) -> None:
    from tests.oci_image import build_layout, save_docker_archive
    work = tempfile.mkdtemp(prefix="nsplane-bench-img-")
    try:
        layout = build_layout(work, "bb")
        tc.nsplane("image", "load", save_docker_archive(layout, "bb", os.path.join(work, "bb.tar"), LOADED[0]))
    finally:
        subprocess.run(["rm", "-rf", work], timeout=60)


def _pod_ready_once(tc: ThrowawayCluster, client: Client, name: str, image: tuple[str, str]) -> float:
    """Created -> Ready seen through a watch from the created object's
    resourceVersion, as `kubectl wait` sees it (polling every 2 ms, as this
    did before, loads the API server the pod's own start needs)."""
    t = time.monotonic()
    made = client.create("pods", yaml_doc(ONE_POD.format(name=name, image=image[0], how=image[1])), "default")
    took = None
    for event in client.watch("pods", "default", resource_version=made["metadata"]["resourceVersion"],
                              field_selector=f"metadata.name={name}", timeout=30):
        if event.get("type") in ("ADDED", "MODIFIED") and _ready(event["object"]):
            took = time.monotonic() - t
            break
    if took is None:
        raise TimeoutError(f"timed out after 30s waiting for {name} Ready")
    client.delete("pods", name, "default", grace=0)
    _wait(lambda: not client.list("pods", "default", label_selector="bench=one")["items"], 30, f"{name} gone", 0.02)
    return took


def yaml_doc(text: str) -> dict:
    import yaml
    return yaml.safe_load(text)


def fig_pod_latency(tc: ThrowawayCluster, client: Client, k: int) -> list[dict]:
    """Pod created -> Ready, next to the kernel and runtime floor of one pod
    measured in the same run: its sandbox made with plain `ip` commands plus
    a bare `<runtime> run -d` of a mounted bundle (runtime_bench.bare_floor)."""
    from tests.bench.runtime_bench import bare_floor
    runtime, bare = bare_floor(10)
    floor = iproute2_floor(5) + bare
    rows = []
    for label, image in (("stand-in agnhost pause, host view", STANDIN), ("loaded image, overlayfs", LOADED)):
        _pod_ready_once(tc, client, "warm", image)
        times = [_pod_ready_once(tc, client, f"one-{i}", image) for i in range(k)]
        p50 = statistics.median(times)
        row = _fig(f"9 containers: pod created -> Ready, one at a time ({label}), p50 of {k} "
                   f"(slowest {max(times) * 1000:.0f} ms)", p50 * 1000, "ms", floor * 1000,
                   f"`ip` sandbox + bare `{runtime} run -d`", "<= 200 ms", p50 <= 0.2)
        row["ratio"] = round(p50 / floor, 2)
        rows.append(row)
    return rows


def _monitors(tc: ThrowawayCluster) -> list[dict]:
    base = os.path.join(tc.cfg.dir, "nodes", "node-1", "runtime", "containers")
    out = []
    for cid in os.listdir(base) if os.path.isdir(base) else []:
        try:
            with open(os.path.join(base, cid, "monitor.json")) as f:
                out.append(json.load(f))
        except (OSError, ValueError):
            continue
    return out


def _sum_pss(pids) -> float:
    """MB of proportional set size (shared pages divided among their users,
    so N Python processes do not count the interpreter N times)."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("Pss:")) / 1024
        except (OSError, StopIteration):
            pass
    return total


def fig_pod_memory(tc: ThrowawayCluster, client: Client, n: int) -> list[dict]:
    """N agnhost pause pods running: what their monitors and processes hold."""
    tc.apply(PAUSE.format(name="mem", replicas=n))
    _wait(lambda: sum(_ready(p) for p in client.list("pods", "default", label_selector="app=mem")["items"]) == n,
          30 + n, f"{n} pods Ready", 0.05)
    agent = clusterops.running_pid(tc.cfg, "node-1")
    mons = _monitors(tc)
    monitors, containers = _sum_pss(m["pid"] for m in mons), _sum_pss(m["containerPid"] for m in mons)
    rows = [_fig(f"9 containers: {n} running pods, runtime monitors' PSS per pod", monitors / n, "MB",
                 _sum_pss([agent]), "the node agent's PSS"),
            _fig(f"9 containers: {n} running pods, container processes' PSS per pod (Python stand-in)",
                 containers / n, "MB", None, "-")]
    tc.nsplane("delete", "deploy", "mem")
    _wait(lambda: not client.list("pods", "default", label_selector="app=mem")["items"], 30 + n,
          f"{n} pods gone", 0.05)
    return rows


def _agent_usage(pid: int) -> tuple[float, int, int]:
    with open(f"/proc/{pid}/status") as f:
        threads = next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
    return _rss_mb(pid), len(os.listdir(f"/proc/{pid}/fd")), threads


def fig_cycles(tc: ThrowawayCluster, client: Client, cycles: int, batch: int) -> list[dict]:
    agent = clusterops.running_pid(tc.cfg, "node-1")
    seen = []
    for i in range(cycles):
        tc.apply(PAUSE.format(name="cyc", replicas=batch))
        _wait(lambda: sum(_ready(p) for p in client.list("pods", "default", label_selector="app=cyc")["items"])
              == batch, 30 + batch, "cycle pods Ready", 0.02)
        client.delete("deployments", "cyc", "default")
        _wait(lambda: not client.list("pods", "default", label_selector="app=cyc")["items"], 30 + batch,
              "cycle pods gone", 0.02)
        seen.append(_agent_usage(agent))
    time.sleep(1)
    with open("/proc/self/mountinfo") as f:
        mounts = sum(os.path.join(tc.cfg.dir, "nodes") in line for line in f)
    groups = [os.path.join(root, tc.cfg.name) for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/pids")]
    left = len(_monitors(tc)) + mounts + sum(len([e for e in os.scandir(g) if e.is_dir()])
                                             for g in groups if os.path.isdir(g))
    first, mid, last = seen[0], seen[len(seen) // 2 - 1], seen[-1]
    what = (f"after cycle 1 -> after cycle {cycles} of {batch} pods created and deleted "
            f"(after cycle {len(seen) // 2}: {mid[0]:.1f} MB, {mid[1]} fds, {mid[2]} threads)")
    return [
        _fig(f"9 containers: node agent RSS {what}", last[0], "MB", first[0], "after cycle 1",
             "flat (+10% at most)", last[0] <= first[0] * 1.1),
        _fig(f"9 containers: node agent open fds {what}", last[1], "fds", first[1], "after cycle 1",
             "flat", last[1] <= first[1] + 2),
        _fig(f"9 containers: node agent threads {what}", last[2], "threads", first[2], "after cycle 1",
             "flat", last[2] <= first[2] + 2),
        _fig(f"9 containers: mounts, monitors and cgroups left after {cycles * batch} pods", left, "objects",
             0, "none", "0", left == 0),
    ]


def run(quick: bool = False, only: str = "") -> list[dict]:
    """Every figure; `only="containers"`: figures 6 and 9 alone (the pod path)."""
    if os.geteuid() != 0:
        raise RuntimeError("the cluster benchmarks need root (they create network namespaces)")
    tmp = tempfile.mkdtemp(prefix="nsplane-bench-")
    tc = ThrowawayCluster(tmp, nodes=1, dns=False)
    results = []
    try:
        tc.up()
        client = Client(tc.cfg.local_api_url)
        results += fig_pods(tc, client, 20 if quick else 100)
        load_bench_image(tc)
        results += fig_pod_latency(tc, client, 10 if quick else 30)
        results += fig_pod_memory(tc, client, 20 if quick else 100)
        results += fig_cycles(tc, client, 10 if quick else 100, 5)
        if only == "containers":
            return results
        results += fig_convergence(tc, client, 3 if quick else 7)
        start_incremental_pods(tc, client)
        results += fig_memory(tc, client, 1000 if quick else 10000)
        results += fig_incremental(tc, client, 1000 if quick else 10000, 5 if quick else 15)
    finally:
        if os.environ.get("NSPLANE_BENCH_KEEP_LOG"):     # the node agent's log, for a look at its phases
            shutil.copy(os.path.join(tc.cfg.dir, "logs", "node-1.log"), os.environ["NSPLANE_BENCH_KEEP_LOG"])
        tc.down()
        subprocess.run(["rm", "-rf", tmp], timeout=60)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["containers"], default="",
                    help="figures 6 and 9 only: pods created -> Ready, memory, create/delete cycles")
    args = ap.parse_args()
    for row in run(args.quick, args.only):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
