"""The kernel side of nftables for the network namespace this process is in.

Stateless calls, each one nft transaction or one read:
- `run(text)`: one transaction (all of it or nothing); errors name the line
  nft refused and its message;
- `existing()`: the names of the chains, maps and sets of `table ip
  kube-proxy` (what a full sync must delete when stale), read without rules
  or elements;
- `table_handle()`: the table's handle, or None when there is no table. A
  handle is never reused within a namespace, so a table deleted and made
  again (`nft flush ruleset`, a firewall reload) has another one: the
  applier's "is the table still ours" check. Asked over netlink
  (`dataplane.nft.netlink.table_handle`, NFT_MSG_GETTABLE): well under a
  millisecond, where `nft list tables` builds nft's whole cache first
  (0.35 s at 2,000 Services);
- `read_table()`: `nft -j list table ip kube-proxy`, parsed (verify mode,
  tests);
- `delete_table()`: kube-proxy's CleanupLeftovers for nftables mode.

Two ways to reach the kernel, same text: the `nft` binary (package
nftables), one process per transaction (the default), and libnftables
(libnftables.so.1, the library `nft` is built on, same package) called
in-process through ctypes (`Nft("lib")`). Measured at 2,000 Services x 3
endpoints (kube-proxy's layout, tests/nft_sample.py) the library saved
nothing: full sync 2.0 s binary / 2.1 s lib, one-endpoint partial sync
58 ms / 93 ms p50; both build nft's cache of the table first, which is
what costs, and the library keeps the GIL while it does.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import re
import subprocess
import threading
from typing import Any

from dataplane.nft import netlink
from dataplane.nft.errors import NftError, NotFound
from dataplane.nft.ruleset import FAMILY, TABLE
from dataplane.nft.transaction import Existing

NFT = "nft"
TIMEOUT = 120.0
BACKENDS = ("lib", "binary")


_lib_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


def _libnftables() -> ctypes.CDLL | None:
    global _lib
    with _lib_lock:
        if _lib is None:
            name = ctypes.util.find_library("nftables") or "libnftables.so.1"
            try:
                lib = ctypes.CDLL(name)
            except OSError:
                return None
            lib.nft_ctx_new.restype = ctypes.c_void_p
            lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
            lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
            for fn in (lib.nft_ctx_buffer_output, lib.nft_ctx_buffer_error):
                fn.argtypes, fn.restype = [ctypes.c_void_p], ctypes.c_int
            for fn in (lib.nft_ctx_get_output_buffer, lib.nft_ctx_get_error_buffer):
                fn.argtypes, fn.restype = [ctypes.c_void_p], ctypes.c_char_p
            lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
            lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
            _lib = lib
        return _lib


_JSON, _TERSE = 1 << 4, 1 << 5  # NFT_CTX_OUTPUT_JSON, NFT_CTX_OUTPUT_TERSE


class Nft:
    """One way of calling nft (see the module docstring); holds no state of the table."""

    def __init__(self, backend: str | None = None) -> None:
        if backend is None:
            backend = "binary"
        if backend not in BACKENDS:
            raise ValueError(f"nft backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        if backend == "lib" and _libnftables() is None:
            raise NftError("libnftables.so.1 cannot be loaded: install the nftables package")
        self.backend = backend

    def _call(self, text: str, json_out: bool = False, terse: bool = False) -> str:
        """Run `text` (commands, one transaction); returns nft's output."""
        if self.backend == "binary":
            flags = [*(["-j"] if json_out else []), *(["-t"] if terse else [])]
            if json_out:  # nft -j -f prints nothing for listings: one process per listing
                return "".join(self._binary([NFT, *flags, *line.split()], line) for line in text.splitlines())
            return self._binary([NFT, *flags, "-f", "-"], text)
        lib = _libnftables()
        # A context per call: its netlink socket belongs to the namespace it is
        # opened in, and callers (tests, the proxier) may change namespaces.
        ctx = lib.nft_ctx_new(0)
        try:
            lib.nft_ctx_buffer_output(ctx)
            lib.nft_ctx_buffer_error(ctx)
            lib.nft_ctx_output_set_flags(ctx, (_JSON if json_out else 0) | (_TERSE if terse else 0))
            rc = lib.nft_run_cmd_from_buffer(ctx, text.encode())
            out = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode(errors="replace")
            if rc != 0:
                raise self._lib_error(text, (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace"))
            return out
        finally:
            lib.nft_ctx_free(ctx)

    @staticmethod
    def _binary(argv: list[str], text: str) -> str:
        try:
            proc = subprocess.run(argv, input=None if "-f" not in argv else text.encode(),
                                  capture_output=True, timeout=TIMEOUT)
        except FileNotFoundError as err:
            raise NftError("cannot run nft: it is not installed (install the nftables package)") from err
        if proc.returncode != 0:
            raise _error(text, proc.stderr.decode(errors="replace"))
        return proc.stdout.decode()

    def _lib_error(self, text: str, stderr: str) -> NftError:
        """libnftables 1.0.6 may echo the wrong line of a buffer; `nft --check`
        of the same text names the right one (a failed sync only)."""
        if text.startswith("list "):
            return _error(text, stderr)
        try:
            self._binary([NFT, "--check", "-f", "-"], text)
        except NftError as checked:
            if checked.line_number is not None:
                return checked
        return _error(text, stderr)

    def run(self, text: str) -> None:
        """Apply `text` as one transaction."""
        if text:
            self._call(text)

    def existing(self) -> Existing:
        """Names of our table's chains, maps and sets (empty when there is no table)."""
        try:
            out = self._call(f"list chains {FAMILY}\nlist sets {FAMILY}\nlist maps {FAMILY}\n", json_out=True)
        except NotFound:
            return Existing()
        chains, maps, sets = set(), set(), set()
        for doc in _json_docs(out):
            for item in doc.get("nftables", ()):
                for kind, into in (("chain", chains), ("map", maps), ("set", sets)):
                    obj = item.get(kind)
                    if obj and obj.get("table") == TABLE and obj.get("family") == FAMILY:
                        into.add(obj["name"])
        return Existing(frozenset(chains), frozenset(maps), frozenset(sets))

    @staticmethod
    def table_handle() -> int | None:
        """Our table's handle, None when it does not exist (one netlink dump of the tables)."""
        return netlink.table_handle()

    def read_table(self) -> dict[str, Any]:
        """`nft -j list table ip kube-proxy`, parsed; NotFound without the table."""
        docs = _json_docs(self._call(f"list table {FAMILY} {TABLE}\n", json_out=True))
        return docs[0] if docs else {"nftables": []}

    def list_text(self) -> str:
        """`nft list table ip kube-proxy`, as a user reads it."""
        return self._call(f"list table {FAMILY} {TABLE}\n")

    def delete_table(self) -> bool:
        """Delete `table ip kube-proxy`; False when there was none."""
        if self.table_handle() is None:
            return False
        try:
            self._call(f"delete table {FAMILY} {TABLE}\n")
        except NotFound:
            return False
        return True


def _json_docs(out: str) -> list[dict]:
    """nft -j prints one JSON document per listing command, one per line."""
    docs = []
    for line in out.splitlines():
        line = line.strip()
        if line:
            docs.append(json.loads(line))
    return docs


_WHERE = re.compile(r"^(?:[^:\n]*:(\d+):\d+(?:-\d+)?: )?Error: (.*)$", re.M)


def _error(text: str, stderr: str) -> NftError:
    """The first error nft printed, with the line of `text` it is about: nft
    names the line number (reading a file) or echoes the line (a buffer)."""
    stderr = stderr.strip()
    match = _WHERE.search(stderr)
    lines = text.splitlines()
    number = int(match.group(1)) if match and match.group(1) else None
    if number is None and match:
        echoed = stderr[match.end():].lstrip("\n").split("\n", 1)[0]
        number = next((i + 1 for i, candidate in enumerate(lines) if candidate == echoed), None)
    line = lines[number - 1] if number and 0 < number <= len(lines) else None
    if "No such file or directory" in stderr and line is not None and line.startswith("list "):
        return NotFound(f"nft: {line}: no such table", stderr, number, line)
    reason = match.group(2) if match else (stderr.splitlines()[0] if stderr else "failed")
    where = f"line {number}: {line!r}" if line is not None else "its input"
    return NftError(f"nft rejected {where}: {reason}; check that the rendered rule is valid and the "
                    "nf_tables kernel modules are available", stderr, number, line)
