"""The `nsplane` command: cluster up/down, and kubectl's everyday verbs
(apply, get, delete, run, exec, logs, scale) with kubectl's flags and output,
against our API server. `exec` enters the pod's namespaces directly: every
node of a cluster lives on this machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import yaml

from agent import cluster, hostmode, kubeconfig, manifests, printers
from agent.client import APIStatusError, Client
from agent.allocator import LoadBalancerPool
from agent.config import ClusterConfig
from agent.kinds import UnknownKind, lookup
from dataplane import names, netns

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def die(msg: str, code: int = 1):
    print(msg, file=sys.stderr)
    raise SystemExit(code)


def server_error(e: APIStatusError, verb: str = "", source: str = "") -> str:
    where = f'error when {verb} "{source}": ' if verb else ""
    return f"Error from server ({e.reason or 'Error'}): {where}{e}"


def ref(kind, name: str) -> str:
    return f"{kind.singular}{'.' + kind.group if kind.group else ''}/{name}"


# ---- cluster -------------------------------------------------------------

def cmd_up(cfg: ClusterConfig, args) -> int:
    if args.lb_pool is not None:
        try:
            LoadBalancerPool(args.lb_pool)
        except ValueError as e:
            die(f"nsplane up: --lb-pool: {e}")
        cfg.lb_pool = args.lb_pool
    if args.host_mode or cfg.host_mode:   # this namespace is the node (a VM): agent/hostmode.py
        return hostmode.cmd_up(cfg, args)
    try:
        removed = []
        if args.nodes is not None:
            _, removed = cluster.resize(cfg, args.nodes)
        running = cluster.running_pid(cfg, "server")
        if removed and running:
            for name in removed:
                cluster.remove_node(cfg, name, Client(cfg.local_api_url))
        client = cluster.up(cfg)
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
    cluster.down(cfg, purge=args.purge)
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


# ---- apply / delete ------------------------------------------------------

def merge_diff(old, new):
    """The JSON merge patch turning `old` into `new`."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch = {k: None for k in old if k not in new}
    for k, v in new.items():
        if k not in old:
            patch[k] = v
        elif old[k] != v:
            patch[k] = merge_diff(old[k], v)
    return patch


def apply_one(client: Client, kind, doc: dict, ns: str | None) -> str:
    md = doc.setdefault("metadata", {})
    if kind.namespaced:
        md["namespace"] = md.get("namespace") or ns or "default"
    applied = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    body = json.loads(applied)
    body["metadata"].setdefault("annotations", {})[LAST_APPLIED] = applied + "\n"
    try:
        live = client.get(kind, md["name"], md.get("namespace"))
    except APIStatusError as e:
        if e.code != 404:
            raise
        client.create(kind, body, md.get("namespace"))
        return "created"
    last = (live["metadata"].get("annotations") or {}).get(LAST_APPLIED)
    if last and json.loads(last) == json.loads(applied):
        return "unchanged"
    patch = merge_diff(json.loads(last) if last else {}, body)
    patch.setdefault("metadata", {})["resourceVersion"] = live["metadata"]["resourceVersion"]
    patch["metadata"].setdefault("annotations", {})[LAST_APPLIED] = applied + "\n"
    new = client.patch(kind, md["name"], patch, md.get("namespace"))
    return "configured" if new["metadata"]["resourceVersion"] != live["metadata"]["resourceVersion"] else "unchanged"


def documents(args) -> list[tuple[str, dict]]:
    try:
        docs = manifests.load(args.filename, recursive=getattr(args, "recursive", False))
    except manifests.ManifestError as e:
        die(f"error: {e}")
    return [(d.source, d.obj) for d in docs]


def cmd_apply(cfg, args) -> int:
    client = Client(cfg.local_api_url)
    failed = 0
    for source, doc in documents(args):
        try:
            kind = manifests.resolve_kind(doc)
            result = apply_one(client, kind, doc, args.namespace)
            print(f"{ref(kind, doc['metadata']['name'])} {result}")
        except UnknownKind as e:
            failed += 1
            print(f'error: resource mapping not found for "{source}": {e}', file=sys.stderr)
        except APIStatusError as e:
            failed += 1
            print(server_error(e, "applying", source), file=sys.stderr)
    return 1 if failed else 0


