"""Event expiry: an Event is deleted `ttl` seconds after it was last seen
(its lastTimestamp, eventTime or series.lastObservedTime, else its
creationTimestamp), as kube-apiserver's --event-ttl (default 1h) has etcd
do with a lease renewed on every write. Each Event waits in the work queue
until its own expiry; a newer occurrence (an update) moves it later."""
from __future__ import annotations

import logging
import time
from datetime import datetime

from agent.api.kinds import BY_RESOURCE
from agent.apiserver.registry import APIError
from agent.apiserver.store import NotFound
from agent.controllers.base import Controller

log = logging.getLogger("nsplane.controllers")
DEFAULT_TTL = 3600.0


def _epoch(ts) -> float | None:
    if not isinstance(ts, str) or not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def last_seen(event: dict) -> float:
    """When the Event last happened (epoch seconds); 0 when it says nowhere."""
    times = [_epoch(event.get("lastTimestamp")), _epoch(event.get("eventTime")),
             _epoch((event.get("series") or {}).get("lastObservedTime")),
             _epoch(event.get("metadata", {}).get("creationTimestamp"))]
    return max((t for t in times if t is not None), default=0.0)


class EventTTLController(Controller):
    name = "event-ttl"
    watches = {"events": lambda self, o: [(o["metadata"].get("namespace"), o["metadata"]["name"])]}

    def __init__(self, store, registry, ttl: float = DEFAULT_TTL):
        super().__init__(store, registry)
        self.ttl = ttl

    def sync(self, key) -> float | None:
        ns, name = key
        with self.store.transaction():
            try:
                event = self.store.get("events", ns, name)
            except NotFound:
                return None
            left = last_seen(event) + self.ttl - time.time()
            if left > 0:
                return left + 0.5          # back at its expiry
            try:
                self.registry.delete(BY_RESOURCE["events"], ns, name)
            except APIError as e:
                if e.code != 404:
                    raise
        log.debug("event %s/%s expired (older than %gs)", ns, name, self.ttl)
        return None
