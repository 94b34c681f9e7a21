"""ReferenceGrant (gateway.networking.k8s.io/v1beta1): may an object in one
namespace refer to an object in another? A grant lives in the target's
namespace, names the referrers (`from`: group, kind, namespace) and the
targets (`to`: group, kind, and optionally a name). A reference within one
namespace needs no grant.

Pure: grants are plain dicts."""
from __future__ import annotations


def permitted(grants: list[dict], *, from_group: str, from_kind: str, from_ns: str,
              to_group: str, to_kind: str, to_ns: str, to_name: str) -> bool:
    if from_ns == to_ns:
        return True
    for g in grants:
        if g["metadata"].get("namespace") != to_ns:
            continue
        spec = g.get("spec") or {}
        if not any(f.get("group", "") == from_group and f.get("kind") == from_kind
                   and f.get("namespace") == from_ns for f in spec.get("from") or ()):
            continue
        if any(t.get("group", "") == to_group and t.get("kind") == to_kind
               and t.get("name") in (None, "", to_name) for t in spec.get("to") or ()):
            return True
    return False
