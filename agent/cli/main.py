"""The `nsplane` command: its arguments, the cluster verbs (up, join, node,
down, kubeconfig), and kubectl's everyday verbs (apply, get, delete, scale:
agent/cli/resources.py; run, exec, logs: agent/cli/pods.py) with kubectl's
flags and output, against our API server.
"""
from __future__ import annotations

import argparse
import os
import sys

import yaml

from agent.api import kubeproxyconfig
from agent.api.client import APIStatusError, Client
from agent.api.config import ClusterConfig, parse_duration
from agent.api.kinds import UnknownKind
from agent.apiserver.allocator import LoadBalancerPool
from agent.cli import clusterops as cluster
from agent.cli import clusters, hostmode, images, kubeconfig, pods, resources
from agent.cli.doctor import command as doctor
from agent.cli.errors import die, server_error
from agent.cli.trace import command as tracing

# ---- cluster -------------------------------------------------------------

def cmd_up(cfg: ClusterConfig, args) -> int:
    if args.lb_pool is not None:
        try:
            LoadBalancerPool(args.lb_pool)
        except ValueError as e:
            die(f"nsplane up: --lb-pool: {e}")
        cfg.lb_pool = args.lb_pool
    if args.event_ttl is not None:
        try:
            cfg.event_ttl = parse_duration(args.event_ttl)
        except ValueError as e:
            die(f"nsplane up: --event-ttl: {e}")
    if args.proxy_mode is not None:
        cfg.proxy_mode = args.proxy_mode
    if args.insecure_registry:
        cfg.insecure_registries = list(dict.fromkeys(cfg.insecure_registries + args.insecure_registry))
    if args.host_mode or cfg.host_mode:   # this namespace is the node (a VM): agent/cli/hostmode.py
        given = [f for f, v in (("--api-port", args.api_port), ("--underlay", args.underlay),
                                ("--host-netns", args.host_netns)) if v is not None]
        if given:
            die(f"nsplane up: {given[0]} is for clusters of namespaces; in host mode the node is this machine")
        return hostmode.cmd_up(cfg, args)
    try:
        chosen = clusters.place(cfg, args.api_port, args.underlay, args.host_netns)
        if chosen:
            print(f"cluster {cfg.name}: {', '.join(chosen)}")
        removed = []
        if args.nodes is not None:
            _, removed = cluster.resize(cfg, args.nodes)
        running = cluster.running_pid(cfg, "server")
        if removed and running:
            for name in removed:
                cluster.remove_node(cfg, name, Client(cfg.local_api_url))
        client = cluster.up(cfg)
        if args.proxy_mode is not None:
            set_proxy_mode(client, args.proxy_mode)
        for name in removed if not running else ():   # a stopped cluster: its Nodes go once the API is up
            cluster.remove_node(cfg, name, client)
    except (cluster.ClusterError, OSError, APIStatusError) as e:
        die(f"nsplane up: {e}")
    nodes = client.list("nodes")["items"]
    print(f"cluster {cfg.name} is up: {len(nodes)} node(s)")
    print(f"API server: {cfg.loopback_api_url} (and {cfg.api_url}, {cfg.local_api_url})")
    print(f"logs: {cfg.dir}/logs/   store: {cfg.db_path}")
    kubeconfig.install_and_say(cfg)
    return 0


def set_proxy_mode(client: Client, mode: str) -> None:
    """`up --proxy-mode` on a cluster whose ConfigMap kube-system/kube-proxy
    exists already: set its config.conf `mode`, as a user editing it would
    (the node agents switch on the update)."""
    cm = client.get("configmaps", kubeproxyconfig.NAME, namespace=kubeproxyconfig.NAMESPACE)
    text = (cm.get("data") or {}).get(kubeproxyconfig.KEY) or ""
    config, _ = kubeproxyconfig.parse(text)
    if config is not None and config.mode == mode:
        return
    cm.setdefault("data", {})[kubeproxyconfig.KEY] = kubeproxyconfig.with_mode(text, mode)
    client.update("configmaps", cm)
    print(f"kube-proxy mode: {mode} (ConfigMap {kubeproxyconfig.NAMESPACE}/{kubeproxyconfig.NAME} updated)")


def cmd_clusters(cfg: ClusterConfig, args) -> int:
    """`nsplane clusters`: every cluster of the state directory, and whether it runs."""
    found = clusters.known(cfg.state_dir)
    if not found:
        print(f"No clusters found in {cfg.state_dir}.", file=sys.stderr)
        return 0
    sys.stdout.write(clusters.render(clusters.rows([(c, clusters.state(c)) for c in found])))
    return 0


