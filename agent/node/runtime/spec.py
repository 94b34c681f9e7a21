"""A pod's container as an OCI runtime spec (the bundle's config.json).

A pure function of the pod, the container, the image config and where the
caller put things (rootfs, namespace files, volume sources, cgroup path),
producing what containerd's CRI plugin would hand to runc for the same pod:

- containerd's defaults: the 14 default capabilities, masked and read-only
  /proc and /sys paths, the default mounts (proc, /dev tmpfs, devpts, shm,
  mqueue, read-only sysfs, read-only cgroup), devices denied but runc's
  defaults;
- the pod sandbox: network joined by path (/run/netns/NAME); ipc and uts
  joined by path when given (pinned files or /proc/PID/ns/*), else new;
  a new mount namespace; a new pid namespace unless shareProcessNamespace
  gives a pid namespace path; the hostname only where the UTS namespace is
  created;
- securityContext: runAsUser/runAsGroup/runAsNonRoot/supplementalGroups/
  fsGroup (see process.py), capabilities add/drop with "ALL", privileged
  (every capability, nothing masked, /sys and cgroups writable, all
  devices), readOnlyRootFilesystem, allowPrivilegeEscalation: false ->
  noNewPrivileges, procMount, sysctls;
- resources and oom_score_adj (see resources.py), cgroupsPath as given.

Not applied (yet): seccompProfile (Kubernetes' default is Unconfined, but
RuntimeDefault is ignored here too), AppArmor and SELinux labels, a
terminal for the main process (`tty: true`), host devices for privileged
containers, hugepages and ephemeral-storage limits.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import resources
from .errors import ContainerCreateError
from .process import Process, effective_security, resolve_process

OCI_VERSION = "1.0.2"

DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)
# Every capability Linux knows (0..40), for privileged and add: [ALL].
ALL_CAPABILITIES = tuple("CAP_" + c for c in (
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
    "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK "
    "IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN "
    "SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE "
    "AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND "
    "AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE").split())

MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
    "/sys/devices/virtual/powercap", "/proc/scsi",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# None by default: as under containerd's CRI plugin, a container inherits the
# limits of the process that runs the runtime (here the agent). Raising a hard
# limit above the agent's own fails in the runtime (setrlimit: EPERM).
DEFAULT_RLIMITS: tuple[dict, ...] = ()


@dataclass(frozen=True)
class Mount:
    """A volume (or resolv.conf, hosts, ...) the caller wants in the container.

    kind "bind": `source` is a host path; kind "tmpfs": a private tmpfs, with
    `options` such as "size=64m" or "mode=1777".
    """
    destination: str
    source: str = ""
    kind: str = "bind"
    readonly: bool = False
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class PodNamespaces:
    """Namespace files a container joins; None means "create a new one"."""
    network: str
    ipc: str | None = None
    uts: str | None = None
    pid: str | None = None


@dataclass(frozen=True)
class NodeInfo:
    """Facts about the node that change the spec."""
    memory_capacity: int = 0        # bytes; Burstable oom_score_adj needs it
    cgroup_v2: bool = False          # adds memory.oom.group=1 as the kubelet does
    swap_accounting: bool = False    # memory.swap = memory.limit (no swapping)


def default_mounts(privileged: bool = False) -> list[dict]:
    """containerd's default mounts for a CRI container, in its order."""
    sys_opts = ["nosuid", "noexec", "nodev", "rw" if privileged else "ro"]
    cgroup_opts = ["nosuid", "noexec", "nodev", "relatime", "rw" if privileged else "ro"]
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": cgroup_opts},
    ]


