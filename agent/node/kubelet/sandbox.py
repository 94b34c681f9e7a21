"""The pod sandbox: what a pod's containers share, made before the first of
them and kept across their restarts (the kubelet's RunPodSandbox, done by the
agent playing the CNI plugin and containerd's sandbox).

- network: a named netns with a veth and a /32 (dataplane.podnet), which each
  container joins by path (/run/netns/<name>);
- UTS: a namespace pinned on a file (dataplane.uts) whose hostname is the
  pod's (spec.hostname, else its name); each container joins it;
- IPC: a namespace pinned on a file the same way (as `unshare --ipc=FILE`), so
  the pod's containers share System V IPC and POSIX message queues without a
  pause process, and a restarted container finds the same namespace;
- PID: each container has its own PID namespace (containerd's default);
  with `shareProcessNamespace: true` a pause container (the
  registry.k8s.io/pause stand-in) is the pod's PID 1, reaping orphans as the
  kubelet's pause does, and every container joins its /proc/<pid>/ns/pid. A PID namespace dies with its first process, so it
  cannot be pinned on a file like the others;
- /etc/netns/<netns>/{resolv.conf,hosts,hostname}: written here,
  bind-mounted into each container at /etc/resolv.conf, /etc/hosts and
  /etc/hostname as containerd does (and what `ip netns exec` shows).

Nothing here starts a container: `PodSandbox.namespaces()` is what the
container runtime joins. A new pod's network, UTS and IPC namespaces are made
in one step, in-process (dataplane/nspin.py): no subprocess on the way to a
pod's first container.
"""
from __future__ import annotations

import os

from agent.node.kubelet import podfiles
from agent.node.runtime import kernel
from agent.node.runtime.spec import PodNamespaces, pod_hostname
from dataplane import names, netns, nspin, podnet, uts

ETC_FILES = ("resolv.conf", "hosts", "hostname")


class SandboxError(Exception):
    """The pod's namespaces or files could not be made."""


# ---- pinned IPC namespaces ---------------------------------------------------------

def ipc_pinned(path: str) -> bool:
    """Is an IPC namespace bind-mounted on `path`?"""
    path = os.path.abspath(path)
    return any(r.target == path and r.root.startswith("ipc:[") for r in kernel.mounts())


def ensure_ipc(path: str) -> bool:
    """Pin a new IPC namespace on `path` unless one is there; True if made."""
    if ipc_pinned(path):
        return False
    try:
        nspin.pin_new({nspin.CLONE_NEWIPC: path})
    except OSError as e:
        raise SandboxError(f"IPC namespace {path}: {e}") from e
    return True


def remove_ipc(path: str) -> bool:
    """Unpin and delete the IPC namespace file at `path`; True if it existed."""
    return nspin.remove_pinned(path, ipc_pinned)


def sweep_ipc(ipc_dir: str) -> list[str]:
    """Remove every pinned IPC namespace file under `ipc_dir` (nsplane down)."""
    if not os.path.isdir(ipc_dir):
        return []
    return [p for p in (os.path.join(ipc_dir, n) for n in sorted(os.listdir(ipc_dir))) if remove_ipc(p)]


# ---- the sandbox -------------------------------------------------------------------

class PodSandbox:
    """One pod's shared namespaces and files, by name; `ensure` makes them."""

    def __init__(self, pod: dict, cluster: str, rundir: str):
        md = pod["metadata"]
        self.pod = pod
        self.netns = names.pod_netns(cluster, md["namespace"], md["name"])
        self.host_if = names.pod_ifname(cluster, md["namespace"], md["name"])
        self.uts = uts.uts_path(os.path.join(rundir, "uts"), self.netns)
        self.ipc = os.path.join(rundir, "ipc", self.netns)
        self.etc = os.path.join(netns.ETC_NETNS_DIR, self.netns)
        self.hostname = pod_hostname(pod)
        self.pause_pid = 0          # PID 1 of the pod when it shares its PID namespace

    @property
    def shares_pid(self) -> bool:
        return bool((self.pod.get("spec") or {}).get("shareProcessNamespace"))

    def namespaces(self) -> PodNamespaces:
        return PodNamespaces(network=netns.path(self.netns), ipc=self.ipc, uts=self.uts,
                             pid=f"/proc/{self.pause_pid}/ns/pid" if self.pause_pid else None)

    def ensure(self, ip: str, gateway: str, adopted: bool, label: str) -> bool:
        """Namespaces, veth and addresses in place; True if the network was
        (re)made, which strands containers that joined an older one."""
        # The UTS file first: it is what marks the netns as this cluster's for `nsplane down`.
        if not (os.path.exists(self.uts) or os.path.exists(self.ipc) or netns.exists(self.netns)):
            self._pin_new()
        elif not (os.path.exists(self.uts) or os.path.exists(self.ipc)):
            self._pin_uts_ipc()
        else:
            uts.ensure(self.uts, self.hostname)
            ensure_ipc(self.ipc)
        if adopted and podnet.healthy(self.netns, self.host_if, ip, gateway):
            return False
        podnet.setup_pod(self.netns, self.host_if, ip, gateway, label=label)
        return True

    def _pin_new(self) -> None:
        """A new pod's network, UTS and IPC namespaces in one step (what
        netns.create, uts.ensure and ensure_ipc do one by one)."""
        for path in (self.uts, self.ipc):
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        try:
            made = netns.create_with(self.netns, {nspin.CLONE_NEWUTS: self.uts, nspin.CLONE_NEWIPC: self.ipc},
                                     self.hostname)
        except netns.NetworkSetupError as e:
            raise SandboxError(f"pod namespaces {self.netns}, {self.uts}, {self.ipc}: {e}") from e
        if made is None:        # its netns appeared meanwhile
            self._pin_uts_ipc()

    def _pin_uts_ipc(self) -> None:
        """UTS and IPC namespaces for a pod whose netns exists without them."""
        try:
            nspin.pin_new({nspin.CLONE_NEWUTS: self.uts, nspin.CLONE_NEWIPC: self.ipc}, self.hostname)
        except OSError as e:
            raise SandboxError(f"pod namespaces {self.uts}, {self.ipc}: {e}") from e

    def write_files(self, ip: str, dns_ip: str, domain: str) -> dict[str, str]:
        """resolv.conf, hosts and hostname for the pod; returns name -> path."""
        os.makedirs(self.etc, exist_ok=True)
        try:
            with open("/etc/resolv.conf") as f:
                host_resolv = f.read()
        except OSError:
            host_resolv = ""
        texts = {"resolv.conf": podfiles.resolv_conf(self.pod, dns_ip, domain, host_resolv),
                 "hosts": podfiles.hosts_file(self.pod, ip, domain),
                 "hostname": self.hostname + "\n"}
        paths = {}
        for name, text in texts.items():
            path = paths[name] = os.path.join(self.etc, name)
            try:
                with open(path) as f:
                    if f.read() == text:
                        continue
            except OSError:
                pass
            with open(path, "w") as f:       # in place: bind mounts follow the inode
                f.write(text)
        return paths

    def file_paths(self) -> dict[str, str]:
        return {name: os.path.join(self.etc, name) for name in ETC_FILES}

    def teardown(self) -> None:
        """Veth, netns, /etc/netns/<netns>, the pinned UTS and IPC namespaces."""
        podnet.teardown_pod(self.netns, self.host_if)
        uts.remove(self.uts)
        remove_ipc(self.ipc)
