"""Who may call the kubelet's port, decided as the kubelet decides it
(pkg/kubelet/server: InstallAuthFilter, auth.go), with its answers:

- authentication: an x509 client certificate issued by the cluster CA (the
  TLS layer verifies it; this reads the user from its subject: CN is the
  user, each O a group). No certificate is 401 `Unauthorized`; there is no
  anonymous access (kubeadm sets `authentication.anonymous.enabled: false`)
  and no bearer-token webhook. A certificate from another CA fails the TLS
  handshake instead of getting a 401;
- request attributes: verb from the HTTP method, resource `nodes`,
  subresource `stats`, `metrics` or `log` for those paths, `proxy` for
  everything else (logs of containers, exec, attach, /pods, /healthz);
- authorization: what the API server's RBAC allows a kubeadm cluster's
  callers: group system:masters, and kube-apiserver-kubelet-client (bound to
  system:kubelet-api-admin). Anyone else is 403
  `Forbidden (user=..., verb=..., resource=nodes, subresource(s)=[...])`.

Pure: the peer certificate as `ssl.SSLSocket.getpeercert()` returns it in,
a decision out.
"""
from __future__ import annotations

from dataclasses import dataclass

ALLOWED_USERS = ("kube-apiserver-kubelet-client",)
ALLOWED_GROUPS = ("system:masters",)
UNAUTHORIZED = "Unauthorized"
_VERBS = {"POST": "create", "GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_SUBRESOURCES = (("/stats", "stats"), ("/metrics", "metrics"), ("/logs", "log"))


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]


def user_of(peer_cert: dict | None) -> User | None:
    """The user a verified client certificate names, or None without one."""
    if not peer_cert:
        return None
    cn, groups = "", []
    for rdn in peer_cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                cn = value
            elif key == "organizationName":
                groups.append(value)
    if not cn:
        return None
    return User(cn, tuple(groups))


def _is_subpath(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def attributes(method: str, path: str) -> tuple[str, str]:
    """(verb, subresource) of a request to the kubelet, as
    nodeAuthorizerAttributesGetter builds them ("" for an unknown method)."""
    sub = next((s for prefix, s in _SUBRESOURCES if _is_subpath(path, prefix)), "proxy")
    return _VERBS.get(method, ""), sub


def allowed(user: User) -> bool:
    return user.name in ALLOWED_USERS or any(g in ALLOWED_GROUPS for g in user.groups)


def forbidden_message(user: User, verb: str, subresource: str) -> str:
    return f"Forbidden (user={user.name}, verb={verb}, resource=nodes, subresource(s)=[{subresource}])\n"


def decide(peer_cert: dict | None, method: str, path: str) -> tuple[int, str] | None:
    """None to serve the request, else (HTTP status, plain-text body)."""
    user = user_of(peer_cert)
    if user is None:
        return 401, UNAUTHORIZED
    if not allowed(user):
        verb, sub = attributes(method, path)
        return 403, forbidden_message(user, verb, sub)
    return None
