"""The kubelet's side of the container runtime (pkg/kubelet/kuberuntime): a
pod's container becomes an OCI container in the pod's sandbox, and back.

`start` makes the container's directory under <node>/containers/<id>/
(config.json, the root filesystem, upper and work dirs), mounts its root
(overlay over the image's unpacked root, or the read-only host view for a
stand-in), writes the OCI spec (agent/node/runtime/spec.py: containerd's
defaults, securityContext, resources) and runs it through the node's
OCIRuntime, whose monitor keeps the exit status. `remove` deletes the OCI
container and unmounts and deletes its directory, in that order; `sweep`
removes every container of a node that nobody claims (agent restart,
`nsplane down`).

Mounts every container gets, as containerd gives them: the pod's
/etc/resolv.conf, /etc/hosts and /etc/hostname. A stand-in's root is the
host's, read-only and non-recursive, with /tmp, /run and /var empty, and
also without the cluster's state dir, /etc/netns (other pods' files),
/etc/ssh (host keys), /root and /home (kubeconfigs), /etc/shadow and
/etc/gshadow. It runs trusted code of this machine; the view keeps the
cluster's and the machine's secrets out of the pod, it is no sandbox for
hostile programs (the machine's other files are readable). The coredns
stand-in of kube-system reads its API token and CA from exactly the two
cluster files its env names, bind-mounted read-only at the service
account's usual paths (/var/run/secrets/kubernetes.io/serviceaccount/).

Containers run in cgroup /<cluster>/pod<uid>/<id> of every hierarchy.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import sys
from dataclasses import dataclass

from agent.node import workloads
from agent.node.kubelet.images import Image
from agent.node.kubelet.sandbox import PodSandbox
from agent.node.runtime import cgroups, monitors, oci, rootfs
from agent.node.runtime.errors import ContainerCreateError, ContainerNotFound, RuntimeLayerError
from agent.node.runtime.process import expand
from agent.node.runtime.spec import Mount, NodeInfo, container_spec

log = logging.getLogger("nsplane.kubelet.runtime")

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
STANDIN_HIDDEN = ("/etc/netns", "/etc/ssh", "/root", "/home")
STANDIN_MASKED = ("/etc/shadow", "/etc/gshadow")
COREDNS_FILES = {"NSPLANE_API_TOKEN_FILE": "token", "NSPLANE_API_CA_FILE": "ca.crt"}


@dataclass
class Started:
    cid: str
    pid: int


def memory_capacity() -> int:
    """MemTotal in bytes (0 if unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def hidden_paths(cfg) -> tuple[str, ...]:
    """What a stand-in's host view hides besides /tmp, /run and /var: the
    cluster's state, /etc/netns, /etc/ssh, /root and /home, except a directory holding
    the code or the interpreter the stand-ins run (an editable install in a
    home directory), which must stay visible."""
    code = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(workloads.__file__))))
    needed = [os.path.realpath(p) + "/" for p in (code, sys.prefix)]
    paths = []
    for path in dict.fromkeys((cfg.dir, cfg.state_dir, *STANDIN_HIDDEN)):
        real = os.path.realpath(path) + "/"
        if any(n.startswith(real) for n in needed):
            log.warning("stand-ins will see %s: the agent's code or interpreter lives there", path)
            continue
        paths.append(path)
    return tuple(paths)


