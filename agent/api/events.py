"""Events: what controllers and kubelets tell the user about an object
(`Scheduled`, `ClusterIPAllocated`, `Killing`, ...), as core/v1 Event objects
that `get events` and `describe` show. Repeats of one reason on one object
bump `count` instead of piling up.

`event_object` builds one; controllers in the API server's process write it
through the registry (agent/controllers/base.py), and processes that talk
to the API (the kubelet, the speaker) use `Recorder(client, component)`,
with client-go's correlation (`Correlator`)."""
from __future__ import annotations

import copy
import hashlib
import logging
import threading
import time

from agent.api.objects import now_iso

log = logging.getLogger("nsplane.events")


def event_object(involved: dict, reason: str, message: str, etype: str = "Normal",
                 component: str = "nsplane", now: str | None = None) -> dict:
    md = involved["metadata"]
    stamp = now or now_iso()
    digest = hashlib.sha1(f"{md.get('uid')}{reason}{message}".encode()).hexdigest()[:16]
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{md['name']}.{digest}", "namespace": md.get("namespace") or "default"},
        "involvedObject": {"apiVersion": involved.get("apiVersion"), "kind": involved.get("kind"),
                           "name": md["name"], "namespace": md.get("namespace", ""), "uid": md.get("uid")},
        "reason": reason, "message": message, "type": etype, "count": 1,
        "firstTimestamp": stamp, "lastTimestamp": stamp,
        "source": {"component": component},
        "reportingComponent": component,
    }


# ---- client side: a recorder with client-go's correlation ------------------

SIMILAR_LIMIT = 10          # client-go: defaultAggregateMaxEvents
SIMILAR_WINDOW = 600.0      # client-go: defaultAggregateIntervalInSeconds
CACHE_SIZE = 4096


class Correlator:
    """client-go's EventCorrelator, in short: an identical event (same object,
    reason, type, source and message) bumps `count` of the first one; more
    than SIMILAR_LIMIT events differing only in message within SIMILAR_WINDOW
    are folded into one "(combined from similar events): ..." event.

    observe() is pure over its own cache: it says what to write."""

    def __init__(self):
        self._seen: dict[tuple, dict] = {}
        self._similar: dict[tuple, list[float]] = {}

    @staticmethod
    def _keys(ev: dict) -> tuple[tuple, tuple]:
        io, src = ev["involvedObject"], ev.get("source", {})
        base = (src.get("component"), src.get("host"), io.get("kind"), io.get("namespace"), io.get("name"),
                io.get("uid"), ev.get("type"), ev.get("reason"))
        return base + (ev.get("message"),), base

    def observe(self, ev: dict, now: float) -> tuple[str, dict]:
        """('create', event) or ('update', the earlier event with count+1)."""
        exact, similar = self._keys(ev)
        stamps = [t for t in self._similar.get(similar, []) if now - t < SIMILAR_WINDOW] + [now]
        self._similar[similar] = stamps
        if len(stamps) > SIMILAR_LIMIT:
            ev = dict(ev, message=f"(combined from similar events): {ev['message']}")
            exact = similar + ("(combined)",)     # one event for all of them, its count going up
        prev = self._seen.get(exact)
        if prev is not None:
            prev = copy.deepcopy(prev)
            prev["count"] = prev.get("count", 1) + 1
            prev["lastTimestamp"] = ev["lastTimestamp"]
            self._seen[exact] = prev
            return "update", prev
        if len(self._seen) >= CACHE_SIZE:
            self._seen.pop(next(iter(self._seen)))
            self._similar = {k: v for k, v in self._similar.items() if v and now - v[-1] < SIMILAR_WINDOW}
        self._seen[exact] = ev
        return "create", ev


class Recorder:
    """What a kubelet (or any client of the API) records events with:
    `Recorder(client, "kubelet", host=node).event(pod, "Started", "...")`."""

    def __init__(self, client, component: str, host: str | None = None):
        self.client, self.component, self.host = client, component, host
        self.correlator = Correlator()
        self._lock = threading.Lock()

    def event(self, obj: dict, reason: str, message: str, etype: str = "Normal") -> None:
        ev = event_object(obj, reason, message, etype, component=self.component)
        ev["metadata"]["name"] = f"{obj['metadata']['name']}.{time.time_ns():x}"
        if self.host:
            ev["source"]["host"] = self.host
        with self._lock:
            action, ev = self.correlator.observe(ev, time.monotonic())
        ns = ev["metadata"]["namespace"]
        try:
            if action == "update":
                try:
                    self.client.patch("events", ev["metadata"]["name"], {
                        "count": ev["count"], "lastTimestamp": ev["lastTimestamp"]}, ns)
                    return
                except Exception as e:   # gone (or never written): write it anew
                    if getattr(e, "code", None) != 404:
                        raise
            self.client.create("events", ev, ns)
        except Exception as e:
            log.debug("event %s on %s not recorded: %s", reason, obj["metadata"]["name"], e)
