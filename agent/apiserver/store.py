"""The store: every object of the cluster, with resourceVersion and watch.

SQLite in WAL mode is the durable copy (like k3s's kine); an in-memory index
answers reads, and a bounded event log serves watches resuming from a
resourceVersion. Every write bumps one global resourceVersion, as etcd's
revision does, and stamps it into the object's metadata.

Keys are (resource, namespace, name); namespace is "" for cluster-scoped kinds.
Objects are plain dicts in Kubernetes JSON shape. The store does no validation
and no defaulting: that is the API server's job.
"""
from __future__ import annotations

import copy
import json
import os
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

Key = tuple[str, str, str]


class StoreError(Exception):
    code = 500
    reason = "InternalError"


class NotFound(StoreError):
    code = 404
    reason = "NotFound"


class AlreadyExists(StoreError):
    code = 409
    reason = "AlreadyExists"


class Gone(StoreError):
    code = 410
    reason = "Expired"


@dataclass(frozen=True)
class Event:
    rv: int
    type: str          # ADDED | MODIFIED | DELETED
    resource: str
    namespace: str
    obj: dict


def key_of(resource: str, obj: dict) -> Key:
    md = obj.get("metadata", {})
    return (resource, md.get("namespace", "") or "", md["name"])


class Store:
    """Objects by key, persisted to SQLite, with a watchable event log."""

    def __init__(self, path: str, history: int = 100_000):
        self._path = path
        if path != ":memory:":
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS objects (resource TEXT, namespace TEXT, name TEXT,"
            " rv INTEGER, data TEXT, PRIMARY KEY (resource, namespace, name))")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER)")
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._objects: dict[str, dict[tuple[str, str], dict]] = {}   # resource -> (ns, name) -> object
        self._indexers: dict[str, dict[str, Callable[[dict], Iterable[str]]]] = {}
        self._indexes: dict[tuple[str, str], dict[str, set[tuple[str, str]]]] = {}
        self._log: deque[Event] = deque(maxlen=history)
        self._load()

    # ---- persistence -------------------------------------------------
    def _load(self) -> None:
        row = self._db.execute("SELECT v FROM meta WHERE k='rv'").fetchone()
        self._rv = row[0] if row else 0
        for resource, ns, name, data in self._db.execute(
                "SELECT resource, namespace, name, data FROM objects"):
            self._objects.setdefault(resource, {})[(ns, name)] = json.loads(data)
        # Watches cannot resume from before this process started.
        self._oldest = self._rv

    def _persist(self, key: Key, obj: dict | None) -> None:
        cur = self._db
        cur.execute("BEGIN")
        try:
            if obj is None:
                cur.execute("DELETE FROM objects WHERE resource=? AND namespace=? AND name=?", key)
            else:
                cur.execute("INSERT OR REPLACE INTO objects VALUES (?,?,?,?,?)",
                            (*key, self._rv, json.dumps(obj, separators=(",", ":"))))
            cur.execute("INSERT OR REPLACE INTO meta VALUES ('rv', ?)", (self._rv,))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- reads -------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    def get(self, resource: str, namespace: str, name: str) -> dict:
        with self._lock:
            obj = self._objects.get(resource, {}).get((namespace or "", name))
            if obj is None:
                raise NotFound(name)
            return copy.deepcopy(obj)

    def list(self, resource: str, namespace: str | None = None,
             predicate: Callable[[dict], bool] | None = None, *, copy_items: bool = True) -> tuple[list[dict], int]:
        """Objects of `resource`, sorted by namespace and name. copy_items=False hands
        out the live objects, for callers that only read them (scans at scale)."""
        with self._lock:
            items = [o for (ns, _), o in self._objects.get(resource, {}).items()
                     if (namespace is None or ns == namespace) and (predicate is None or predicate(o))]
            items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
            return (copy.deepcopy(items) if copy_items else items), self._rv

    def by_index(self, resource: str, index: str, value: str) -> list[dict]:
        """Copies of the objects whose `index` (see add_index) has `value`."""
        with self._lock:
            objects = self._objects.get(resource, {})
            return [copy.deepcopy(objects[k]) for k in sorted(self._indexes[(resource, index)].get(value, ()))]

    # ---- indexes -----------------------------------------------------
    def add_index(self, resource: str, name: str, values: Callable[[dict], Iterable[str]]) -> None:
        """Keep {value: {(ns, name)}} for `resource`, e.g. Services by ClusterIP, so
        allocation never scans every object (see `index`)."""
        with self._lock:
            self._indexers.setdefault(resource, {})[name] = values
            idx = self._indexes[(resource, name)] = {}
            for k, obj in self._objects.get(resource, {}).items():
                for v in values(obj):
                    idx.setdefault(v, set()).add(k)

    def index(self, resource: str, name: str) -> dict[str, set[tuple[str, str]]]:
        """The live index (read it under the store's lock; never modify it)."""
        return self._indexes[(resource, name)]

    def _reindex(self, resource: str, k: tuple[str, str], old: dict | None, new: dict | None) -> None:
        for name, values in self._indexers.get(resource, {}).items():
            idx = self._indexes[(resource, name)]
            for v in values(old) if old is not None else ():
                keys = idx.get(v)
                if keys is not None:
                    keys.discard(k)
                    if not keys:
                        del idx[v]
            for v in values(new) if new is not None else ():
                idx.setdefault(v, set()).add(k)

    # ---- writes ------------------------------------------------------
    def _write(self, resource: str, etype: str, key: Key, obj: dict | None, logged: dict) -> None:
        self._rv += 1
        objects = self._objects.setdefault(resource, {})
        self._reindex(resource, key[1:], objects.get(key[1:]), obj)
        if obj is not None:
            obj["metadata"]["resourceVersion"] = str(self._rv)
            objects[key[1:]] = obj
        else:
            objects.pop(key[1:], None)
            logged["metadata"]["resourceVersion"] = str(self._rv)
        self._persist(key, obj)
        self._log.append(Event(self._rv, etype, resource, key[1], copy.deepcopy(logged)))
        self._changed.notify_all()

    def create(self, resource: str, obj: dict) -> dict:
        obj = copy.deepcopy(obj)
        key = key_of(resource, obj)
        with self._lock:
            if key[1:] in self._objects.get(resource, {}):
                raise AlreadyExists(key[2])
            self._write(resource, "ADDED", key, obj, obj)
            return copy.deepcopy(obj)

    def update(self, resource: str, obj: dict) -> dict:
        """Replace an object (resourceVersion preconditions are the registry's)."""
        obj = copy.deepcopy(obj)
        key = key_of(resource, obj)
        with self._lock:
            cur = self._objects.get(resource, {}).get(key[1:])
            if cur is None:
                raise NotFound(key[2])
            self._write(resource, "MODIFIED", key, obj, obj)
            return copy.deepcopy(obj)

    def delete(self, resource: str, namespace: str, name: str) -> dict:
        key = (resource, namespace or "", name)
        with self._lock:
            cur = self._objects.get(resource, {}).get(key[1:])
            if cur is None:
                raise NotFound(name)
            gone = copy.deepcopy(cur)
            self._write(resource, "DELETED", key, None, gone)
            return gone

    def transaction(self) -> threading.RLock:
        """`with store.transaction():` — reads and writes in the block see no
        other writer in between (a check-then-write, such as allocation or
        a conflict check, is atomic). Re-entrant."""
        return self._lock

    # ---- watch -------------------------------------------------------
    def watch(self, resource: str, namespace: str | None, since: int,
              stop: threading.Event, timeout: float = 1800.0) -> Iterator[Event | None]:
        """Yield events of `resource` with rv > since. Yields None about every
        second while idle so the caller can notice a closed connection."""
        log = self._log
        if since < self._oldest or since > self._rv or (
                len(log) == log.maxlen and since < log[0].rv - 1):
            raise Gone(f"too old resource version: {since} ({self._rv})")
        deadline = time.monotonic() + timeout
        pos = since
        while not stop.is_set() and time.monotonic() < deadline:
            with self._lock:
                batch = [e for e in self._events_after(pos)
                         if e.resource == resource and (namespace is None or e.namespace == namespace)]
                if self._rv > pos:
                    pos = self._rv
                elif not batch:
                    self._changed.wait(1.0)
            if not batch:
                yield None
            for e in batch:
                yield e

    def _events_after(self, rv: int) -> list[Event]:
        log = self._log
        if not log or log[-1].rv <= rv:
            return []
        # The log is ordered by rv; scan from the end (watchers are usually current).
        out = []
        for e in reversed(log):
            if e.rv <= rv:
                break
            out.append(e)
        out.reverse()
        return out
