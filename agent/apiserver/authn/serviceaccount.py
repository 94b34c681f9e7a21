"""ServiceAccount tokens: the claims kube-apiserver issues and the checks it
makes when a token comes back (k8s.io/kubernetes pkg/serviceaccount:
claims.go and jwt.go, as of 1.32).

A token is a JWT signed RS256 (agent/apiserver/authn/jwt.py) whose claims are

    {"aud": [...], "exp": ..., "iat": ..., "iss": "https://kubernetes.default.svc.cluster.local",
     "jti": "<uuid>", "kubernetes.io": {"namespace": "default",
         "serviceaccount": {"name": "default", "uid": "..."},
         "pod": {"name": ..., "uid": ...}, "node": {"name": ..., "uid": ...}},   # when bound
     "nbf": ..., "sub": "system:serviceaccount:default:default"}

`TokenIssuer` writes them (for the TokenRequest API); `TokenAuthenticator`
takes a bearer token and answers None (not one of ours: another
authenticator's business), a `UserInfo`, or `InvalidToken` (ours but not
acceptable: bad signature, expired, wrong audience, its ServiceAccount or
bound object gone or recreated). Times allow go-jose's one-minute leeway.
"""
from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

from agent.apiserver.authn import jwt
from agent.apiserver.authn.jwt import InvalidToken
from agent.apiserver.authn.user import (
    CREDENTIAL_ID,
    NODE_NAME,
    NODE_UID,
    POD_NAME,
    POD_UID,
    UserInfo,
    service_account_groups,
    service_account_username,
)
from agent.apiserver.store import NotFound

LEEWAY = 60          # jwt.DefaultLeeway


def issuer_url(domain: str) -> str:
    """kubeadm's --service-account-issuer (and the default --api-audiences)."""
    return f"https://kubernetes.default.svc.{domain}"


def _ref(obj: dict) -> dict:
    md = obj["metadata"]
    out = {"name": md["name"]}
    if md.get("uid"):
        out["uid"] = md["uid"]
    return out


def claims(sa: dict, *, issuer: str, audiences: list[str], expiration_seconds: int, now: int,
           jti: str | None = None, pod: dict | None = None, secret: dict | None = None,
           node: dict | None = None) -> dict:
    """The claims of a token for `sa`, bound to at most one of pod (with its
    node, when scheduled), secret or node."""
    md = sa["metadata"]
    private: dict = {"namespace": md["namespace"], "serviceaccount": _ref(sa)}
    if pod is not None:
        private["pod"] = _ref(pod)
        if node is not None:
            private["node"] = _ref(node)
    elif secret is not None:
        private["secret"] = _ref(secret)
    elif node is not None:
        private["node"] = _ref(node)
    return {"aud": list(audiences), "exp": now + expiration_seconds, "iat": now, "iss": issuer,
            "jti": jti or str(uuid.uuid4()), "kubernetes.io": private, "nbf": now,
            "sub": service_account_username(md["namespace"], md["name"])}


class TokenIssuer:
    """Signs tokens for the TokenRequest API."""

    def __init__(self, signer: jwt.Signer, issuer: str, audiences: list[str]):
        self.signer, self.issuer, self.audiences = signer, issuer, list(audiences)

    def issue(self, sa: dict, expiration_seconds: int, audiences: list[str] | None = None, *,
              now: int | None = None, **bound) -> tuple[str, dict]:
        c = claims(sa, issuer=self.issuer, audiences=audiences or self.audiences,
                   expiration_seconds=expiration_seconds, now=int(time.time()) if now is None else now, **bound)
        return self.signer.sign(c), c


def _number(c: dict, key: str) -> float | None:
    v = c.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InvalidToken(f"square/go-jose/jwt: claim {key} is not a number")
    return v


def _audiences(c: dict) -> list[str]:
    aud = c.get("aud")
    if aud is None:
        return []
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return aud
    raise InvalidToken("square/go-jose/jwt: expected string or array value to unmarshal to Audience")


def _ref_claim(k8s: dict, key: str) -> dict | None:
    r = k8s.get(key)
    if r is None:
        return None
    if not isinstance(r, dict) or not all(isinstance(r.get(f, ""), str) for f in ("name", "uid")):
        raise InvalidToken(f"malformed kubernetes.io/{key} claim")
    return r


