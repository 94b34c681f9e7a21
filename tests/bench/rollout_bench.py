"""Connections lost during a rolling restart and a scale-down under load
(figure 11 of tests/bench/run's table), on a real throwaway 2-node cluster:
a Deployment of agnhost netexec servers that drain on SIGTERM
(--delay-shutdown: they keep serving for a few seconds, as a server with
a graceful shutdown does), behind a ClusterIP Service, and a load client in
a pod's network namespace on each node opening a new TCP connection for
every request (GET /hostname through the Service) from before the change
until several seconds after it ended. Every failed request is counted and
printed with its error ("Network unreachable", refused, timed out, ...)
and when it happened relative to the end of the rollout.

    sudo /opt/nsplane/venv/bin/python tests/bench/rollout_bench.py [--quick] [--rounds N]

Everything runs in the cluster's own namespaces; the load is bounded in
count and time. Target: 0 failed requests.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tests.integration.cluster import ThrowawayCluster  # noqa: E402
from tests.integration.manifests import AGNHOST, documents, pod, service  # noqa: E402

REPLICAS = 3
DRAIN_SECONDS = 5
SERVER = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: drain}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: drain}}}}
  strategy: {{type: RollingUpdate, rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}}}
  template:
    metadata: {{labels: {{app: drain}}}}
    spec:
      terminationGracePeriodSeconds: 30
      containers:
      - name: netexec
        image: {image}
        args: [netexec, --http-port=8080, --delay-shutdown={drain}]
        ports: [{{containerPort: 8080}}]
        readinessProbe:
          httpGet: {{path: /readyz, port: 8080}}
          periodSeconds: 1
"""
# The load: runs inside a pod's network namespace (nsenter --net), with our
# interpreter; one new connection per request; prints one JSON line at the end.
LOAD = r"""
import json, socket, sys, threading, time
ip, port, seconds, stop_file = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
import os
deadline = time.time() + seconds
ok, failures, lock = [0], [], threading.Lock()
def worker():
    n = 0
    while time.time() < deadline and not os.path.exists(stop_file) and n < 20000:
        n += 1
        t = time.time()
        try:
            with socket.create_connection((ip, port), timeout=3) as s:
                s.sendall(b"GET /hostname HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            if not data.startswith(b"HTTP/1.1 200"):
                raise OSError(f"answer {data[:40]!r}")
            with lock:
                ok[0] += 1
        except OSError as e:
            with lock:
                failures.append([t, type(e).__name__, str(e)[:80]])
        time.sleep(0.02)
threads = [threading.Thread(target=worker) for _ in range(4)]
for th in threads: th.start()
for th in threads: th.join()
print(json.dumps({"ok": ok[0], "failures": failures}))
"""


def _run_load(c: ThrowawayCluster, clients: list[str], ip: str, change, settle: float) -> dict:
    """Load from every client pod while `change()` runs, then `settle` seconds more."""
    stop = tempfile.mktemp(prefix="nsplane-rollout-stop-")
    procs = [subprocess.Popen(["nsenter", f"--net=/run/netns/{c.pod_netns(p)}", "--", sys.executable, "-c", LOAD,
                               ip, "80", "240", stop], stdout=subprocess.PIPE, text=True) for p in clients]
    try:
        time.sleep(2)
        started = time.time()
        change()
        ended = time.time()
        time.sleep(settle)
    finally:
        open(stop, "w").close()
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=60)
        results.append(json.loads(out))
    os.unlink(stop)
    failures = [f for r in results for f in r["failures"]]
    return {"ok": sum(r["ok"] for r in results), "failed": len(failures), "change_seconds": round(ended - started, 1),
            "failures": [{"at_s_after_change": round(f[0] - ended, 2), "error": f"{f[1]}: {f[2]}"}
                         for f in sorted(failures)]}


def measure(rounds: int = 1, drain: int = DRAIN_SECONDS) -> dict:
    out = {"rolling_restart": [], "scale_down": []}
    with tempfile.TemporaryDirectory(prefix="nsplane-rollout-") as tmp:
        with ThrowawayCluster(tmp, nodes=2, dns=False) as c:
            clients = [pod(f"load-{i}", image=AGNHOST, args=["pause"], node_name=c.cfg.node_name(i)) for i in (1, 2)]
            c.apply(documents(SERVER.format(image=AGNHOST, drain=drain, replicas=REPLICAS), service("drain", selector={"app": "drain"},
                                              ports=[{"port": 80, "targetPort": 8080}]), *clients))
            c.wait_ready("app=drain", REPLICAS, timeout=90)
            c.wait(lambda: all(c.get("pod", f"load-{i}")["status"].get("phase") == "Running" for i in (1, 2)), 60,
                   "load pods running")
            ip = c.get("service", "drain")["spec"]["clusterIP"]
            names = ["load-1", "load-2"]

            def restart():
                c.kubectl("rollout", "restart", "deployment/drain")
                c.kubectl("rollout", "status", "deployment/drain", "--timeout=180s", timeout=200)

            def scale_down():
                c.kubectl("scale", "deployment/drain", "--replicas=1")
                c.wait(lambda: len(c.get("pods", "-l", "app=drain")["items"]) == 1, 120, "scaled down to 1")

            for _ in range(rounds):
                out["rolling_restart"].append(_run_load(c, names, ip, restart, settle=12))
            out["scale_down"].append(_run_load(c, names, ip, scale_down, settle=12))
    return out


def run(quick: bool = False) -> list[dict]:
    r = measure(1 if quick else 2)
    rows = []
    for what, label in (("rolling_restart", "rolling restart"), ("scale_down", "scale-down 3 -> 1")):
        failed = sum(x["failed"] for x in r[what])
        ok = sum(x["ok"] for x in r[what])
        rows.append({"name": f"11. failed requests during a {label} under load", "value": failed, "unit": "requests",
                     "baseline": ok, "baseline_name": "requests that succeeded", "target": "0",
                     "target_met": failed == 0})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=None, help="rolling restarts (default 2, 1 with --quick)")
    ap.add_argument("--drain", type=int, default=DRAIN_SECONDS,
                    help=f"seconds the servers keep serving after SIGTERM (default {DRAIN_SECONDS}; 0: exit at once)")
    a = ap.parse_args()
    r = measure(min(a.rounds or (1 if a.quick else 2), 10), min(a.drain, 25))
    for what in ("rolling_restart", "scale_down"):
        for i, x in enumerate(r[what], 1):
            print(f"{what} #{i}: {x['ok']} requests ok, failed {x['failed']} (change took {x['change_seconds']} s)")
            for f in x["failures"][:20]:
                print(f"    {f['at_s_after_change']:+7.2f} s  {f['error']}")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
