"""List pagination: `?limit=` and `?continue=`, as kube-apiserver answers them.

kubectl lists with limit=500 (`--chunk-size`) and follows `metadata.continue`
until it is empty. A continue token here is, as in kube-apiserver, base64 of
{"v": "meta.k8s.io/v1", "rv": <list resourceVersion>, "start": "<key>\\x00"}
where the key is "<namespace>/<name>" of the last item sent. Difference from
etcd: the next page is read from the current state (after that key), not from
a snapshot at `rv`, so an object created meanwhile may appear in a later page;
every page still reports the first page's resourceVersion, so a following
watch misses nothing.
"""
from __future__ import annotations

import base64
import binascii
import json


class BadContinue(ValueError):
    pass


def _key(obj: dict) -> str:
    md = obj.get("metadata") or {}
    return f"{md.get('namespace', '')}/{md.get('name', '')}"


def encode_continue(rv: int, last: dict) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": _key(last) + "\x00"}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    """(resourceVersion, start key) of a token, or BadContinue with kube's message."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        if data.get("v") != "meta.k8s.io/v1":
            raise BadContinue("continue key is not valid: server does not recognize this encoded key")
        return int(data["rv"]), str(data["start"])
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
        raise BadContinue("continue key is not valid: incorrect encoded start resourceVersion "
                          "(version meta.k8s.io/v1)") from None


def page(items: list[dict], rv: int, limit: str | None, token: str | None) -> tuple[list[dict], dict]:
    """The items of one page (items sorted by namespace/name) and the list
    metadata to send with them: resourceVersion, continue, remainingItemCount."""
    list_rv = rv
    if token:
        list_rv, start = decode_continue(token)
        items = [o for o in items if _key(o) + "\x00" > start]
    n = int(limit) if limit and str(limit).isdigit() else 0
    md: dict = {"resourceVersion": str(list_rv)}
    if n > 0 and len(items) > n:
        md["continue"] = encode_continue(list_rv, items[n - 1])
        md["remainingItemCount"] = len(items) - n
        items = items[:n]
    return items, md
