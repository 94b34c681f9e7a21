"""metav1.Condition lists as Gateway API controllers write them: each
condition carries the object's observedGeneration, and lastTransitionTime
changes only when the status flips (so an unchanged status writes nothing).

Pure: `now` is passed in."""
from __future__ import annotations

GROUP = "gateway.networking.k8s.io"
CONTROLLER_NAME = "nsplane.io/gateway-controller"
CLASS_NAME = "nsplane"


def cond(ctype: str, ok: bool | None, reason: str, message: str) -> dict:
    """A condition before generation and time are stamped (ok None: Unknown)."""
    status = "Unknown" if ok is None else ("True" if ok else "False")
    return {"type": ctype, "status": status, "reason": reason, "message": message}


def stamp(new: list[dict], old: list[dict] | None, generation: int, now: str) -> list[dict]:
    """`new` with observedGeneration and lastTransitionTime: the old time is
    kept while the status stays the same."""
    before = {c.get("type"): c for c in old or ()}
    out = []
    for c in new:
        prev = before.get(c["type"])
        t = prev["lastTransitionTime"] if prev and prev.get("status") == c["status"] \
            and prev.get("lastTransitionTime") else now
        out.append({**c, "observedGeneration": generation, "lastTransitionTime": t})
    return out


def find(conds: list[dict] | None, ctype: str) -> dict | None:
    return next((c for c in conds or () if c.get("type") == ctype), None)


def is_true(conds: list[dict] | None, ctype: str) -> bool:
    c = find(conds, ctype)
    return bool(c) and c.get("status") == "True"
