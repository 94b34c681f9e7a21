"""CertificateSigningRequest validation (pkg/apis/certificates/validation):
a request that parses as a PKCS#10 request with a valid self-signature,
a qualified signerName, known usages, and conditions that do not say both
Approved and Denied. The update rules (spec immutable, Approved and Denied
only through /approval, the certificate only through /status) are the
strategy's: agent/apiserver/csrstrategy.py."""
from __future__ import annotations

from agent.api import certificates
from agent.apiserver.validation.errors import Errs

USAGES = ("signing", "digital signature", "content commitment", "key encipherment", "key agreement",
          "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any",
          "server auth", "client auth", "code signing", "email protection", "s/mime", "ipsec end system",
          "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc")


def _signer_errors(name: str) -> list[str]:
    domain, slash, path = name.partition("/")
    if not slash or not domain or not path or "." not in domain:
        return ["must be a fully qualified domain and path of the form 'example.com/signer-name'"]
    return []


def check_csr(errs: Errs, csr: dict, old: dict | None, **_) -> None:
    spec = errs.typed(csr, "spec", "spec", "object", {})
    if old is None:
        pem = certificates.request_pem(csr)
        if not spec.get("request"):
            errs.required("spec.request")
        else:
            try:
                certificates.read_request(pem)
            except certificates.CertificateError as e:
                errs.invalid("spec.request", "<request>", str(e))
    signer = errs.typed(spec, "signerName", "spec.signerName", "string", "")
    if not signer:
        errs.required("spec.signerName")
    else:
        for msg in _signer_errors(signer):
            errs.invalid("spec.signerName", signer, msg)
    usages = errs.typed(spec, "usages", "spec.usages", "array", [])
    if not usages:
        errs.required("spec.usages", "usages must be provided")
    for i, u in enumerate(usages):
        if u not in USAGES:
            errs.not_supported(f"spec.usages[{i}]", u, USAGES)
    exp = spec.get("expirationSeconds")
    if exp is not None and (not isinstance(exp, int) or exp < 600):
        errs.invalid("spec.expirationSeconds", exp, "may not specify a duration less than 600 seconds (10 minutes)")
    status = csr.get("status") if isinstance(csr.get("status"), dict) else {}
    types = [c.get("type") for c in status.get("conditions") or [] if isinstance(c, dict)]
    for t in ("Approved", "Denied"):
        if types.count(t) > 1:
            errs.duplicate("status.conditions", t)
    if "Approved" in types and "Denied" in types:
        errs.invalid("status.conditions", types, "Approved and Denied conditions are mutually exclusive")
