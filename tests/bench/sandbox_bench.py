"""The pod sandbox alone: a pod's network, UTS and IPC namespaces, veth,
addresses, routes and /etc files (agent/node/kubelet/sandbox.py), made and
torn down as the node agent does it, inside a throwaway node namespace,
next to the same kernel work done with plain `ip` commands (one process per
command, as a shell script would) measured in the same run, one of each in
turn so both meet the same machine.

    sudo /opt/nsplane/venv/bin/python tests/bench/sandbox_bench.py [--runs 30]

Prints medians and ratios, asserts nothing. Everything lives in namespaces
named nsplane-hb-sb*, links nsplanehbsb*, and a temp dir nsplane-bench-sb-*,
all removed on every exit path. Also exposes run(quick) for tests/bench/run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

from agent.node.kubelet.sandbox import PodSandbox  # noqa: E402
from dataplane import netns  # noqa: E402

NODE = "nsplane-hb-sb"
CLUSTER = "nsplane-hb-sbc"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def floor_one(i: int) -> float:
    """One pod's namespace, veth, addresses and routes with `ip` commands
    (and a UTS + IPC namespace with `unshare`), seconds; removed untimed."""
    ns, host, ip = f"nsplane-hb-sbf{i}", f"nsplanehbsb{i}", f"10.251.{i // 250}.{i % 250 + 2}"
    uts = os.path.join(tempfile.gettempdir(), f"nsplane-hb-sbf{i}-uts")
    t = time.perf_counter()
    try:
        _ip("netns", "add", ns)
        open(uts, "a").close()
        subprocess.run(["unshare", f"--uts={uts}", "hostname", "p"], check=True, capture_output=True, timeout=30)
        _ip("-n", NODE, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("-n", NODE, "addr", "add", "10.251.0.1/32", "dev", host)
        _ip("-n", NODE, "link", "set", host, "up")
        _ip("-n", NODE, "route", "add", f"{ip}/32", "dev", host)
        _ip("-n", ns, "addr", "add", f"{ip}/32", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "route", "add", "10.251.0.1", "dev", "eth0")
        _ip("-n", ns, "route", "add", "default", "via", "10.251.0.1")
        return time.perf_counter() - t
    finally:
        subprocess.run(["umount", uts], capture_output=True, timeout=30)
        if os.path.exists(uts):
            os.unlink(uts)
        subprocess.run(["ip", "-n", NODE, "link", "del", host], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def ours_one(i: int, rundir: str) -> tuple[float, float]:
    """PodSandbox.ensure + write_files, then teardown; seconds of each."""
    pod = {"metadata": {"name": f"p{i}", "namespace": "default", "uid": f"u{i}"}, "spec": {"containers": []}}
    sb = PodSandbox(pod, CLUSTER, rundir)
    ip = f"10.251.{i // 250}.{i % 250 + 2}"
    t = time.perf_counter()
    try:
        with netns.entered(NODE):     # the agent runs inside its node's namespace
            sb.ensure(ip, "10.251.0.1", False, f"default/p{i}")
            sb.write_files(ip, "10.96.0.10", "cluster.local")
            made = time.perf_counter() - t
            t = time.perf_counter()
            sb.teardown()
            return made, time.perf_counter() - t
    except BaseException:
        with netns.entered(NODE):
            sb.teardown()
        raise


def run(quick: bool = False, runs: int | None = None) -> list[dict]:
    if os.geteuid() != 0:
        raise RuntimeError("the sandbox benchmark needs root (it creates network namespaces)")
    runs = runs or (15 if quick else 40)
    rundir = tempfile.mkdtemp(prefix="nsplane-bench-sb-")
    netns.delete(NODE)
    netns.create(NODE)
    made, gone, floor = [], [], []
    try:
        for i in range(runs):
            m, g = ours_one(i, rundir)
            made.append(m)
            gone.append(g)
            floor.append(floor_one(i))
    finally:
        netns.delete(NODE)
        shutil.rmtree(rundir, ignore_errors=True)
    ours, base = statistics.median(made) * 1000, statistics.median(floor) * 1000
    return [
        {"name": f"pod sandbox made (netns, UTS, IPC, veth, addresses, routes, files), p50 of {runs}",
         "value": round(ours, 1), "unit": "ms", "baseline": round(base, 1),
         "baseline_name": "the same kernel work with `ip` and `unshare` commands", "target": None,
         "target_met": None, "ratio": round(ours / base, 2)},
        {"name": f"pod sandbox torn down (veth, netns, conntrack, files, UTS, IPC), p50 of {runs}",
         "value": round(statistics.median(gone) * 1000, 1), "unit": "ms", "baseline": None,
         "baseline_name": "-", "target": None, "target_met": None},
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=None)
    args = ap.parse_args()
    for row in run(args.quick, args.runs):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
