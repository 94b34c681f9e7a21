"""Certificate signing requests (certificates.k8s.io/v1), with the openssl CLI.

Both ends of kubelet serving-certificate bootstrap (kubelet
`serverTLSBootstrap: true`) read and write the same few things, kept here:

- the node's side: a private key made on the node, which never leaves it, and
  a PKCS#10 request for `CN=system:node:<name>, O=system:nodes` with the
  node's name and InternalIP as subjectAltNames (`new_request`), wrapped in a
  CertificateSigningRequest object for signer `kubernetes.io/kubelet-serving`
  (`csr_object`);
- the server's side: what a request asks for (`read_request`: subject, SANs,
  and whether its self-signature holds), and a certificate issued for it by
  the cluster CA (`sign`), whose extensions come from the signer, never from
  the request;
- both: what a certificate on disk says (`read_certificate`: subject, SANs,
  expiry, whether the cluster CA issued it), so a restarted kubelet keeps a
  certificate that still fits.

Conditions and their helpers follow the API (Approved / Denied / Failed,
`status.certificate` holding the PEM, base64 in JSON).
"""
from __future__ import annotations

import base64
import ipaddress
import os
import secrets
import ssl
import subprocess
import tempfile
from dataclasses import dataclass

KUBELET_SERVING = "kubernetes.io/kubelet-serving"
KUBELET_SERVING_USAGES = ("digital signature", "server auth")   # the kubelet's, for an ECDSA key
NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
_NAMEOPT = "sep_multiline,sname,utf8,esc_ctrl,esc_2253"
_EKU = {"server auth": "serverAuth", "client auth": "clientAuth"}
_KU = {"digital signature": "digitalSignature", "key encipherment": "keyEncipherment"}


class CertificateError(Exception):
    pass


@dataclass(frozen=True)
class Subject:
    """What a request or certificate names: subject and subjectAltNames."""
    common_name: str
    organizations: tuple[str, ...]
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]


@dataclass(frozen=True)
class Certificate:
    subject: Subject
    not_after: float          # seconds since the epoch
    issued_by_ca: bool        # verifies against the CA file it was read with


