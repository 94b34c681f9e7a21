"""A pod's UTS namespace: its own hostname, equal to the pod name.

Kubernetes gives every pod a hostname equal to its name (`hostname` inside the
pod prints "web-7d4b9c-x2x5z"). A UTS namespace holds no processes of its own,
so we keep it alive by bind-mounting its nsfs file on a regular file under a
directory the agent owns (what `unshare --uts=<file> hostname <name>` does,
the same trick `ip netns` uses for network namespaces), in-process with
dataplane/nspin.py. Containers then enter it by path (their runtime spec, or
`nsenter --uts=<file>`: see `netns.exec_argv`). Removing it is umount +
unlink; `mounted_files` lets cleanup find leftovers so `nsplane down` leaves
no mount.
"""

from __future__ import annotations

import os

from . import nspin


class UTSError(Exception):
    """A pod's UTS namespace could not be created, read or removed."""


def uts_path(uts_dir: str, netns_name: str) -> str:
    """File that holds the UTS namespace of the pod whose netns is `netns_name`."""
    return os.path.join(uts_dir, netns_name)


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
    try:
        return nspin.hostname(path)
    except OSError as exc:
        raise UTSError(f"UTS {path}: cannot read its hostname ({exc})") from exc


def ensure(path: str, hostname: str) -> bool:
    """Make `path` a UTS namespace whose hostname is `hostname`.

    Idempotent: an existing namespace keeps its identity and only gets its
    hostname corrected. Returns True if a new namespace was created.
    """
    what = f"pod hostname {hostname} ({path})"
    try:
        if is_mounted(path):
            if hostname_of(path) != hostname:
                nspin.sethostname(path, hostname)
            return False
        nspin.pin_new({nspin.CLONE_NEWUTS: path}, hostname)
    except OSError as exc:
        raise UTSError(f"{what}: {exc}") from exc
    return True


def remove(path: str) -> bool:
    """Unmount and delete the UTS namespace file at `path`; True if it existed."""
    try:
        return nspin.remove_pinned(path, is_mounted)
    except OSError as exc:
        raise UTSError(f"UTS {path}: {exc}; run `umount --lazy {path}`") from exc
