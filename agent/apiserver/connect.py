"""The API server's connect subresources: what it forwards instead of
storing (kube-apiserver's Connecter REST handlers).

- pods/log, pods/exec, pods/attach, pods/portforward go to the kubelet of the pod's node over
  HTTPS: the kubelet's serving certificate must come from the cluster CA and
  name the node's InternalIP, and the API server presents its kubelet client
  certificate (agent/api/pki.py), which is the only caller the kubelet
  serves (agent/node/kubeletauth.py). exec and attach are relayed byte for
  byte once upgraded (agent/streams/relay.py);
- pods/proxy, services/proxy and nodes/proxy send any method with its path,
  query, headers and body to where agent/apiserver/proxy.py says, and stream
  the answer back as it comes (a WebSocket upgrade is spliced like exec);
  a redirect's Location and the links of an HTML answer are pointed back
  through the proxy (agent/apiserver/linkrewrite.py) and CORS headers
  dropped, as apimachinery's proxy transport does.
  Hop-by-hop headers and the caller's Authorization (used up by the API
  server's authentication) are not passed on; X-Forwarded-For/-Host/-Proto/
  -Uri are added. Backends' https certificates are not verified, as
  kube-apiserver's proxy transport does not; the kubelet's are. A backend
  that cannot be reached is 503 `error trying to reach service: ...`.
"""
from __future__ import annotations

import errno
import gzip
import http.client
import ssl
import urllib.error
import urllib.parse
import urllib.request
import zlib

from agent.api.kinds import BY_RESOURCE, Kind
from agent.apiserver import linkrewrite, proxy
from agent.apiserver.registry import APIError
from agent.apiserver.store import NotFound
from agent.streams import relay, sessions

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
              "trailer", "trailers", "transfer-encoding", "upgrade"}
NOT_FORWARDED = {"authorization", "host"}
PROXY_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_NO_BODY = (204, 304)
CORS = {"access-control-allow-credentials", "access-control-allow-headers", "access-control-allow-methods",
        "access-control-allow-origin"}      # stripped from backends' answers (corsRemovingTransport)


def _insecure() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


_BACKEND_TLS = _insecure()


# ---- logs, exec and attach -------------------------------------------------

def _kubelet_url(api, node: str, path: str) -> str:
    return f"{'https' if api.kubelet_tls else 'http'}://{api.kubelet_address(node)}{path}"


def pod_log(handler, ns: str, name: str, q: dict) -> None:
    api = handler.api
    pod = api.registry.get(BY_RESOURCE["pods"], ns, name)
    node = pod.get("spec", {}).get("nodeName")
    if not node:
        raise APIError(400, "BadRequest", f'pod "{name}" is not scheduled to a node yet; wait for it to start')
    url = _kubelet_url(api, node, f"/containerLogs/{ns}/{name}?" + urllib.parse.urlencode(q))
    follow = q.get("follow") == "true"
    try:
        with urllib.request.urlopen(url, timeout=None if follow else 10, context=api.kubelet_tls) as r:
            if follow:
                chunk = sessions.start_chunked(handler)
                try:
                    relay.relay_chunked(r, chunk)
                    handler.wfile.write(b"0\r\n\r\n")
                except OSError:
                    pass
                return
            return handler._send(200, r.read(), "text/plain")
    except urllib.error.HTTPError as e:
        raise APIError(e.code, "BadRequest", e.read().decode(errors="replace").strip()) from None
    except OSError as e:
        raise APIError(503, "ServiceUnavailable",
                       f"cannot reach the kubelet of node {node} at {api.kubelet_address(node)}: {e}") from None


def pod_stream(handler, ns: str, name: str, verb: str, q: dict) -> None:
    """exec/attach: check the pod, then relay the upgraded connection to
    the kubelet of its node (agent/streams/sessions.py)."""
    api = handler.api
    pod = api.registry.get(BY_RESOURCE["pods"], ns, name)
    containers = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
    container = q.get("container") or (containers[0] if containers else "")
    if container not in containers:
        raise APIError(400, "BadRequest", f"container {container} is not valid for pod {name}")
    phase = pod.get("status", {}).get("phase")
    if phase in ("Succeeded", "Failed") or not pod.get("spec", {}).get("nodeName"):
        raise APIError(400, "BadRequest",
                       f"cannot {verb} into a container in a completed pod; current phase is {phase}"
                       if phase in ("Succeeded", "Failed") else f'pod "{name}" is not scheduled to a node yet')
    addr = api.kubelet_address(pod["spec"]["nodeName"])
    query = urllib.parse.urlsplit(handler.path).query
    try:
        relay.proxy_upgrade(handler, addr, f"/{verb}/{ns}/{name}/{container}?{query}", tls=api.kubelet_tls)
    except sessions.StreamError as e:
        raise APIError(e.code, "ServiceUnavailable", str(e)) from None