def _openssl(*args: str, stdin: str | None = None) -> str:
    try:
        r = subprocess.run(["openssl", *args], input=stdin, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        raise CertificateError("openssl is not installed; run vagrant/provision.sh") from None
    if r.returncode != 0:
        raise CertificateError(f"openssl {args[0]} failed: {r.stderr.strip()}")
    return r.stdout


def new_key(path: str) -> None:
    """An ECDSA P-256 key (the kubelet's choice), mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", path)


def node_sans(node: str, ips: list[str]) -> list[str]:
    """The subjectAltNames of node `node`'s serving certificate."""
    return [f"DNS:{node}"] + [f"IP:{ipaddress.ip_address(ip)}" for ip in ips]


def new_request(key_path: str, common_name: str, organizations: list[str], sans: list[str]) -> str:
    """A PEM certificate request signed by the key at `key_path`."""
    subj = "".join(f"/O={_rdn(o)}" for o in organizations) + f"/CN={_rdn(common_name)}"
    args = ["req", "-new", "-key", key_path, "-subj", subj]
    if sans:
        args += ["-addext", "subjectAltName=" + ",".join(sans)]
    return _openssl(*args)


def _rdn(value: str) -> str:
    if any(c in value for c in "/\\=+,\n") or not value:
        raise CertificateError(f"{value!r} cannot be a name in a certificate subject")
    return value


def _parse_subject(text: str) -> tuple[str, tuple[str, ...]]:
    cn, orgs, inside = "", [], False
    for line in text.splitlines():
        if line.startswith("subject="):
            inside = True
            continue
        if inside and line.startswith("    ") and "=" in line:
            key, value = line.strip().split("=", 1)
            if key == "CN":
                cn = value
            elif key == "O":
                orgs.append(value)
        elif inside:
            inside = False
    return cn, tuple(orgs)


def _parse_sans(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    lines = text.splitlines()
    dns, ips = [], []
    for i, line in enumerate(lines):
        if "X509v3 Subject Alternative Name" in line and i + 1 < len(lines):
            for entry in lines[i + 1].split(","):
                kind, _, value = entry.strip().partition(":")
                if kind == "DNS":
                    dns.append(value)
                elif kind == "IP Address":
                    ips.append(value)
                else:                       # email, URI, othername: kept so a policy sees them
                    dns.append(f"{kind}:{value}")
    return tuple(dns), tuple(ips)


def read_request(pem: str) -> Subject:
    """What a PEM request asks for; CertificateError when it is not one or
    its self-signature does not verify."""
    if "-----BEGIN CERTIFICATE REQUEST-----" not in pem:
        raise CertificateError("the request is not a PEM certificate request")
    text = _openssl("req", "-noout", "-verify", "-subject", "-text", "-nameopt", _NAMEOPT, stdin=pem)
    cn, orgs = _parse_subject(text)
    dns, ips = _parse_sans(text)
    return Subject(cn, orgs, dns, ips)


def sign(request_pem: str, ca_crt: str, ca_key: str, sans: list[str], usages: list[str],
         seconds: int = 365 * 86400) -> str:
    """Issue a certificate for `request_pem` with the CA; subject from the
    request, every extension (SANs, usages) from the caller."""
    eku = [_EKU[u] for u in usages if u in _EKU]
    ku = [_KU[u] for u in usages if u in _KU] or ["digitalSignature"]
    ext = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical," + ",".join(ku)]
    if eku:
        ext.append("extendedKeyUsage=" + ",".join(eku))
    if sans:
        ext.append("subjectAltName=" + ",".join(sans))
    with tempfile.TemporaryDirectory(prefix="nsplane-sign-") as tmp:
        req, cnf = os.path.join(tmp, "req.csr"), os.path.join(tmp, "ext.cnf")
        with open(req, "w") as f:
            f.write(request_pem)
        with open(cnf, "w") as f:
            f.write("\n".join(ext) + "\n")
        return _openssl("x509", "-req", "-in", req, "-CA", ca_crt, "-CAkey", ca_key,
                        "-set_serial", "0x" + secrets.token_hex(16), "-days", str(max(1, seconds // 86400)),
                        "-extfile", cnf)


def read_certificate(path: str, ca_file: str | None = None) -> Certificate:
    """What the (first) certificate in the PEM file at `path` says."""
    text = _openssl("x509", "-in", path, "-noout", "-subject", "-nameopt", _NAMEOPT, "-enddate",
                    "-ext", "subjectAltName")
    cn, orgs = _parse_subject(text)
    dns, ips = _parse_sans(text)
    end = next(line.split("=", 1)[1] for line in text.splitlines() if line.startswith("notAfter="))
    ok = False
    if ca_file:
        ok = subprocess.run(["openssl", "verify", "-CAfile", ca_file, path], capture_output=True, check=False,
                            timeout=60).returncode == 0
    return Certificate(Subject(cn, orgs, dns, ips), ssl.cert_time_to_seconds(end), ok)


# ---- the API object ---------------------------------------------------------

def csr_object(request_pem: str, signer: str, usages: list[str], generate_name: str = "csr-") -> dict:
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"generateName": generate_name},
            "spec": {"request": base64.b64encode(request_pem.encode()).decode(), "signerName": signer,
                     "usages": list(usages)}}


def request_pem(csr: dict) -> str:
    try:
        return base64.b64decode(csr.get("spec", {}).get("request") or "", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def condition(csr: dict, ctype: str) -> dict | None:
    return next((c for c in csr.get("status", {}).get("conditions", []) or []
                 if c.get("type") == ctype and c.get("status", "True") == "True"), None)


def issued_pem(csr: dict) -> str:
    try:
        return base64.b64decode(csr.get("status", {}).get("certificate") or "").decode()
    except (ValueError, UnicodeDecodeError):
        return ""
