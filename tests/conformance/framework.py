"""The part of Kubernetes' e2e framework (test/e2e/framework) the ported
conformance tests stand on, over real kubectl: a namespace per test
(generated from the spec's base name, deleted afterwards), typed-client-like
create / get / list / update / delete that return API objects as dicts, and
`poll` with wait.PollUntilContextTimeout's semantics (a condition may
return False to retry, True to stop, or raise `PollError` to fail at once).

The tests themselves keep upstream's objects, checks and timeouts; this
module only stands in for client-go and Gomega.
"""
from __future__ import annotations

import json
import random
import time

POLL = 2.0                      # framework.Poll


class PollError(Exception):
    """A condition's error: polling stops and the test fails with it."""


def poll(interval: float, timeout: float, condition, *, immediate: bool = True, what: str = "condition") -> None:
    """wait.PollUntilContextTimeout(ctx, interval, timeout, immediate, condition)."""
    deadline = time.monotonic() + timeout
    if not immediate:
        time.sleep(interval)
    while True:
        if condition():
            return
        if time.monotonic() + interval > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


class Framework:
    """framework.Framework: `ns` is this test's namespace."""

    def __init__(self, cluster, base_name: str):
        self.cluster = cluster
        suffix = "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        self.ns = f"{base_name}-{suffix}"
        self.cluster.kubectl("create", "namespace", self.ns)

    def cleanup(self) -> None:
        self.cluster.kubectl("delete", "namespace", self.ns, "--wait=false", check=False)

    # ---- client -----------------------------------------------------------
    def kubectl(self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60):
        return self.cluster.kubectl("-n", self.ns, *args, check=check, input=input, timeout=timeout)

    def create(self, obj: dict) -> dict:
        return json.loads(self.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(obj)).stdout)

    def update(self, obj: dict) -> dict:
        """Update (PUT) of `obj` as given: without a resourceVersion it is unconditional."""
        return json.loads(self.kubectl("replace", "-f", "-", "-o", "json", input=json.dumps(obj)).stdout)

    def get(self, resource: str, name: str) -> dict:
        return json.loads(self.kubectl("get", resource, name, "-o", "json").stdout)

    def list(self, resource: str, label_selector: str = "") -> list[dict]:
        args = ["get", resource, "-o", "json"] + (["-l", label_selector] if label_selector else [])
        return json.loads(self.kubectl(*args).stdout)["items"]

    def delete(self, resource: str, name: str) -> None:
        self.kubectl("delete", resource, name, "--wait=false")


# ---- pods, exec, RCs (e2epod, e2eoutput, e2erc) ---------------------------------------------

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"     # imageutils.GetE2EImage(imageutils.Agnhost)
POD_START_TIMEOUT = 300.0                                    # framework.PodStartTimeout
POD_READY_BEFORE_TIMEOUT = 300.0                             # framework.PodReadyBeforeTimeout


def pod_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def agnhost_pod(name: str = "", generate_name: str = "", args: tuple[str, ...] = (),
                ports: list[dict] | None = None) -> dict:
    """e2epod.NewAgnhostPod: one `agnhost-container` (args default `pause`,
    container ports as given), terminationGracePeriodSeconds 0."""
    md = {"name": name} if name else {"generateName": generate_name}
    container = {"name": "agnhost-container", "image": AGNHOST, "args": list(args or ("pause",)),
                 "securityContext": {}, "imagePullPolicy": "IfNotPresent"}
    if ports:
        container["ports"] = [dict(p) for p in ports]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md,
            "spec": {"containers": [container], "securityContext": {}, "terminationGracePeriodSeconds": 0}}


def create_exec_pod(f: Framework, generate_name: str) -> dict:
    """e2epod.CreateExecPodOrFail: an agnhost pause pod, waited for until Running."""
    pod = f.create(agnhost_pod(generate_name=generate_name))
    name = pod["metadata"]["name"]
    poll(POLL, POD_START_TIMEOUT, lambda: (f.get("pod", name).get("status") or {}).get("phase") == "Running",
         what=f"exec pod {f.ns}/{name} to be running")
    return f.get("pod", name)


