"""Kubelet serving certificates: approving and signing their
CertificateSigningRequests, beside the API server, where the CA key is.

`CSRApprovingController` approves a `kubernetes.io/kubelet-serving` request
when a node asked for it (requester in group system:nodes), its subject is
`CN=system:node:<name>, O=system:nodes` for a Node that exists, its usages
are a server's, and every subjectAltName is that Node's name or one of its
addresses. Anything else from a node is Denied with the reason; requests of
other users or signers are left for `kubectl certificate approve|deny`.
Kubernetes ships no approver for this signer (kubeadm's docs point at
kubelet-csr-approver); this one applies the same checks.

`CSRSigningController` is kube-controller-manager's csrsigning for the
kubelet-serving signer: an approved request gets a certificate from the
cluster CA (one year, or the request's expirationSeconds if shorter) whose
extensions come from the request's checked SANs and usages. It also does
csrcleaner's job: requests go an hour after they were decided or issued,
or a day after they were made if still pending.

Each node of `nsplane up` has its own identity (system:node:<name>), and
may ask only for its own name; machines joined in host mode share one
token (agent/api/pki.py), so theirs are held to a real Node's addresses.
"""
from __future__ import annotations

import base64
import logging
import time

from agent.api import certificates, pki, printers
from agent.api.kinds import BY_RESOURCE
from agent.apiserver.registry import APIError
from agent.controllers.base import Controller, ns_name

log = logging.getLogger("nsplane.controllers.csr")
CSRS = BY_RESOURCE["certificatesigningrequests"]
SERVING_USAGES = {"digital signature", "key encipherment", "server auth"}
MAX_SECONDS = 365 * 86400
CLEANUP_AFTER = {"done": 3600.0, "pending": 86400.0}


def kubelet_serving_problem(csr: dict, node: dict | None) -> str | None:
    """Why a node's kubelet-serving request may not be approved, or None.
    Pure but for reading the request (openssl)."""
    spec = csr.get("spec") or {}
    try:
        req = certificates.read_request(certificates.request_pem(csr))
    except certificates.CertificateError as e:
        return f"the request does not parse: {e}"
    prefix = certificates.NODE_USER_PREFIX
    if not req.common_name.startswith(prefix) or req.organizations != (certificates.NODES_GROUP,):
        return (f"subject must be CN={prefix}<node name>, O={certificates.NODES_GROUP}, not "
                f"CN={req.common_name}, O={','.join(req.organizations)}")
    name = req.common_name[len(prefix):]
    if node is None:
        return f"node {name} does not exist"
    usages = set(spec.get("usages") or [])
    if "server auth" not in usages or not usages <= SERVING_USAGES:
        return f"usages must be server auth and digital signature (key encipherment allowed), not {sorted(usages)}"
    addresses = [a.get("address") for a in (node.get("status") or {}).get("addresses") or []]
    names = {name} | {a for a in addresses if a}
    wrong = [d for d in req.dns_names if d not in names] + [ip for ip in req.ip_addresses if ip not in addresses]
    if wrong:
        return f"subjectAltNames {wrong} are not names or addresses of node {name}"
    if not req.dns_names and not req.ip_addresses:
        return "a serving certificate needs at least one DNS or IP subjectAltName"
    return None


def _from_node(csr: dict) -> bool:
    spec = csr.get("spec") or {}
    user = str(spec.get("username", ""))
    return certificates.NODES_GROUP in (spec.get("groups") or []) and (
        user.startswith(certificates.NODE_USER_PREFIX) or user == pki.JOIN_USER)


def requester_problem(csr: dict, common_name: str) -> str | None:
    """A node asks only for its own name (joined machines share one token, so
    theirs is held to a real Node's addresses only)."""
    user = str((csr.get("spec") or {}).get("username", ""))
    if user != pki.JOIN_USER and user != common_name:
        return f"{user} may only request a serving certificate for itself, not for {common_name}"
    return None


def _decided(csr: dict) -> bool:
    return bool(certificates.condition(csr, "Approved") or certificates.condition(csr, "Denied"))