class KubeRuntime:
    """Containers of one node: their OCI runtime, directories and cgroups."""

    def __init__(self, cfg, node_dir: str, runtime: oci.OCIRuntime | None = None):
        self.cfg = cfg
        self.containers_dir = os.path.join(node_dir, "containers")
        os.makedirs(self.containers_dir, mode=0o700, exist_ok=True)
        self.runtime = runtime or oci.OCIRuntime(os.path.join(node_dir, "runtime"))
        self.node = NodeInfo(memory_capacity=memory_capacity(),
                             cgroup_v2=self.runtime.cgroup_layout == cgroups.V2,
                             swap_accounting=cgroups.swap_accounting())
        self.hidden = hidden_paths(cfg)
        self.coredns_sources = {"token": cfg.token_file("coredns"), "ca.crt": cfg.ca_file}

    @staticmethod
    def new_id() -> str:
        """A fresh container id: our prefix and 64 random hex digits, like containerd's."""
        return oci.container_id(secrets.token_hex(32))

    def cgroups_path(self, pod: dict, cid: str) -> str:
        return f"/{self.cfg.name}/pod{pod['metadata']['uid']}/{cid}"

    def container_dir(self, cid: str) -> str:
        return os.path.join(self.containers_dir, cid)

    # ---- start ---------------------------------------------------------------------
    def start(self, sandbox: PodSandbox, spec: dict, image: Image, env: list[tuple[str, str]],
              log_path: str, stdin: str = "", cid: str | None = None) -> Started:
        """Run `spec` (a pod's container) from `image` in `sandbox`.

        Raises RuntimeLayerError with the kubelet's reason: ContainerConfigError
        (CreateContainerConfigError, before anything is made), ContainerCreateError
        or RootfsError (CreateContainerError), ContainerStartError (the program
        could not be started: StartError).
        """
        pod = sandbox.pod
        cid = cid or self.new_id()
        cdir = self.container_dir(cid)
        config = self._config(sandbox, pod, spec, image, env, cid)   # config errors: nothing made yet
        os.makedirs(cdir, mode=0o700, exist_ok=True)
        try:
            root = (rootfs.host_view(cdir, self.hidden) if image.standin
                    else rootfs.overlay(cdir, image.lower))
            config["root"]["path"] = root
            with open(os.path.join(cdir, "config.json"), "w") as f:
                json.dump(config, f)
            pid = self.runtime.run(cid, cdir, log_path, stdin=stdin)
        except BaseException:
            self._remove_dir(cid)
            raise
        return Started(cid, pid)

    def _config(self, sandbox: PodSandbox, pod: dict, spec: dict, image: Image,
                env: list[tuple[str, str]], cid: str) -> dict:
        mounts = [Mount(f"/etc/{name}", path, readonly=self._ro(pod, spec))
                  for name, path in sandbox.file_paths().items()]
        if image.standin:
            env = self._coredns_env(pod, spec, image, env, mounts)
            mounts += [Mount(path, "/dev/null", readonly=True) for path in STANDIN_MASKED
                       if os.path.exists(path)]
            values = dict(env)
            command = {k: [expand(str(x), values) for x in spec[k]]
                       for k in ("command", "args") if spec.get(k) is not None}
            try:
                argv = workloads.resolve({**spec, **command})
            except workloads.UnknownImage as e:
                raise ContainerCreateError(str(e)) from None
            bare = {k: v for k, v in spec.items() if k not in ("command", "args")}
            return container_spec(pod, bare, rootfs="/", namespaces=sandbox.namespaces(),
                                  cgroups_path=self.cgroups_path(pod, cid), node=self.node,
                                  image_config={"Entrypoint": argv, "Env": workloads.environment()},
                                  mounts=mounts, env=env, image=image.name, user_db_root="/",
                                  readonly_root=True)
        return container_spec(pod, spec, rootfs=image.lower, namespaces=sandbox.namespaces(),
                              cgroups_path=self.cgroups_path(pod, cid), node=self.node,
                              image_config=image.config, mounts=mounts, env=env, image=image.name,
                              user_db_root=image.lower)

    @staticmethod
    def _ro(pod: dict, spec: dict) -> bool:
        return bool((spec.get("securityContext") or {}).get("readOnlyRootFilesystem"))

    def _coredns_env(self, pod: dict, spec: dict, image: Image, env: list[tuple[str, str]],
                     mounts: list[Mount]) -> list[tuple[str, str]]:
        """The kube-system coredns stand-in: its token and CA files, mounted read-only
        where a service account's are, and its env pointed there."""
        if pod["metadata"].get("namespace") != "kube-system" or \
                workloads.repository(image.image) != "coredns/coredns":
            return env
        out = []
        for name, value in env:
            target = COREDNS_FILES.get(name)
            if target and value == self.coredns_sources[target]:
                mounts.append(Mount(f"{SA_DIR}/{target}", value, readonly=True))
                value = f"{SA_DIR}/{target}"
            out.append((name, value))
        return out

    # ---- state -----------------------------------------------------------------------
    def status(self, cid: str) -> oci.ContainerStatus | None:
        """The runtime's status of `cid`, None if the runtime does not know it."""
        try:
            return self.runtime.status(cid)
        except ContainerNotFound:
            return None

    def stop(self, cid: str, grace: float) -> oci.ContainerStatus | None:
        """SIGTERM, `grace` seconds, SIGKILL; the final status (None if unknown)."""
        try:
            return self.runtime.stop(cid, grace)
        except ContainerNotFound:
            return None

    def remove(self, cid: str) -> None:
        """Delete the OCI container (killing it if needed), then its directory."""
        try:
            self.runtime.delete(cid, force=True)
        except ContainerNotFound:
            pass
        except RuntimeLayerError as e:
            log.warning("container %s: %s", cid, e)
        self._remove_dir(cid)

    def _remove_dir(self, cid: str) -> None:
        try:
            rootfs.remove(self.container_dir(cid))
        except RuntimeLayerError as e:
            log.error("container %s: %s", cid, e)

    def sweep(self, keep: set[str] | frozenset = frozenset()) -> list[str]:
        """Remove every container of this node not in `keep`; returns their ids."""
        gone = []
        for st in self.runtime.list():
            if st.id not in keep:
                self.remove(st.id)
                gone.append(st.id)
        for cid in os.listdir(self.containers_dir):
            if cid not in keep and cid not in gone:
                self._remove_dir(cid)
                gone.append(cid)
        return gone

    def close(self) -> None:
        self.runtime.close()


def sweep_node(cfg, node_dir: str) -> int:
    """`nsplane down` / node removal: every container of a node (its agent stopped
    first) and their directories, then anything still mounted under the node's
    directory. Returns how many containers went."""
    gone = 0
    if os.path.isdir(os.path.join(node_dir, "runtime")):
        kr = KubeRuntime(cfg, node_dir)
        try:
            gone = len(kr.sweep())
        finally:
            kr.close()
    if os.path.isdir(node_dir):
        rootfs.sweep(node_dir)
    return gone


def remove_cgroups(cluster: str) -> list[str]:
    """The cluster's cgroup trees (/<cluster>/...) in every hierarchy, emptied
    of containers first; deepest first, only empty directories."""
    removed = []
    for base in {os.path.join(cgroups.CGROUP_ROOT, d) for d in os.listdir(cgroups.CGROUP_ROOT)} | \
            {cgroups.CGROUP_ROOT}:
        top = os.path.join(base, cluster)
        if not cluster.startswith(cgroups.OWNED_MARK) or not os.path.isdir(top):
            continue
        for path, dirs, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            try:
                os.rmdir(path)
                removed.append(path)
            except OSError:
                pass
    return removed


def running_containers(node_dir: str) -> list[tuple[int, int]]:
    """(pid, start ticks) of every running container of a node, from its
    runtime monitors' records (no runtime call)."""
    base = os.path.join(node_dir, "runtime", "containers")
    out = []
    for cid in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        cdir = os.path.join(base, cid)
        info = monitors.info(cdir)
        if info.get("containerPid") and monitors.exit_record(cdir) is None:
            out.append((int(info["containerPid"]), int(info.get("containerStartTicks") or 0)))
    return out
