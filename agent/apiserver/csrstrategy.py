"""The CertificateSigningRequest strategy (pkg/registry/certificates/
certificates/strategy.go): who asked, and which write may change what.

- create: the status is cleared and spec.username / uid / groups are the
  authenticated requester's, whatever the body says, so an approver can
  trust them;
- update of the object: spec and status stay (only metadata changes);
- /status: the signer's write: status.certificate and conditions other
  than Approved and Denied;
- /approval: the approver's write (`kubectl certificate approve|deny`):
  the Approved and Denied conditions, which once set stay set.

Conditions get lastUpdateTime and lastTransitionTime when they lack them.
"""
from __future__ import annotations

import copy

from agent.api.objects import now_iso
from agent.apiserver.authn.user import AUTHENTICATED, UserInfo

KIND = "CertificateSigningRequest"
_APPROVAL = ("Approved", "Denied")


def stamp_requester(csr: dict, user: UserInfo) -> None:
    """What kube-apiserver's PrepareForCreate records of the requesting
    user: name, uid, groups and extra, as authenticated."""
    if not isinstance(csr.get("spec"), dict):
        return
    csr.pop("status", None)
    spec = csr["spec"]
    for field in ("username", "uid", "groups", "extra"):
        spec.pop(field, None)
    spec["username"] = user.name
    if user.uid:
        spec["uid"] = user.uid
    spec["groups"] = list(dict.fromkeys([*user.groups, AUTHENTICATED]))
    if user.extra:
        spec["extra"] = {k: list(v) for k, v in user.extra.items()}


def merge_update(old: dict, obj: dict, subresource: str | None) -> dict:
    """The stored object after a write to `subresource` (None: the object)."""
    new = copy.deepcopy(old)
    md, omd = new["metadata"], obj.get("metadata") or {}
    for field in ("labels", "annotations", "ownerReferences", "finalizers"):
        if field in omd:
            md[field] = omd[field]
        elif subresource is None:
            md.pop(field, None)
    status = obj.get("status") if isinstance(obj.get("status"), dict) else {}
    old_conds = (old.get("status") or {}).get("conditions") or []
    given = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    if subresource == "status":
        conds = [c for c in old_conds if c.get("type") in _APPROVAL] + \
                [c for c in given if c.get("type") not in _APPROVAL]
        new["status"] = {**status, "conditions": _stamped(conds, old_conds)}
    elif subresource == "approval":
        kept = [c for c in old_conds if c.get("type") in _APPROVAL]
        added = [c for c in given if c.get("type") in _APPROVAL and c.get("type") not in {k["type"] for k in kept}]
        others = [c for c in given if c.get("type") not in _APPROVAL]
        new.setdefault("status", {})["conditions"] = _stamped(kept + added + others, old_conds)
    if not new.get("status", {}).get("conditions"):
        new.get("status", {}).pop("conditions", None)
    return new


def _stamped(conds: list[dict], old: list[dict]) -> list[dict]:
    now = now_iso()
    before = {c.get("type"): c for c in old}
    out = []
    for c in conds:
        c = dict(c)
        c.setdefault("status", "True")
        prev = before.get(c.get("type"))
        if prev == c:
            out.append(c)
            continue
        c.setdefault("lastUpdateTime", now)
        changed = prev is None or prev.get("status") != c.get("status")
        c.setdefault("lastTransitionTime", now if changed else prev.get("lastTransitionTime", now))
        out.append(c)
    return out
