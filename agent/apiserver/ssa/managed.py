"""managedFields, as kube-apiserver's field manager records them, and
server-side apply (`application/apply-patch+yaml`).

- `track_update`: every non-apply write (create, update, patch, status) —
  the fields it added or changed now belong to its manager (operation
  Update, per apiVersion and subresource), taken from any other manager;
  removed fields leave every manager.
- `apply`: merges an apply configuration into the live object (list-maps by
  their keys, sets as sets, atomic lists and scalars replaced), removes what
  the same manager applied before and applies no more (unless another
  manager owns it too), and refuses fields another manager owns with a
  different value: kube's 409 with each conflict, unless forced, which
  takes them over.

Entries are sorted as kube sorts them (operation, time, manager, apiVersion,
subresource). Pure: the caller gives the time.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

from agent.apiserver.ssa.fieldset import (
    Path,
    flatten,
    from_fields_v1,
    is_container,
    item_key,
    path_string,
    to_fields_v1,
)
from agent.apiserver.ssa.schema import Shape


@dataclass
class Entry:
    manager: str
    operation: str
    api_version: str
    time: str
    fields: set = field(default_factory=set)
    subresource: str = ""

    def key(self) -> tuple:
        if self.operation == "Apply":
            return (self.manager, "Apply", self.subresource)
        return (self.manager, "Update", self.api_version, self.subresource)

    def encode(self) -> dict:
        e = {"manager": self.manager, "operation": self.operation, "apiVersion": self.api_version,
             "time": self.time, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(self.fields)}
        if self.subresource:
            e["subresource"] = self.subresource
        return e


class ApplyConflict(Exception):
    """kube's 409: `conflicts` are (manager description, path string)."""

    def __init__(self, conflicts: list[tuple[str, str]]):
        self.conflicts = conflicts
        super().__init__(conflict_message(conflicts))


def decode(managed: list | None) -> list[Entry]:
    out = []
    for e in managed or ():
        if not isinstance(e, dict) or not e.get("manager"):
            continue
        out.append(Entry(e["manager"], e.get("operation", "Update"), e.get("apiVersion", ""), e.get("time", ""),
                         from_fields_v1(e.get("fieldsV1") or {}), e.get("subresource", "")))
    return out


def encode(entries: list[Entry]) -> list[dict]:
    kept = [e for e in entries if e.fields]
    kept.sort(key=lambda e: (e.operation, e.time, e.manager, e.api_version, e.subresource))
    return [e.encode() for e in kept]


def _flat(obj: dict | None, shape: Shape, maps: bool = False) -> dict[Path, object]:
    if not obj:
        return {}
    return flatten(obj, shape.list_type, shape.atomic, shape.is_map if maps else None)


def _scope(obj: dict | None, subresource: str, status_sub: bool) -> dict | None:
    """What a write on this endpoint may change: /status only the status;
    the main resource everything but a status that is a subresource."""
    if obj is None:
        return None
    if subresource == "status":
        return {"status": obj.get("status")} if obj.get("status") is not None else {}
    if status_sub:
        return {k: v for k, v in obj.items() if k != "status"}
    return obj


# ---- Update ------------------------------------------------------------------------------

def track_update(old: dict | None, new: dict, manager: str, subresource: str, shape: Shape, now: str,
                 status_sub: bool = False) -> list[dict]:
    """new's managedFields after a write by `manager` (operation Update)."""
    entries = decode((old or {}).get("metadata", {}).get("managedFields"))
    before = _flat(_scope(old, subresource, status_sub), shape, maps=True)
    after = _flat(_scope(new, subresource, status_sub), shape, maps=True)
    removed = before.keys() - after.keys()
    added = after.keys() - before.keys()
    changed = {p for p in after.keys() & before.keys()
               if not is_container(after[p]) and after[p] != before[p]}
    owned = added | changed
    for e in entries:
        e.fields -= removed
        e.fields -= changed
    if owned:
        mine = Entry(manager, "Update", new.get("apiVersion", ""), now, set(), subresource)
        found = next((e for e in entries if e.key() == mine.key()), None)
        if found is None:
            entries.append(mine)
            found = mine
        found.fields |= owned
        found.time = now
    return encode(entries)


# ---- Apply ---------------------------------------------------------------------------------

def describe(e: Entry) -> str:
    """printManager: how a conflict names its manager."""
    s = json.dumps(e.manager)
    if e.subresource:
        s += f" with subresource {json.dumps(e.subresource)}"
    if e.operation == "Update":
        s += f" using {e.api_version}" + (f" at {e.time}" if e.time else "")
    return s


def conflict_message(conflicts: list[tuple[str, str]]) -> str:
    if len(conflicts) == 1:
        return f"Apply failed with 1 conflict: conflict with {conflicts[0][0]}: {conflicts[0][1]}"
    by: dict[str, list[str]] = {}
    for who, path in conflicts:
        by.setdefault(who, []).append(path)
    lines = []
    for who in sorted(by):
        lines.append(f"conflicts with {who}:")
        lines.extend(f"- {p}" for p in by[who])
    return f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)


