"""Per-container root filesystems, and their removal without leftovers.

Two kinds, both mounted under a caller-given container directory whose path
carries "nsplane" (checked), laid out as <dir>/rootfs (the bundle's root.path),
<dir>/upper and <dir>/work:

- `overlay`: the image's unpacked root (read-only, shared by every container
  of that image) as lowerdir, a per-container upper and work dir; a few ms to
  mount, writes land in the upper only and vanish with the container;
- `host_view`: for the built-in stand-ins, which have no image offline: a
  NON-recursive read-only view of / (a recursive bind would drag in every
  mount of the machine: /proc, /run/netns, other containers' roots...) with
  empty private tmpfs on /tmp, /run and /var, so the agent's state under
  /var/lib/nsplane (keys, tokens, the store) is not there, plus any further
  path the caller hides (its state dir, wherever it is). The view is a
  lower-only overlay of / rather than a bind: read-only in the filesystem
  itself, whatever the runtime remounts (see host_view).

Every mount is made private the moment it exists, so nothing we mount under
it propagates back to the host's peers. `remove` unmounts deepest first
(lazily if busy), checks /proc/self/mountinfo that nothing is left under the
directory, and only then deletes it: rmtree never walks into a mount.
"""

from __future__ import annotations

import errno
import os
import shutil

from . import kernel
from .errors import RootfsError
from .mountpoints import make_skeleton, skeleton_entries

OWNED_MARK = "nsplane"
HOST_VIEW_TMPFS = ("/tmp", "/run", "/var")
_TMPFS_FLAGS = kernel.MS_NOSUID | kernel.MS_NODEV


def _checked_dir(container_dir: str) -> str:
    path = os.path.realpath(container_dir)
    if OWNED_MARK not in path or path.count("/") < 2:
        raise RootfsError(f"container directory {container_dir}: its path must contain "
                          f"{OWNED_MARK!r} (everything we mount carries our prefix)")
    return path


def rootfs_path(container_dir: str) -> str:
    """Where the container's root is mounted (the bundle's root.path)."""
    return os.path.join(_checked_dir(container_dir), "rootfs")


def _overlay_safe(path: str) -> str:
    if any(c in path for c in ",:\n"):
        raise RootfsError(f"overlay path {path}: ',' and ':' cannot appear in overlayfs "
                          "options; choose a state directory without them")
    return path


def overlay(container_dir: str, lower: str) -> str:
    """Mount lower (an unpacked image) + a fresh upper at <dir>/rootfs; return it."""
    base = _checked_dir(container_dir)
    lower = os.path.realpath(lower)
    if not os.path.isdir(lower):
        raise RootfsError(f"image root {lower} does not exist; unpack the image first "
                          "(ImageStore.unpack)")
    target = os.path.join(base, "rootfs")
    if mounted(base):
        raise RootfsError(f"{target} is already mounted; remove the old container first")
    upper, work = os.path.join(base, "upper"), os.path.join(base, "work")
    for path in (target, upper, work):
        os.makedirs(path, mode=0o755, exist_ok=True)
    data = (f"lowerdir={_overlay_safe(lower)},upperdir={_overlay_safe(upper)},"
            f"workdir={_overlay_safe(work)}")
    try:
        kernel.mount("overlay", target, "overlay", 0, data)
        kernel.make_private(target)
    except OSError as err:
        _undo(target)
        raise RootfsError(f"overlay for {base}: {err}; check that the overlay module is "
                          "loaded and the state dir is not itself on overlayfs") from err
    return target


