"""hostPath volumes: the `type` checks the kubelet makes before the mount
(pkg/volume/hostpath), with its messages, and the create-if-missing types.

""   nothing checked (a missing path becomes a directory, as containerd does)
DirectoryOrCreate / FileOrCreate   made when missing (0755 dir / 0644 empty file;
                                   FileOrCreate does not make the parent)
Directory, File, Socket, CharDevice, BlockDevice   must exist as that type
"""
from __future__ import annotations

import os
import stat

from agent.node.kubelet.volumes.payload import VolumeSetupError

TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice")
_KIND = {"Directory": (stat.S_ISDIR, "a directory"), "File": (stat.S_ISREG, "a file"),
         "Socket": (stat.S_ISSOCK, "a socket file"), "CharDevice": (stat.S_ISCHR, "a character device"),
         "BlockDevice": (stat.S_ISBLK, "a block device")}


def check(path: str, kind: str | None) -> bool:
    """Check (and make, for the *OrCreate types) `path`; True if it is a directory."""
    kind = kind or ""
    if kind not in TYPES:
        raise VolumeSetupError(f"{kind} is an invalid volume type")
    exists = os.path.exists(path)
    if kind in ("", "DirectoryOrCreate") and not exists:
        os.makedirs(path, mode=0o755, exist_ok=True)
        return True
    if kind == "FileOrCreate" and not exists:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileNotFoundError:
            raise VolumeSetupError(f"hostPath type check failed: {path}: parent directory "
                                   "does not exist") from None
        os.close(fd)
        return False
    if kind == "":
        return os.path.isdir(path)
    test, what = _KIND[kind.replace("OrCreate", "")]
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = 0
    if not test(mode):
        raise VolumeSetupError(f"hostPath type check failed: {path} is not {what}")
    return stat.S_ISDIR(mode)
