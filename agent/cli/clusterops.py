"""`nsplane up` and `nsplane down`: the machine's side of a cluster.

up: the underlay bridge, the API server process, one network namespace and
one agent process per node; idempotent (what runs keeps running) and
restoring (after a reboot or killed processes, the store brings back every
object, and the kubelets rebuild pods with their old IPs).

down: stops our processes by PID (checked against their start time, so a
reused PID is never signalled), every container process, and sweeps every
namespace, link, mount and file of the cluster. The store stays unless
purged, so the next `up` brings everything back.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import time

from agent.api import pki
from agent.api.client import APIStatusError, Client
from agent.api.config import ClusterConfig
from agent.cli.processes import (
    ClusterError,
    python,
    running_pid,
    spawn,
    stop_role,
    wait,
)
from agent.node.kubelet import kuberuntime, sandbox
from agent.node.runtime.kernel import proc_start_ticks as proc_start_time  # noqa: F401 (tests use it)
from dataplane import cleanup, names, netns, uts
from dataplane import node as nodenet

# ---- up ----------------------------------------------------------------

def up(cfg: ClusterConfig, say=print, timeout: float = 60.0) -> Client:
    if os.geteuid() != 0:
        raise ClusterError("nsplane up needs root (it creates network namespaces and iptables rules); "
                           "run it with sudo")
    for tool in ("ip", "nsenter", "iptables-legacy-restore", "conntrack"):
        if not shutil.which(tool):
            raise ClusterError(f"{tool} is not installed; run vagrant/provision.sh (or apt-get install "
                               "iproute2 util-linux iptables conntrack)")
    cfg.save()
    os.makedirs(cfg.rundir, exist_ok=True)
    if cfg.host_netns:
        netns.create(cfg.host_netns)
        nodenet.ensure_loopback(cfg.host_netns)
    nodenet.ensure_bridge(cfg.bridge, f"{cfg.host_ip}/{cfg.underlay_prefix}", host_netns=cfg.host_netns,
                          alias=cfg.name)
    client = Client(cfg.local_api_url)
    if running_pid(cfg, "server"):
        say(f"API server of {cfg.name} already running")

    def server_ready() -> bool:
        # (Re)start it whenever it is not running: a process killed just before
        # `up` can still look alive for a moment, then go.
        if not running_pid(cfg, "server"):
            spawn(cfg, "server", [python(cfg), "-m", "agent.controlplane", "--config", cfg.path], cfg.host_netns)
        return client.request("GET", "/readyz") == "ok"
    for _ in range(2):
        wait(server_ready, timeout, "the API server", os.path.join(cfg.dir, "logs", "server.log"))
        for i in cfg.node_list:
            add_node(cfg, i, say)
        wait_nodes_ready(cfg, client, timeout, say)
        # A process killed just before `up` can look alive for a moment (and its
        # Node still Ready): look again shortly, and go round once more if one went.
        time.sleep(0.3)
        if running_pid(cfg, "server") and all(running_pid(cfg, cfg.node_name(i)) for i in cfg.node_list):
            break
    return client


def wait_nodes_ready(cfg: ClusterConfig, client: Client, timeout: float = 60.0, say=print) -> None:
    want = {cfg.node_name(i) for i in cfg.node_list}

    def ready() -> bool:
        for i in cfg.node_list:   # an agent that died meanwhile is started again
            if not running_pid(cfg, cfg.node_name(i)):
                add_node(cfg, i, say)
        return want <= _ready_nodes(client)
    wait(ready, timeout, f"node(s) {', '.join(sorted(want))} to be Ready",
          os.path.join(cfg.dir, "logs", "node-*.log"))


def resize(cfg: ClusterConfig, nodes: int, say=print) -> tuple[list[str], list[str]]:
    """Grow or shrink a cluster (up or running) to `nodes` nodes: new ones get the
    next free index, the highest indexes go first. Returns (added, removed)."""
    have = cfg.node_list
    if nodes < 1:
        raise ClusterError(f"--nodes {nodes}: a cluster needs at least one node")
    added = [max(have) + k for k in range(1, nodes - len(have) + 1)]
    removed = have[nodes:] if nodes < len(have) else []
    cfg.node_indexes = sorted(set(have[:nodes]) | set(added))
    cfg.nodes = len(cfg.node_indexes)
    return [cfg.node_name(i) for i in added], [cfg.node_name(i) for i in removed]


def remove_node(cfg: ClusterConfig, name: str, client: Client | None, say=print) -> None:
    """Take a node out: stop its agent and containers, delete its Node (the pod
    GC then deletes its pods, which their ReplicaSets recreate elsewhere) and
    remove its namespaces and uplink."""
    stop_role(cfg, name)
    node_dir = os.path.join(cfg.dir, "nodes", name)
    kuberuntime.sweep_node(cfg, node_dir)
    pod_netns = []
    for state in glob.glob(os.path.join(node_dir, "pods", "*", "state.json")):
        try:
            with open(state) as f:
                pod_netns.append(json.load(f).get("netns"))
        except (OSError, ValueError):
            pass
    if client is not None:
        try:
            client.delete("nodes", name)
        except APIStatusError as e:
            if e.code != 404:
                raise
    uts_dir = os.path.join(cfg.rundir, "uts")
    for ns in filter(None, pod_netns):
        netns.delete(ns)
        uts.remove(uts.uts_path(uts_dir, ns))
        sandbox.remove_ipc(os.path.join(cfg.rundir, "ipc", ns))
        shutil.rmtree(os.path.join(netns.ETC_NETNS_DIR, ns), ignore_errors=True)
    nodenet.teardown_node(names.node_netns(cfg.name, name), names.node_ifname(cfg.name, name), cfg.host_netns)
    shutil.rmtree(node_dir, ignore_errors=True)
    say(f"node {name}: removed")


def add_node(cfg: ClusterConfig, index: int, say=print) -> None:
    name, ip = cfg.node_name(index), cfg.node_ip(index)
    node_ns = names.node_netns(cfg.name, name)
    nodenet.setup_node(node_ns, cfg.bridge, names.node_ifname(cfg.name, name), f"{ip}/{cfg.underlay_prefix}",
                       host_netns=cfg.host_netns)
    nodenet.ensure_service_route(node_ns, cfg.service_cidr)
    if running_pid(cfg, name):
        return
    pki.ensure_node_token(cfg.pki_dir, name)          # its own identity: system:node:<name>
    spawn(cfg, name, [python(cfg), "-m", "agent.node", "--config", cfg.path, "--node", name, "--ip", ip], node_ns)
    say(f"node {name}: namespace {node_ns}, InternalIP {ip}")


def _ready_nodes(client: Client) -> set[str]:
    return {x["metadata"]["name"] for x in client.list("nodes")["items"]
            if any(c["type"] == "Ready" and c["status"] == "True" for c in x.get("status", {}).get("conditions", []))}


# ---- down --------------------------------------------------------------

def container_pids(cfg: ClusterConfig, node_dir: str | None = None) -> list[tuple[int, int]]:
    """(pid, start ticks) of the running containers of a node (default: every node)."""
    dirs = [node_dir] if node_dir else sorted(glob.glob(os.path.join(cfg.dir, "nodes", "*")))
    return [p for d in dirs for p in kuberuntime.running_containers(d)]


def down(cfg: ClusterConfig, purge: bool = False, say=print) -> None:
    roles = [os.path.basename(p)[:-4] for p in glob.glob(os.path.join(cfg.rundir, "*.pid"))]
    for role in sorted(roles, key=lambda r: r == "server"):   # agents first, then the server
        if stop_role(cfg, role):
            say(f"stopped {role}")
    stopped = sum(kuberuntime.sweep_node(cfg, d) for d in sorted(glob.glob(os.path.join(cfg.dir, "nodes", "*"))))
    kuberuntime.remove_cgroups(cfg.name)
    uts_dir = os.path.join(cfg.rundir, "uts")
    # Whatever still runs inside the cluster's namespaces was started by its
    # kubelets (e.g. a container started just before its agent was killed,
    # before it was recorded): a namespace would outlive its name otherwise.
    strays = [pid for name in cleanup.owned_netns(cfg.name, uts_dir) for pid in cleanup.netns_pids(name)]
    for pid in strays:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if stopped or strays:
        say(f"stopped {stopped + len(strays)} container(s)")
    ipc = sandbox.sweep_ipc(os.path.join(cfg.rundir, "ipc"))
    swept = cleanup.sweep(cfg.name, uts_dir, host_netns=cfg.host_netns)
    if cfg.host_netns and netns.exists(cfg.host_netns):
        netns.delete(cfg.host_netns)
    for line in swept.lines() + [f"ipc {p}" for p in ipc]:
        say(f"removed {line}")
    shutil.rmtree(cfg.rundir, ignore_errors=True)
    for d in glob.glob(os.path.join(cfg.dir, "nodes", "*", "pods", "*")):
        shutil.rmtree(d, ignore_errors=True)   # runtime state; the store keeps the pods
    if purge:
        shutil.rmtree(cfg.dir, ignore_errors=True)
        say(f"removed {cfg.dir}")
