"""API request latency over HTTPS next to the local Unix socket (figure 10
of tests/bench/run's table): the API server (store, registry, bootstrap
objects, TLS with the cluster's serving certificate, bearer-token
authentication: what `nsplane up` runs) in a child process on loopback;
C client threads with kept-alive connections GET one Service R times each
over HTTPS (admin token, as kubectl) and then over the Unix socket (the
`nsplane` CLI's path); p50/p99 of each, and their ratio. One client alone,
with the server otherwise idle, first: the per-request floor.

    /opt/nsplane/venv/bin/python tests/bench/api_latency_bench.py [--quick] [--clients 20] [--requests 150]
    ... --server-repo /work/main      # the same load against another checkout's API server

Loopback and a Unix socket in a temporary directory only; every count is
bounded and every socket has a timeout. Target: HTTPS p50 at most 2x the
Unix socket's under load.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from agent.api import pki  # noqa: E402
from agent.api.client import _UnixConnection  # noqa: E402 - the CLI's own Unix socket connection

SERVER = r"""
import sys, time
from agent.api import pki
from agent.apiserver import authn
from agent.apiserver.registry import Registry
from agent.apiserver.serving import APIServer
from agent.apiserver.store import Store
from agent.controllers import bootstrap
d = sys.argv[1]
store = Store(d + "/store.db")
registry = Registry(store)
bootstrap.bootstrap(registry, "172.28.0.1", 6443)
server = APIServer(registry, [("127.0.0.1", 0)], d + "/api.sock", tls=pki.server_context(d + "/pki"),
                   authenticator=authn.Authenticator(pki.Authenticator(pki.Paths(d + "/pki").tokens)))
server.start()
print(server.servers[0].server_address[1], flush=True)
sys.stdin.read()        # until the benchmark closes our stdin
server.stop()
store.close()
"""
PATH = "/api/v1/namespaces/default/services/kubernetes"


def _client(connect, headers: dict, requests: int, out: list[float], errors: list[str]) -> None:
    conn = connect()
    try:
        for _ in range(requests):
            t = time.perf_counter()
            conn.request("GET", PATH, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            out.append(time.perf_counter() - t)
            if resp.status != 200:
                errors.append(f"{resp.status} {body[:200]!r}")
    except (OSError, http.client.HTTPException) as e:
        errors.append(repr(e))
    finally:
        conn.close()


def _load(connect, headers: dict, clients: int, requests: int) -> tuple[list[float], list[str]]:
    out: list[float] = []
    errors: list[str] = []
    threads = [threading.Thread(target=_client, args=(connect, headers, requests, out, errors))
               for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return out, errors


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000 if xs else float("nan")


def measure(clients: int, requests: int, server_repo: str = REPO) -> dict:
    tmp = tempfile.mkdtemp(prefix="nsplane-apibench-")
    proc = None
    try:
        tokens = pki.ensure(f"{tmp}/pki", "nsplane-apibench", ["127.0.0.1"], "10.96.0.1", "cluster.local")
        env = dict(os.environ, PYTHONPATH=server_repo)
        proc = subprocess.Popen([sys.executable, "-c", SERVER, tmp], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                env=env, cwd=server_repo, text=True)
        port = int(proc.stdout.readline())
        ctx = pki.client_context(pki.Paths(f"{tmp}/pki").ca_crt)
        https = (lambda: http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30),
                 {"Authorization": f"Bearer {tokens['admin']}", "Accept": "application/json"})
        unix = (lambda: _UnixConnection(f"{tmp}/api.sock", 30), {"Accept": "application/json"})
        result = {"clients": clients, "requests_per_client": requests}
        for label, (connect, headers) in (("https", https), ("unix", unix)):
            _load(connect, headers, 1, 20)                       # warm up
            idle, errors1 = _load(connect, headers, 1, max(50, requests))
            loaded, errors = _load(connect, headers, clients, requests)
            result[label] = {"idle_p50_ms": _pct(idle, 0.5), "p50_ms": _pct(loaded, 0.5),
                             "p99_ms": _pct(loaded, 0.99), "requests": len(loaded),
                             "errors": len(errors + errors1), "first_error": (errors + errors1)[:1]}
        result["ratio_p50"] = result["https"]["p50_ms"] / result["unix"]["p50_ms"]
        result["ratio_idle_p50"] = result["https"]["idle_p50_ms"] / result["unix"]["idle_p50_ms"]
        return result
    finally:
        if proc is not None:
            proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def run(quick: bool = False) -> list[dict]:
    r = measure(20, 50 if quick else 150)
    return [
        {"name": f"10. API GET p50 under load, HTTPS ({r['clients']} clients)", "value": round(r["https"]["p50_ms"], 2),
         "unit": "ms", "baseline": round(r["unix"]["p50_ms"], 2), "baseline_name": "same load over the Unix socket",
         "target": "<= 2x the Unix socket", "target_met": r["ratio_p50"] <= 2.0},
        {"name": "10. API GET p99 under load, HTTPS", "value": round(r["https"]["p99_ms"], 2), "unit": "ms",
         "baseline": round(r["unix"]["p99_ms"], 2), "baseline_name": "same load over the Unix socket",
         "target": "", "target_met": None},
        {"name": "10. API GET p50, one client, HTTPS", "value": round(r["https"]["idle_p50_ms"], 2), "unit": "ms",
         "baseline": round(r["unix"]["idle_p50_ms"], 2), "baseline_name": "one client over the Unix socket",
         "target": "no ~40 ms stall", "target_met": r["https"]["idle_p50_ms"] < 10},
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=None, help="GETs per client (default 150, 50 with --quick)")
    ap.add_argument("--server-repo", default=REPO, help="the checkout whose API server to run")
    a = ap.parse_args()
    r = measure(min(a.clients, 100), min(a.requests or (50 if a.quick else 150), 2000), a.server_repo)
    for label in ("https", "unix"):
        x = r[label]
        print(f"{label:6} one client p50 {x['idle_p50_ms']:7.2f} ms | {r['clients']} clients x "
              f"{r['requests_per_client']}: p50 {x['p50_ms']:7.2f} ms  p99 {x['p99_ms']:7.2f} ms  "
              f"({x['requests']} requests, {x['errors']} errors{', ' + x['first_error'][0] if x['errors'] else ''})")
    print(f"HTTPS / Unix socket: p50 under load {r['ratio_p50']:.2f}x (target <= 2x), "
          f"one client {r['ratio_idle_p50']:.2f}x")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