class TokenAuthenticator:
    """Bearer JWTs from our issuer -> the ServiceAccount's identity. `store`
    answers get(resource, namespace, name) (agent/apiserver/store.py)."""

    def __init__(self, store, keys: list[jwt.PublicKey], issuer: str, audiences: list[str], clock=time.time):
        self.store, self.keys, self.issuer = store, keys, issuer
        self.audiences, self.clock = list(audiences), clock

    def authenticate(self, token: str) -> UserInfo | None:
        unverified = jwt.unverified_claims(token)
        if unverified is None or unverified.get("iss") != self.issuer:
            return None
        c = jwt.verify(token, self.keys)
        if c.get("iss") != self.issuer:
            raise InvalidToken(f"token issuer {c.get('iss')!r} is invalid")
        auds = _audiences(c) or self.audiences
        if not set(auds) & set(self.audiences):
            raise InvalidToken(f"token audiences {auds} is invalid for the target audiences {self.audiences}")
        now = self.clock()
        self._check_times(c, now)
        return self._validate(c, now)

    @staticmethod
    def _check_times(c: dict, now: float) -> None:
        nbf, exp, iat = _number(c, "nbf"), _number(c, "exp"), _number(c, "iat")
        if nbf is not None and now + LEEWAY < nbf:
            raise InvalidToken("service account token is not valid yet")
        if exp is not None and now - LEEWAY > exp:
            raise InvalidToken("service account token has expired")
        if iat is not None and now + LEEWAY < iat:
            raise InvalidToken("service account token is issued in the future")

    def _get(self, resource: str, namespace: str, name: str, now: float) -> dict | None:
        """The object, or None when it is gone (or was deleted more than the leeway ago)."""
        try:
            obj = self.store.get(resource, namespace, name)
        except NotFound:
            return None
        gone = obj["metadata"].get("deletionTimestamp")
        if gone and _epoch(gone) < now - LEEWAY:
            return None
        return obj

    def _validate(self, c: dict, now: float) -> UserInfo:
        k8s = c.get("kubernetes.io")
        if not isinstance(k8s, dict) or not isinstance(k8s.get("namespace"), str):
            raise InvalidToken("service account token claims could not be validated due to unexpected private claim")
        ns = k8s["namespace"]
        sa_ref = _ref_claim(k8s, "serviceaccount") or {}
        sa = self._get("serviceaccounts", ns, sa_ref.get("name", ""), now)
        if sa is None:
            raise InvalidToken(f'serviceaccounts "{sa_ref.get("name", "")}" not found')
        if sa["metadata"]["uid"] != sa_ref.get("uid"):
            raise InvalidToken(f"service account UID ({sa['metadata']['uid']}) does not match claim "
                               f"({sa_ref.get('uid', '')})")
        extra: dict[str, list[str]] = {}
        secret_ref, pod_ref, node_ref = (_ref_claim(k8s, k) for k in ("secret", "pod", "node"))
        if secret_ref is not None:
            self._check_bound("secrets", ns, secret_ref, "secret", now)
        if pod_ref is not None:
            self._check_bound("pods", ns, pod_ref, "pod", now)
            extra[POD_NAME], extra[POD_UID] = [pod_ref["name"]], [pod_ref.get("uid", "")]
        if node_ref is not None:
            if pod_ref is None:          # node-bound: the node must still be there
                self._check_bound("nodes", "", node_ref, "node", now)
            extra[NODE_NAME] = [node_ref["name"]]
            if node_ref.get("uid"):
                extra[NODE_UID] = [node_ref["uid"]]
        if isinstance(c.get("jti"), str) and c["jti"]:
            extra[CREDENTIAL_ID] = [f"JTI={c['jti']}"]
        return UserInfo(service_account_username(ns, sa["metadata"]["name"]), sa["metadata"]["uid"],
                        service_account_groups(ns), extra)

    def _check_bound(self, resource: str, ns: str, ref: dict, what: str, now: float) -> None:
        obj = self._get(resource, ns, ref.get("name", ""), now)
        if obj is None:
            raise InvalidToken("service account token has been invalidated")
        if obj["metadata"].get("uid") != ref.get("uid"):
            raise InvalidToken(f"{what} UID ({obj['metadata'].get('uid')}) does not match service account "
                               f"{what} ref claim ({ref.get('uid', '')})")


def _epoch(ts: str) -> float:
    try:
        t = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()
