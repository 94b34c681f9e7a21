"""Cgroups as the runtime layer meets them: layout, OOM counters, cleanup.

Three layouts exist in the wild and both kinds occur where nsplane runs:
pure cgroup v2 (a Debian 12 VM with systemd: /sys/fs/cgroup is cgroup2),
hybrid (v1 hierarchies on a tmpfs plus cgroup2 at /sys/fs/cgroup/unified, as
on the CI machines), and plain v1. crun 1.8 refuses the hybrid layout
("cgroups in hybrid mode not supported"); `hide_unified` gives the one
process that runs `crun create` a private mount table without the unified
mount, after which crun sees plain v1 and works (the other crun commands do
not care).

The container's memory cgroup is found from /proc/<pid>/cgroup while it runs;
its OOM-kill counter (memory.events `oom_kill` on v2, memory.oom_control
`oom_kill` on v1) is read after the process exits and before `delete`
removes the cgroup. The runtimes remove the container's own cgroup on
delete; `remove` removes the parents we named in cgroupsPath (crun and runc
leave them behind), never anything outside a path whose first component
carries our prefix.

Standard library only (imported by the monitor script too).
"""

from __future__ import annotations

import errno
import os

try:  # as part of the package, or as a sibling of the monitor script
    from . import kernel
except ImportError:  # pragma: no cover - exercised by the monitor process
    import kernel  # type: ignore[no-redef]

V2 = "v2"
HYBRID = "hybrid"
V1 = "v1"
CGROUP_ROOT = "/sys/fs/cgroup"
UNIFIED = "/sys/fs/cgroup/unified"
OWNED_MARK = "nsplane"


CGROUP2_SUPER_MAGIC = 0x63677270     # `stat -f -c %T /sys/fs/cgroup`: cgroup2fs


def layout(records: list[kernel.MountRecord] | None = None) -> str:
    """Which cgroup layout this machine has: V2, HYBRID or V1.

    By default from what the filesystems at /sys/fs/cgroup and
    /sys/fs/cgroup/unified are (statfs, as `stat -f` and the kubelet's
    libcontainer tell them apart); from a mount table when one is given.
    """
    if records is None:
        return layout_of_magic(kernel.fs_magic(CGROUP_ROOT), kernel.fs_magic(UNIFIED))
    by_target = {r.target: r.fstype for r in records}
    if by_target.get(CGROUP_ROOT) == "cgroup2":
        return V2
    if by_target.get(UNIFIED) == "cgroup2":
        return HYBRID
    return V1


def layout_of_magic(root: int | None, unified: int | None) -> str:
    """The layout from the filesystem types of /sys/fs/cgroup and of
    /sys/fs/cgroup/unified (None: absent)."""
    if root == CGROUP2_SUPER_MAGIC:
        return V2
    if unified == CGROUP2_SUPER_MAGIC:
        return HYBRID
    return V1


def hide_unified() -> None:
    """In this process only: a private mount table without the unified mount.

    Meant as a `preexec_fn` (in a single-threaded parent) or called by a
    process about to exec crun. Harmless where the mount does not exist.
    """
    kernel.unshare_mount_namespace()
    try:
        kernel.umount(UNIFIED, detach=True)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOENT):
            raise


def swap_accounting(records: list[kernel.MountRecord] | None = None) -> bool:
    """Can a memory cgroup limit swap here (v1 memsw files, v2 memory.swap.max)?"""
    records = records if records is not None else kernel.mounts()
    for mount in _hierarchies(records):
        if mount.fstype == "cgroup" and "memory" in mount.super_options.split(","):
            return os.path.exists(os.path.join(mount.target, "memory.memsw.limit_in_bytes"))
        if mount.fstype == "cgroup2" and mount.target == CGROUP_ROOT:
            try:
                return any(os.path.exists(os.path.join(e.path, "memory.swap.max"))
                           for e in os.scandir(CGROUP_ROOT) if e.is_dir())
            except OSError:
                return False
    return False


def _hierarchies(records: list[kernel.MountRecord]) -> list[kernel.MountRecord]:
    return [r for r in records if r.fstype in ("cgroup", "cgroup2")]


def memory_dir(pid: int, records: list[kernel.MountRecord] | None = None) -> str | None:
    """Directory of the memory cgroup process `pid` is in, or None."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    records = _hierarchies(records if records is not None else kernel.mounts())
    for line in lines:
        hier, controllers, path = line.split(":", 2)
        if hier == "0":
            mount = next((r for r in records if r.fstype == "cgroup2"
                          and r.target == CGROUP_ROOT), None)
        elif "memory" in controllers.split(","):
            mount = next((r for r in records if r.fstype == "cgroup"
                          and "memory" in r.super_options.split(",")), None)
        else:
            continue
        if mount is not None:
            rel = os.path.relpath(path, mount.root) if mount.root != "/" else path
            return os.path.normpath(os.path.join(mount.target, rel.lstrip("/")))
    return None


def oom_kills(cgroup_dir: str | None) -> int:
    """How many processes the kernel OOM-killed in that memory cgroup."""
    if not cgroup_dir:
        return 0
    for name in ("memory.events", "memory.oom_control"):
        try:
            with open(os.path.join(cgroup_dir, name), encoding="utf-8") as fh:
                for line in fh:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except OSError:
            continue
    return 0


def _owned(cgroups_path: str) -> bool:
    first = cgroups_path.strip("/").split("/", 1)[0]
    return OWNED_MARK in first


def remove(cgroups_path: str, records: list[kernel.MountRecord] | None = None) -> list[str]:
    """rmdir `cgroups_path` and its emptied parents in every hierarchy.

    Stops at the first parent still in use (another container of the pod, or
    of another pod). Only paths under a first component carrying our prefix
    are touched. Returns the directories removed.
    """
    if not cgroups_path.startswith("/") or not _owned(cgroups_path):
        return []
    removed = []
    for mount in _hierarchies(records if records is not None else kernel.mounts()):
        if mount.root != "/":
            continue
        path = os.path.normpath(cgroups_path)
        while path not in ("/", ""):
            target = os.path.join(mount.target, path.lstrip("/"))
            try:
                os.rmdir(target)
                removed.append(target)
            except FileNotFoundError:
                pass
            except OSError as err:
                if err.errno in (errno.EBUSY, errno.ENOTEMPTY):
                    break
                raise
            path = os.path.dirname(path)
    return removed


def leftovers(records: list[kernel.MountRecord] | None = None) -> list[str]:
    """Our top-level cgroup directories still present (for sweeps and tests)."""
    found = []
    for mount in _hierarchies(records if records is not None else kernel.mounts()):
        try:
            names = os.listdir(mount.target)
        except OSError:
            continue
        found += [os.path.join(mount.target, n) for n in names
                  if OWNED_MARK in n and os.path.isdir(os.path.join(mount.target, n))]
    return sorted(found)