def apply(live: dict | None, config: dict, manager: str, subresource: str, shape: Shape, now: str,
          force: bool, status_sub: bool = False) -> dict:
    """The object after applying `config` as `manager`, managedFields included;
    ApplyConflict when another manager owns a field with another value."""
    base = copy.deepcopy(live) if live else {}
    entries = decode(base.get("metadata", {}).get("managedFields"))
    mine = next((e for e in entries if e.key() == (manager, "Apply", subresource)), None)
    applied = _flat(_scope(config, subresource, status_sub), shape)
    current = _flat(base, shape)
    conflicts, taken = [], []
    for e in entries:
        if e is mine:
            continue
        for p in sorted(e.fields & applied.keys()):
            if is_container(applied[p]) or p not in current or current[p] == applied[p]:
                continue
            conflicts.append((describe(e), path_string(p)))
            taken.append((e, p))
    if conflicts and not force and not _handed_over(base, taken, shape):
        raise ApplyConflict(conflicts)
    for e, p in taken:
        e.fields.discard(p)
    merged = _merge(base, _scope(config, subresource, status_sub) or {}, (), shape)
    if mine is not None:
        others = set().union(*(e.fields for e in entries if e is not mine))
        for p in sorted(mine.fields - applied.keys() - others, key=len):     # items before their fields
            _remove(merged, p, shape)
    else:
        mine = Entry(manager, "Apply", config.get("apiVersion", ""), now, set(), subresource)
        entries.append(mine)
    keep_last_applied(merged, config, manager)
    unchanged = mine.fields == set(applied) and not taken and _without_fields(merged) == _without_fields(base)
    mine.fields = set(applied)
    mine.api_version = config.get("apiVersion", mine.api_version)
    if not unchanged:                 # a no-op apply writes nothing, as kube's (same time, same resourceVersion)
        mine.time = now
    merged.setdefault("metadata", {})["managedFields"] = encode(entries)
    return merged


def _without_fields(obj: dict) -> dict:
    return {**obj, "metadata": {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}}


CLIENT_SIDE_APPLY = "kubectl-client-side-apply"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _handed_over(live: dict, taken: list, shape: Shape) -> bool:
    """kube's lastAppliedManager: conflicts only with client-side apply, on
    fields its last-applied configuration holds, are no conflict — the
    object moves from client-side to server-side apply."""
    if not taken or any(e.manager != CLIENT_SIDE_APPLY for e, _ in taken):
        return False
    try:
        last = json.loads(((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED) or "")
    except ValueError:
        return False
    if not isinstance(last, dict):
        return False
    owned = _flat(last, shape).keys()
    return all(p in owned for _, p in taken)


def keep_last_applied(merged: dict, config: dict, manager: str) -> None:
    """kube's lastAppliedUpdater: after `kubectl apply --server-side` (manager
    "kubectl"), an object that has a last-applied annotation gets the applied
    configuration there, so client-side apply can take over again."""
    ann = (merged.get("metadata") or {}).get("annotations") or {}
    if manager != "kubectl" or LAST_APPLIED not in ann:
        return
    last = copy.deepcopy(config)
    last.setdefault("metadata", {}).setdefault("annotations", {}).pop(LAST_APPLIED, None)
    ann[LAST_APPLIED] = json.dumps(last, separators=(",", ":"), sort_keys=True) + "\n"


def _merge(live, cfg, names: tuple[str, ...], shape: Shape):
    if isinstance(cfg, dict) and isinstance(live, dict) and not shape.atomic(names):
        out = dict(live)
        for k, v in cfg.items():
            if names == () and k in ("apiVersion", "kind"):
                out[k] = v
            elif v is None:
                out.pop(k, None)
            else:
                out[k] = _merge(live.get(k), v, names + (k,), shape)
        return out
    if isinstance(cfg, list) and isinstance(live, list):
        ltype, keys = shape.list_type(names)
        if ltype == "map" and all(isinstance(i, dict) for i in cfg + live):
            out = list(live)
            index = {json.dumps(item_key(i, keys), sort_keys=True): n for n, i in enumerate(out)}
            for item in cfg:
                k = json.dumps(item_key(item, keys), sort_keys=True)
                if k in index:
                    out[index[k]] = _merge(out[index[k]], item, names, shape)
                else:
                    index[k] = len(out)
                    out.append(copy.deepcopy(item))
            return out
        if ltype == "set":
            return list(live) + [v for v in cfg if v not in live]
    return copy.deepcopy(cfg)


def _remove(obj: dict, path: Path, shape: Shape) -> None:
    """Drop the field, list item or set value at `path` (if still there)."""
    node, names = obj, ()
    for i, elem in enumerate(path):
        last = i == len(path) - 1
        kind, _, rest = elem.partition(":")
        if kind == "f":
            if not isinstance(node, dict) or rest not in node:
                return
            if last:
                del node[rest]
                return
            node, names = node[rest], names + (rest,)
        elif kind in ("k", "v") and isinstance(node, list):
            want = json.loads(rest)
            _, keys = shape.list_type(names)
            match = [n for n, item in enumerate(node)
                     if (item_key(item, keys) == want if kind == "k" and isinstance(item, dict) else item == want)]
            if not match:
                return
            if last:
                del node[match[0]]
                return
            node = node[match[0]]
        else:
            return
