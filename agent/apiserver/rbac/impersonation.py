"""Impersonation (k8s.io/apiserver endpoints/filters/impersonation.go):
`kubectl --as=alice --as-group=devs` sends Impersonate-User,
Impersonate-Group (repeatable), Impersonate-Uid and Impersonate-Extra-<key>;
the request then runs as that user when the caller may `impersonate` each
of them:

    users "alice"                           (resource users, group "")
    serviceaccounts "<name>" in <namespace> (a system:serviceaccount:<ns>:<name> user)
    groups "devs"                           (resource groups, group "")
    uids, userextras/<key>                  (group authentication.k8s.io)

The impersonated user gets system:authenticated (and a ServiceAccount its
system:serviceaccounts groups) as kube adds them. Anything else is kube's
403 for the first thing it may not impersonate.
"""
from __future__ import annotations

from agent.apiserver.authn.user import AUTHENTICATED, SA_PREFIX, UserInfo, service_account_groups
from agent.apiserver.rbac.rules import Attributes
from agent.apiserver.registry import APIError

USER, GROUP, UID = "Impersonate-User", "Impersonate-Group", "Impersonate-Uid"
EXTRA_PREFIX = "Impersonate-Extra-"
AUTHENTICATION_GROUP = "authentication.k8s.io"


def _header_values(headers, name: str) -> list[str]:
    return [v.strip() for v in (headers.get_all(name) or [])] if hasattr(headers, "get_all") else (
        [headers[name]] if name in headers else [])


def _extras(headers) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key in headers.keys():
        if key.lower().startswith(EXTRA_PREFIX.lower()):
            name = key[len(EXTRA_PREFIX):].lower()
            out.setdefault(name, []).extend(_header_values(headers, key))
    return out


def _user_attributes(name: str) -> Attributes:
    if name.startswith(SA_PREFIX):
        ns, _, sa = name[len(SA_PREFIX):].partition(":")
        return Attributes("impersonate", resource_request=True, namespace=ns, resource="serviceaccounts", name=sa)
    return Attributes("impersonate", resource_request=True, resource="users", name=name)


def impersonate(authorizer, user: UserInfo, headers) -> UserInfo:
    """The user to run the request as (the caller itself without the headers)."""
    names = _header_values(headers, USER)
    groups = _header_values(headers, GROUP)
    uids = _header_values(headers, UID)
    extras = _extras(headers)
    if not names:
        if groups or uids or extras:
            raise APIError(400, "BadRequest", "requested impersonation of groups, uid or extra without "
                                              "impersonating a user (add Impersonate-User)")
        return user
    name = names[0]
    asks = [_user_attributes(name)]
    asks += [Attributes("impersonate", resource_request=True, resource="groups", name=g) for g in groups]
    asks += [Attributes("impersonate", resource_request=True, group=AUTHENTICATION_GROUP, resource="uids", name=u)
             for u in uids[:1]]
    asks += [Attributes("impersonate", resource_request=True, group=AUTHENTICATION_GROUP, resource="userextras",
                        subresource=k, name=v) for k, vs in extras.items() for v in vs]
    for a in asks:
        authorizer.authorize(user, a)
    all_groups = list(groups)
    if name.startswith(SA_PREFIX):
        ns = name[len(SA_PREFIX):].partition(":")[0]
        all_groups += [g for g in service_account_groups(ns) if g not in all_groups]
    if name != "system:anonymous" and AUTHENTICATED not in all_groups:
        all_groups.append(AUTHENTICATED)
    return UserInfo(name, uids[0] if uids else "", tuple(all_groups), extras)
