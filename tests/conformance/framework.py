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
import os
import queue
import random
import subprocess
import threading
import time
from urllib.parse import urlencode

from dataplane import netns

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

    def raw(self, path: str) -> dict:
        """GET an API path (`kubectl get --raw`), as JSON."""
        return json.loads(self.cluster.kubectl("get", "--raw", path).stdout)

    def watch(self, path: str, **params: str) -> Watch:
        """A watch on a collection path (`?watch=1&...`), streamed by `kubectl get --raw`."""
        return Watch(self.cluster, f"{path}?{urlencode({'watch': '1', **params})}")


class Watch:
    """watch.Interface over `kubectl get --raw <path>?watch=1`: `next(timeout)`
    gives the next {type, object} event, or None when none came in time."""

    def __init__(self, cluster, path: str):
        argv = ["kubectl", "get", "--raw", path]
        if cluster.cfg.host_netns:
            argv = ["nsenter", f"--net={netns.path(cluster.cfg.host_netns)}", "--", *argv]
        env = dict(os.environ, KUBECONFIG=cluster.kubeconfig())
        self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self._events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        try:                    # a refused watch ends at once; an open one streams on
            code = self._proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            return
        if code != 0:
            raise AssertionError(f"watch {path} failed ({code}): {self._proc.stderr.read().strip()}")

    def _read(self) -> None:
        decoder, buf = json.JSONDecoder(), ""
        for chunk in iter(lambda: self._proc.stdout.readline(), ""):
            buf += chunk
            while buf.strip():
                try:
                    event, end = decoder.raw_decode(buf.lstrip())
                except ValueError:
                    break
                buf = buf.lstrip()[end:]
                self._events.put(event)
        self._events.put(None)

    def next(self, timeout: float) -> dict | None:
        try:
            event = self._events.get(timeout=timeout)
        except queue.Empty:
            return None
        if event is None:
            self._events.put(None)
            raise AssertionError("watch channel should not close")
        return event

    def until(self, timeout: float, condition) -> dict:
        """watchtools.Until: events until condition(event) is True, within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            event = self.next(left)
            if event is not None and condition(event):
                return event
        raise AssertionError(f"timed out waiting for the condition ({timeout:g}s)")

    def stop(self) -> None:
        self._proc.kill()
        self._proc.wait()


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


# ---- watchtools.Until ----------------------------------------------------------------------------

def watch_until(f: Framework, path: str, resource_version: str, condition, timeout: float, what: str) -> dict:
    """watchtools.Until(ctx with `timeout`, resource_version, a ListWatch of
    `path` (its query, e.g. labelSelector, kept), condition): the first event
    ({"type", "object"}) condition accepts; AssertionError naming `what`
    when the time runs out."""
    from urllib.parse import parse_qsl

    base, _, query = path.partition("?")
    w = f.watch(base, resourceVersion=resource_version, **dict(parse_qsl(query)))
    try:
        return w.until(timeout, condition)
    except AssertionError as e:
        raise AssertionError(f"{what}: {e}") from None
    finally:
        w.stop()


# ---- PodClient.CreateSync, execHostnameTest (e2epod, network/util.go) -----------------------

def create_sync(f: Framework, pod: dict) -> dict:
    """e2epod.PodClient.CreateSync: create, then wait until Running and Ready."""
    name = f.create(pod)["metadata"]["name"]
    poll(POLL, POD_START_TIMEOUT, lambda: pod_ready(f.get("pod", name)), what=f"pod {f.ns}/{name} ready")
    return f.get("pod", name)


def exec_hostname_test(f: Framework, source_pod: dict, target_addr: str, target_hostname: str) -> None:
    """execHostnameTest: curl <addr>/hostname from `source_pod` (every 2 s for
    2 minutes until it answers); the answer is the target pod's name."""
    cmd = f"curl -q -s --max-time 30 {target_addr}/hostname"
    deadline = time.monotonic() + 120
    while True:
        stdout, err = run_host_cmd(f, source_pod["metadata"]["name"], cmd)
        if (err is None and stdout.strip()) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert err is None, err
    assert stdout.split(".")[0].strip() == target_hostname


# ---- what the kubelet must give the e2e images' pods ---------------------------------------

BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1"    # imageutils.BusyBox


def kubelet_gaps(f: Framework) -> list[str]:
    """What e2e probe pods need of the kubelet and this cluster lacks, found once
    per cluster with one pod: an emptyDir shared by two containers, a command's
    `$$` escape turned into `$` (Kubernetes' $(VAR) expansion), and the image's
    own programs (`/agnhost`) for `kubectl exec`. Tests skip on what is listed."""
    cached = getattr(f.cluster, "_kubelet_gaps", None)
    if cached is not None:
        return cached
    mount = [{"name": "results", "mountPath": "/results"}]
    pod = f.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "kubelet-prerequisites-"},
                    "spec": {"volumes": [{"name": "results", "emptyDir": {}}], "terminationGracePeriodSeconds": 0,
                             "containers": [
                                 {"name": "writer", "image": BUSYBOX, "volumeMounts": mount,
                                  "command": ["sh", "-c", 'echo "$$(echo ok)" > /results/probe; sleep 600']},
                                 {**agnhost_pod()["spec"]["containers"][0], "volumeMounts": mount}]}})
    name = pod["metadata"]["name"]

    def exec_(*argv: str):
        return f.kubectl("exec", name, "-c", "agnhost-container", "--", *argv, check=False, timeout=30)
    gaps = []
    try:
        poll(1, POD_START_TIMEOUT, lambda: exec_("true").returncode == 0, what=f"pod {f.ns}/{name} to exec")
        seen = ""

        def written() -> bool:
            nonlocal seen
            r = exec_("cat", "/results/probe")
            seen = r.stdout.strip() if r.returncode == 0 else ""
            return bool(seen)
        try:
            poll(1, 15, written)
        except AssertionError:
            gaps.append("emptyDir volumes shared by a pod's containers (a file one container writes "
                        "under its emptyDir mount is not there for the other)")
        if seen and seen != "ok":
            gaps.append(f"`$$` in a container's command kept as `$$` (Kubernetes' $(VAR) expansion "
                        f"turns it into `$`): the shell wrote {seen!r}")
        if exec_("/agnhost", "dns-suffix").returncode != 0:
            gaps.append("the agnhost image's /agnhost inside agnhost containers (kubectl exec runs "
                        "the node's own programs)")
    finally:
        f.kubectl("delete", "pod", name, "--wait=false", check=False)
    f.cluster._kubelet_gaps = gaps
    return gaps