def host_view(container_dir: str, hide: list[str] | tuple = (),
              mountpoints: list[tuple[str, bool]] | tuple = ()) -> str:
    """Mount a read-only, non-recursive view of / at <dir>/rootfs; return it.

    `mountpoints` ((path, is_dir) of the container's volume mounts) that the
    host lacks are made in the small tmpfs layered over / (mountpoints.py),
    since the runtime cannot create them in a read-only root.

    A lower-only overlay of / (its second, empty lower a tiny tmpfs at
    <dir>/empty, since layers on one filesystem may not nest): like a plain
    bind it shows only the root filesystem, not the mounts on it, and unlike
    a bind it is read-only in the filesystem itself, so no runtime can remount
    it writable (crun makes a read-only bind writable again when the spec's
    root.readonly is false: measured). /tmp, /run, /var and each path in
    `hide` that is a directory in the view get an empty private tmpfs.
    """
    base = _checked_dir(container_dir)
    target = os.path.join(base, "rootfs")
    empty = os.path.join(base, "empty")
    if mounted(base):
        raise RootfsError(f"{target} is already mounted; remove the old container first")
    for path in (target, empty):
        os.makedirs(path, mode=0o755, exist_ok=True)
    skeleton = skeleton_entries(mountpoints, (*HOST_VIEW_TMPFS, *hide))
    try:
        flags = _TMPFS_FLAGS | (0 if skeleton else kernel.MS_RDONLY)
        kernel.mount("tmpfs", empty, "tmpfs", flags, f"size={4 if not skeleton else 256}k,mode=755")
        kernel.make_private(empty)
        if skeleton:
            make_skeleton(empty, skeleton)
            kernel.mount(None, empty, None, kernel.MS_REMOUNT | kernel.MS_RDONLY | _TMPFS_FLAGS, None)
        layers = f"{_overlay_safe(empty)}:/" if skeleton else f"/:{_overlay_safe(empty)}"
        kernel.mount("overlay", target, "overlay", kernel.MS_RDONLY, f"lowerdir={layers}")
        kernel.make_private(target)
        for path in (*HOST_VIEW_TMPFS, *hide):
            _hide(target, path)
    except OSError as err:
        _undo(base)
        raise RootfsError(f"host view for {base}: {err}") from err
    return target


def _hide(target: str, path: str) -> None:
    if not path.startswith("/"):
        raise RootfsError(f"path to hide {path!r} must be absolute")
    inside = os.path.join(target, path.strip("/"))
    if not os.path.isdir(inside) or os.path.islink(inside):
        return
    mode = "1777" if path.rstrip("/") == "/tmp" else "755"
    kernel.mount("tmpfs", inside, "tmpfs", _TMPFS_FLAGS, f"mode={mode},size=65536k")
    kernel.make_private(inside)


def _undo(target: str) -> None:
    for mountpoint in kernel.mounts_under(target):
        try:
            kernel.umount(mountpoint)
        except OSError:
            kernel.umount(mountpoint, detach=True)


def mounted(container_dir: str) -> list[str]:
    """Mount points at or below <dir> (deepest first); empty when clean."""
    return kernel.mounts_under(os.path.realpath(container_dir))


def unmount(container_dir: str) -> None:
    """Unmount everything under <dir>; raise RootfsError if anything stays."""
    base = _checked_dir(container_dir)
    for mountpoint in kernel.mounts_under(base):
        try:
            kernel.umount(mountpoint)
        except OSError as err:
            if err.errno == errno.EINVAL:       # no longer a mount point
                continue
            try:
                kernel.umount(mountpoint, detach=True)
            except OSError as err2:
                if err2.errno != errno.EINVAL:
                    raise RootfsError(f"cannot unmount {mountpoint}: {err2}") from err2
    left = kernel.mounts_under(base)
    if left:
        raise RootfsError(f"{base}: still mounted after unmount: {', '.join(left)}; "
                          "find the holder with `fuser -m` and retry")


def remove(container_dir: str) -> None:
    """Unmount <dir>'s root and delete the directory (upper, work and all)."""
    base = _checked_dir(container_dir)
    if not os.path.lexists(base):
        return
    unmount(base)
    if kernel.mounts_under(base):  # pragma: no cover - unmount raised already
        raise RootfsError(f"{base}: refusing to delete a directory with mounts under it")
    shutil.rmtree(base, ignore_errors=False, onerror=_rmtree_error)


def _rmtree_error(func, path, exc_info) -> None:
    err = exc_info[1]
    if isinstance(err, FileNotFoundError):
        return
    raise RootfsError(f"cannot remove {path}: {err}") from err


def sweep(parent_dir: str) -> list[str]:
    """Unmount every mount under `parent_dir` (leftovers of a crashed agent)."""
    base = _checked_dir(parent_dir)
    found = kernel.mounts_under(base)
    for mountpoint in found:
        try:
            kernel.umount(mountpoint, detach=True)
        except OSError:
            continue
    return found
