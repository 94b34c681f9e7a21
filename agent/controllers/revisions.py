"""ControllerRevisions: the template history of a StatefulSet or DaemonSet
(k8s.io/kubernetes/pkg/controller/history), which `kubectl rollout history`
lists and `kubectl rollout undo` patches back.

A revision's `data` is the strategic merge patch that restores its pod
template (`{"spec": {"template": {..., "$patch": "replace"}}}`), its name
`<owner>-<hash of data>`, its labels the template's plus
`controller.kubernetes.io/hash`, and `revision` a number increasing with
each new (or re-applied) template. `Revisions.sync` finds or makes the
revision of the owner's current template; `truncate` keeps
`spec.revisionHistoryLimit` unused ones. Pure parts: `revision_data`,
`revision_hash`, `next_revision`, `history_to_delete`.
"""
from __future__ import annotations

import copy

from agent.api.kinds import BY_RESOURCE
from agent.apiserver.registry import APIError
from agent.controllers.base import controller_ref, owner_ref
from agent.controllers.deployment import template_hash

HASH_LABEL = "controller.kubernetes.io/hash"
REVISIONS = BY_RESOURCE["controllerrevisions"]


def revision_data(owner: dict) -> dict:
    """getPatch: the patch that puts this template back."""
    tmpl = copy.deepcopy(owner["spec"]["template"])
    tmpl["$patch"] = "replace"
    return {"spec": {"template": tmpl}}


def revision_hash(data: dict, collisions: int = 0) -> str:
    """FNV-32a of the data (and the collision count), safe-encoded."""
    return template_hash(data, collisions)


def next_revision(revisions: list[dict]) -> int:
    return 1 + max((r.get("revision", 0) for r in revisions), default=0)


def history_to_delete(revisions: list[dict], in_use: set[str], limit: int) -> list[dict]:
    """The oldest revisions no pod or status names, beyond `limit` of them."""
    unused = sorted((r for r in revisions if r["metadata"]["name"] not in in_use), key=lambda r: r.get("revision", 0))
    return unused[:max(0, len(unused) - limit)]


class Revisions:
    """ControllerRevision bookkeeping for one controller (its store and registry)."""

    def __init__(self, store, registry):
        self.store, self.registry = store, registry

    def owned(self, owner: dict) -> list[dict]:
        uid = owner["metadata"]["uid"]
        return sorted((r for r in self.store.list("controllerrevisions", owner["metadata"]["namespace"])[0]
                       if (controller_ref(r) or {}).get("uid") == uid), key=lambda r: r.get("revision", 0))

    def sync(self, owner: dict, revisions: list[dict]) -> dict:
        """The revision of the owner's current template: an equal one
        (renumbered to the newest when it is an older one, as after a
        rollback), or a new one."""
        data = revision_data(owner)
        latest = revisions[-1] if revisions else None
        equal = [r for r in revisions if r.get("data") == data]
        ns = owner["metadata"]["namespace"]
        if equal:
            found = equal[-1]
            if found is latest:
                return found
            number = next_revision(revisions)

            def renumber(cur):
                cur["revision"] = number
                return cur
            return self.registry.guaranteed_update(REVISIONS, ns, found["metadata"]["name"], renumber)
        collisions = (owner.get("status") or {}).get("collisionCount", 0) or 0
        h = revision_hash(data, collisions)
        labels = dict((owner["spec"]["template"].get("metadata") or {}).get("labels") or {})
        labels[HASH_LABEL] = h
        rev = {"apiVersion": "apps/v1", "kind": "ControllerRevision",
               "metadata": {"name": f"{owner['metadata']['name']}-{h}", "namespace": ns, "labels": labels,
                            "ownerReferences": [owner_ref(owner)]},
               "data": data, "revision": next_revision(revisions)}
        try:
            return self.registry.create(REVISIONS, ns, rev)
        except APIError as e:
            if e.code != 409:
                raise
            existing = self.store.get("controllerrevisions", ns, rev["metadata"]["name"])
            if existing.get("data") == data and (controller_ref(existing) or {}).get("uid") == owner["metadata"]["uid"]:
                return existing
            raise

    def truncate(self, owner: dict, revisions: list[dict], in_use: set[str]) -> None:
        limit = owner["spec"].get("revisionHistoryLimit", 10)
        for r in history_to_delete(revisions, in_use, limit if limit is not None else 10):
            try:
                self.registry.delete(REVISIONS, r["metadata"]["namespace"], r["metadata"]["name"])
            except APIError as e:
                if e.code != 404:
                    raise
