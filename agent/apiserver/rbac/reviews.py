"""authorization.k8s.io/v1: the access reviews `kubectl auth can-i` asks
(pkg/registry/authorization): created, answered, never stored.

- SelfSubjectAccessReview: may I (the requester, after impersonation) do
  this? (`kubectl auth can-i list pods [--as ...]`)
- SubjectAccessReview / LocalSubjectAccessReview: may this user (spec.user,
  groups, uid, extra) do it? (the latter within its URL's namespace)
- SelfSubjectRulesReview: the rules I hold in a namespace (`kubectl auth
  can-i --list`), from RBAC plus, for nodes, the Node authorizer's static
  rules (incomplete, as kube marks it, since its graph is not a rule list).

The status is kube's: {allowed, reason} ("denied" only when an authorizer
denies outright, which RBAC never does).
"""
from __future__ import annotations

from agent.apiserver.authn.user import UserInfo
from agent.apiserver.rbac.node import node_name
from agent.apiserver.rbac.rules import Attributes
from agent.apiserver.registry import APIError

GROUP = "authorization.k8s.io"
API_VERSION = f"{GROUP}/v1"


def _invalid(kind: str, causes: list[tuple[str, str]]) -> APIError:
    msgs = [f"{f}: {m}" for f, m in causes]
    body = msgs[0] if len(msgs) == 1 else "[" + ", ".join(msgs) + "]"
    return APIError(422, "Invalid", f'{kind}.{GROUP} "" is invalid: {body}',
                    {"group": GROUP, "kind": kind, "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f}
                                                              for f, m in causes]})


def attributes_of(kind: str, spec: dict) -> Attributes:
    """The attributes a review's spec asks about (exactly one of resourceAttributes
    or nonResourceAttributes)."""
    res, non = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if bool(res) == bool(non):
        field = "spec.resourceAttributes" if not res else "spec.nonResourceAttributes"
        raise _invalid(kind, [(field, "Invalid value: \"null\": exactly one of nonResourceAttributes or "
                                      "resourceAttributes must be specified")])
    if non:
        return Attributes(str(non.get("verb") or ""), str(non.get("path") or ""))
    return Attributes(str(res.get("verb") or ""), "", True, str(res.get("group") or ""),
                      str(res.get("namespace") or ""), str(res.get("resource") or ""),
                      str(res.get("subresource") or ""), str(res.get("name") or ""))


def _status(authorizer, user: UserInfo, a: Attributes) -> dict:
    ok, reason = authorizer.decide(user, a)
    out: dict = {"allowed": ok}
    if reason:
        out["reason"] = reason
    return out


def _answer(kind: str, body: dict, spec: dict, status: dict) -> dict:
    md = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    return {"kind": kind, "apiVersion": API_VERSION, "metadata": {**md, "creationTimestamp": None},
            "spec": spec, "status": status}


def _spec(kind: str, body) -> dict:
    if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
        raise _invalid(kind, [("spec", "Required value")])
    return body["spec"]


def review(authorizer, kind: str, namespace: str | None, user: UserInfo, body: dict) -> dict:
    """The answered review of kind `kind` for a POST by `user`."""
    spec = _spec(kind, body)
    if kind == "SelfSubjectRulesReview":
        return _answer(kind, body, spec, rules_review(authorizer, user, str(spec.get("namespace") or "")))
    a = attributes_of(kind, spec)
    if kind == "SelfSubjectAccessReview":
        return _answer(kind, body, spec, _status(authorizer, user, a))
    if not spec.get("user") and not spec.get("groups"):
        raise _invalid(kind, [("spec.user", 'Invalid value: "": at least one of user or group must be specified')])
    if kind == "LocalSubjectAccessReview":
        if not a.resource_request or a.namespace != namespace:
            raise _invalid(kind, [("spec.resourceAttributes.namespace",
                                   f'Invalid value: "{a.namespace}": must match metadata.namespace')])
    subject = UserInfo(str(spec.get("user") or ""), str(spec.get("uid") or ""),
                       tuple(str(g) for g in spec.get("groups") or []),
                       {k: list(v) for k, v in (spec.get("extra") or {}).items()})
    return _answer(kind, body, spec, _status(authorizer, subject, a))


def rules_review(authorizer, user: UserInfo, namespace: str) -> dict:
    """SubjectRulesReviewStatus: RBAC's rules in `namespace` (plus nodes' static rules)."""
    rules = authorizer.rbac.rules_for(user, namespace)
    incomplete = False
    if node_name(user) is not None:
        rules = rules + authorizer.node.node_rules
        incomplete = True
    resource_rules, url_rules = [], []
    for r in rules:
        if r.get("nonResourceURLs"):
            url_rules.append({"verbs": list(r.get("verbs") or []), "nonResourceURLs": list(r["nonResourceURLs"])})
            continue
        out = {"verbs": list(r.get("verbs") or [])}
        for key in ("apiGroups", "resources", "resourceNames"):
            if r.get(key):
                out[key] = list(r[key])
        resource_rules.append(out)
    return {"resourceRules": resource_rules, "nonResourceRules": url_rules, "incomplete": incomplete}
