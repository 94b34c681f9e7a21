"""What a Corefile costs per query: the handler the DNS pods run for kubeadm's
Corefile (dns/chain.py) against the bare QueryHandler (no Corefile), same
cluster state, same questions, in one process and without sockets, so the
figure is CPU time per query and not the machine's noise.

Two query sets: 200 Service names (prepared answers) and 200 forwarded
names answered from the forward cache. Best of 7 runs of N queries each
(time.process_time). Not collected by pytest (no test_ prefix).

    PYTHONPATH=$PWD /opt/nsplane/venv/bin/python tests/bench/corefile_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import time

from dnslib import RR, DNSRecord

from agent.controllers.bootstrap import COREFILE
from dns import chain, wire
from dns.cluster import ClusterState
from dns.corefile import load
from dns.forward import Forwarder
from dns.forwardcache import ForwardCache
from dns.handler import QueryHandler
from dns.metrics import Metrics
from dns.records import Config

SERVICES = 200


def cluster_state() -> ClusterState:
    s = ClusterState()
    s.replace("Namespace", [{"metadata": {"name": "default"}}])
    s.replace("Service", [{"metadata": {"name": f"svc{i}", "namespace": "default"},
                           "spec": {"clusterIP": f"10.96.1.{i}", "type": "ClusterIP", "ports": [{"port": 80}]}}
                          for i in range(SERVICES)])
    s.mark_synced()
    return s


def handlers(state: ClusterState) -> dict:
    bare = QueryHandler(state, Config(local_ips=("10.244.0.2",)),
                        Forwarder([("10.0.0.2", 53)], cache=ForwardCache(max_ttl=30)), Metrics())
    corefile = load(COREFILE.format(domain="cluster.local", upstream="10.0.0.2"), env={})
    built = chain.build(corefile, state, local_ips=("10.244.0.2",), metrics={})
    return {"no Corefile (QueryHandler)": (bare, bare.forwarder),
            "kubeadm Corefile": (built.handlers[53], built.forwarders[0])}


def fill(forwarder: Forwarder, queries: list[bytes]) -> None:
    for d in queries:
        q = wire.parse_query(d)
        reply = DNSRecord.parse(d).reply()
        reply.add_answer(*RR.fromZone(f"{'.'.join(q.labels)} 300 A 192.0.2.1"))
        forwarder.cache.store(q.key + b"-", bytes(reply.pack()), time.monotonic())


def per_query(handler, forwarder, queries: list[bytes], n: int) -> float:
    sink: list = []
    best = float("inf")
    for _ in range(7):
        fill(forwarder, queries)            # fresh cache entries for every run (outside the timing)
        started = time.process_time()
        for i in range(n):
            handler.handle(queries[i % len(queries)], "udp", 1, sink.append)
        best = min(best, (time.process_time() - started) / n)
        sink.clear()
    return best * 1e6


def measure(quick: bool) -> list[tuple[str, str, float]]:
    n = 20_000 if quick else 100_000
    sets = {"cluster names": [bytes(DNSRecord.question(f"svc{i}.default.svc.cluster.local").pack())
                              for i in range(SERVICES)],
            "forwarded (cache hits)": [bytes(DNSRecord.question(f"name{i}.example.test").pack())
                                       for i in range(SERVICES)]}
    rows = []
    for name, (handler, forwarder) in handlers(cluster_state()).items():
        for label, queries in sets.items():
            rows.append((label, name, per_query(handler, forwarder, queries, n)))
    return rows


def run(quick: bool = False) -> list[dict]:
    rows = measure(quick)
    base = {label: us for label, name, us in rows if name.startswith("no Corefile")}
    return [{"name": f"dns handler, {label}, kubeadm Corefile", "value": round(us, 2), "unit": "us/query",
             "baseline": round(base[label], 2), "baseline_name": "no Corefile", "target": "<= 1.1x baseline",
             "target_met": us <= 1.1 * base[label]}
            for label, name, us in rows if name == "kubeadm Corefile"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    for label, name, us in measure(args.quick):
        print(f"{label:<24} {name:<28} {us:6.2f} us/query (CPU)")


if __name__ == "__main__":
    main()
