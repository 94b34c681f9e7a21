"""The kubelet's atomic writer (pkg/volume/util/atomic_writer.go): how the
files of a configMap, secret, downwardAPI or projected volume are laid out
so that a container never sees half an update.

    <volume>/..2026_12_02_04_10_00.123456789/   the payload, one timestamped dir
    <volume>/..data -> ..2026_12_02_04_10_00.123456789
    <volume>/key    -> ..data/key              (one symlink per top-level name)

An update writes a new timestamped directory, points a `..data_tmp` symlink
at it and renames that over `..data` (rename(2) is atomic), then adds the
user-visible symlinks of new names, removes those of names that left the
payload, and removes the old directory. A payload equal to what is there is
not written again. Paths are checked as the kubelet checks them: relative,
no `..` element, none starting with `..`.
"""
from __future__ import annotations

import os
import shutil
import secrets
import time
from dataclasses import dataclass

DATA_DIR = "..data"
DATA_DIR_TMP = "..data_tmp"


@dataclass(frozen=True)
class FileProjection:
    """One file of a volume's payload: its bytes and permission bits."""
    data: bytes
    mode: int = 0o644


class PayloadError(ValueError):
    """A payload path the kubelet would refuse."""


def validate_path(path: str) -> None:
    """validatePath: relative, at most 4096 bytes, no '..' element, no element starting with '..'."""
    if not path:
        raise PayloadError("invalid path: must not be empty")
    if len(path.encode()) > 4096:
        raise PayloadError(f"invalid path: must be less than or equal to 4096 characters")
    if path.startswith("/"):
        raise PayloadError(f"invalid path: must be relative path: {path}")
    parts = path.split("/")
    if ".." in parts:
        raise PayloadError(f"invalid path: must not contain '..': {path}")
    if parts[0].startswith(".."):
        raise PayloadError(f"invalid path: must not start with '..': {path}")


def _timestamp_prefix(now: float) -> str:
    return time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime(now))


def _make_ts_dir(target: str, now: float) -> str:
    """..<UTC timestamp>.<random digits>, as Go's os.MkdirTemp names it."""
    for _ in range(100):
        path = os.path.join(target, _timestamp_prefix(now) + str(secrets.randbelow(10**10)))
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            continue
        os.chmod(path, 0o755)
        return path
    raise FileExistsError(f"{target}: no free name for a payload directory")


class AtomicWriter:
    """Writes payloads into one volume directory (created if missing)."""

    def __init__(self, target_dir: str):
        self.target = target_dir

    def current(self) -> dict[str, FileProjection] | None:
        """What ..data holds now (None when nothing was written yet)."""
        data = os.path.join(self.target, DATA_DIR)
        if not os.path.islink(data):
            return None
        out = {}
        root = os.path.realpath(data)
        for dirpath, _, files in os.walk(root):
            for name in files:
                full = os.path.join(dirpath, name)
                st = os.lstat(full)
                with open(full, "rb") as f:
                    out[os.path.relpath(full, root)] = FileProjection(f.read(), st.st_mode & 0o7777)
        return out

    def write(self, payload: dict[str, FileProjection], now: float | None = None) -> bool:
        """Make the volume hold exactly `payload`; False if it already did."""
        for path in payload:
            validate_path(path)
        clean = {os.path.normpath(p): fp for p, fp in payload.items()}
        os.makedirs(self.target, mode=0o755, exist_ok=True)
        if self.current() == clean:
            return False
        old_ts = self._old_ts_dir()
        ts_dir = _make_ts_dir(self.target, time.time() if now is None else now)
        try:
            for path, fp in clean.items():
                full = os.path.join(ts_dir, path)
                os.makedirs(os.path.dirname(full), mode=0o755, exist_ok=True)
                with open(full, "wb") as f:
                    f.write(fp.data)
                os.chmod(full, fp.mode)
            tmp_link = os.path.join(self.target, DATA_DIR_TMP)
            if os.path.lexists(tmp_link):
                os.unlink(tmp_link)
            os.symlink(os.path.basename(ts_dir), tmp_link)
            os.rename(tmp_link, os.path.join(self.target, DATA_DIR))
        except BaseException:
            shutil.rmtree(ts_dir, ignore_errors=True)
            raise
        self._user_links({p.split("/")[0] for p in clean})
        if old_ts and old_ts != ts_dir:
            shutil.rmtree(old_ts, ignore_errors=True)
        return True

    def _old_ts_dir(self) -> str:
        data = os.path.join(self.target, DATA_DIR)
        if not os.path.islink(data):
            return ""
        return os.path.join(self.target, os.readlink(data))

    def _user_links(self, visible: set[str]) -> None:
        """One `name -> ..data/name` symlink per top-level name; stale ones removed."""
        for name in visible:
            link = os.path.join(self.target, name)
            want = os.path.join(DATA_DIR, name)
            if os.path.islink(link) and os.readlink(link) == want:
                continue
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(want, link)
        for name in os.listdir(self.target):
            if name.startswith(".."):
                continue
            link = os.path.join(self.target, name)
            if name not in visible and os.path.islink(link):
                os.unlink(link)
