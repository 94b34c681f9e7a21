"""A pod's UTS namespace: its own hostname, equal to the pod name.

Kubernetes gives every pod a hostname equal to its name (`hostname` inside the
pod prints "web-7d4b9c-x2x5z"). A UTS namespace holds no processes of its own,
so we keep it alive by bind-mounting its nsfs file on a regular file under a
directory the agent owns (`unshare --uts=<file> hostname <name>`, the same
trick `ip netns` uses for network namespaces). Containers then enter it with
`nsenter --uts=<file>` (see `netns.exec_argv`). Removing it is umount + unlink;
`mounted_files` lets cleanup find leftovers so `nsplane down` leaves no mount.
"""

from __future__ import annotations

import os
import subprocess

_TIMEOUT = 10


class UTSError(Exception):
    """A pod's UTS namespace could not be created, read or removed."""


def uts_path(uts_dir: str, netns_name: str) -> str:
    """File that holds the UTS namespace of the pod whose netns is `netns_name`."""
    return os.path.join(uts_dir, netns_name)


def _run(argv: list[str], what: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True,
                          timeout=_TIMEOUT, check=False)
    if proc.returncode != 0:
        raise UTSError(f"{what}: {' '.join(argv)} failed: "
                       f"{proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def _unescape(field: str) -> str:
    """Undo mountinfo's octal escapes (space, tab, newline, backslash)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"),
                       ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mounted_files(mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mount points of every persisted UTS namespace (nsfs "uts:[...]")."""
    found = []
    with open(mountinfo) as fh:
        for line in fh:
            fields = line.split()
            if len(fields) > 4 and fields[3].startswith("uts:["):
                found.append(_unescape(fields[4]))
    return found


def is_mounted(path: str) -> bool:
    """True if a UTS namespace is bind-mounted on `path`."""
    return os.path.abspath(path) in mounted_files()


def hostname_of(path: str) -> str | None:
    """Hostname inside the UTS namespace at `path`, or None if none is there."""
    if not is_mounted(path):
        return None
    return _run(["nsenter", f"--uts={path}", "hostname"], f"UTS {path}").strip()


def ensure(path: str, hostname: str) -> bool:
    """Make `path` a UTS namespace whose hostname is `hostname`.

    Idempotent: an existing namespace keeps its identity and only gets its
    hostname corrected. Returns True if a new namespace was created.
    """
    what = f"pod hostname {hostname} ({path})"
    if is_mounted(path):
        if hostname_of(path) != hostname:
            _run(["nsenter", f"--uts={path}", "hostname", hostname], what)
        return False
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    with open(path, "a"):
        pass
    try:
        _run(["unshare", f"--uts={path}", "hostname", hostname], what)
    except UTSError:
        _unlink(path)
        raise
    return True


def remove(path: str) -> bool:
    """Unmount and delete the UTS namespace file at `path`; True if it existed."""
    existed = os.path.exists(path)
    for _ in range(8):  # a file can carry stacked mounts; bounded
        if not is_mounted(path):
            break
        proc = subprocess.run(["umount", path], capture_output=True,
                              text=True, timeout=_TIMEOUT, check=False)
        if proc.returncode != 0:
            _run(["umount", "--lazy", path], f"UTS {path}")
    if is_mounted(path):
        raise UTSError(f"UTS {path}: still mounted after umount; "
                       f"run `umount --lazy {path}`")
    _unlink(path)
    return existed


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
