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

Each call is one `nft` process (package nftables). The applier writes the
per-Service part of its syncs as netlink batches instead
(`dataplane.nft.netlink`); nft writes the fixed part, whatever netlink
does not express, and every listing. libnftables, called in-process,
saved nothing when measured (2,000 Services: full sync 2.0 s binary, 2.1 s
library; one-endpoint partial sync 58 / 93 ms p50): it builds the same
cache of the table first, holding the GIL.
"""
from __future__ import annotations

import json
import re
import subprocess
from typing import Any

from dataplane.nft import netlink
from dataplane.nft.errors import NftError, NotFound
from dataplane.nft.ruleset import FAMILY, TABLE
from dataplane.nft.transaction import Existing

NFT = "nft"
TIMEOUT = 120.0


class Nft:
    """Calls of nft (see the module docstring); holds no state of the table."""

    def _call(self, text: str, json_out: bool = False) -> str:
        """Run `text` (commands, one transaction); returns nft's output."""
        if json_out:  # nft -j -f prints nothing for listings: one process per listing
            return "".join(self._binary([NFT, "-j", *line.split()], line) for line in text.splitlines())
        return self._binary([NFT, "-f", "-"], text)

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
