"""RS256 JSON Web Tokens, as kube-apiserver's ServiceAccount token signer
writes them, with no crypto dependency.

- Signing: `openssl dgst -sha256 -sign sa.key` (the key made with the
  openssl CLI, agent/api/pki.py), so the private key never enters Python.
  One token costs one openssl process (~5 ms); tokens are asked for rarely.
- Verifying: RSASSA-PKCS1-v1_5 with SHA-256 in the standard library: the
  public key (n, e) read from sa.pub's DER, `pow(signature, e, n)`, and the
  encoded message compared in constant time with the one expected. Public
  key operations only: nothing secret is computed here.
- The key ID is kube's keyIDFromPublicKey: base64url(SHA-256(PKIX DER)); the
  JWK is what /openid/v1/jwks serves.

Compact serialization only; the header is {"alg":"RS256","kid":...} and the
claims are written with sorted keys and no spaces, as go-jose (Go's JSON of
a map) writes them.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import subprocess
from dataclasses import dataclass

# DigestInfo for SHA-256 (RFC 8017, 9.2 note 1), which precedes the hash.
_SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")
_RSA_OID = bytes.fromhex("2a864886f70d010101")      # 1.2.840.113549.1.1.1 rsaEncryption
_RAW_URL = re.compile(r"[A-Za-z0-9_-]*")


class InvalidToken(Exception):
    """Not a token we can accept; the message says why (for logs and tests,
    never for the client, who gets kube's bare 401)."""


class BadKey(Exception):
    """The key file cannot be read as an RSA public key."""


# ---- base64url -------------------------------------------------------------------

def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """base64.RawURLEncoding.DecodeString: unpadded, URL alphabet, strict."""
    if not _RAW_URL.fullmatch(text) or len(text) % 4 == 1:
        raise InvalidToken("malformed base64url segment")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("malformed base64url segment") from None


def _json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


# ---- DER, just enough for SubjectPublicKeyInfo ----------------------------------------

def _der(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """(tag, contents, next position) of the DER element at `pos`."""
    if pos + 2 > len(data):
        raise BadKey("truncated DER")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or pos + n > len(data):
            raise BadKey("bad DER length")
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    if pos + length > len(data):
        raise BadKey("truncated DER")
    return tag, data[pos:pos + length], pos + length


def _rsa_public_numbers(spki: bytes) -> tuple[int, int]:
    tag, body, _ = _der(spki, 0)
    if tag != 0x30:
        raise BadKey("not a SubjectPublicKeyInfo")
    tag, algo, pos = _der(body, 0)
    _, oid, _ = _der(algo, 0)
    if tag != 0x30 or oid != _RSA_OID:
        raise BadKey("not an RSA public key (only RS256 is supported, as kube-apiserver's default)")
    tag, bits, _ = _der(body, pos)
    if tag != 0x03 or not bits or bits[0] != 0:
        raise BadKey("bad subjectPublicKey")
    tag, seq, _ = _der(bits[1:], 0)
    tag_n, n, pos = _der(seq, 0)
    tag_e, e, _ = _der(seq, pos)
    if tag != 0x30 or tag_n != 0x02 or tag_e != 0x02:
        raise BadKey("bad RSAPublicKey")
    return int.from_bytes(n, "big"), int.from_bytes(e, "big")


def _pem_body(text: str, label: str) -> bytes:
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    if begin not in text or end not in text:
        raise BadKey(f"no {label} PEM block")
    inner = text.split(begin, 1)[1].split(end, 1)[0]
    try:
        return base64.b64decode("".join(inner.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadKey(f"the {label} PEM block is not base64") from None


# ---- keys -------------------------------------------------------------------------

@dataclass(frozen=True)
class PublicKey:
    n: int
    e: int
    der: bytes          # the PKIX (SubjectPublicKeyInfo) DER the key ID is hashed from

    @classmethod
    def from_pem(cls, text: str) -> PublicKey:
        der = _pem_body(text, "PUBLIC KEY")
        n, e = _rsa_public_numbers(der)
        return cls(n, e, der)

    @classmethod
    def load(cls, path: str) -> PublicKey:
        with open(path) as f:
            return cls.from_pem(f.read())

    @property
    def kid(self) -> str:
        return b64url(hashlib.sha256(self.der).digest())

    @property
    def size(self) -> int:
        return (self.n.bit_length() + 7) // 8

    def jwk(self) -> dict:
        """The key as /openid/v1/jwks lists it (go-jose's JSONWebKey JSON)."""
        return {"use": "sig", "kty": "RSA", "kid": self.kid, "alg": "RS256",
                "n": b64url(self.n.to_bytes(self.size, "big")),
                "e": b64url(self.e.to_bytes((self.e.bit_length() + 7) // 8, "big"))}

    def verify(self, message: bytes, signature: bytes) -> bool:
        """RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017, 8.2.2)."""
        k = self.size
        if len(signature) != k:
            return False
        s = int.from_bytes(signature, "big")
        if s >= self.n:
            return False
        em = pow(s, self.e, self.n).to_bytes(k, "big")
        t = _SHA256_PREFIX + hashlib.sha256(message).digest()
        if k < len(t) + 11:
            return False
        expected = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
        return hmac.compare_digest(em, expected)


class Signer:
    """Signs with the private key file through openssl; `public` verifies."""

    def __init__(self, key_path: str, public: PublicKey):
        self.key_path, self.public = key_path, public

    def sign(self, claims: dict) -> str:
        header = {"alg": "RS256", "kid": self.public.kid}
        signing_input = f"{b64url(_json(header))}.{b64url(_json(claims))}"
        r = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key_path, "-binary"],
                           input=signing_input.encode(), capture_output=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"failed to generate token: openssl: {r.stderr.decode(errors='replace').strip()}")
        return f"{signing_input}.{b64url(r.stdout)}"


# ---- reading tokens ------------------------------------------------------------------

def _segments(token: str) -> list[str]:
    parts = token.split(".")
    if len(parts) != 3 or token.lstrip().startswith("{"):
        raise InvalidToken("not a JWT in compact serialization")
    return parts


def unverified_claims(token: str) -> dict | None:
    """The payload of something shaped like a JWT, unverified (to see whose
    issuer it names before any signature work, as kube's hasCorrectIssuer
    does), or None when it is not one."""
    try:
        claims = json.loads(b64url_decode(_segments(token)[1]))
    except (InvalidToken, ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def verify(token: str, keys: list[PublicKey]) -> dict:
    """The claims of a token signed RS256 by one of `keys` (the one its kid
    names, or each in turn without a kid); InvalidToken otherwise."""
    head_b64, body_b64, sig_b64 = _segments(token)
    try:
        header = json.loads(b64url_decode(head_b64))
    except (ValueError, UnicodeDecodeError):
        raise InvalidToken("malformed JWT header") from None
    if not isinstance(header, dict) or header.get("alg") != "RS256":
        raise InvalidToken(f"unsupported signing algorithm {header.get('alg') if isinstance(header, dict) else None!r}")
    kid = header.get("kid") or ""
    candidates = [k for k in keys if k.kid == kid] if kid else list(keys)
    if not candidates:
        raise InvalidToken("invalid signature, no keys found")
    signature = b64url_decode(sig_b64)
    message = f"{head_b64}.{body_b64}".encode()
    if not any(k.verify(message, signature) for k in candidates):
        raise InvalidToken("square/go-jose: error in cryptographic primitive")
    try:
        claims = json.loads(b64url_decode(body_b64))
    except (ValueError, UnicodeDecodeError):
        raise InvalidToken("malformed JWT claims") from None
    if not isinstance(claims, dict):
        raise InvalidToken("malformed JWT claims")
    return claims
