"""The cluster's certificates and tokens: what kubeadm puts in
/etc/kubernetes/pki, made at `nsplane up` with the openssl CLI (no Python
crypto dependency).

<state>/<cluster>/pki/ holds
  ca.crt, ca.key                the cluster CA (kubeconfigs embed ca.crt)
  apiserver.crt, apiserver.key  the API server's serving certificate, with the
                                SANs kube-apiserver has (kubernetes,
                                kubernetes.default, ...svc.<domain>, 127.0.0.1,
                                the host's underlay IP, the `kubernetes` ClusterIP)
  apiserver-kubelet-client.crt, .key
                                the API server's client certificate when it
                                calls a kubelet (logs, exec, attach,
                                nodes/proxy): CN kube-apiserver-kubelet-client,
                                O system:masters, as kubeadm issues it
  tokens.csv                    kube-apiserver's --token-auth-file format:
                                token,user,uid,"group,group"
  <role>.token                  the token each client uses (admin: kubeconfig,
                                node: node agents, coredns: the DNS pods)
  sa.key, sa.pub                the service-account signing key pair (RSA 2048,
                                kubeadm's names): ServiceAccount tokens are
                                JWTs signed with sa.key (agent/apiserver/authn/)

Authentication is by bearer token on TCP: a static token from tokens.csv
(this module's `Authenticator`) or a ServiceAccount JWT (agent/apiserver/authn/);
the Unix socket is trusted (file mode 0600, root only), like a local admin
port. Authorization is RBAC and the Node authorizer (agent/apiserver/authz.py):
the admin is in system:masters, each node agent is system:node:<name> in
system:nodes (its own token, node-<name>.token), coredns is the
kube-system/coredns ServiceAccount.

The CA key stays here, on the server's machine. Kubelets get their serving
certificates through CertificateSigningRequests, signed by the controller
beside the API server (agent/controllers/certificates.py), and trust the API
server's kubelet client certificate because the cluster CA issued it.
"""
from __future__ import annotations

import csv
import hmac
import io
import ipaddress
import os
import secrets
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass

from agent.api import certificates

KUBELET_CLIENT = ("kube-apiserver-kubelet-client", "system:masters")   # (CN, O), as kubeadm's
JOIN_USER = "nsplane:joined-node"      # bound to system:node by the API server's policy (agent/apiserver/rbac)
USERS = {   # role -> (user name, groups)
    "admin": ("kubernetes-admin", "system:masters"),
    # the token machines joining in host mode share (no per-node credential yet): bound to system:node's
    # rules by RBAC, without the Node authorizer's per-node limits
    "node": (JOIN_USER, "system:nodes"),
    "coredns": ("system:serviceaccount:kube-system:coredns", "system:serviceaccounts,system:serviceaccounts:kube-system"),
}
NODE_ROLE_PREFIX = "node-"      # role node-<name>: user system:node:<name> in system:nodes, one per node


def node_role(node: str) -> str:
    return NODE_ROLE_PREFIX + node


def node_user(node: str) -> tuple[str, str]:
    return f"system:node:{node}", "system:nodes"
PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version")   # system:public-info-viewer


class PKIError(Exception):
    pass


@dataclass(frozen=True)
class Paths:
    dir: str

    @property
    def ca_crt(self) -> str:
        return os.path.join(self.dir, "ca.crt")

    @property
    def ca_key(self) -> str:
        return os.path.join(self.dir, "ca.key")

    @property
    def server_crt(self) -> str:
        return os.path.join(self.dir, "apiserver.crt")

    @property
    def server_key(self) -> str:
        return os.path.join(self.dir, "apiserver.key")

    @property
    def sans(self) -> str:
        return os.path.join(self.dir, "apiserver.sans")

    @property
    def kubelet_client_crt(self) -> str:
        return os.path.join(self.dir, "apiserver-kubelet-client.crt")

    @property
    def kubelet_client_key(self) -> str:
        return os.path.join(self.dir, "apiserver-kubelet-client.key")

    @property
    def tokens(self) -> str:
        return os.path.join(self.dir, "tokens.csv")

    @property
    def sa_key(self) -> str:
        return os.path.join(self.dir, "sa.key")

    @property
    def sa_pub(self) -> str:
        return os.path.join(self.dir, "sa.pub")