def pod_port_forward(handler, ns: str, name: str) -> None:
    """pods/portforward: relay the upgraded connection (SPDY/3.1, or SPDY
    tunnelled in WebSocket) to the kubelet of the pod's node, which connects
    to the pod's ports (agent/streams/portforward.py)."""
    api = handler.api
    pod = api.registry.get(BY_RESOURCE["pods"], ns, name)
    node = pod.get("spec", {}).get("nodeName")
    if not node:
        raise APIError(400, "BadRequest", f"pod {name} does not have a host assigned")
    if not handler.headers.get("Upgrade"):
        raise APIError(400, "BadRequest", "Upgrade request required")
    try:
        relay.proxy_upgrade(handler, api.kubelet_address(node), f"/portForward/{ns}/{name}", tls=api.kubelet_tls)
    except sessions.StreamError as e:
        raise APIError(e.code, "ServiceUnavailable", str(e)) from None


# ---- pods/proxy, services/proxy, nodes/proxy --------------------------------

def locate(api, kind: Kind, ns: str | None, ident: str) -> proxy.Location:
    reg = api.registry
    if kind.resource == "pods":
        scheme, name, port = proxy.split_scheme_name_port("pod", ident)
        return proxy.pod_location(reg.get(kind, ns, name), scheme, port)
    if kind.resource == "services":
        scheme, name, port = proxy.split_scheme_name_port("service", ident)
        svc = reg.get(kind, ns, name)
        try:
            endpoints = reg.store.get("endpoints", ns or "", name)
        except NotFound:
            endpoints = reg.get(BY_RESOURCE["endpoints"], ns, name)     # kube's 404 for the Endpoints
        return proxy.service_location(svc, endpoints, scheme, port, ident)
    scheme, name, port = proxy.split_scheme_name_port("node", ident)
    return proxy.node_location(reg.get(kind, None, name), scheme, port, api.kubelet_port)


def serve_proxy(handler, kind: Kind, ns: str | None, ident: str, subpath: str, query: str) -> None:
    """Forward this request to the pod, Service endpoint or node `ident` names."""
    if handler.command not in PROXY_METHODS:
        raise APIError(405, "MethodNotAllowed", f"{handler.command} is not supported by {kind.resource}/proxy")
    loc = locate(handler.api, kind, ns, ident)
    if loc.kubelet and handler.api.kubelet_tls is None:          # an API server told to call kubelets in plain HTTP
        loc = proxy.Location("http", loc.host, loc.port)
    url_path = urllib.parse.urlsplit(handler.path).path
    if not subpath and handler.command in ("GET", "HEAD"):     # kube redirects .../proxy to .../proxy/
        handler.send_response(301)
        handler.send_header("Location", url_path + "/" + (f"?{query}" if query else ""))
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return
    path = (subpath or "/") + (f"?{query}" if query else "")
    tls = handler.api.kubelet_tls if loc.kubelet else _BACKEND_TLS
    scheme = "https" if getattr(handler.server, "tls", None) is not None else "http"
    headers = forwarded_headers(handler.headers, handler.client_address, url_path, scheme)
    if handler.headers.get("Upgrade"):
        upgrade = [(h, v) for h in ("Upgrade", "Connection") for v in handler.headers.get_all(h) or []]
        port = loc.port or (443 if loc.scheme == "https" else 80)
        try:
            relay.proxy_upgrade(handler, f"{proxy.Location(loc.scheme, loc.host, port).netloc}", path,
                                tls=tls if loc.scheme == "https" else None, headers=upgrade + headers,
                                what=f"{kind.singular} {ident}", method=handler.command)
        except sessions.StreamError as e:
            raise APIError(503, "ServiceUnavailable", str(e)) from None
        return
    links = _Links(linkrewrite.path_prepend(url_path, subpath or "/"), loc.netloc, handler.headers.get("Host", ""))
    _forward(handler, loc, path, headers, tls if loc.scheme == "https" else None, links)


class _Links:
    """How a proxied answer's links are pointed back through the proxy (linkrewrite.py)."""

    def __init__(self, prepend: str, backend: str, caller: str):
        self.prepend, self.backend, self.caller = prepend, backend, caller

    def url(self, target: str) -> str:
        return linkrewrite.rewrite_url(target, self.prepend, self.backend, self.caller)


