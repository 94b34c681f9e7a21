"""kubectl's pod verbs: run (a pod, optionally attached and removed), exec
(inside the container, through the node's OCI runtime: every node lives on
this machine) and logs."""
from __future__ import annotations

import os
import sys
import time

from agent.api.client import APIStatusError, Client
from agent.api.kinds import lookup
from agent.cli.errors import die, server_error
from agent.cli.resources import wait_gone
from agent.node.runtime import oci
from agent.node.runtime.errors import RuntimeLayerError


def _container_id(pod: dict, container: str | None) -> tuple[str, str]:
    """(container name, OCI container id) of `container` (default: the first) of a pod."""
    specs = [c["name"] for c in pod["spec"].get("containers", [])]
    name = container or (specs[0] if specs else "")
    if name not in specs:
        die(f"error: container {name} not found in pod {pod['metadata']['name']}; "
            f"choose one of: [{' '.join(specs)}]")
    for cs in pod.get("status", {}).get("containerStatuses", []) or []:
        if cs.get("name") == name and "running" in (cs.get("state") or {}):
            return name, (cs.get("containerID") or "").partition("://")[2]
    die(f"error: unable to upgrade connection: container {name} of pod {pod['metadata']['name']} is not running")


def exec_in_pod(cfg, client: Client, name: str, ns: str, command: list[str], container: str | None = None,
                tty: bool = False, stdin: bool = True) -> int:
    try:
        pod = client.get("pods", name, ns)
    except APIStatusError as e:
        die(server_error(e))
    phase = pod.get("status", {}).get("phase")
    if phase != "Running":
        die(f"error: unable to upgrade connection: pod {name} is not running (phase {phase}); "
            f"see `nsplane get pod {name}` and `nsplane logs {name}`")
    cname, cid = _container_id(pod, container)
    node = pod["spec"].get("nodeName", "")
    state = os.path.join(cfg.dir, "nodes", node, "runtime")
    if not cid or not os.path.isdir(state):
        die(f"error: pod {ns}/{name} runs on node {node}, whose containers are not on this machine; "
            "use `kubectl exec`")
    env = {k: os.environ[k] for k in ("TERM", "COLUMNS", "LINES") if k in os.environ}
    try:
        runtime = oci.OCIRuntime(state)
        proc = runtime.exec(cid, command, env=env, tty=tty and sys.stdin.isatty(), stdin=stdin,
                            inherit_stdio=True)
    except RuntimeLayerError as e:
        die(f"error: pod {ns}/{name}, container {cname}: {e}")
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        return proc.wait()


def cmd_exec(cfg, args) -> int:
    if not args.command:
        die("error: you must specify at least one command for the container")
    client = Client(cfg.local_api_url)
    return exec_in_pod(cfg, client, args.pod, args.namespace or "default", args.command,
                       container=args.container, tty=args.tty)


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
        code = exec_in_pod(cfg, client, args.name, ns, argv, tty=args.tty)
    finally:
        if args.rm:        # the session is over: its container need not wait out a grace period
            client.delete("pods", args.name, ns, grace=0)
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
