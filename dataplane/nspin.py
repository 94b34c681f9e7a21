"""Namespaces pinned on files, made in-process: no `ip netns add`, no `unshare`.

A pod's network, UTS and IPC namespaces outlive any process because their
nsfs files are bind-mounted on regular files (/run/netns/<name>, the
agent's uts/ and ipc/ files), the trick `ip netns add` and `unshare --uts=F`
use. Doing it with two subprocesses cost a fork of the (large,
multi-threaded) agent and an exec each, 5-15 ms per pod and far more on a
loaded machine. Here one short-lived thread does it all: unshare(2) of the
asked namespaces (per thread: CLONE_NEWNET, CLONE_NEWUTS and CLONE_NEWIPC
are allowed in a multi-threaded process), sethostname(2), a bind mount of
each /proc/thread-self/ns/<kind> on its file, and the thread ends, taking
its namespaces' only task with it. Nothing in the caller's threads changes.

`in_namespace` runs a function in a thread that entered pinned namespaces
(setns), for the few reads and writes that need to be inside (a UTS
namespace's hostname, a netns's sysctls).
"""
from __future__ import annotations

import ctypes
import errno
import os
import threading
from typing import Callable, TypeVar

CLONE_NEWNET = 0x40000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
NS_NAME = {CLONE_NEWNET: "net", CLONE_NEWUTS: "uts", CLONE_NEWIPC: "ipc"}
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_SHARED = 1 << 20
_MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]

T = TypeVar("T")


class PinError(OSError):
    """A namespace could not be made, pinned, entered or unpinned."""


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise PinError(err, f"{what}: {os.strerror(err)}")


def _in_thread(fn: Callable[[], T], name: str) -> T:
    """Run `fn` on a fresh thread and return its result (or raise its error):
    whatever namespaces that thread unshared or entered end with it."""
    box: dict = {}

    def body() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:   # noqa: BLE001 - re-raised in the caller
            box["error"] = exc
    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _touch(path: str) -> None:
    """The empty file a namespace is mounted on (mode 0, as `ip netns add`)."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0))
    except FileExistsError:
        pass


def pin_new(paths: dict[int, str], hostname: str | None = None) -> None:
    """New namespaces of the kinds in `paths` (CLONE_NEW* -> file), each
    bind-mounted on its file, the UTS one (if asked) named `hostname`.

    All or nothing: on failure every mount made is undone and the files
    removed. Raises PinError naming the file and the kernel's reason.
    """
    flags = 0
    for kind in paths:
        flags |= kind
    for path in paths.values():
        _touch(path)
    done: list[str] = []

    def body() -> None:
        _check(_libc.unshare(flags), f"unshare of new namespaces for {', '.join(paths.values())}")
        if hostname is not None and CLONE_NEWUTS in paths:
            raw = hostname.encode()
            _check(_libc.sethostname(raw, len(raw)), f"sethostname {hostname!r}")
        for kind, path in paths.items():
            source = f"/proc/thread-self/ns/{NS_NAME[kind]}".encode()
            _check(_libc.mount(source, path.encode(), b"none", _MS_BIND, None), f"bind mount on {path}")
            done.append(path)
    try:
        _in_thread(body, "nsplane-nspin")
    except BaseException:
        for path in done:
            _libc.umount2(path.encode(), _MNT_DETACH)
        for path in paths.values():
            _unlink(path)
        raise


def shared_dir(path: str) -> None:
    """Make directory `path` a shared mount point, as `ip netns add` makes
    /run/netns before its first namespace: mounts on files in it then show
    in mount namespaces made later (`ip netns exec`, a container's)."""
    os.makedirs(path, mode=0o755, exist_ok=True)
    raw = path.encode()
    if _libc.mount(b"", raw, b"none", _MS_SHARED | _MS_REC, None) == 0:
        return
    err = ctypes.get_errno()
    if err != errno.EINVAL:
        raise PinError(err, f"make {path} a shared mount: {os.strerror(err)}")
    _check(_libc.mount(raw, raw, b"none", _MS_BIND | _MS_REC, None), f"bind mount {path} on itself")
    _check(_libc.mount(b"", raw, b"none", _MS_SHARED | _MS_REC, None), f"make {path} a shared mount")


def in_namespace(kind: int, path: str, fn: Callable[[], T]) -> T:
    """`fn()` run on a thread inside the namespace pinned on `path`."""
    def body() -> T:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _check(_libc.setns(fd, kind), f"setns into {path}")
        finally:
            os.close(fd)
        return fn()
    return _in_thread(body, "nsplane-nsenter")


def sethostname(path: str, hostname: str) -> None:
    """Set the hostname of the UTS namespace pinned on `path`."""
    raw = hostname.encode()
    in_namespace(CLONE_NEWUTS, path,
                 lambda: _check(_libc.sethostname(raw, len(raw)), f"sethostname {hostname!r} in {path}"))


def hostname(path: str) -> str:
    """The hostname of the UTS namespace pinned on `path`."""
    return in_namespace(CLONE_NEWUTS, path, lambda: os.uname().nodename)


def unpin(path: str) -> None:
    """Unmount `path` (lazily if busy); not mounted is fine."""
    if _libc.umount2(path.encode(), 0) == 0:
        return
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOENT):
        return
    _check(_libc.umount2(path.encode(), _MNT_DETACH), f"umount {path}")


def remove_pinned(path: str, pinned: Callable[[str], bool]) -> bool:
    """Unmount (each stacked mount, bounded) and delete the namespace file at
    `path`; True if it existed. `pinned(path)` says whether a namespace is
    still mounted there; OSError(EBUSY) if one still is after the unmounts."""
    existed = os.path.exists(path)
    for _ in range(8):  # a file can carry stacked mounts
        if not pinned(path):
            break
        unpin(path)
    if pinned(path):
        raise OSError(errno.EBUSY, "still mounted after umount", path)
    _unlink(path)
    return existed


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