def forwarded_headers(headers, client_address, url_path: str, scheme: str) -> list[tuple[str, str]]:
    """The request's end-to-end headers, plus X-Forwarded-*."""
    listed = {t.strip().lower() for v in headers.get_all("Connection") or [] for t in v.split(",")}
    out = [(k, v) for k, v in headers.items()
           if k.lower() not in HOP_BY_HOP | NOT_FORWARDED | listed and not k.lower().startswith("impersonate-")
           and not k.lower().startswith("x-forwarded-")]
    prior = headers.get("X-Forwarded-For")
    client = client_address[0] if isinstance(client_address, tuple) and client_address[0] != "unix" else ""
    fwd_for = ", ".join(x for x in (prior, client) if x)
    if fwd_for:
        out.append(("X-Forwarded-For", fwd_for))
    if headers.get("Host"):
        out.append(("X-Forwarded-Host", headers["Host"]))
    out += [("X-Forwarded-Proto", scheme), ("X-Forwarded-Uri", url_path)]
    return out


def _dial_error(e: Exception, loc: proxy.Location) -> str:
    where = f"dial tcp {proxy.Location(loc.scheme, loc.host, loc.port or (443 if loc.scheme == 'https' else 80)).netloc}"
    if isinstance(e, ConnectionRefusedError):
        return f"{where}: connect: connection refused"
    if isinstance(e, TimeoutError):
        return f"{where}: i/o timeout"
    if isinstance(e, OSError) and e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return f"{where}: connect: {e.strerror.lower()}"
    return f"{where}: {e}"


def _forward(handler, loc: proxy.Location, path: str, headers: list, tls: ssl.SSLContext | None,
             links: _Links) -> None:
    if tls is not None:
        conn = http.client.HTTPSConnection(loc.host, loc.port, timeout=10, context=tls)
    else:
        conn = http.client.HTTPConnection(loc.host, loc.port, timeout=10)
    n = int(handler.headers.get("Content-Length") or 0)
    body = handler.rfile.read(n) if n else None
    try:
        conn.putrequest(handler.command, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", loc.netloc)
        for k, v in headers:
            conn.putheader(k, v)
        conn.endheaders(body)
        conn.sock.settimeout(None)          # the answer may take as long as it takes (watches, long polls)
        resp = conn.getresponse()
    except (OSError, http.client.HTTPException) as e:
        conn.close()
        raise APIError(503, "ServiceUnavailable", f"error trying to reach service: {_dial_error(e, loc)}") from None
    try:
        _answer(handler, resp, links)
    finally:
        conn.close()


def _html_body(handler, resp, links: _Links) -> bytes | None:
    """The body of a text/html answer with its links rewritten (read whole,
    as apimachinery's rewriteResponse does); None for anything else."""
    ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip()
    encoding = resp.getheader("Content-Encoding") or ""
    if ctype != "text/html" or encoding not in ("", "gzip", "deflate") or handler.command == "HEAD" \
            or resp.status in _NO_BODY or resp.status < 200 or resp.getheader("Location"):
        return None
    raw = resp.read()
    try:
        text = (gzip.decompress(raw) if encoding == "gzip" else zlib.decompress(raw, -15) if encoding == "deflate"
                else raw).decode("utf-8", "surrogateescape")
    except (OSError, EOFError, zlib.error):
        return raw                               # not what it says it is: passed on as it came
    out = linkrewrite.rewrite_html(text, links.url).encode("utf-8", "surrogateescape")
    if encoding == "gzip":
        return gzip.compress(out)
    if encoding == "deflate":
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        return c.compress(out) + c.flush()
    return out


def _answer(handler, resp, links: _Links) -> None:
    """The backend's status, end-to-end headers (a redirect's Location through
    the proxy, no CORS headers) and body, as they come; HTML with its links
    rewritten."""
    handler.close_connection = True
    body = _html_body(handler, resp, links)
    handler.send_response_only(resp.status, resp.reason)
    listed = {t.strip().lower() for v in resp.headers.get_all("Connection") or [] for t in v.split(",")}
    for k, v in resp.getheaders():
        key = k.lower()
        if key in HOP_BY_HOP | listed | CORS or (body is not None and key == "content-length"):
            continue
        handler.send_header(k, links.url(v) if key == "location" else v)
    if body is not None:
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(body)
        return
    bodyless = handler.command == "HEAD" or resp.status in _NO_BODY or resp.status < 200
    chunked = not bodyless and resp.getheader("Content-Length") is None
    if chunked:
        handler.send_header("Transfer-Encoding", "chunked")
    handler.send_header("Connection", "close")
    handler.end_headers()
    if bodyless:
        return
    try:
        while True:
            data = resp.read1(65536)
            if not data:
                break
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            handler.wfile.flush()
        if chunked:
            handler.wfile.write(b"0\r\n\r\n")
    except (OSError, http.client.HTTPException):
        handler.close_connection = True