def cmd_node(cfg: ClusterConfig, args) -> int:
    """`nsplane node add [--count N]` / `nsplane node remove NAME...` on a running cluster."""
    if cfg.host_mode:
        die(f"error: cluster {cfg.name} is in host mode; add a node by running `nsplane join` on another machine")
    if not cluster.running_pid(cfg, "server"):
        die(f"error: cluster {cfg.name} is not running; start it with `nsplane up`")
    client = Client(cfg.local_api_url)
    have = [cfg.node_name(i) for i in cfg.node_list]
    try:
        if args.action == "add":
            added, _ = cluster.resize(cfg, len(have) + args.count)
            cfg.save()
            for i in cfg.node_list:
                if cfg.node_name(i) in added:
                    cluster.add_node(cfg, i)
            cluster.wait_nodes_ready(cfg, client)
            return 0
        unknown = [n for n in args.names if n not in have]
        if unknown:
            die(f'error: node "{unknown[0]}" not found; the nodes of {cfg.name} are {", ".join(have)}')
        if len(args.names) >= len(have):
            die(f"error: cannot remove every node of {cfg.name}; `nsplane down` stops the cluster")
        for name in args.names:
            cluster.remove_node(cfg, name, client)
            cfg.node_indexes = [i for i in cfg.node_list if cfg.node_name(i) != name]
            cfg.nodes = len(cfg.node_indexes)
            cfg.save()
    except (cluster.ClusterError, OSError, APIStatusError) as e:
        die(f"nsplane node {args.action}: {e}")
    return 0


def cmd_kubeconfig(cfg: ClusterConfig, args) -> int:
    try:
        doc = kubeconfig.for_cluster(cfg, args.server)
    except FileNotFoundError as e:
        die(f"error: cluster {cfg.name} has no certificates yet ({e.filename}); run `nsplane up` first")
    sys.stdout.write(yaml.safe_dump(doc, default_flow_style=False, sort_keys=False))
    return 0


def cmd_down(cfg: ClusterConfig, args) -> int:
    (hostmode.down if cfg.host_mode else cluster.down)(cfg, purge=args.purge)
    if args.purge:
        try:
            path = kubeconfig.uninstall(cfg)
            if path:
                print(f'Deleted context "{kubeconfig.context_name(cfg)}" from {path}')
        except (OSError, ValueError) as e:
            print(f"warning: kubeconfig not updated: {e}", file=sys.stderr)
    print(f"cluster {cfg.name} is down" + (" and its store removed" if args.purge else
                                          f" (objects kept in {cfg.db_path}; `nsplane down --purge` removes them)"))
    return 0


# ---- argument parsing ----------------------------------------------------