def _wait_gone(client: Client, kind, name: str, ns: str | None, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.get(kind, name, ns)
        except APIStatusError as e:
            if e.code == 404:
                return
        time.sleep(0.1)


def cmd_delete(cfg, args) -> int:
    client = Client(cfg.local_api_url)
    targets = []
    if args.filename:
        for source, doc in documents(args):
            try:
                kind = manifests.resolve_kind(doc)
            except UnknownKind as e:
                print(f'error: "{source}": {e}', file=sys.stderr)
                continue
            targets.append((kind, doc["metadata"]["name"], doc["metadata"].get("namespace") or args.namespace))
    else:
        if not args.args:
            die("error: You must provide one or more resources by argument or filename.")
        kind_names, rest = _kind_and_names(args.args)
        for k in kind_names:
            targets += [(k, n, args.namespace) for n in rest]
        if not rest:
            die("error: resource(s) were provided, but no name was specified")
    failed = 0
    for kind, name, ns in targets:
        ns = (ns or "default") if kind.namespaced else None
        try:
            client.delete(kind, name, ns, grace=0 if args.now or args.force else None)
            print(f'{kind.singular}{"." + kind.group if kind.group else ""} "{name}" deleted')
            if args.wait:
                _wait_gone(client, kind, name, ns)
        except APIStatusError as e:
            failed += 1
            print(server_error(e), file=sys.stderr)
    return 1 if failed else 0


def _kind_and_names(words: list[str]):
    first = words[0]
    if "/" in first:
        pairs = [w.split("/", 1) for w in words]
        kinds = {lookup(k) for k, _ in pairs}
        if len(kinds) != 1:
            die("error: give one kind at a time")
        return list(kinds), [n for _, n in pairs]
    try:
        return [lookup(k) for k in first.split(",")], words[1:]
    except UnknownKind as e:
        die(f"error: {e}")


# ---- get -----------------------------------------------------------------

def cmd_get(cfg, args) -> int:
    client = Client(cfg.local_api_url)
    kinds, wanted = _kind_and_names(args.args)
    ns = None if args.all_namespaces else (args.namespace or "default")
    objs_by_kind = []
    for kind in kinds:
        try:
            if wanted:
                objs = [client.get(kind, n, ns if kind.namespaced else None) for n in wanted]
            else:
                objs = client.list(kind, ns if kind.namespaced else None, args.selector,
                                   args.field_selector)["items"]
        except APIStatusError as e:
            die(server_error(e))
        for o in objs:
            o.setdefault("apiVersion", kind.api_version)
            o.setdefault("kind", kind.kind)
        objs_by_kind.append((kind, objs))
    out = args.output or ""
    everything = [o for _, objs in objs_by_kind for o in objs]
    if out in ("yaml", "json"):
        doc = everything[0] if wanted and len(everything) == 1 else everything
        text = printers.to_yaml(doc) if out == "yaml" else printers.to_json(doc)
        print(text, end="" if text.endswith("\n") else "\n")
        return 0
    if out == "name":
        for kind, objs in objs_by_kind:
            for o in objs:
                print(ref(kind, o["metadata"]["name"]))
        return 0
    if out not in ("", "wide"):
        die(f"error: unable to match a printer suitable for the output format \"{out}\", "
            "allowed formats are: json,name,wide,yaml")
    if not everything:
        print(printers.no_resources_message(ns, all_namespaces=ns is None, namespaced=kinds[0].namespaced),
              file=sys.stderr)
        return 0
    blocks = []
    for kind, objs in objs_by_kind:
        if objs:
            blocks.append(printers.table(kind.kind, objs, wide=out == "wide",
                                         all_namespaces=ns is None and kind.namespaced,
                                         show_labels=args.show_labels, with_kind=len(kinds) > 1))
    print("\n".join(b.rstrip("\n") + "\n" for b in blocks), end="")
    return 0


# ---- pods: run / exec / logs / scale ------------------------------------

def _pod_runtime(cfg: ClusterConfig, pod: dict) -> tuple[str, str, dict]:
    """(netns, uts file, environment of its first running container)."""
    md = pod["metadata"]
    ns_name = names.pod_netns(cfg.name, md["namespace"], md["name"])
    uts_file = os.path.join(cfg.rundir, "uts", ns_name)
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME": md["name"]}
    state = os.path.join(cfg.dir, "nodes", pod["spec"].get("nodeName", ""), "pods",
                         f"{md['namespace']}_{md['name']}_{md['uid']}", "state.json")
    try:
        with open(state) as f:
            for c in json.load(f).get("containers", []):
                if c.get("pid"):
                    with open(f"/proc/{c['pid']}/environ", "rb") as e:
                        env = dict(x.split("=", 1) for x in e.read().decode(errors="replace").split("\0") if "=" in x)
                    break
    except (OSError, ValueError):
        pass
    for k in ("TERM", "COLUMNS", "LINES"):
        if k in os.environ:
            env[k] = os.environ[k]
    uts_arg = uts_file if os.path.exists(uts_file) else None
    return ns_name, uts_arg, env


def exec_in_pod(cfg, client: Client, name: str, ns: str, command: list[str]) -> int:
    try:
        pod = client.get("pods", name, ns)
    except APIStatusError as e:
        die(server_error(e))
    phase = pod.get("status", {}).get("phase")
    if phase != "Running":
        die(f"error: unable to upgrade connection: pod {name} is not running (phase {phase}); "
            f"see `nsplane get pod {name}` and `nsplane logs {name}`")
    net, uts_file, env = _pod_runtime(cfg, pod)
    if not netns.exists(net):
        die(f"error: pod {ns}/{name}: its network namespace {net} is missing; is the node agent running?")
    return subprocess.call(netns.exec_argv(net, command, uts_file), env=env)


def cmd_exec(cfg, args) -> int:
    if not args.command:
        die("error: you must specify at least one command for the container")
    client = Client(cfg.local_api_url)
    return exec_in_pod(cfg, client, args.pod, args.namespace or "default", args.command)


def wait_running(client: Client, name: str, ns: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    pod = {}
    while time.monotonic() < deadline:
        pod = client.get("pods", name, ns)
        st = pod.get("status", {})
        if st.get("phase") in ("Running", "Succeeded", "Failed"):
            return pod
        waiting = [c["state"]["waiting"] for c in st.get("containerStatuses", [])
                   if "waiting" in c.get("state", {}) and c["state"]["waiting"].get("reason") != "ContainerCreating"]
        if waiting:
            die(f"error: pod {ns}/{name}: {waiting[0]['reason']}: {waiting[0].get('message', '')}")
        time.sleep(0.1)
    die(f"error: timed out waiting for pod {ns}/{name} to run (phase {pod.get('status', {}).get('phase')})")


def cmd_run(cfg, args) -> int:
    client = Client(cfg.local_api_url)
    ns = args.namespace or "default"
    labels = dict(kv.split("=", 1) for kv in args.labels.split(",")) if args.labels else {"run": args.name}
    container = {"name": args.name, "image": args.image}
    if args.command and args.args:
        container["command"] = args.args
    elif args.args:
        container["args"] = args.args
    if args.env:
        container["env"] = [{"name": k, "value": v} for k, v in (e.split("=", 1) for e in args.env)]
    if args.port:
        container["ports"] = [{"containerPort": int(args.port)}]
    if args.stdin:
        container.update(stdin=True, stdinOnce=True, tty=args.tty)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": args.name, "labels": labels},
           "spec": {"containers": [container], "restartPolicy": args.restart or "Always"}}
    try:
        client.create("pods", pod, ns)
    except APIStatusError as e:
        die(server_error(e))
    if not args.stdin:
        print(f"pod/{args.name} created")
        return 0
    code = 1
    try:
        wait_running(client, args.name, ns)
        argv = args.args or ["sh"]
        if args.tty:
            print("If you don't see a command prompt, try pressing enter.", file=sys.stderr)
        code = exec_in_pod(cfg, client, args.name, ns, argv)
    finally:
        if args.rm:
            client.delete("pods", args.name, ns)
            _wait_gone(client, lookup("pods"), args.name, ns)
            print(f'pod "{args.name}" deleted from {ns} namespace')
    return code


def cmd_logs(cfg, args) -> int:
    client = Client(cfg.local_api_url)
    ns = args.namespace or "default"
    q = {"container": args.container, "tailLines": args.tail if args.tail is not None and args.tail >= 0 else None}
    seen = 0
    while True:
        try:
            text = client.logs(args.pod, ns, **q)
        except APIStatusError as e:
            die(server_error(e))
        sys.stdout.write(text[seen:])
        sys.stdout.flush()
        if not args.follow:
            return 0
        seen = len(text)
        q.pop("tailLines", None)
        time.sleep(0.5)


def cmd_scale(cfg, args) -> int:
    client = Client(cfg.local_api_url)
    kinds, wanted = _kind_and_names(args.args)
    ns = args.namespace or "default"
    for kind in kinds:
        if kind.kind not in ("Deployment", "ReplicaSet"):
            die(f"error: cannot scale {kind.resource}; scale deployments or replicasets")
        for n in wanted:
            try:
                client.patch(kind, n, {"spec": {"replicas": args.replicas}}, ns)
            except APIStatusError as e:
                die(server_error(e))
            print(f"{ref(kind, n)} scaled")
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
    hostmode.add_up_flags(p)
    hostmode.add_join_parser(sub)
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
    p = sub.add_parser("exec", help="run a command in a pod's namespaces")
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
    p = sub.add_parser("scale", help="set replicas of a deployment or replicaset")
    p.add_argument("args", nargs="+")
    p.add_argument("--replicas", type=int, required=True)
    ns_flags(p)
    return ap


COMMANDS = {"up": cmd_up, "join": hostmode.cmd_join, "node": cmd_node, "down": cmd_down, "kubeconfig": cmd_kubeconfig, "apply": cmd_apply, "create": cmd_apply, "get": cmd_get,
            "delete": cmd_delete, "run": cmd_run, "exec": cmd_exec, "logs": cmd_logs, "scale": cmd_scale}


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
    if args.cmd not in ("up", "down", "kubeconfig", "join") and not os.path.exists(cfg.api_socket):
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
