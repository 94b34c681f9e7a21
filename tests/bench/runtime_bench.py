"""Runtime-layer benchmarks: how long from an image on disk to a running
container process, next to the bare OCI runtime on the same bundle.

    sudo /opt/nsplane/venv/bin/python -m tests.bench.runtime_bench [--runs 20]

For each installed runtime (crun, runc), over N runs: ours = overlay mount
of the unpacked image + spec written + `OCIRuntime.run` (`run --detach`
through the per-container monitor) until it returns (the container's program
has been exec'd), with 0.3 s between starts (the spare monitor is ready)
and back-to-back (it may still be starting), and the kubelet's two-step
create + start; bare = `<runtime> run -d` of an identical, already-mounted bundle
with the same config.json, measured in the same run, one bare start after
each of ours 0.3 s apart so both meet the same machine (crun gets the same
private-mount-table wrapper on a hybrid cgroup machine, as it cannot run
there otherwise). Then the kubelet's own path (KubeRuntime.start: the pod's
spec with its sandbox's namespaces and /etc files, the root mounted, the
container run), for the loaded image (overlayfs) and for a stand-in (the
read-only host view), next to the bare `run -d` of the runtime it uses. Plus
`ImageStore.load` of a ~10 MB docker-archive next to `tar -xf` of it.
Prints medians and ratios, asserts nothing. Everything lives in a temp dir named
nsplane-bench-rt-*, a netns nsplane-hb-rt and cgroups under /nsplane-hb-rt,
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

from agent.node.runtime import cgroups, images, oci, rootfs  # noqa: E402
from agent.node.runtime.spec import NodeInfo, PodNamespaces, container_spec  # noqa: E402
from tests.oci_image import build_layout, save_docker_archive  # noqa: E402

NETNS = "nsplane-hb-rt"
CGROUP_PARENT = "/nsplane-hb-rt"
POD = {"metadata": {"name": "bench", "namespace": "default", "uid": "bench"},
       "spec": {"containers": [{"name": "c", "command": ["sleep", "30"]}]}}


def _ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 1)


def _spec(root: str, cid: str) -> dict:
    return container_spec(POD, POD["spec"]["containers"][0], rootfs=root,
                          namespaces=PodNamespaces(network=f"/run/netns/{NETNS}"),
                          cgroups_path=f"{CGROUP_PARENT}/{cid}",
                          node=NodeInfo(cgroup_v2=cgroups.layout() == cgroups.V2))


def ours(rt: oci.OCIRuntime, lower: str, work: str, runs: int,
         gap: float = 0.0, one_call: bool = True) -> dict[str, list[float]]:
    """Mount + spec + run (or create, start), timed; delete and unmount untimed.

    `gap` seconds of idleness before each run let the spare monitor finish
    starting (a kubelet's usual pace); 0 measures back-to-back starts.
    """
    times: dict[str, list[float]] = {"total": [], "mount": [], "create": [], "start": []}
    for i in range(runs):
        time.sleep(gap)
        cid = oci.container_id("bench", rt.name, i)
        cdir = os.path.join(work, cid)
        try:
            t0 = time.perf_counter()
            root = rootfs.overlay(cdir, lower)
            with open(os.path.join(cdir, "config.json"), "w") as fh:
                json.dump(_spec(root, cid), fh)
            t1 = time.perf_counter()
            if one_call:
                rt.run(cid, cdir, os.path.join(work, f"{cid}.log"))
                t2 = time.perf_counter()
            else:
                rt.create(cid, cdir, os.path.join(work, f"{cid}.log"))
                t2 = time.perf_counter()
                rt.start(cid)
            t3 = time.perf_counter()
        finally:
            rt.delete(cid, force=True)
            rootfs.remove(cdir)
        times["total"].append(t3 - t0)
        times["mount"].append(t1 - t0)
        times["create"].append(t2 - t1)
        times["start"].append(t3 - t2)
    return times


def bare(rt: oci.OCIRuntime, lower: str, work: str, runs: int) -> list[float]:
    """`<runtime> run -d` of a mounted bundle with the same spec."""
    root_dir = os.path.join(work, f"bare-{rt.name}")
    cdir = os.path.join(work, f"nsplane-bare-{rt.name}")
    root = rootfs.overlay(cdir, lower)
    times = []
    try:
        for i in range(runs):
            cid = f"nsplane-bare-{rt.name}-{i}"
            with open(os.path.join(cdir, "config.json"), "w") as fh:
                json.dump(_spec(root, cid), fh)
            with open(os.path.join(work, "bare.log"), "ab") as log:
                t0 = time.perf_counter()
                subprocess.run([rt.binary, "--root", root_dir, "run", "-d", "--bundle", cdir, cid],
                               stdin=subprocess.DEVNULL, stdout=log, stderr=log, check=True,
                               preexec_fn=cgroups.hide_unified if rt.hide_unified else None)
                times.append(time.perf_counter() - t0)
            subprocess.run([rt.binary, "--root", root_dir, "delete", "-f", cid],
                           capture_output=True, check=False)
            cgroups.remove(f"{CGROUP_PARENT}/{cid}")
    finally:
        rootfs.remove(cdir)
    return times


def interleaved(rt: oci.OCIRuntime, lower: str, work: str, runs: int) -> tuple[dict, list[float]]:
    """`runs` of ours 0.3 s apart, each followed by one bare `run -d`: on a
    busy machine the two see the same load, so their ratio means something."""
    mine: dict[str, list[float]] = {}
    base: list[float] = []
    for _ in range(runs):
        for key, values in ours(rt, lower, work, 1, gap=0.3).items():
            mine.setdefault(key, []).extend(values)
        base += bare(rt, lower, work, 1)
    return mine, base


def kubelet_path(work: str, image_name: str, store: images.ImageStore, runs: int) -> dict[str, list[float]]:
    """KubeRuntime.start for `runs` containers of a loaded image and of a stand-in,
    0.3 s apart, in a sandbox of pinned namespaces (no veth: nothing in this
    namespace changes); delete and unmount untimed."""
    from agent.api.config import ClusterConfig
    from agent.node.kubelet import sandbox as sandboxes
    from agent.node.kubelet.images import Image
    from agent.node.kubelet.kuberuntime import KubeRuntime
    from dataplane import uts

    cfg = ClusterConfig(name=f"{NETNS}-k", state_dir=work, run_dir=os.path.join(work, "run"))
    pod = {"metadata": {"name": "bench", "namespace": "default", "uid": "bench-uid"},
           "spec": {"containers": [{"name": "c", "image": image_name, "command": ["sleep", "30"]}]}}
    sb = sandboxes.PodSandbox(pod, cfg.name, cfg.rundir)
    kinds = {"loaded image, overlayfs": Image(image=image_name, name=image_name,
                                              lower=store.unpack(image_name), config=store.config(image_name)),
             "stand-in busybox, host view": Image(image="busybox", name="docker.io/library/busybox:latest",
                                                  standin=True)}
    times: dict[str, list[float]] = {k: [] for k in kinds}
    subprocess.run(["ip", "netns", "add", sb.netns], check=True)
    kr = KubeRuntime(cfg, os.path.join(cfg.dir, "nodes", "bench"))
    try:
        uts.ensure(sb.uts, sb.hostname)
        sandboxes.ensure_ipc(sb.ipc)
        sb.write_files("10.244.0.2", cfg.dns_ip, cfg.cluster_domain)
        for label, image in kinds.items():
            for i in range(runs + 1):
                time.sleep(0.3)
                t0 = time.perf_counter()
                started = kr.start(sb, pod["spec"]["containers"][0], image, [("HOSTNAME", "bench")],
                                   os.path.join(work, f"k-{i}.log"))
                took = time.perf_counter() - t0
                kr.remove(started.cid)
                if i:                                       # the first warms the caches
                    times[label].append(took)
    finally:
        kr.sweep()
        kr.close()
        subprocess.run(["ip", "netns", "del", sb.netns], check=False)
        uts.remove(sb.uts)
        sandboxes.remove_ipc(sb.ipc)
        shutil.rmtree(sb.etc, ignore_errors=True)
        cgroups.remove(f"/{cfg.name}")
    return times


def load_times(work: str, runs: int) -> tuple[float, float, int]:
    """Median seconds of ImageStore.load of a ~10 MB docker-archive, median
    seconds of a plain `tar -xf` of the same archive (the least any load
    does: read it and write its files), and its size."""
    layout = build_layout(os.path.join(work, "big"), "big", payload_bytes=8 << 20)
    archive = save_docker_archive(layout, "big", os.path.join(work, "big.tar"), "nsplane-big:1")
    times, tar = [], []
    for i in range(runs):
        store = images.ImageStore(os.path.join(work, f"load-store-{i}"))
        t0 = time.perf_counter()
        store.load(archive)
        times.append(time.perf_counter() - t0)
        shutil.rmtree(store.state_dir)
        out = os.path.join(work, f"untar-{i}")
        os.makedirs(out)
        t0 = time.perf_counter()
        subprocess.run(["tar", "-xf", archive, "-C", out], check=True)
        tar.append(time.perf_counter() - t0)
        shutil.rmtree(out)
    return statistics.median(times), statistics.median(tar), os.path.getsize(archive)


def bare_floor(runs: int = 10) -> tuple[str, float]:
    """(runtime, median seconds) of `<runtime> run -d` of a mounted busybox
    bundle, for the runtime a kubelet picks here: the floor of any container
    start, for benchmarks elsewhere (cluster_bench) to compare against."""
    work = tempfile.mkdtemp(prefix="nsplane-bench-rt-")
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    try:
        layout = build_layout(os.path.join(work, "img"), "busybox")
        store = images.ImageStore(os.path.join(work, "store"))
        store.load(save_docker_archive(layout, "busybox", os.path.join(work, "bb.tar"), "nsplane-busybox:bench"))
        name, _ = oci.detect_runtime()
        rt = oci.OCIRuntime(os.path.join(work, f"state-{name}"), runtime=name)
        try:
            times = bare(rt, store.unpack("nsplane-busybox:bench"), work, runs)
        finally:
            rt.close()
        return name, statistics.median(times)
    finally:
        subprocess.run(["ip", "netns", "del", NETNS], check=False)
        cgroups.remove(CGROUP_PARENT)
        rootfs.sweep(work)
        shutil.rmtree(work, ignore_errors=True)


def run(quick: bool = False, runs: int | None = None) -> list[dict]:
    if os.geteuid() != 0:
        raise RuntimeError("the runtime benchmarks need root (mounts, namespaces, cgroups)")
    runs = runs or (5 if quick else 20)
    work = tempfile.mkdtemp(prefix="nsplane-bench-rt-")
    results = []
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    try:
        layout = build_layout(os.path.join(work, "img"), "busybox")
        archive = save_docker_archive(layout, "busybox", os.path.join(work, "bb.tar"),
                                      "nsplane-busybox:bench")
        store = images.ImageStore(os.path.join(work, "store"))
        store.load(archive)
        lower = store.unpack("nsplane-busybox:bench")
        bare_ms: dict[str, float] = {}
        for name in [n for n in oci.RUNTIMES if shutil.which(n)]:
            rt = oci.OCIRuntime(os.path.join(work, f"state-{name}"), runtime=name)
            try:
                ours(rt, lower, work, 2)                       # warm caches
                spaced, base = interleaved(rt, lower, work, runs)
                burst = ours(rt, lower, work, runs)
                split = ours(rt, lower, work, runs, gap=0.3, one_call=False)
            finally:
                rt.sweep()
                rt.close()
            bare_ms[name] = _ms(base)
            for label, mine in (("run, 0.3 s apart", spaced), ("run, back-to-back", burst),
                                ("create+start, 0.3 s apart", split)):
                met = _ms(mine["total"]) <= 50 if label == "run, 0.3 s apart" else None
                results.append({
                    "name": f"image on disk -> process running ({name}, {label}), p50",
                    "value": _ms(mine["total"]), "unit": "ms",
                    "baseline": _ms(base), "baseline_name": f"bare `{name} run -d`",
                    "target": "<= 50 ms" if met is not None else None, "target_met": met,
                    "ratio": round(_ms(mine["total"]) / _ms(base), 2),
                    "breakdown_ms": {k: _ms(v) for k, v in mine.items()}})
        used = oci.detect_runtime()[0]          # the runtime the kubelet runs containers with
        for label, took in kubelet_path(work, "docker.io/library/nsplane-busybox:bench", store, runs).items():
            results.append({"name": f"image on disk -> container running incl. rootfs mount, the kubelet's "
                                    f"path ({label}, {used}), p50",
                            "value": _ms(took), "unit": "ms", "baseline": bare_ms.get(used),
                            "baseline_name": f"bare `{used} run -d`, mounted bundle",
                            "ratio": round(_ms(took) / bare_ms[used], 2) if bare_ms.get(used) else None,
                            "target": "<= 50 ms", "target_met": _ms(took) <= 50})
        seconds, untar, size = load_times(work, 3 if quick else 5)
        results.append({"name": f"image load (ImageStore.load) of a {size / 1e6:.1f} MB docker-archive, p50",
                        "value": round(seconds * 1000, 1), "unit": "ms", "baseline": round(untar * 1000, 1),
                        "baseline_name": "`tar -xf` of the same archive", "ratio": round(seconds / untar, 2),
                        "target": "<= 2000 ms", "target_met": seconds <= 2.0})
    finally:
        subprocess.run(["ip", "netns", "del", NETNS], check=False)
        cgroups.remove(CGROUP_PARENT)
        rootfs.sweep(work)
        shutil.rmtree(work, ignore_errors=True)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=None)
    args = ap.parse_args()
    for row in run(args.quick, args.runs):
        extra = ""
        if row.get("ratio"):
            extra = f"  ({row['baseline_name']} {row['baseline']} ms, ratio {row['ratio']}"
            extra += f"; breakdown {row['breakdown_ms']})" if "breakdown_ms" in row else ")"
        print(f"{row['name']}: {row['value']} {row['unit']}{extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
