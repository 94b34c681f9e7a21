"""The few system calls this package makes directly, and /proc readers.

mount(2), umount2(2), unshare(2) and prctl(PR_SET_CHILD_SUBREAPER) through
libc (a 2 ms overlay mount is most of a container's start budget, so no
`mount` process is forked for it), plus the readers the rest of the package
shares: /proc/self/mountinfo as records, and a process's start time (so a
recycled PID is never mistaken for a container's process or monitor).

Standard library only: the per-container monitor imports this module as a
plain script sibling, without the `agent` package.
"""

from __future__ import annotations

import ctypes
import os
from collections import namedtuple

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8
CLONE_NEWNS = 0x20000
PR_SET_CHILD_SUBREAPER = 36

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                        ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong, ctypes.c_ulong]


def _enc(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str | None, target: str, fstype: str | None = None,
          flags: int = 0, data: str | None = None) -> None:
    """mount(2); raises OSError naming the target."""
    _check(_libc.mount(_enc(source), _enc(target), _enc(fstype), flags, _enc(data)),
           f"mount {fstype or 'bind'} on {target}")


def make_private(target: str) -> None:
    """Stop mount events under `target` propagating anywhere (MS_PRIVATE)."""
    mount(None, target, None, MS_PRIVATE)


def umount(target: str, detach: bool = False) -> None:
    """umount2(2), never following a symlink at `target`."""
    flags = UMOUNT_NOFOLLOW | (MNT_DETACH if detach else 0)
    _check(_libc.umount2(_enc(target), flags), f"umount {target}")


def unshare_mount_namespace() -> None:
    """Give the calling process a private copy of its mount table."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    mount(None, "/", None, MS_REC | MS_PRIVATE)


class _Statfs(ctypes.Structure):
    # struct statfs on 64-bit Linux: f_type first, then what we do not read.
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_long * 15)]


_libc.statfs.argtypes = [ctypes.c_char_p, ctypes.POINTER(_Statfs)]


def fs_magic(path: str) -> int | None:
    """statfs(2)'s f_type of the filesystem at `path` (what `stat -f` names:
    0x63677270 cgroup2fs, 0x01021994 tmpfs, 0x27e0eb cgroupfs); None if absent."""
    buf = _Statfs()
    if _libc.statfs(_enc(path), ctypes.byref(buf)) != 0:
        return None
    return buf.f_type & 0xFFFFFFFF


def set_child_subreaper() -> None:
    """Orphaned descendants are re-parented to us (PR_SET_CHILD_SUBREAPER)."""
    _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")


# ---- /proc readers -------------------------------------------------------------

# One line of /proc/self/mountinfo. A namedtuple, not a dataclass: the
# monitor imports this module and `dataclasses` alone costs it ~20 ms.
MountRecord = namedtuple("MountRecord", "mount_id parent_id root target options "
                         "fstype source super_options")


def _unescape(field: str) -> str:
    """Undo mountinfo's octal escapes (\\040 for a space, ...)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountRecord]:
    """Records of a mountinfo text, in the kernel's (mount) order."""
    records = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        records.append(MountRecord(
            mount_id=int(fields[0]), parent_id=int(fields[1]),
            root=_unescape(fields[3]), target=_unescape(fields[4]),
            options=fields[5], fstype=fields[sep + 1],
            source=_unescape(fields[sep + 2]) if len(fields) > sep + 2 else "",
            super_options=fields[sep + 3] if len(fields) > sep + 3 else ""))
    return records


def mounts(pid: str | int = "self") -> list[MountRecord]:
    """The mount table of process `pid` (default: ours)."""
    with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
        return parse_mountinfo(fh.read())


def mounts_under(path: str, records: list[MountRecord] | None = None) -> list[str]:
    """Mount points at or below `path`, deepest (latest) first, for unmounting."""
    path = os.path.abspath(path)
    prefix = path.rstrip("/") + "/"
    found = [r.target for r in (records if records is not None else mounts())
             if r.target == path or r.target.startswith(prefix)]
    return list(reversed(found))


def proc_start_ticks(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot, None if gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()
    if rest[0] == b"Z":
        return None
    return int(rest[19])


def process_alive(pid: int, start_ticks: int | None) -> bool:
    """True if `pid` is running and is the same process that started at `start_ticks`."""
    if pid <= 0:
        return False
    now = proc_start_ticks(pid)
    return now is not None and (start_ticks is None or now == start_ticks)