def oci_mount(mount: Mount) -> dict:
    """One caller mount in OCI form (binds are rbind + rprivate, as CRI does)."""
    if not mount.destination.startswith("/"):
        raise ContainerCreateError(f"mount destination {mount.destination!r} must be an "
                                   "absolute path")
    mode = "ro" if mount.readonly else "rw"
    if mount.kind == "bind":
        if not mount.source.startswith("/"):
            raise ContainerCreateError(f"bind mount on {mount.destination}: source "
                                       f"{mount.source!r} must be an absolute host path")
        return {"destination": mount.destination, "type": "bind", "source": mount.source,
                "options": ["rbind", "rprivate", mode, *mount.options]}
    if mount.kind == "tmpfs":
        return {"destination": mount.destination, "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "nodev", mode, *mount.options]}
    raise ContainerCreateError(f"mount on {mount.destination}: kind {mount.kind!r} is not "
                               "supported (bind or tmpfs)")


def mount_entries(extra: list[Mount] | tuple = (), privileged: bool = False) -> list[dict]:
    """Default mounts, replaced by same-destination caller mounts, then the
    caller's, parents before children."""
    wanted = [oci_mount(m) for m in extra]
    taken = {m["destination"].rstrip("/") for m in wanted}
    base = [m for m in default_mounts(privileged) if m["destination"] not in taken]
    wanted.sort(key=lambda m: m["destination"].rstrip("/").count("/"))
    return base + wanted


def capabilities(security: dict) -> list[str]:
    """containerd's capability rules: privileged = all; add/drop with "ALL"."""
    if security.get("privileged"):
        return list(ALL_CAPABILITIES)
    caps_sc = security.get("capabilities") or {}
    add = [str(c).upper() for c in caps_sc.get("add") or []]
    drop = [str(c).upper() for c in caps_sc.get("drop") or []]
    caps = list(DEFAULT_CAPABILITIES)
    if "ALL" in add:
        caps = list(ALL_CAPABILITIES)
    if "ALL" in drop:
        caps = []
    for name in add:
        if name != "ALL" and _cap(name) not in caps:
            caps.append(_cap(name))
    for name in drop:
        if name != "ALL" and _cap(name) in caps:
            caps.remove(_cap(name))
    return caps


def _cap(name: str) -> str:
    cap = "CAP_" + name
    if cap not in ALL_CAPABILITIES:
        hint = (f'; write "{name[4:]}" without the CAP_ prefix'
                if name.startswith("CAP_") and name[4:] and "CAP_" + name[4:] in ALL_CAPABILITIES
                else "; see capabilities(7) for the names")
        raise ContainerCreateError(f'unknown capability "{cap}"{hint}')
    return cap


def namespace_entries(ns: PodNamespaces) -> list[dict]:
    """pid, ipc, uts, mount, network: joined by path where given."""
    def entry(kind: str, path: str | None) -> dict:
        return {"type": kind, "path": path} if path else {"type": kind}
    if not ns.network:
        raise ContainerCreateError("the pod's network namespace path is required "
                                   "(e.g. /run/netns/NAME)")
    return [entry("pid", ns.pid), entry("ipc", ns.ipc), entry("uts", ns.uts),
            {"type": "mount"}, entry("network", ns.network)]


def pod_hostname(pod: dict) -> str:
    """spec.hostname, else the pod's name (63 characters at most)."""
    spec = pod.get("spec") or {}
    name = spec.get("hostname") or (pod.get("metadata") or {}).get("name") or "localhost"
    return name[:63].rstrip("-.")


def annotations(pod: dict, container: dict, image: str = "") -> dict:
    """CRI-style annotations so `runc state` maps a container back to its pod."""
    meta = pod.get("metadata") or {}
    out = {"io.kubernetes.cri.container-type": "container",
           "io.kubernetes.cri.container-name": container.get("name", ""),
           "io.kubernetes.cri.sandbox-name": meta.get("name", ""),
           "io.kubernetes.cri.sandbox-namespace": meta.get("namespace", ""),
           "io.kubernetes.cri.sandbox-uid": meta.get("uid", "")}
    if image:
        out["io.kubernetes.cri.image-name"] = image
    return out


def process_section(proc: Process, security: dict, oom_score_adj: int,
                    rlimits=DEFAULT_RLIMITS) -> dict:
    """The OCI `process` object."""
    caps = capabilities(security)
    return {
        "terminal": False,
        "user": {"uid": proc.uid, "gid": proc.gid, "additionalGids": list(proc.additional_gids)},
        "args": list(proc.args),
        "env": list(proc.env),
        "cwd": proc.cwd,
        "capabilities": {"bounding": caps, "effective": list(caps), "permitted": list(caps)},
        **({"rlimits": [dict(r) for r in rlimits]} if rlimits else {}),
        "noNewPrivileges": security.get("allowPrivilegeEscalation") is False,
        "oomScoreAdj": oom_score_adj,
    }


def container_spec(pod: dict, container: dict, *, rootfs: str, namespaces: PodNamespaces,
                   cgroups_path: str, image_config: dict | None = None,
                   mounts: list[Mount] | tuple = (), node: NodeInfo = NodeInfo(),
                   env: list[tuple[str, str]] | None = None, hostname: str | None = None,
                   image: str = "", process: Process | None = None,
                   user_db_root: str | None = None, rlimits=DEFAULT_RLIMITS,
                   readonly_root: bool = False) -> dict:
    """The OCI runtime spec (config.json as a dict) for `container` of `pod`.

    `rootfs` is root.path; users and groups are looked up in `user_db_root`
    (default: `rootfs`). `env` gives the container's env already resolved by
    the kubelet (valueFrom/envFrom); `process` skips the image/spec merge;
    `rlimits` are OCI rlimit objects (default: inherit the agent's);
    `readonly_root` forces root.readonly (a host view's root is never writable).
    Raises ContainerConfigError (runAsNonRoot) or ContainerCreateError.
    """
    security = effective_security(pod, container)
    if process is None:
        process = resolve_process(pod, container, image_config or {},
                                  user_db_root or rootfs, env)
    privileged = bool(security.get("privileged"))
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    linux: dict = {
        "namespaces": namespace_entries(namespaces),
        "cgroupsPath": cgroups_path,
        "resources": {"devices": [{"allow": privileged, "access": "rwm"}],
                      **resources.linux_resources(container,
                                                  swap_accounting=node.swap_accounting,
                                                  cgroup_v2=node.cgroup_v2)},
    }
    if not privileged and security.get("procMount", "Default") == "Default":
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    sysctls = {s["name"]: str(s["value"]) for s in pod_sc.get("sysctls") or []}
    if sysctls:
        linux["sysctl"] = sysctls
    spec = {
        "ociVersion": OCI_VERSION,
        "process": process_section(process, security, resources.oom_score_adj(
            pod, container, node.memory_capacity), rlimits),
        "root": {"path": rootfs,
                 "readonly": readonly_root or bool(security.get("readOnlyRootFilesystem"))},
        "mounts": mount_entries(mounts, privileged),
        "annotations": annotations(pod, container, image),
        "linux": linux,
    }
    if not namespaces.uts:
        spec["hostname"] = hostname or pod_hostname(pod)
    return spec


def exec_process(process: dict, argv: list[str], *, env: dict | None = None,
                 cwd: str | None = None, tty: bool = False, user: str | None = None) -> dict:
    """The process spec of an exec: the container's own `process` (user,
    capabilities, env, noNewPrivileges) running `argv`; `env` replaces or adds
    variables, `user` is "uid[:gid]", a terminal gets TERM=xterm."""
    out = dict(process)
    out["args"] = [str(a) for a in argv]
    out["terminal"] = bool(tty)
    merged: dict[str, str] = {}
    for item in process.get("env") or []:
        key, _, val = item.partition("=")
        merged[key] = val
    if tty:
        merged["TERM"] = "xterm"
    merged.update({str(k): str(v) for k, v in (env or {}).items()})
    out["env"] = [f"{k}={v}" for k, v in merged.items()]
    if cwd:
        out["cwd"] = cwd
    if user:
        uid, _, gid = user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise ContainerCreateError(f"exec user {user!r}: give a numeric uid[:gid]")
        out["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    return out
