"""The Gateway API's nginx proxy under change, on a real throwaway cluster
(figures 12 and 13 of tests/bench/run's table): a Gateway with an HTTP
listener, an agnhost serve-hostname backend, and

- HTTPRoute applied -> routed: `kubectl apply` of a route for a new host
  name, then curl from the outside (the cluster's host namespace) every
  50 ms until that host answers 200; the median over the rounds (the
  controller's sync, the ConfigMap reaching the proxy pod, nginx's
  graceful reload). Target: <= 1 s.
- failed requests across route changes under load: 2,000 keep-alive
  requests from the outside through the Gateway while routes for other
  hosts are applied every 0.5 s. Target: 0.

    sudo /opt/nsplane/venv/bin/python tests/bench/gateway_bench.py [--quick]

Everything runs in the cluster's own namespaces; loops are bounded in count
and time.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from dataplane import netns  # noqa: E402
from tests.integration.cluster import ThrowawayCluster  # noqa: E402
from tests.integration.manifests import AGNHOST, deployment, documents, service  # noqa: E402

GATEWAY = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: bench}
spec:
  gatewayClassName: nsplane
  listeners: [{name: http, protocol: HTTP, port: 80}]
"""
ROUTE = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r%d}
spec:
  parentRefs: [{name: bench}]
  hostnames: [r%d.bench.test]
  rules:
  - backendRefs: [{name: web, port: 80}]
"""
LOAD_REQUESTS = 2000


def _code(c, ip: str, host: str) -> str:
    return netns.run(c.cfg.host_netns, ["curl", "-s", "-m", "1", "-o", "/dev/null", "-w", "%{http_code}",
                                        "--resolve", f"{host}:80:{ip}", f"http://{host}/"], timeout=5).stdout


def measure(rounds: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="nsplane-gwbench") as tmp, ThrowawayCluster(tmp, dns=False) as c:
        c.apply(documents(deployment("web", image=AGNHOST, args=["serve-hostname", "--port=8080"],
                                     ports=[("http", 8080)], readiness=("/healthz", "http")),
                          service("web", selector={"app": "web"}, ports=[{"port": 80, "targetPort": 8080}])))
        c.kubectl("apply", "-f", "-", input=GATEWAY + "---\n" + ROUTE % (0, 0))
        c.wait_ready("app=web", 1, 90)
        c.wait(lambda: c.kubectl("wait", "--for=condition=Programmed", "gateway/bench", "--timeout=1s",
                                 check=False).returncode == 0, 90, "Gateway Programmed")
        ip = json.loads(c.kubectl("get", "gateway", "bench", "-o", "json").stdout)["status"]["addresses"][0]["value"]
        c.wait(lambda: _code(c, ip, "r0.bench.test") == "200", 60, "the first route")
        latencies = []
        for i in range(1, rounds + 1):
            t0 = time.monotonic()
            c.kubectl("apply", "-f", "-", input=ROUTE % (i, i))
            while time.monotonic() - t0 < 30 and _code(c, ip, f"r{i}.bench.test") != "200":
                time.sleep(0.05)
            latencies.append(round(time.monotonic() - t0, 3))
        out: dict = {}

        def load():
            r = netns.run(c.cfg.host_netns, ["curl", "-s", "-m", "120", "-o", "/dev/null", "-w", "%{http_code}\\n",
                                             "--resolve", f"r0.bench.test:80:{ip}",
                                             f"http://r0.bench.test/?n=[1-{LOAD_REQUESTS}]"], timeout=150)
            out["codes"] = r.stdout.split()
        t = threading.Thread(target=load)
        t.start()
        changes = 0
        while t.is_alive() and changes < 10:
            changes += 1
            c.kubectl("apply", "-f", "-", input=ROUTE % (100 + changes, 100 + changes))
            time.sleep(0.5)
        t.join()
        codes = out.get("codes", [])
        return {"apply_to_routed_s": latencies, "requests": len(codes), "changes": changes,
                "failed": sum(1 for x in codes if x != "200") + (LOAD_REQUESTS - len(codes))}


def run(quick: bool = False) -> list[dict]:
    r = measure(3 if quick else 8)
    median = statistics.median(r["apply_to_routed_s"])
    return [{"name": "12. HTTPRoute applied -> routed through the Gateway (median)", "value": median, "unit": "s",
             "baseline": max(r["apply_to_routed_s"]), "baseline_name": "slowest round", "target": "<= 1 s",
             "target_met": median <= 1.0},
            {"name": f"13. failed requests through the Gateway across {r['changes']} route changes", "value":
             r["failed"], "unit": "requests", "baseline": r["requests"] - r["failed"],
             "baseline_name": "requests that succeeded", "target": "0", "target_met": r["failed"] == 0}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    print(json.dumps(measure(3 if a.quick else 8)))


if __name__ == "__main__":
    main()
