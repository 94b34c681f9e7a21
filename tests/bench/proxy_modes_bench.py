"""iptables mode and nftables mode side by side, in the same run, on the
same 10,000 Services x 3 endpoints (tests/bench/proxier_bench.py's
`cluster`), in the same throwaway topology (`proxier_bench.topology`:
nsplane-hb-cli ==veth== nsplane-hb-node ==veth== nsplane-hb-srv):

- full sync: render + apply from an empty node, and the same text written
  by the kernel interface alone (iptables-legacy-restore / nft -f) as the
  floor;
- one endpoint change at 10,000 Services, live: a Proxier in the mode
  gets the target Service's only endpoint added or removed, syncs, and a
  real connection from the client pod must reach the server (or be
  refused); timed from the change to the connection's outcome. The floor
  is a one-chain transaction at that table size.

Printed as a table with nftables / iptables ratios, and returned as
tests/bench/run's rows. Not collected by pytest. Every loop is bounded in
count; every worker lives at most `proxier_bench.DEADLINE`; the namespaces
go on every exit path (`topology`).

    sudo PYTHONPATH=$PWD /opt/nsplane/venv/bin/python -m tests.bench.proxy_modes_bench [--quick]
"""
from __future__ import annotations

import json
import os
import sys
import time

from tests.bench import proxier_bench as pb

MODES = ("iptables", "nftables")