class CSRApprovingController(Controller):
    name = "csrapproving"
    watches = {"certificatesigningrequests": lambda self, o: [ns_name(o)]}

    def sync(self, key):
        csr = self.live("certificatesigningrequests", "", key[1])
        if csr is None or _decided(csr) or (csr.get("spec") or {}).get("signerName") != certificates.KUBELET_SERVING \
                or not _from_node(csr):
            return
        node, cn = None, ""
        try:
            cn = certificates.read_request(certificates.request_pem(csr)).common_name
            node = self.live("nodes", "", cn[len(certificates.NODE_USER_PREFIX):])
        except certificates.CertificateError:
            pass
        problem = kubelet_serving_problem(csr, node) or requester_problem(csr, cn)
        if problem:
            cond = {"type": "Denied", "status": "True", "reason": "KubeletServingCheckFailed", "message": problem}
            log.warning("denied %s: %s", key[1], problem)
        else:
            cond = {"type": "Approved", "status": "True", "reason": "AutoApproved",
                    "message": "kubelet serving certificate: subject and subjectAltNames match the node"}
            log.info("approved %s (%s)", key[1], csr["spec"].get("username"))

        def decide(cur):
            if _decided(cur):
                return None
            cur.setdefault("status", {}).setdefault("conditions", []).append(cond)
            return cur
        self.registry.guaranteed_update(CSRS, None, key[1], decide, subresource="approval")
        return


class CSRSigningController(Controller):
    name = "csrsigning"
    watches = {"certificatesigningrequests": lambda self, o: [ns_name(o)]}

    def __init__(self, store, registry, ca_crt: str, ca_key: str):
        super().__init__(store, registry)
        self.ca_crt, self.ca_key = ca_crt, ca_key

    def sync(self, key):
        csr = self.live("certificatesigningrequests", "", key[1])
        if csr is None:
            return None
        status = csr.get("status") or {}
        if (csr.get("spec") or {}).get("signerName") != certificates.KUBELET_SERVING or status.get("certificate") \
                or not certificates.condition(csr, "Approved") or certificates.condition(csr, "Denied") \
                or certificates.condition(csr, "Failed"):
            return self._clean_up(csr)
        spec = csr["spec"]
        try:
            pem = certificates.request_pem(csr)
            req = certificates.read_request(pem)
            if req.organizations != (certificates.NODES_GROUP,) or \
                    not req.common_name.startswith(certificates.NODE_USER_PREFIX) or \
                    not set(spec.get("usages") or []) <= SERVING_USAGES or \
                    any(":" in d for d in req.dns_names):
                raise certificates.CertificateError("the request is not one the kubelet-serving signer signs "
                                                    "(subject, usages or subjectAltNames)")
            sans = [f"DNS:{d}" for d in req.dns_names] + [f"IP:{ip}" for ip in req.ip_addresses]
            seconds = min(int(spec.get("expirationSeconds") or MAX_SECONDS), MAX_SECONDS)
            cert = certificates.sign(pem, self.ca_crt, self.ca_key, sans, list(spec.get("usages") or []), seconds)
        except certificates.CertificateError as e:
            log.warning("cannot sign %s: %s", key[1], e)
            new_status = {**status, "conditions": [*status.get("conditions", []),
                          {"type": "Failed", "status": "True", "reason": "SignerValidationFailure",
                           "message": str(e)}]}
        else:
            log.info("signed %s for %s", key[1], req.common_name)
            new_status = {**status, "certificate": base64.b64encode(cert.encode()).decode()}
        self.registry.guaranteed_update(CSRS, None, key[1], lambda cur: {**cur, "status": new_status},
                                        subresource="status")
        return CLEANUP_AFTER["done"]

    def _clean_up(self, csr: dict) -> float | None:
        """kube-controller-manager's csrcleaner: requests are deleted an
        hour after they were decided or issued, a day after they were made
        when still pending. Returns when to look again."""
        stamp = csr["metadata"].get("creationTimestamp")
        decided = [c.get("lastUpdateTime") for c in csr.get("status", {}).get("conditions", []) or []]
        if decided and any(decided):
            stamp, limit = max(t for t in decided if t), CLEANUP_AFTER["done"]
        else:
            limit = CLEANUP_AFTER["pending"]
        t = printers.parse_time(stamp)
        left = limit - (time.time() - t.timestamp()) if t else limit
        if left > 0:
            return left + 1
        log.info("deleting %s: %s", csr["metadata"]["name"], "decided over an hour ago" if decided else
                 "pending for a day")
        try:
            self.registry.delete(CSRS, None, csr["metadata"]["name"])
        except APIError as e:
            if e.code != 404:
                raise
        return None