def server_sans(host_ips: list[str], service_ip: str, domain: str) -> list[str]:
    """subjectAltName entries of the serving certificate, kubeadm's list."""
    dns = ["kubernetes", "kubernetes.default", "kubernetes.default.svc", f"kubernetes.default.svc.{domain}",
           "localhost"]
    ips = []
    for ip in ["127.0.0.1", *host_ips, service_ip]:
        if ip and ip not in ips:
            ipaddress.ip_address(ip)
            ips.append(ip)
    return [f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips]


def _openssl(*args: str) -> None:
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise PKIError(f"openssl {args[0]} failed: {r.stderr.strip()}; is the openssl package installed?")


def _new_key(path: str) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", path)
    os.chmod(path, 0o600)


def ensure_ca(p: Paths, cluster: str) -> None:
    if os.path.exists(p.ca_crt) and os.path.exists(p.ca_key):
        return
    _new_key(p.ca_key)
    _openssl("req", "-x509", "-new", "-key", p.ca_key, "-out", p.ca_crt, "-days", "3650", "-subj",
             f"/CN={cluster}-ca", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign")


def ensure_server_cert(p: Paths, sans: list[str]) -> None:
    """Issue (or reissue, when the SANs changed) the API server's certificate."""
    want = ",".join(sans)
    try:
        with open(p.sans) as f:
            if f.read() == want and os.path.exists(p.server_crt) and os.path.exists(p.server_key):
                return
    except OSError:
        pass
    _new_key(p.server_key)
    with tempfile.TemporaryDirectory(prefix="nsplane-pki-") as tmp:
        csr, ext = os.path.join(tmp, "req.csr"), os.path.join(tmp, "ext.cnf")
        with open(ext, "w") as f:
            f.write(f"subjectAltName={want}\nextendedKeyUsage=serverAuth\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=critical,CA:FALSE\n")
        _openssl("req", "-new", "-key", p.server_key, "-out", csr, "-subj", "/CN=kube-apiserver")
        _openssl("x509", "-req", "-in", csr, "-CA", p.ca_crt, "-CAkey", p.ca_key, "-CAcreateserial",
                 "-out", p.server_crt, "-days", "825", "-extfile", ext)
    with open(p.sans, "w") as f:
        f.write(want)


def ensure_kubelet_client_cert(p: Paths) -> None:
    """Issue the API server's kubelet client certificate, unless one the
    current CA issued is there and has a month left."""
    if os.path.exists(p.kubelet_client_crt) and os.path.exists(p.kubelet_client_key):
        try:
            cert = certificates.read_certificate(p.kubelet_client_crt, p.ca_crt)
            if cert.issued_by_ca and cert.not_after > time.time() + 30 * 86400:
                return
        except certificates.CertificateError:
            pass
    certificates.new_key(p.kubelet_client_key)
    cn, org = KUBELET_CLIENT
    req = certificates.new_request(p.kubelet_client_key, cn, [org], [])
    pem = certificates.sign(req, p.ca_crt, p.ca_key, [], ["digital signature", "key encipherment", "client auth"])
    with open(p.kubelet_client_crt + ".tmp", "w") as f:
        f.write(pem)
    os.replace(p.kubelet_client_crt + ".tmp", p.kubelet_client_crt)


def ensure_service_account_key(p: Paths) -> None:
    """The key pair ServiceAccount tokens are signed with (kept across `up`s:
    a new key would invalidate every token handed out)."""
    if os.path.exists(p.sa_key) and os.path.exists(p.sa_pub):
        return
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", p.sa_key)
    os.chmod(p.sa_key, 0o600)
    _openssl("pkey", "-in", p.sa_key, "-pubout", "-out", p.sa_pub)


def ensure_tokens(p: Paths, users: dict[str, tuple[str, str]] | None = None) -> dict[str, str]:
    """role -> token; new roles get a fresh random token, old ones are kept
    (with the groups `users` gives them now)."""
    have = read_tokens(p.tokens)
    by_user = {user: tok for tok, (user, _) in have.items()}
    out, changed = {}, False
    for role, (user, groups) in (USERS if users is None else users).items():
        tok = by_user.get(user)
        if tok is None:
            tok = secrets.token_urlsafe(32)
            changed = True
        elif have[tok][1] != groups:
            changed = True
        have[tok] = (user, groups)
        out[role] = tok
    if changed:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        for tok, (user, groups) in have.items():
            w.writerow([tok, user, user, groups])
        fd = os.open(p.tokens + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(buf.getvalue())
        os.replace(p.tokens + ".tmp", p.tokens)
    return out


def read_tokens(path: str) -> dict[str, tuple[str, str]]:
    """token -> (user, groups) from a token-auth file; {} if missing."""
    try:
        with open(path, newline="") as f:
            return {row[0]: (row[1], row[3] if len(row) > 3 else "") for row in csv.reader(f) if len(row) >= 2}
    except OSError:
        return {}


def ensure(pki_dir: str, cluster: str, host_ips: list[str], service_ip: str, domain: str,
           nodes: list[str] = ()) -> dict[str, str]:
    """Everything at once (idempotent); returns role -> token. Each of
    `nodes` gets its own token (role node-<name>)."""
    os.makedirs(pki_dir, mode=0o700, exist_ok=True)
    p = Paths(pki_dir)
    ensure_ca(p, cluster)
    ensure_server_cert(p, server_sans(host_ips, service_ip, domain))
    ensure_kubelet_client_cert(p)
    ensure_service_account_key(p)
    tokens = ensure_tokens(p, {**USERS, **{node_role(n): node_user(n) for n in nodes}})
    _write_token_files(pki_dir, tokens)
    return tokens


def ensure_node_token(pki_dir: str, node: str) -> str:
    """The token of node `node` (user system:node:<node>), made if missing;
    the API server reads tokens.csv again when it changes."""
    tokens = ensure_tokens(Paths(pki_dir), {node_role(node): node_user(node)})
    _write_token_files(pki_dir, tokens)
    return tokens[node_role(node)]


def _write_token_files(pki_dir: str, tokens: dict[str, str]) -> None:
    for role, tok in tokens.items():   # <role>.token: what each client reads
        path = os.path.join(pki_dir, f"{role}.token")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(tok + "\n")


def server_context(pki_dir: str) -> ssl.SSLContext:
    p = Paths(pki_dir)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(p.server_crt, p.server_key)
    ctx.set_alpn_protocols(["http/1.1"])     # no h2: kubectl then speaks HTTP/1.1 (and upgrades for exec)
    return ctx


_HTTP_STARTS = (b"GET /", b"HEAD ", b"POST ", b"PUT /", b"OPTIO")


def refused_plain_http(sock: socket.socket) -> bool:
    """What Go's TLS servers (kube-apiserver, the kubelet) answer plain
    HTTP sent to them: 400 `Client sent an HTTP request to an HTTPS
    server.` Returns True when it answered (the caller then closes)."""
    try:
        head = sock.recv(5, socket.MSG_PEEK)
    except OSError:
        return False
    if head not in _HTTP_STARTS:
        return False
    try:
        sock.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
    except OSError:
        pass
    return True


def client_context(ca_file: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)
    return ctx


def kubelet_client_context(pki_dir: str) -> ssl.SSLContext:
    """What the API server calls kubelets with: their serving certificate
    must come from the cluster CA and name the address called (the node's
    InternalIP); it presents the kubelet client certificate."""
    p = Paths(pki_dir)
    ctx = ssl.create_default_context(cafile=p.ca_crt)
    ctx.load_cert_chain(p.kubelet_client_crt, p.kubelet_client_key)
    return ctx


class Authenticator:
    """Bearer tokens from the token file, re-read when the file changes."""

    def __init__(self, tokens_path: str):
        self.path = tokens_path
        self._mtime = None
        self._tokens: dict[str, tuple[str, str]] = {}

    def _load(self) -> None:
        try:
            m = os.stat(self.path).st_mtime_ns
        except OSError:
            m = None
        if m != self._mtime:
            self._tokens, self._mtime = read_tokens(self.path), m

    def user(self, authorization: str | None) -> str | None:
        """The user a `Authorization: Bearer <token>` header names, or None."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        found = self.lookup(authorization[len("Bearer "):].strip())
        return found[0] if found else None

    def lookup(self, token: str) -> tuple[str, list[str]] | None:
        """(user, groups) of a static token, or None."""
        if not token.isascii():          # hmac.compare_digest takes ASCII strings only
            return None
        self._load()
        for tok, (user, groups) in self._tokens.items():
            if hmac.compare_digest(tok, token):
                return user, [g for g in groups.split(",") if g]
        return None
