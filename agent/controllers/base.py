"""The controller machinery: an in-process watch of the store feeding a
deduplicating work queue, and one worker thread that retries with backoff;
helpers for ownerReferences and Events every controller shares."""
from __future__ import annotations

import logging
import random
import threading
import time
from typing import Callable, Iterable

from agent.api import selectors
from agent.api.events import event_object
from agent.api.kinds import BY_RESOURCE
from agent.apiserver.registry import APIError
from agent.apiserver.store import Event, NotFound, Store

log = logging.getLogger("nsplane.controllers")


class WorkQueue:
    """Keys waiting to be synced; a key queued twice is synced once."""

    def __init__(self):
        self._keys: dict = {}
        self._cond = threading.Condition()

    def add(self, key, delay: float = 0.0) -> None:
        due = time.monotonic() + delay
        with self._cond:
            if key not in self._keys or self._keys[key] > due:
                self._keys[key] = due
            self._cond.notify()

    def get(self, stop: threading.Event):
        with self._cond:
            while not stop.is_set():
                now = time.monotonic()
                ready = [k for k, due in self._keys.items() if due <= now]
                if ready:
                    key = min(ready, key=self._keys.__getitem__)
                    del self._keys[key]
                    return key
                wait = min((due - now for due in self._keys.values()), default=1.0)
                self._cond.wait(min(max(wait, 0.01), 1.0))
        return None


def watch_store(store: Store, resource: str, handler: Callable[[Event], None],
                stop: threading.Event, initial: Callable[[dict], None] | None = None) -> threading.Thread:
    """Call `initial(obj)` for what exists, then `handler(event)` for every change."""
    def run():
        while not stop.is_set():
            items, rv = store.list(resource)
            if initial:
                for obj in items:
                    initial(obj)
            try:
                for ev in store.watch(resource, None, rv, stop, timeout=3600):
                    if ev is not None:
                        handler(ev)
            except Exception:
                log.exception("store watch of %s failed; restarting", resource)
                stop.wait(1.0)
    t = threading.Thread(target=run, name=f"watch-{resource}", daemon=True)
    t.start()
    return t


class Controller:
    """Subclasses set `name`, `watches` (resource -> key function returning
    keys to enqueue) and implement `sync(key)`, which reads `store` and writes
    through `registry` (an error from either retries the key with backoff)."""

    name = "controller"
    watches: dict[str, Callable] = {}

    def __init__(self, store: Store, registry):
        self.store, self.registry = store, registry
        self.queue = WorkQueue()
        self._failures: dict = {}

    def keys_for(self, resource: str, obj: dict) -> Iterable:
        return self.watches[resource](self, obj)

    def start(self, stop: threading.Event) -> None:
        for resource in self.watches:
            watch_store(self.store, resource,
                        lambda ev, r=resource: self._enqueue(r, ev.obj),
                        stop, initial=lambda obj, r=resource: self._enqueue(r, obj))
        threading.Thread(target=self._work, args=(stop,), name=self.name, daemon=True).start()

    def _enqueue(self, resource: str, obj: dict) -> None:
        for key in self.keys_for(resource, obj) or ():
            self.queue.add(key)

    def _work(self, stop: threading.Event) -> None:
        while not stop.is_set():
            key = self.queue.get(stop)
            if key is None:
                return
            try:
                again = self.sync(key)
                self._failures.pop(key, None)
                if again:
                    self.queue.add(key, again)
            except Exception as e:
                n = self._failures.get(key, 0) + 1
                self._failures[key] = n
                delay = min(0.05 * 2 ** n, 5.0)
                log.warning("%s: sync %s failed (%s); retry in %.2fs", self.name, key, e, delay,
                            exc_info=n == 1)
                self.queue.add(key, delay)

    def sync(self, key) -> float | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def live(self, resource: str, namespace: str, name: str) -> dict | None:
        """The object, or None when it is gone or being deleted (nothing to
        reconcile); any other store error goes to `_work`'s retry."""
        try:
            obj = self.store.get(resource, namespace, name)
        except NotFound:
            return None
        return None if obj["metadata"].get("deletionTimestamp") else obj

    def put_status(self, resource: str, obj: dict, status: dict) -> None:
        """Write `obj`'s status through the status subresource (the registry
        writes nothing when it is unchanged)."""
        md = obj["metadata"]
        self.registry.guaranteed_update(BY_RESOURCE[resource], md.get("namespace"), md["name"],
                                        lambda cur: {**cur, "status": status}, subresource="status")


# The letters of k8s.io/apimachinery's utilrand (no vowels, no look-alikes):
# the random suffixes of generated names and the encoding of template hashes.
ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"


def random_suffix(rng=random, n: int = 5) -> str:
    """`n` random letters, as kube appends to a generated name (web-7d4f9)."""
    return "".join(rng.choice(ALPHANUMS) for _ in range(n))


def generated_name(prefix: str, rng=random) -> str:
    """SimpleNameGenerator: the prefix (cut to 58 characters) and 5 random ones."""
    return prefix[:58] + random_suffix(rng)


def ns_name(obj: dict) -> tuple[str, str]:
    md = obj["metadata"]
    return md.get("namespace", ""), md["name"]


def owned_by(obj: dict, uid: str) -> bool:
    return any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences", []) or [])


def controller_ref(obj: dict) -> dict | None:
    for r in obj["metadata"].get("ownerReferences", []) or []:
        if r.get("controller"):
            return r
    return None


def owner_key(kind: str, owners: str | None = None) -> Callable:
    """A `watches` key function: an object's namespace and the name of its
    controller of `kind` (pods -> their StatefulSet, jobs -> their CronJob);
    with `owners` (a resource), an orphan's key is every such owner whose
    selector matches it, which may adopt it."""
    def keys(self, obj: dict) -> list:
        ns, ref = obj["metadata"]["namespace"], controller_ref(obj)
        if ref is not None or owners is None:
            return [(ns, ref["name"])] if ref and ref.get("kind") == kind else []
        labels = obj["metadata"].get("labels") or {}
        out = []
        for o in self.store.list(owners, ns)[0]:
            try:
                if selectors.from_label_selector((o.get("spec") or {}).get("selector")).matches(labels):
                    out.append(ns_name(o))
            except ValueError:
                continue
        return out
    return keys


def owner_ref(owner: dict) -> dict:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def record_event(registry, involved: dict, reason: str, message: str, etype: str = "Normal",
                 component: str = "nsplane") -> None:
    """Write an Event about `involved` through the registry, or bump the
    count of the same one; a failure is logged, never raised."""
    kind = BY_RESOURCE["events"]
    ev = event_object(involved, reason, message, etype, component)
    ns, name = ev["metadata"]["namespace"], ev["metadata"]["name"]

    def bump(cur):
        cur["count"] = cur.get("count", 1) + 1
        cur["lastTimestamp"] = ev["lastTimestamp"]
        return cur
    try:
        try:
            registry.create(kind, ns, ev)
        except APIError as e:
            if e.code != 409:
                raise
            registry.guaranteed_update(kind, ns, name, bump)
    except Exception:
        log.exception("could not record event %s for %s", reason, name)
