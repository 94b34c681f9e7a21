"""kubectl's pod verbs: run (a pod, optionally attached and removed), exec
(entering the pod's namespaces directly: every node lives on this machine)
and logs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from agent.api.client import APIStatusError, Client
from agent.api.config import ClusterConfig
from agent.api.kinds import lookup
from agent.cli.errors import die, server_error
from agent.cli.resources import wait_gone
from dataplane import names, netns


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
            wait_gone(client, lookup("pods"), args.name, ns)
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
