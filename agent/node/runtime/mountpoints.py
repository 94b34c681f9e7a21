"""Mount points a read-only host view lacks (rootfs.host_view).

A stand-in's root is a read-only view of the host, where the runtime cannot
create the directory or file a volume is mounted on (/etc/nginx/conf.d on a
host without nginx). The view is an overlay whose top layer is a small
tmpfs; this module computes and makes, in that layer, the missing
mount points and their parents. Directories that exist on the host are
repeated with the host's mode and owner, since an overlay directory takes
its attributes from the top layer. Paths under a writable tmpfs of the view
(/tmp, /run, /var, hidden paths) and paths through a host symlink are left
to the runtime, which can create them there.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    path: str          # relative to the view's root
    is_dir: bool
    mode: int
    uid: int = 0
    gid: int = 0


def _under(path: str, prefixes) -> bool:
    return any(path == p.rstrip("/") or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def skeleton_entries(mountpoints, writable=(), host_root: str = "/") -> list[Entry]:
    """Entries to make for `mountpoints` ((absolute path, is_dir)), parents first."""
    out: dict[str, Entry] = {}
    for dest, is_dir in mountpoints:
        dest = os.path.normpath(dest)
        if _under(dest, writable) or os.path.lexists(os.path.join(host_root, dest.lstrip("/"))):
            continue
        parts = [p for p in dest.split("/") if p]
        wanted: list[Entry] = []
        for i in range(1, len(parts) + 1):
            path = "/" + "/".join(parts[:i])
            host = os.path.join(host_root, path.lstrip("/"))
            if _under(path, writable) or os.path.islink(host):
                wanted = []
                break
            last = i == len(parts)
            if os.path.lexists(host):
                if not os.path.isdir(host):
                    wanted = []
                    break
                st = os.stat(host)
                wanted.append(Entry(path.lstrip("/"), True, st.st_mode & 0o7777, st.st_uid, st.st_gid))
            else:
                wanted.append(Entry(path.lstrip("/"), is_dir or not last, 0o755 if (is_dir or not last) else 0o644))
        for e in wanted:
            out.setdefault(e.path, e)
    return sorted(out.values(), key=lambda e: e.path.count("/"))


def make_skeleton(base: str, entries: list[Entry]) -> None:
    """Make `entries` under `base` (a fresh tmpfs)."""
    for e in entries:
        full = os.path.join(base, e.path)
        if e.is_dir:
            os.makedirs(full, exist_ok=True)
        else:
            with open(full, "a"):
                pass
        os.chmod(full, e.mode)
        os.chown(full, e.uid, e.gid)