def run_host_cmd(f: Framework, pod: str, cmd: str, timeout: float = 120):
    """e2eoutput.RunHostCmd: `kubectl exec <pod> -- /bin/sh -x -c <cmd>`;
    (stdout, error or None)."""
    r = f.kubectl("exec", pod, "--", "/bin/sh", "-x", "-c", cmd, check=False, timeout=timeout)
    return r.stdout, (None if r.returncode == 0 else f"exit {r.returncode}: {r.stderr.strip()}")


def run_rc(f: Framework, name: str, replicas: int, command: list[str], labels: dict | None = None,
           image: str = AGNHOST) -> list[dict]:
    """e2erc.RunRC(testutils.RCConfig{Name, Image (agnhost unless given),
    Command, Labels, Replicas, Timeout: PodReadyBeforeTimeout}): the RC
    RCConfig.create writes (selector and pod label name=<name>, one container
    named <name> with port 80, dnsPolicy Default, grace 1 s), then every pod
    Running and Ready, no container restarts (MaxContainerFailures 0).
    Returns the pods."""
    pod_labels = {"name": name, **(labels or {})}
    container = {"name": name, "image": image, "ports": [{"containerPort": 80}]}
    if command:
        container["command"] = command
    f.create({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": name},
              "spec": {"replicas": replicas, "selector": {"name": name},
                       "template": {"metadata": {"labels": pod_labels},
                                    "spec": {"containers": [container],
                                             "dnsPolicy": "Default", "terminationGracePeriodSeconds": 1}}}})
    found: list[dict] = []

    def running() -> bool:
        pods = [p for p in f.list("pods", f"name={name}") if not p["metadata"].get("deletionTimestamp")]
        restarts = sum(c.get("restartCount", 0) for p in pods
                       for c in (p.get("status") or {}).get("containerStatuses") or [])
        if restarts:
            raise PollError(f"{restarts} container failures in RC {name}")
        found[:] = [p for p in pods if (p.get("status") or {}).get("phase") == "Running" and pod_ready(p)]
        return len(found) == replicas
    poll(3, POD_READY_BEFORE_TIMEOUT, running, what=f"{replicas} running pods of RC {f.ns}/{name}")
    return found


# ---- raw requests and watches (client-go's REST client, watchtools.Until) ------------------------

def get_raw(f: Framework, path: str) -> dict:
    """A GET of an API path as JSON (`kubectl get --raw`): lists keep their
    resourceVersion, which `kubectl get -o json` drops."""
    return json.loads(f.cluster.kubectl("get", "--raw", path).stdout)


def watch_until(f: Framework, path: str, resource_version: str, condition, timeout: float, what: str) -> dict:
    """watchtools.Until(ctx with `timeout`, resource_version, a ListWatch of
    `path`, condition): watch from resource_version and hand every event
    ({"type", "object"}) to condition until it returns True (that event is
    returned) or raises PollError; AssertionError when the time runs out."""
    proc = watch_process(f, path, resource_version, timeout)
    seen: list = []
    try:
        for event in watch_events(proc, time.monotonic() + timeout):
            seen.append(event.get("type"))
            if condition(event):
                return event
    finally:
        proc.kill()
        proc.wait()
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (events seen: {seen}; "
                         f"{proc.stderr.read().decode().strip() if proc.stderr else ''})")


def watch_process(f: Framework, path: str, resource_version: str, timeout: float):
    """A watch of `path` from resource_version (for at most `timeout`
    seconds): `kubectl get --raw` streaming the events, as a Popen."""
    import os
    import subprocess

    from dataplane import netns

    sep = "&" if "?" in path else "?"
    url = f"{path}{sep}watch=true&resourceVersion={resource_version}&timeoutSeconds={int(timeout) + 1}"
    argv = ["kubectl", "get", "--raw", url]
    if f.cluster.cfg.host_netns:
        argv = ["nsenter", f"--net={netns.path(f.cluster.cfg.host_netns)}", "--", *argv]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, KUBECONFIG=f.cluster.kubeconfig()))


def watch_events(proc, deadline: float):
    """The watch events ({"type", "object"}) proc prints, until it ends or
    the (monotonic) deadline passes."""
    import os
    import select

    decoder, buf = json.JSONDecoder(), ""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            return
        buf += chunk.decode()
        while True:
            buf = buf.lstrip()
            try:
                event, end = decoder.raw_decode(buf)
            except ValueError:
                break
            buf = buf[end:]
            yield event
