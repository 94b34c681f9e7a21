"""Events: what controllers and kubelets tell the user about an object
(`Scheduled`, `ClusterIPAllocated`, `Killing`, ...), as core/v1 Event objects
that `get events` and `describe` show. Repeats of one reason on one object
bump `count` instead of piling up."""
from __future__ import annotations

import hashlib
import logging
import time

log = logging.getLogger("nsplane.events")


def event_object(involved: dict, reason: str, message: str, etype: str = "Normal",
                 component: str = "nsplane", now: str | None = None) -> dict:
    from agent.registry import now_iso
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


def record(store, involved: dict, reason: str, message: str, etype: str = "Normal",
           component: str = "nsplane") -> None:
    """Write or bump an Event straight into the store (server-side callers)."""
    from agent.store import AlreadyExists, NotFound
    ev = event_object(involved, reason, message, etype, component)
    ns, name = ev["metadata"]["namespace"], ev["metadata"]["name"]
    try:
        ev["metadata"]["uid"] = hashlib.sha1(f"{ns}/{name}{time.time()}".encode()).hexdigest()
        ev["metadata"]["creationTimestamp"] = ev["firstTimestamp"]
        store.create("events", ev)
    except AlreadyExists:
        try:
            def bump(cur):
                cur["count"] = cur.get("count", 1) + 1
                cur["lastTimestamp"] = ev["lastTimestamp"]
                return cur
            store.guaranteed_update("events", ns, name, bump)
        except NotFound:
            pass
    except Exception:
        log.exception("could not record event %s for %s", reason, name)
