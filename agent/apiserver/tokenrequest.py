"""The API's identity endpoints, as kube-apiserver answers them:

- POST .../serviceaccounts/<name>/token: the TokenRequest API
  (pkg/registry/core/serviceaccount/storage/token.go), what
  `kubectl create token SA [--duration] [--audience] [--bound-object-kind
  Pod|Secret|Node --bound-object-name N]` calls. Defaults: the API server's
  audiences, 3600 s; at least 600 s; a bound pod must run as that
  ServiceAccount, and its node goes into the token too.
- POST /apis/authentication.k8s.io/v1/selfsubjectreviews: who am I
  (`kubectl auth whoami`).
- GET /.well-known/openid-configuration and /openid/v1/jwks: the issuer's
  discovery documents.

`ServiceAccountTokens.build(...)` assembles the issuer and the authenticator
from the cluster's pki dir (sa.key, sa.pub: agent/api/pki.py).
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

from agent.api.kinds import BY_RESOURCE
from agent.apiserver import authn
from agent.apiserver.authn import jwt
from agent.apiserver.authn.serviceaccount import TokenAuthenticator, TokenIssuer, issuer_url
from agent.apiserver.authn.user import AUTHENTICATED, UserInfo
from agent.apiserver.registry import APIError, Registry
from agent.apiserver.validation.errors import Errs

API_VERSION = "authentication.k8s.io/v1"
DEFAULT_EXPIRATION = 3600                 # SetDefaults_TokenRequestSpec
MIN_EXPIRATION, MAX_EXPIRATION = 600, 1 << 32
BOUND_KINDS = {"Pod": "pods", "Secret": "secrets", "Node": "nodes"}
LOCAL_ADMIN = UserInfo("system:admin", "", ("system:masters", AUTHENTICATED))   # the trusted Unix socket


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(int(t), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _invalid(name: str, errs: Errs) -> APIError:
    """apierrors.NewInvalid(TokenRequest.authentication.k8s.io, name, errs)."""
    msgs = list(dict.fromkeys(str(c) for c in errs))
    body = msgs[0] if len(msgs) == 1 else "[" + ", ".join(msgs) + "]"
    msg = f'TokenRequest.authentication.k8s.io "{name}" is invalid: {body}'
    return APIError(422, "Invalid", msg, {"name": name, "group": "authentication.k8s.io", "kind": "TokenRequest",
                                          "causes": [{"reason": c.reason, "message": c.message, "field": c.field}
                                                     for c in errs]})


class ServiceAccountTokens:
    def __init__(self, issuer: TokenIssuer, keys: list[jwt.PublicKey], jwks_uri: str, clock=time.time):
        self.issuer, self.keys, self.jwks_uri, self.clock = issuer, keys, jwks_uri, clock

    @classmethod
    def build(cls, store, sa_key: str, sa_pub: str, domain: str, jwks_uri: str):
        """(ServiceAccountTokens, TokenAuthenticator) for a cluster's key pair."""
        key = jwt.PublicKey.load(sa_pub)
        iss = issuer_url(domain)
        tokens = cls(TokenIssuer(jwt.Signer(sa_key, key), iss, [iss]), [key], jwks_uri)
        return tokens, TokenAuthenticator(store, [key], iss, [iss])

    # ---- TokenRequest ----------------------------------------------------------
    def create_token(self, registry: Registry, namespace: str, name: str, body: dict) -> dict:
        body = body if isinstance(body, dict) else {}
        md = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        for field, want, what in (("name", name, "name"), ("namespace", namespace, "namespace")):
            if md.get(field) and md[field] != want:
                errs = Errs()
                errs.invalid(f"metadata.{field}", md[field], f"must match the service account {what} if specified")
                raise _invalid(name, errs)
        sa = registry.get(BY_RESOURCE["serviceaccounts"], namespace, name)
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        audiences = spec.get("audiences") or self.issuer.audiences
        expiration = spec.get("expirationSeconds")
        expiration = DEFAULT_EXPIRATION if expiration is None else expiration
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences) \
                or isinstance(expiration, bool) or not isinstance(expiration, int):
            raise APIError(400, "BadRequest", 'TokenRequest in version "v1" cannot be handled as a TokenRequest: '
                                              "spec.audiences must be a list of strings and spec.expirationSeconds "
                                              "an integer")
        now = int(self.clock())
        errs = Errs()
        if expiration < MIN_EXPIRATION:
            errs.invalid("spec.expirationSeconds", expiration, "may not specify a duration less than 10 minutes")
        if expiration > MAX_EXPIRATION:
            errs.invalid("spec.expirationSeconds", expiration, "may not specify a duration larger than 2^32 seconds")
        if errs:
            raise _invalid("", errs)
        ref = spec.get("boundObjectRef")
        bound = self._bound(registry, namespace, name, ref) if isinstance(ref, dict) else {}
        token, _ = self.issuer.issue(sa, expiration, audiences, now=now, **bound)
        return {"kind": "TokenRequest", "apiVersion": API_VERSION,
                "metadata": {"name": sa["metadata"]["name"], "namespace": sa["metadata"]["namespace"],
                             "creationTimestamp": _rfc3339(now)},
                "spec": {"audiences": list(audiences), "expirationSeconds": expiration,
                         "boundObjectRef": ref if isinstance(ref, dict) else None},
                "status": {"token": token, "expirationTimestamp": _rfc3339(now + expiration)}}

    @staticmethod
    def _bound(registry: Registry, namespace: str, sa_name: str, ref: dict) -> dict:
        """The objects a bound token names: {"pod": .., "node": ..} etc."""
        api_version, kind = ref.get("apiVersion") or "", ref.get("kind") or ""
        group, _, version = api_version.rpartition("/")
        if group or kind not in BOUND_KINDS:
            raise APIError(400, "BadRequest", f"cannot bind token to object of type {group}/{version}, Kind={kind}")
        k = BY_RESOURCE[BOUND_KINDS[kind]]
        obj = registry.get(k, namespace if k.namespaced else None, ref.get("name") or "")
        out: dict = {kind.lower(): obj}
        if kind == "Pod":
            if (obj.get("spec") or {}).get("serviceAccountName") != sa_name:
                raise APIError(400, "BadRequest", f'cannot bind token for serviceaccount "{sa_name}" to pod running '
                                                  "with different serviceaccount name.")
            node_name = obj["spec"].get("nodeName")
            if node_name:
                try:
                    out["node"] = registry.get(BY_RESOURCE["nodes"], None, node_name)
                except APIError:
                    out["node"] = {"metadata": {"name": node_name}}
        uid = obj["metadata"].get("uid")
        if ref.get("uid") and ref["uid"] != uid:
            raise APIError(409, "Conflict",
                           f'Operation cannot be fulfilled on {kind} "{ref.get("name")}": the UID in the bound object '
                           f"reference ({ref['uid']}) does not match the UID in record. The object might have been "
                           "deleted and then recreated", {"name": ref.get("name"), "group": "", "kind": kind})
        return out

    # ---- issuer discovery -------------------------------------------------------
    def discovery(self, path: str) -> tuple[dict, str] | None:
        """(document, content type) for the issuer discovery paths, else None."""
        if path == authn.OPENID_CONFIGURATION:
            return authn.openid_configuration(self.issuer.issuer, self.jwks_uri), "application/json"
        if path == authn.JWKS_PATH:
            return authn.jwks(self.keys), "application/jwk-set+json"
        return None


def self_subject_review(user: UserInfo | None, now: float | None = None) -> dict:
    """The SelfSubjectReview kube answers a create with: the caller's
    identity (the trusted Unix socket's is a local admin's)."""
    user = user or LOCAL_ADMIN
    return {"kind": "SelfSubjectReview", "apiVersion": API_VERSION,
            "metadata": {"creationTimestamp": _rfc3339(time.time() if now is None else now)},
            "status": {"userInfo": user.as_json()}}
