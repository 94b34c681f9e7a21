"""A throwaway cluster for integration tests: its own name (nsplane-t<id>),
state dir, and a "host" namespace holding the underlay bridge and the API
server, so the machine's root namespace gets no links and no rules."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from agent.api.config import ClusterConfig
from agent.cli import clusterops as cluster
from dataplane import names, netns

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ThrowawayCluster:
    def __init__(self, tmp: str, nodes: int = 1, dns: bool = True, proxy_mode: str = ""):
        tag = f"{os.getpid() % 0xffff:04x}{int(time.time() * 1000) % 0xff:02x}"
        name = f"nsplane-t{tag}"
        self.cfg = ClusterConfig(name=name, state_dir=tmp, nodes=nodes, host_netns=f"{name}-host",
                                 underlay_cidr=f"172.28.{100 + os.getpid() % 100}.0/24", dns=dns,
                                 python=sys.executable, proxy_mode=proxy_mode)

    # ---- lifecycle --------------------------------------------------
    def up(self):
        cluster.up(self.cfg, say=lambda *_: None)
        return self

    def down(self, purge: bool = True):
        cluster.down(self.cfg, purge=purge, say=lambda *_: None)

    def __enter__(self) -> ThrowawayCluster:
        """Bring the cluster up; whatever goes wrong, `with` takes it down again."""
        try:
            return self.up()
        except BaseException:
            self.down()
            raise

    def __exit__(self, *exc) -> None:
        """Take the cluster down and check that nothing of it is left on the machine."""
        self.down()
        assert self.leftovers() == []

    # ---- commands ---------------------------------------------------
    def env(self):
        return dict(os.environ, NSPLANE_STATE_DIR=self.cfg.state_dir, NSPLANE_CLUSTER=self.cfg.name,
                    PYTHONPATH=REPO)

    def nsplane(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess:
        r = subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True,
                           env=self.env(), input=input, timeout=timeout, cwd=REPO)
        if check and r.returncode != 0:
            raise AssertionError(f"nsplane {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def get(self, *args: str) -> dict:
        return json.loads(self.nsplane("get", *args, "-o", "json").stdout)

    def kubeconfig(self) -> str:
        """A kubeconfig for real kubectl, in the state dir (never ~/.kube/config)."""
        from agent.cli import kubeconfig
        path = os.path.join(self.cfg.dir, "kubeconfig")
        kubeconfig.write_file(path, kubeconfig.for_cluster(self.cfg))
        return path

    def kubectl(self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60,
                env: dict | None = None) -> subprocess.CompletedProcess:
        """Real kubectl, run in the host namespace (where the API listens on
        127.0.0.1) with KUBECONFIG set to this cluster's file."""
        e = dict(os.environ, KUBECONFIG=self.kubeconfig(),
                 KUBECACHEDIR=os.path.join(self.cfg.dir, "kubecache"), **(env or {}))
        argv = ["kubectl", *args]
        if self.cfg.host_netns:
            argv = ["nsenter", f"--net={netns.path(self.cfg.host_netns)}", "--", *argv]
        r = subprocess.run(argv, capture_output=True, text=True, env=e, input=input, timeout=timeout, cwd=REPO)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def exec(self, pod: str, *argv: str, check: bool = False, timeout: float = 30) -> subprocess.CompletedProcess:
        return self.nsplane("exec", pod, "--", *argv, check=check, timeout=timeout)

    def apply(self, text: str) -> str:
        return self.nsplane("apply", "-f", "-", input=text).stdout

    def wait(self, fn, timeout: float = 30.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                v = fn()
                if v:
                    return v
            except (AssertionError, KeyError, ValueError) as e:
                last = e
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what} ({last})")

    def ready_pods(self, selector: str) -> list[dict]:
        pods = self.get("pods", "-l", selector)["items"]
        return [p for p in pods if not p["metadata"].get("deletionTimestamp") and any(
            c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]

    def wait_ready(self, selector: str, n: int, timeout: float = 40.0) -> list[dict]:
        return self.wait(lambda: (p := self.ready_pods(selector)) and len(p) == n and p, timeout,
                         f"{n} ready pods {selector}")

    def node_netns(self, index: int = 1) -> str:
        return names.node_netns(self.cfg.name, self.cfg.node_name(index))

    def pod_netns(self, pod: str, namespace: str = "default") -> str:
        """The pod's named network namespace (what `ip netns list` shows)."""
        return names.pod_netns(self.cfg.name, namespace, pod)

    def leftovers(self) -> list[str]:
        """Anything of this cluster still on the machine."""
        out = [f"netns {n}" for n in netns.list_names(self.cfg.name + "-")]
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        out += [f"link {line.split(':')[1].strip()}" for line in links.splitlines()
                if self.cfg.bridge in line]
        with open("/proc/self/mountinfo") as f:
            out += [f"mount {line.split()[4]}" for line in f if self.cfg.name in line]
        procs = subprocess.run(["pgrep", "-af", self.cfg.name], capture_output=True, text=True).stdout
        out += [f"process {p}" for p in procs.splitlines() if "pgrep" not in p]
        return out