def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="nsplane", description="Kubernetes Services, for real, without Kubernetes.")
    ap.add_argument("--cluster", help="cluster name (default: nsplane, or $NSPLANE_CLUSTER)")
    sub = ap.add_subparsers(dest="cmd", required=True)

    def ns_flags(p):
        p.add_argument("-n", "--namespace")

    p = sub.add_parser("up", help="start the API server, nodes and agents (idempotent)")
    p.add_argument("--nodes", type=int, help="how many nodes (grows or shrinks a running cluster)")
    p.add_argument("--lb-pool", help="LoadBalancer addresses: first-last or CIDR on the underlay, or none "
                                     "(default: .200-.250 of the underlay)")
    p.add_argument("--api-port", type=int, help="the API server's port (default: the first free one from 6443)")
    p.add_argument("--underlay", help="the underlay network, e.g. 172.28.5.0/24 (default: the first free /24 "
                                      "from 172.28.0.0/24)")
    p.add_argument("--host-netns", help="run the cluster's outside world (bridge, API server) in this named "
                                        "network namespace instead of this one, as the tests do")
    p.add_argument("--proxy-mode", choices=("iptables", "nftables"),
                   help="kube-proxy's mode: KubeProxyConfiguration `mode` in ConfigMap kube-system/kube-proxy "
                        "(default iptables; on a running cluster the ConfigMap is updated and nodes switch)")
    p.add_argument("--event-ttl", help="how long Events are kept after they last happened, as kube-apiserver's "
                                       "--event-ttl (a duration: 1h, 30m, 90s; default 1h); restarts a running "
                                       "API server only on its next start")
    hostmode.add_up_flags(p)
    hostmode.add_join_parser(sub)
    sub.add_parser("clusters", help="list the clusters on this machine (name, API, nodes, underlay, state)")
    p = sub.add_parser("node", help="add or remove nodes of a running cluster")
    node_sub = p.add_subparsers(dest="action", required=True)
    node_sub.add_parser("add", help="add nodes (next free names)").add_argument("--count", type=int, default=1)
    node_sub.add_parser("remove", help="remove nodes; their pods are recreated elsewhere").add_argument(
        "names", nargs="+", metavar="NAME")
    p = sub.add_parser("down", help="stop everything and remove every namespace, link and mount")
    p.add_argument("--purge", action="store_true",
                   help="also remove the store (all applied objects) and the kubeconfig context")
    p = sub.add_parser("kubeconfig", help="print a kubeconfig for kubectl (nsplane up merges one into ~/.kube/config)")
    p.add_argument("--server", help="API URL to put in it (default https://127.0.0.1:<api port>)")
    for name in ("apply", "create"):
        p = sub.add_parser(name, help="apply manifests (files, directories, - for stdin)")
        p.add_argument("-f", "--filename", action="append", required=True)
        p.add_argument("-R", "--recursive", action="store_true")
        ns_flags(p)
    p = sub.add_parser("get", help="list or show objects")
    p.add_argument("args", nargs="+")
    ns_flags(p)
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-l", "--selector")
    p.add_argument("--field-selector")
    p.add_argument("-o", "--output")
    p.add_argument("--show-labels", action="store_true")
    p = sub.add_parser("delete", help="delete objects by file or KIND NAME")
    p.add_argument("args", nargs="*")
    p.add_argument("-f", "--filename", action="append")
    p.add_argument("-R", "--recursive", action="store_true")
    p.add_argument("--now", action="store_true")
    p.add_argument("--force", action="store_true")
    p.add_argument("--wait", default=True, type=lambda s: s.lower() != "false")
    ns_flags(p)
    p = sub.add_parser("run", help="start a pod")
    p.add_argument("name")
    p.add_argument("--image", required=True)
    p.add_argument("--rm", action="store_true")
    p.add_argument("-i", "--stdin", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("--restart")
    p.add_argument("--labels")
    p.add_argument("--env", action="append")
    p.add_argument("--port")
    p.add_argument("--command", action="store_true")
    p.add_argument("args", nargs="*")
    ns_flags(p)
    p = sub.add_parser("exec", help="run a command in a pod's container")
    p.add_argument("pod")
    p.add_argument("-c", "--container")
    p.add_argument("-i", "--stdin", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("command", nargs="*")
    ns_flags(p)
    p = sub.add_parser("logs", help="print a container's logs")
    p.add_argument("pod")
    p.add_argument("-c", "--container")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("--tail", type=int)
    ns_flags(p)
    images.add_parser(sub)
    p = sub.add_parser("scale", help="set replicas of a deployment, replicaset, statefulset or replicationcontroller")
    p.add_argument("args", nargs="+")
    p.add_argument("--replicas", type=int, required=True)
    ns_flags(p)
    doctor.add_parsers(sub)
    tracing.add_parser(sub)
    return ap


COMMANDS = {"up": cmd_up, "clusters": cmd_clusters, "join": hostmode.cmd_join, "node": cmd_node, "down": cmd_down, "kubeconfig": cmd_kubeconfig, "apply": resources.cmd_apply, "create": resources.cmd_apply, "get": resources.cmd_get,
            "delete": resources.cmd_delete, "run": pods.cmd_run, "exec": pods.cmd_exec, "logs": pods.cmd_logs,
            "scale": resources.cmd_scale, "image": images.cmd_image, "doctor": doctor.cmd_doctor,
            "explain": doctor.cmd_explain, "trace": tracing.cmd_trace}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    rest = None
    if "--" in argv:   # everything after `--` is the pod's command, untouched
        i = argv.index("--")
        argv, rest = argv[:i], argv[i + 1:]
    args = parser().parse_args(argv)
    if rest is not None:
        if args.cmd == "run":
            args.args = args.args + rest
        elif args.cmd == "exec":
            args.command = args.command + rest
    cfg = ClusterConfig.find(args.cluster)
    if args.cmd not in ("up", "down", "kubeconfig", "join", "image", "clusters") and not os.path.exists(cfg.api_socket):
        die(f"The connection to the server was refused: cluster {cfg.name} is not running "
            f"(no {cfg.api_socket}); start it with `nsplane up`")
    try:
        return COMMANDS[args.cmd](cfg, args)
    except UnknownKind as e:
        die(f"error: {e}")
    except APIStatusError as e:
        die(server_error(e))
    except ConnectionRefusedError:
        die(f"The connection to the server {cfg.local_api_url} was refused - is `nsplane up` running?")
    except BrokenPipeError:   # `nsplane get ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
