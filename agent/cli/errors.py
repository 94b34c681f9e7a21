"""How the CLI reports failures: kubectl's wording, exit code 1."""
from __future__ import annotations

import sys

from agent.api.client import APIStatusError

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def die(msg: str, code: int = 1):
    print(msg, file=sys.stderr)
    raise SystemExit(code)


def server_error(e: APIStatusError, verb: str = "", source: str = "") -> str:
    where = f'error when {verb} "{source}": ' if verb else ""
    return f"Error from server ({e.reason or 'Error'}): {where}{e}"


def ref(kind, name: str) -> str:
    return f"{kind.singular}{'.' + kind.group if kind.group else ''}/{name}"
