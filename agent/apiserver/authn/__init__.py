"""Authentication: who a request comes from, as kube-apiserver decides it.

A bearer token is tried against the static token file (agent/api/pki.py's
`Authenticator`: admin, node agents, coredns) and then as a ServiceAccount
JWT (serviceaccount.py); every identity found gets the group
system:authenticated added, as kube's authenticator union does. No token, or
one nobody accepts, is None: the handler answers kube's 401.

Also here: the service account issuer discovery documents kube-apiserver
serves to authenticated users (/.well-known/openid-configuration and
/openid/v1/jwks), so relying parties can verify the tokens themselves.

    jwt.py             RS256 sign (openssl) / verify (stdlib), key IDs, JWKs
    serviceaccount.py  the claims kube issues, the checks it makes on a token
    user.py            UserInfo and ServiceAccount user and group names
"""
from __future__ import annotations

import logging

from agent.apiserver.authn.jwt import InvalidToken, PublicKey
from agent.apiserver.authn.serviceaccount import TokenAuthenticator
from agent.apiserver.authn.user import AUTHENTICATED, UserInfo

log = logging.getLogger("nsplane.apiserver")

OPENID_CONFIGURATION = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"


class Authenticator:
    """The union of the static tokens and ServiceAccount tokens."""

    def __init__(self, static=None, service_accounts: TokenAuthenticator | None = None):
        self.static, self.service_accounts = static, service_accounts

    def authenticate(self, authorization: str | None) -> UserInfo | None:
        parts = (authorization or "").strip().split(" ", 2)   # kube's bearertoken: the scheme in any case
        if len(parts) < 2 or parts[0].lower() != "bearer":
            return None
        token = parts[1]
        if not token or not token.isascii():
            return None
        found = self.static.lookup(token) if self.static is not None else None
        if found:
            user, groups = found
            return UserInfo(user, user, tuple(dict.fromkeys([*groups, AUTHENTICATED])))
        if self.service_accounts is None:
            return None
        try:
            info = self.service_accounts.authenticate(token)
        except InvalidToken as e:
            log.info("rejected a service account token: %s", e)
            return None
        if info is None:
            return None
        return UserInfo(info.name, info.uid, (*info.groups, AUTHENTICATED), info.extra)


def openid_configuration(issuer: str, jwks_uri: str) -> dict:
    """/.well-known/openid-configuration (pkg/serviceaccount/openidmetadata.go)."""
    return {"issuer": issuer, "jwks_uri": jwks_uri, "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"]}


def jwks(keys: list[PublicKey]) -> dict:
    """/openid/v1/jwks: the public keys tokens are verified with."""
    return {"keys": [k.jwk() for k in keys]}


__all__ = ["Authenticator", "InvalidToken", "JWKS_PATH", "OPENID_CONFIGURATION", "PublicKey", "TokenAuthenticator",
           "UserInfo", "jwks", "openid_configuration"]
