"""The kubelet's serving certificate, by TLS bootstrapping (kubelet
`serverTLSBootstrap: true`, pkg/kubelet/certificate).

The key is made here and never leaves the node. The certificate comes from
a CertificateSigningRequest (signer `kubernetes.io/kubelet-serving`,
subject `CN=system:node:<name>, O=system:nodes`, SANs the node's name and
InternalIP) that the controllers beside the API server approve and sign
with the cluster CA (agent/controllers/certificates.py). A joining machine
therefore needs only what the node token holds: the CA certificate and the
node's bearer token.

Cert and key live together in <node state>/pki/kubelet-server-current.pem
(mode 0600), as the kubelet keeps them. At start a certificate there is
kept while the cluster CA issued it, it names this node and its current
addresses, and it has more than a tenth of a year left; otherwise a new
request is made. Rotation while running is not done (the agent renews at
its next start).
"""
from __future__ import annotations

import logging
import os
import time

from agent.api import certificates
from agent.api.client import APIStatusError, Client

log = logging.getLogger("nsplane.kubelet.certificate")
RENEW_BEFORE = 365 * 86400 // 10
CSRS = "certificatesigningrequests"


class CertificateBootstrapError(Exception):
    pass


def current_path(pki_dir: str) -> str:
    return os.path.join(pki_dir, "kubelet-server-current.pem")


def still_good(path: str, ca_file: str, node: str, ips: list[str], now: float | None = None) -> bool:
    """Whether the certificate at `path` can keep serving node `node` at `ips`."""
    try:
        cert = certificates.read_certificate(path, ca_file)
    except (certificates.CertificateError, OSError, StopIteration):
        return False
    s = cert.subject
    return (cert.issued_by_ca and s.common_name == certificates.NODE_USER_PREFIX + node
            and s.organizations == (certificates.NODES_GROUP,) and set(s.dns_names) == {node}
            and set(s.ip_addresses) == set(ips) and cert.not_after > (now or time.time()) + RENEW_BEFORE)


def ensure_serving_certificate(client: Client, node: str, ips: list[str], pki_dir: str, ca_file: str,
                               timeout: float = 60.0) -> str:
    """The path of a PEM holding this node's serving certificate and key,
    requested and waited for if the one on disk does not fit."""
    os.makedirs(pki_dir, mode=0o700, exist_ok=True)
    path = current_path(pki_dir)
    if still_good(path, ca_file, node, ips):
        log.info("serving certificate %s still good", path)
        return path
    key = os.path.join(pki_dir, "kubelet-server.key.tmp")
    certificates.new_key(key)
    try:
        req = certificates.new_request(key, certificates.NODE_USER_PREFIX + node, [certificates.NODES_GROUP],
                                       certificates.node_sans(node, ips))
        csr = client.create(CSRS, certificates.csr_object(req, certificates.KUBELET_SERVING,
                                                          list(certificates.KUBELET_SERVING_USAGES)))
        name = csr["metadata"]["name"]
        log.info("requested a serving certificate: CertificateSigningRequest %s", name)
        cert = _wait_issued(client, name, timeout)
        with open(key) as f:
            key_pem = f.read()
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(cert + key_pem)
        os.replace(tmp, path)
    finally:
        if os.path.exists(key):
            os.remove(key)
    log.info("serving certificate from CertificateSigningRequest %s written to %s", name, path)
    return path


def _wait_issued(client: Client, name: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    csr: dict = {}
    while time.monotonic() < deadline:
        try:
            csr = client.get(CSRS, name)
        except (OSError, APIStatusError) as e:
            log.info("waiting for CertificateSigningRequest %s: %s", name, e)
        for bad in ("Denied", "Failed"):
            cond = certificates.condition(csr, bad)
            if cond:
                raise CertificateBootstrapError(f"CertificateSigningRequest {name} was {bad.lower()}: "
                                                f"{cond.get('message', '')}")
        pem = certificates.issued_pem(csr)
        if pem:
            return pem
        time.sleep(0.1)
    raise CertificateBootstrapError(
        f"CertificateSigningRequest {name} was not issued within {timeout:.0f}s (condition: "
        f"{', '.join(c.get('type', '') for c in csr.get('status', {}).get('conditions', [])) or 'Pending'}); "
        f"approve it with `kubectl certificate approve {name}` or see the server's log")
