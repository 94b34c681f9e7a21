"""Host mode: the node is the network namespace the agent runs in.

In a VM that is the root namespace, so there is no node namespace, no veth
and no underlay bridge: the node's InternalIP is the address of an existing
interface (`--iface eth1`, the Vagrant private network), pods hang off that
namespace, NodePorts answer on its addresses, the LoadBalancer pool is a range
of that interface's network (default .200-.250, `--lb-pool` to change it), the
layer-2 speaker answers ARP on it, and other nodes' pod CIDRs are routed via
their InternalIPs on the shared network. Pods reach beyond the cluster only
with `--masquerade-egress` (SNAT to the node's address; vagrant/provision.sh
turns it on in the VM only).

    nsplane up --host-mode --iface eth1 [--node-name N] [--lb-pool R] [--masquerade-egress]
        the first machine: API server (listening on the interface's address
        and 127.0.0.1) + its own agent; writes <state>/<cluster>/node-token
    nsplane join --server https://192.168.56.10:6443 --token-file node-token --iface eth1
        every other machine: an agent only (k3s's `agent --server --token-file`)

The node token file is JSON: the server URL, the cluster CA, the node and
coredns bearer tokens, and the cluster-wide settings a joining agent needs
(service and pod CIDRs, DNS address, domain, ports). It is a credential:
mode 0600, like k3s's node-token.

Processes run under systemd when the units from vagrant/systemd are installed
and systemd is PID 1 (`systemctl enable --now`), else as detached processes
with pidfiles, exactly as `nsplane up` runs them for namespace nodes.

Host mode changes the namespace it runs in (iptables, sysctls, routes), so the
CLI refuses to run it in the machine's root namespace without
`--allow-root-netns`: on a VM made for nsplane that is what you want; on a CI
machine or a laptop it is not. Tests run it inside throwaway namespaces.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys

from agent.api.client import APIStatusError, Client
from agent.api.config import DEFAULT_CLUSTER, ClusterConfig
from agent.cli import clusterops, kubeconfig, processes
from agent.node.hostnode import (
    HostModeError,
    interface_address,
    prepare_node,
    set_egress_masquerade,
)
from dataplane import iptables, netns
from dataplane import node as nodenet
from dataplane.nft.kernel import Nft

TOKEN_KIND = "NsplaneNodeToken"
SHARED = ("name", "service_cidr", "cluster_cidr", "node_port_range", "cluster_domain", "dns_ip", "api_port",
          "kubelet_port", "dns", "upstream_dns")
UNIT_DIR = "/etc/systemd/system"
UNITS = {"server": "nsplane-server.service", "agent": "nsplane-agent.service"}


# ---- pure ----------------------------------------------------------------

def network_of(address: str, prefixlen: int) -> str:
    return str(ipaddress.ip_interface(f"{address}/{prefixlen}").network)


def configure(cfg: ClusterConfig, iface: str, node: str, address: str, prefixlen: int,
              masquerade: bool | None = None) -> ClusterConfig:
    """Make `cfg` a host-mode config for this machine (idempotent; returns it)."""
    cfg.host_mode, cfg.host_iface, cfg.host_node = True, iface, node
    cfg.underlay_cidr = network_of(address, prefixlen)
    if not cfg.server_url:
        cfg.advertise_address = address
    if masquerade is not None:
        cfg.masquerade_egress = masquerade
    return cfg


def token_document(cfg: ClusterConfig, ca_pem: str, tokens: dict[str, str]) -> dict:
    """The node token file's content for machines joining `cfg`'s server."""
    return {"kind": TOKEN_KIND, "server": cfg.api_url, "caData": ca_pem, "tokens": tokens,
            "cluster": {k: getattr(cfg, k) for k in SHARED}}


def joined_config(doc: dict, state_dir: str, server: str | None = None, name: str | None = None) -> ClusterConfig:
    """The local ClusterConfig of a machine joining with token document `doc`."""
    if not isinstance(doc, dict) or doc.get("kind") != TOKEN_KIND:
        raise HostModeError(f"not an nsplane node token (kind {TOKEN_KIND} expected); use the file "
                            "`nsplane up --host-mode` wrote: <state>/<cluster>/node-token on the server")
    settings = {k: v for k, v in doc.get("cluster", {}).items() if k in SHARED}
    if name:
        settings["name"] = name
    return ClusterConfig(**settings, state_dir=state_dir, host_mode=True, server_url=server or doc["server"])


def same_netns(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


# ---- this namespace ----------------------------------------------------

def in_root_netns() -> bool:
    """True when this process shares PID 1's network namespace. Where PID 1's
    is unreadable (a sandbox), only a named namespace (`ip netns`) counts as not root."""
    try:
        return same_netns(os.stat("/proc/self/ns/net"), os.stat("/proc/1/ns/net"))
    except OSError:
        return netns.current_name() is None


def teardown(cfg: ClusterConfig, say=print) -> None:
    """Remove from this namespace what host mode added: kube-proxy's chains, the
    egress chain, pod-CIDR routes and the Service route's device. Sysctls stay
    (like `kube-proxy --cleanup`)."""
    iptables.cleanup()
    Nft().delete_table()  # nftables mode's table ip kube-proxy
    set_egress_masquerade(cfg.cluster_cidr, False)
    nodenet.set_pod_routes(None, {})
    if netns.delete_link(None, nodenet.SERVICE_IFNAME):
        say(f"removed link {nodenet.SERVICE_IFNAME}")
    say("removed the cluster's iptables chains, nftables table and routes from this namespace")


def down(cfg: ClusterConfig, purge: bool = False, say=print) -> None:
    """`nsplane down` in host mode: the units (under systemd), then what
    `down` stops and sweeps everywhere, then our rules and routes out of this
    namespace (it is the node)."""
    stop_units(cfg, say)
    clusterops.down(cfg, purge, say)
    teardown(cfg, say)


# ---- processes: systemd units or detached processes ----------------------

def systemd_units(cfg: ClusterConfig) -> bool:
    """True when systemd runs this machine's processes: PID 1 is systemd, the
    units are installed, and `cfg` is the cluster the units name (the default)."""
    return (os.path.isdir("/run/systemd/system") and cfg.name == DEFAULT_CLUSTER
            and cfg.path == ClusterConfig(name=DEFAULT_CLUSTER).path
            and all(os.path.exists(os.path.join(UNIT_DIR, u)) for u in UNITS.values()))


def _systemctl(*args: str) -> None:
    r = subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=90)
    if r.returncode != 0:
        raise HostModeError(f"systemctl {' '.join(args)} failed: {r.stderr.strip()}; "
                            f"see `journalctl -u {args[-1]}`")


def start(cfg: ClusterConfig, role: str, say=print) -> None:
    """Start `role` (server or agent) unless it runs: a systemd unit or a detached process."""
    if systemd_units(cfg):
        _systemctl("enable", "--now", UNITS[role])
        return
    pidrole = "server" if role == "server" else cfg.host_node
    if processes.running_pid(cfg, pidrole):
        say(f"{role} of {cfg.name} already running")
        return
    module = "agent.controlplane" if role == "server" else "agent.node"
    processes.spawn(cfg, pidrole, [processes.python(cfg), "-m", module, "--config", cfg.path])


def stop_units(cfg: ClusterConfig, say=print) -> None:
    """`nsplane down` under systemd: stop and disable the units (pods are stopped by down)."""
    if systemd_units(cfg):
        for role in ("agent", "server"):
            _systemctl("disable", "--now", UNITS[role])
            say(f"stopped {UNITS[role]}")


def _log(cfg: ClusterConfig, role: str) -> str:
    if systemd_units(cfg):
        return f"`journalctl -u {UNITS[role]}`"
    return os.path.join(cfg.dir, "logs", ("server" if role == "server" else cfg.host_node) + ".log")


def wait_node_ready(cfg: ClusterConfig, client: Client, timeout: float = 60.0) -> None:
    def ready():
        node = client.get("nodes", cfg.host_node)
        return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))
    processes.wait(ready, timeout, f"node {cfg.host_node} to be Ready", _log(cfg, "agent"))


def _preflight() -> None:
    if os.geteuid() != 0:
        raise HostModeError("host mode needs root (it adds pods, routes and iptables rules); run it with sudo")
    for tool in ("ip", "nsenter", "iptables-legacy-restore", "conntrack", "openssl"):
        if not shutil.which(tool):
            raise HostModeError(f"{tool} is not installed; run vagrant/provision.sh")


def _refuse_root_netns(allow: bool) -> None:
    if in_root_netns() and not allow:
        raise HostModeError(
            "host mode makes this network namespace the node: it writes iptables rules, sysctls and routes "
            "into it, and this is the machine's root namespace. On a VM made for nsplane that is what you "
            "want: add --allow-root-netns (vagrant/provision.sh vm does). Elsewhere use `nsplane up` without "
            "--host-mode, which keeps every node in its own namespace.")


def up(cfg: ClusterConfig, say=print, timeout: float = 60.0) -> Client:
    """The first machine: API server + its agent in this namespace."""
    _preflight()
    address, prefixlen = interface_address(cfg.host_iface)
    configure(cfg, cfg.host_iface, cfg.host_node, address, prefixlen)
    cfg.save()
    prepare_node(cfg)     # the agent does it again at every start; here so flag changes apply now
    client = Client(cfg.local_api_url)
    start(cfg, "server", say)
    processes.wait(lambda: client.request("GET", "/readyz") == "ok", timeout, "the API server", _log(cfg, "server"))
    write_node_token(cfg)
    start(cfg, "agent", say)
    wait_node_ready(cfg, client, timeout)
    return client


def node_token_path(cfg: ClusterConfig) -> str:
    return os.path.join(cfg.dir, "node-token")


def write_node_token(cfg: ClusterConfig) -> str:
    with open(cfg.ca_file) as f:
        ca = f.read()
    tokens = {}
    for role in ("node", "coredns"):
        with open(cfg.token_file(role)) as f:
            tokens[role] = f.read().strip()
    path = node_token_path(cfg)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(token_document(cfg, ca, tokens), f, indent=2)
    os.replace(path + ".tmp", path)
    return path


def _write_secret(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def join(cfg: ClusterConfig, doc: dict, say=print, timeout: float = 60.0) -> Client:
    """Another machine: write the local config, CA and tokens, start the agent."""
    _preflight()
    address, prefixlen = interface_address(cfg.host_iface)
    configure(cfg, cfg.host_iface, cfg.host_node, address, prefixlen)
    cfg.save()
    prepare_node(cfg)
    _write_secret(cfg.ca_file, doc["caData"])
    for role, tok in doc.get("tokens", {}).items():
        _write_secret(cfg.token_file(role), tok + "\n")
    client = Client(cfg.api_url, **cfg.node_auth(cfg.host_node))
    start(cfg, "agent", say)
    wait_node_ready(cfg, client, timeout)
    return client


# ---- CLI -----------------------------------------------------------------

def add_up_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host-mode", action="store_true",
                   help="this namespace is the node (in a VM: the VM itself); no node namespaces")
    _node_flags(p)


def _node_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--iface", help="host mode: the interface whose address is the node's InternalIP")
    p.add_argument("--node-name", help="host mode: this node's name (default: the hostname)")
    p.add_argument("--masquerade-egress", action=argparse.BooleanOptionalAction, default=None,
                   help="host mode: pods reach beyond the cluster through SNAT to the node's address")
    p.add_argument("--allow-root-netns", action="store_true",
                   help="host mode in the machine's root network namespace (a VM made for nsplane)")
    p.add_argument("--insecure-registry", action="append", metavar="HOST[:PORT]|CIDR",
                   help="a registry the nodes pull from over plain HTTP (a local test registry); repeatable")


def add_join_parser(sub) -> None:
    p = sub.add_parser("join", help="host mode: join this machine to a cluster as a node (agent only)")
    p.add_argument("--server", help="the API server, e.g. https://192.168.56.10:6443 (default: the token's)")
    p.add_argument("--token-file", required=True, help="the server's <state>/<cluster>/node-token")
    _node_flags(p)


def _apply_node_flags(cfg: ClusterConfig, args) -> None:
    if getattr(args, "insecure_registry", None):
        cfg.insecure_registries = list(dict.fromkeys(cfg.insecure_registries + args.insecure_registry))
    if args.iface:
        cfg.host_iface = args.iface
    if not cfg.host_iface:
        raise HostModeError("host mode needs --iface NAME (the interface on the network the nodes share)")
    cfg.host_node = args.node_name or cfg.host_node or socket.gethostname()
    if args.masquerade_egress is not None:
        cfg.masquerade_egress = args.masquerade_egress


def cmd_up(cfg: ClusterConfig, args) -> int:
    try:
        if args.nodes is not None:
            raise HostModeError("--nodes has no meaning in host mode: this machine is one node; "
                                "run `nsplane join` on the others")
        if cfg.server_url:
            raise HostModeError(f"this machine joined {cfg.server_url} as node {cfg.host_node}; "
                                "run `nsplane join` again to restart its agent")
        _refuse_root_netns(args.allow_root_netns)
        _apply_node_flags(cfg, args)
        client = up(cfg)
    except (HostModeError, processes.ClusterError, OSError) as e:
        cluster_die(f"nsplane up: {e}")
    nodes = client.list("nodes")["items"]
    print(f"cluster {cfg.name} is up in host mode: node {cfg.host_node}, InternalIP {cfg.host_ip} on "
          f"{cfg.host_iface}; {len(nodes)} node(s)")
    print(f"API server: {cfg.api_url} (and {cfg.loopback_api_url}, {cfg.local_api_url})")
    print(f"LoadBalancer pool: {cfg.load_balancer_pool}; pod egress masquerade: "
          f"{'on' if cfg.masquerade_egress else 'off'}")
    print(f"join another machine: nsplane join --server {cfg.api_url} --token-file {node_token_path(cfg)} "
          "--iface <iface>")
    kubeconfig.install_and_say(cfg)
    return 0


def cmd_join(cfg: ClusterConfig, args) -> int:
    try:
        _refuse_root_netns(args.allow_root_netns)
        with open(args.token_file) as f:
            doc = json.load(f)
        local = joined_config(doc, cfg.state_dir, args.server, None if cfg.name == DEFAULT_CLUSTER else cfg.name)
        if os.path.exists(local.path):   # keep what an earlier join chose
            prev = ClusterConfig.load(local.path)
            local.host_iface, local.host_node = prev.host_iface, prev.host_node
            local.masquerade_egress = prev.masquerade_egress
            local.insecure_registries = prev.insecure_registries
        _apply_node_flags(local, args)
        join(local, doc)
    except (OSError, ValueError, HostModeError, processes.ClusterError, APIStatusError) as e:
        cluster_die(f"nsplane join: {e}")
    print(f"node {local.host_node} (InternalIP {interface_address(local.host_iface)[0]} on {local.host_iface}) "
          f"joined {local.api_url}; its agent's log: {_log(local, 'agent')}")
    return 0


def cluster_die(msg: str):
    print(msg, file=sys.stderr)
    raise SystemExit(1)