def _in_node(*args: str) -> dict:
    proc = pb.subprocess.run(["ip", "netns", "exec", pb.NODE, pb.PY, "-m", "tests.bench.proxy_modes_bench", *args],
                             capture_output=True, text=True, timeout=pb.DEADLINE, env=pb._env(), cwd=pb.ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _clean() -> None:
    from dataplane import iptables
    from dataplane.nft.kernel import Nft

    iptables.cleanup()
    Nft().delete_table()


# ---------------------------------------------------------------- workers (inside nsplane-hb-node)


def full_sync(n: int, mode: str) -> dict:
    """Render + apply n Services x 3 endpoints from empty in `mode`; then the
    kernel interface alone writing the same text."""
    from agent.node.proxy import backends

    from dataplane import iptables

    _clean()
    empty = iptables.read_tables()
    services = pb.cluster(n, True)
    backend = backends.make(mode)
    t0 = time.perf_counter()
    ruleset = backend.render(services, pb._node())
    t1 = time.perf_counter()
    backend.applier.apply(ruleset)
    t2 = time.perf_counter()
    if mode == "nftables":
        from dataplane.nft.kernel import Nft
        from dataplane.nft.transaction import compose_full

        text = compose_full(ruleset).text
        _clean()
        t3 = time.perf_counter()
        Nft().run(text)
    else:
        text = iptables.compose_restore(ruleset, empty)  # what apply wrote
        _clean()
        t3 = time.perf_counter()
        iptables.restore(text)
    t4 = time.perf_counter()
    _clean()
    return {"render": t1 - t0, "apply": t2 - t1, "floor": t4 - t3, "rules": ruleset.rules()}


def endpoint_change(n: int, rounds: int, mode: str) -> dict:
    """proxier_bench.node_incremental's measurement, in `mode`."""
    from agent.node.proxy.proxier import Proxier

    _clean()
    rss_before = pb._rss_mb()
    proxier = Proxier(pb._node(), mode=mode)
    for sp, eps in pb.cluster(n, False).items():
        proxier.on_service(None, pb._service_dict(sp))
        proxier.on_endpointslice(None, pb._slice_dict(sp.name, [(ep.ip, ep.node_name) for ep in eps]))
    target = {"metadata": {"name": "target", "namespace": "bench"},
              "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.100", "ports": [{"name": "http", "port": 80}]}}
    proxier.on_service(None, target)
    t = time.perf_counter()
    proxier.sync_once()
    loaded = time.perf_counter() - t
    rss_after = pb._rss_mb()
    client = pb.subprocess.Popen(["ip", "netns", "exec", pb.CLI, pb.PY, "-m", "tests.bench.proxier_bench", "cli-loop"],
                                 stdin=pb.subprocess.PIPE, stdout=pb.subprocess.PIPE, text=True, env=pb._env(),
                                 cwd=pb.ROOT)
    changes, applies, unexpected, floor = [], [], [], []
    try:
        slice_with = pb._slice_dict("target", [(pb.SRV_IP, pb._node().name)], port=pb.HELLO_PORT)
        for i in range(rounds):
            for new, want in ((slice_with, "ok"), (None, "refused")):
                t = time.perf_counter()
                proxier.on_endpointslice(None if new else slice_with, new)
                result = proxier.sync_once()
                client.stdin.write("10.96.0.100 80\n")
                client.stdin.flush()
                outcome = client.stdout.readline().strip()
                changes.append(time.perf_counter() - t)
                applies.append(result.apply_seconds)
                if outcome != want:
                    unexpected.append(f"{mode} round {i}: expected {want}, got {outcome}")
        for _ in range(max(3, rounds // 2)):
            t = time.perf_counter()
            if mode == "nftables":
                from dataplane.nft.kernel import Nft
                Nft().run("add chain ip kube-proxy bench-floor\ndelete chain ip kube-proxy bench-floor\n")
            else:
                from dataplane import iptables
                iptables.restore("*nat\n:KUBE-SVC-BENCHFLOOR - [0:0]\n-X KUBE-SVC-BENCHFLOOR\nCOMMIT\n")
            floor.append(time.perf_counter() - t)
    finally:
        client.stdin.close()
        client.kill()
        client.wait(timeout=10)
        _clean()
    return {"changes": changes, "apply": applies, "floor": floor, "unexpected": unexpected, "load": loaded,
            "rss_before": rss_before, "rss_after": rss_after}


# ---------------------------------------------------------------- the comparison


def compare(quick: bool) -> list[dict]:
    n, rounds = 10000, 5 if quick else 15
    full = {mode: _in_node("full-sync", str(n), mode) for mode in MODES}
    change = {mode: _in_node("endpoint-change", str(n), str(rounds), mode) for mode in MODES}
    rows = [
        ("full sync 10k x3: render", {m: full[m]["render"] for m in MODES}, "s"),
        ("full sync 10k x3: apply", {m: full[m]["apply"] for m in MODES}, "s"),
        ("full sync 10k x3: render + apply", {m: full[m]["render"] + full[m]["apply"] for m in MODES}, "s"),
        ("full sync 10k x3: kernel interface alone (floor)", {m: full[m]["floor"] for m in MODES}, "s"),
        ("endpoint change at 10k -> connection, p50", {m: pb._median(change[m]["changes"]) for m in MODES}, "s"),
        ("endpoint change at 10k -> connection, p99", {m: pb._pct(change[m]["changes"], 0.99) for m in MODES}, "s"),
        ("endpoint change at 10k: apply, p50", {m: pb._median(change[m]["apply"]) for m in MODES}, "s"),
        ("one-chain transaction at 10k (floor), p50", {m: pb._median(change[m]["floor"]) for m in MODES}, "s"),
        ("proxier RSS at 10k", {m: change[m]["rss_after"] for m in MODES}, "MB"),
    ]
    print(f"\n# proxy modes, {n} Services x 3 endpoints, same run ({rounds} rounds of add + remove)", file=sys.stderr)
    print(f"# {'':52} {'iptables':>10} {'nftables':>10} {'nft/ipt':>8}", file=sys.stderr)
    out = []
    for name, values, unit in rows:
        ratio = values["nftables"] / values["iptables"] if values["iptables"] else float("nan")
        print(f"# {name:52} {values['iptables']:>10.4f} {values['nftables']:>10.4f} {ratio:>8.2f}  {unit}",
              file=sys.stderr)
        out.append(pb._fig(f"modes: {name}, nftables", values["nftables"], unit, values["iptables"],
                           "iptables mode, same run", "", None))
    wrong = [note for m in MODES for note in change[m]["unexpected"]]
    for note in wrong:
        print(f"# modes: {note}", file=sys.stderr)
    out.append(pb._fig("modes: connections with the wrong outcome", len(wrong), "count", 0, "expected", "0",
                       not wrong))
    return out


def run(quick: bool = False) -> list[dict]:
    if os.geteuid() != 0:
        raise RuntimeError("the proxy mode benchmarks need root (they create network namespaces)")
    with pb.topology():
        return compare(quick)


def _worker(argv: list[str]) -> None:
    role, args = argv[0], argv[1:]
    if role == "full-sync":
        result = full_sync(int(args[0]), args[1])
    elif role == "endpoint-change":
        result = endpoint_change(int(args[0]), int(args[1]), args[2])
    else:
        raise SystemExit(f"unknown worker role {role!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[1].startswith("--"):
        _worker(sys.argv[1:])
    else:
        for row in run(quick="--quick" in sys.argv):
            print(json.dumps(row))
