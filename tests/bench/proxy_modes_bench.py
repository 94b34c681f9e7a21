"""iptables mode and nftables mode side by side, in the same run, on the
same 10,000 Services x 3 endpoints (tests/bench/proxier_bench.py's
`cluster`), in the same throwaway topology (`proxier_bench.topology`:
nsplane-hb-cli ==veth== nsplane-hb-node ==veth== nsplane-hb-srv):

- full sync: render + apply from an empty node, then again over the table
  it wrote (a resync: every chain flushed and rewritten). The floor is the
  kernel's own share: the time spent inside the kernel interface
  (iptables-legacy-restore of the same text; in nftables mode, nft for the
  fixed part plus the netlink batches, encoding excluded). For reference,
  the same table written the way kube-proxy writes it, one `nft -f`;
- one endpoint change at 10,000 Services, live: a Proxier in the mode
  gets the target Service's only endpoint added or removed, syncs, and a
  real connection from the client pod must reach the server (or be
  refused); timed from the change to the connection's outcome. The floor
  is the smallest transaction that holds a jump at that table size (the
  kernel then validates the whole table): iptables-legacy-restore of one
  chain, or one netlink batch adding a chain with one jump;
- new connections through one ClusterIP with 1 and with 10,000 Services
  in the table, in each mode: sequential short connections alternating
  with the same to the pod IP, as a ratio of medians, so both sides see
  the same machine.

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


class _KernelClock:
    """Seconds spent inside the kernel interface (nft runs, netlink batches,
    iptables restores) while it is installed."""

    def __init__(self) -> None:
        from dataplane import iptables
        from dataplane.nft import netlink
        from dataplane.nft.kernel import Nft

        self.seconds = 0.0
        for owner, name in ((netlink, "write"), (Nft, "run"), (iptables, "restore")):
            setattr(owner, name, self._timed(getattr(owner, name)))

    def _timed(self, fn):
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t
        return timed


def full_sync(n: int, mode: str) -> dict:
    """Render + apply n Services x 3 endpoints from empty in `mode`, then a
    resync over what it wrote; the kernel interface's share of each; and,
    in nftables mode, the same table through one `nft -f` as kube-proxy."""
    from agent.node.proxy import backends

    _clean()
    clock = _KernelClock()
    services = pb.cluster(n, True)
    backend = backends.make(mode)
    t0 = time.perf_counter()
    ruleset = backend.render(services, pb._node())
    t1 = time.perf_counter()
    backend.applier.apply(ruleset)
    t2 = time.perf_counter()
    floor, clock.seconds = clock.seconds, 0.0
    backend.applier.apply(ruleset, full=True)
    t3 = time.perf_counter()
    out = {"render": t1 - t0, "apply": t2 - t1, "floor": floor, "resync": t3 - t2, "resync_floor": clock.seconds,
           "rules": ruleset.rules(), "nft_f": None}
    if mode == "nftables":
        from dataplane.nft.kernel import Nft
        from dataplane.nft.transaction import compose_full

        text = compose_full(ruleset).text
        _clean()
        t = time.perf_counter()
        Nft().run(text)
        out["nft_f"] = time.perf_counter() - t
    _clean()
    return out


def connections(n: int, mode: str, count: int) -> dict:
    """Leave n Services (one reaching the server) written in `mode`, then
    time `count` sequential connections from the client pod, alternating
    between its ClusterIP and the pod IP (this machine's connection times
    jump between two levels, about 35 and 90 us, for both alike: only
    connections made side by side compare)."""
    from agent.node.proxy import backends

    _clean()
    services = pb.cluster(n, False, "10.96.0.100")
    backend = backends.make(mode)
    backend.applier.apply(backend.render(services, pb._node()))
    try:
        proc = pb.subprocess.run(["ip", "netns", "exec", pb.CLI, pb.PY, "-m", "tests.bench.proxy_modes_bench",
                                  "cli-alternate", str(count)], capture_output=True, text=True, timeout=pb.DEADLINE,
                                 env=pb._env(), cwd=pb.ROOT, check=True)
    finally:
        _clean()
    return json.loads(proc.stdout.strip().splitlines()[-1])


def alternate(count: int) -> dict:
    """In the client pod: `count` connections to the ClusterIP and as many to
    the pod IP, one after the other; medians and their ratio."""
    via, direct = [], []
    for i in range(count * 2 + 100):
        target = ("10.96.0.100", 80) if i % 2 else (pb.SRV_IP, pb.HELLO_PORT)
        t = time.perf_counter()
        if pb.connect_once(*target) != "ok":
            raise RuntimeError(f"connection to {target} failed")
        if i >= 100:  # the first 100 warm up
            (via if i % 2 else direct).append(time.perf_counter() - t)
    return {"via": pb._median(via), "direct": pb._median(direct), "ratio": pb._median(via) / pb._median(direct)}


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
            if mode == "nftables":
                from dataplane.nft import netlink
                add = [("chain", "bench-floor", ""), ("rule", "bench-floor", "jump mark-for-masquerade")]
                drop = [("flush chain", "bench-floor"), ("delete chain", "bench-floor")]
                batches = [(netlink.encode(ops, {}, netlink.Names()), ops) for ops in (add, drop)]
                t = time.perf_counter()
                netlink.write(*batches[0])
                floor.append(time.perf_counter() - t)
                netlink.write(*batches[1])
            else:
                from dataplane import iptables
                t = time.perf_counter()
                iptables.restore("*nat\n:KUBE-SVC-BENCHFLOOR - [0:0]\n-A KUBE-SVC-BENCHFLOOR -j KUBE-MARK-MASQ\n"
                                 "-F KUBE-SVC-BENCHFLOOR\n-X KUBE-SVC-BENCHFLOOR\nCOMMIT\n")
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
    n, rounds, count = 10000, 5 if quick else 15, 500 if quick else 1500
    full = {mode: _in_node("full-sync", str(n), mode) for mode in MODES}
    change = {mode: _in_node("endpoint-change", str(n), str(rounds), mode) for mode in MODES}
    conn = {(mode, k): _in_node("connections", str(k), mode, str(count)) for mode in MODES for k in (1, n)}
    rows = [
        ("full sync 10k x3: render", {m: full[m]["render"] for m in MODES}, "s"),
        ("full sync 10k x3: apply", {m: full[m]["apply"] for m in MODES}, "s"),
        ("full sync 10k x3: render + apply", {m: full[m]["render"] + full[m]["apply"] for m in MODES}, "s"),
        ("full sync 10k x3: in the kernel interface (floor)", {m: full[m]["floor"] for m in MODES}, "s"),
        ("resync 10k x3 (full, over its own table): apply", {m: full[m]["resync"] for m in MODES}, "s"),
        ("resync 10k x3: in the kernel interface (floor)", {m: full[m]["resync_floor"] for m in MODES}, "s"),
        ("endpoint change at 10k -> connection, p50", {m: pb._median(change[m]["changes"]) for m in MODES}, "s"),
        ("endpoint change at 10k -> connection, p99", {m: pb._pct(change[m]["changes"], 0.99) for m in MODES}, "s"),
        ("endpoint change at 10k: apply, p50", {m: pb._median(change[m]["apply"]) for m in MODES}, "s"),
        ("smallest transaction with a jump at 10k (floor), p50", {m: pb._median(change[m]["floor"]) for m in MODES},
         "s"),
        ("new connection via ClusterIP / pod IP, 1 Service", {m: conn[m, 1]["ratio"] for m in MODES}, "ratio"),
        ("new connection via ClusterIP / pod IP, 10k Services", {m: conn[m, n]["ratio"] for m in MODES}, "ratio"),
        ("new connection cost, 10k / 1 Service", {m: conn[m, n]["ratio"] / conn[m, 1]["ratio"] for m in MODES},
         "ratio"),
        ("proxier RSS at 10k", {m: change[m]["rss_after"] for m in MODES}, "MB"),
    ]
    print(f"\n# proxy modes, {n} Services x 3 endpoints, same run ({rounds} rounds of add + remove)", file=sys.stderr)
    print(f"# {'':56} {'iptables':>10} {'nftables':>10} {'nft/ipt':>8}", file=sys.stderr)
    out = []
    for name, values, unit in rows:
        ratio = values["nftables"] / values["iptables"] if values["iptables"] else float("nan")
        print(f"# {name:56} {values['iptables']:>10.4f} {values['nftables']:>10.4f} {ratio:>8.2f}  {unit}",
              file=sys.stderr)
        out.append(pb._fig(f"modes: {name}, nftables", values["nftables"], unit, values["iptables"],
                           "iptables mode, same run", "", None))
    print(f"# {'full sync 10k x3 as kube-proxy writes it (one nft -f)':56} {'':>10} {full['nftables']['nft_f']:>10.4f}"
          "           s", file=sys.stderr)
    out.append(pb._fig("modes: full sync 10k x3 as kube-proxy writes it (one nft -f)", full["nftables"]["nft_f"], "s",
                       full["nftables"]["apply"], "nftables mode's apply, same run", "", None))
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
    elif role == "connections":
        result = connections(int(args[0]), args[1], int(args[2]))
    elif role == "cli-alternate":
        result = alternate(int(args[0]))
    else:
        raise SystemExit(f"unknown worker role {role!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[1].startswith("--"):
        _worker(sys.argv[1:])
    else:
        for row in run(quick="--quick" in sys.argv):
            print(json.dumps(row))
