"""The API server: Kubernetes REST paths over HTTPS (token auth) on TCP, and
plain HTTP on a trusted Unix socket.

Discovery (/version, /api, /apis, aggregated discovery: agent/apiserver/discovery.py),
OpenAPI v2/v3 and fieldValidation (agent/apiserver/openapi.py), server-side Tables for
`kubectl get` (agent/apiserver/tables.py) and list paging (agent/apiserver/paging.py).

Routes `/api/v1/...` and `/apis/<group>/<version>/...` for the kinds in
`agent.api.kinds`: get, list (labelSelector, fieldSelector), watch (from a
resourceVersion, newline-delimited JSON events), create, update (PUT, with
resourceVersion conflicts), PATCH (strategic, merge and JSON patch:
agent/apiserver/patch.py), delete (gracePeriodSeconds, propagationPolicy), dryRun=All,
the status and scale subresources (agent/apiserver/writes.py), pod logs and
exec/attach (relayed to the pod's kubelet: agent/streams/sessions.py). Errors are
`Status` objects. The registry does defaulting, validation and allocation.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import ssl
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from agent.api import fields, selectors
from agent.api.kinds import BY_RESOURCE, Kind
from agent.api.objects import internal_ip
from agent.api.pki import PUBLIC_PATHS
from agent.apiserver import discovery, openapi, paging, patch, tables, writes
from agent.apiserver.registry import APIError, Registry
from agent.apiserver.store import Gone
from agent.streams import relay, sessions

log = logging.getLogger("nsplane.apiserver")


def parse_path(path: str) -> tuple[Kind, str | None, str | None, str | None]:
    """'/api/v1/namespaces/default/services/web/status' ->
    (Service kind, 'default', 'web', 'status')."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        raise APIError(404, "NotFound", f"the server could not find the requested resource ({path})")
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] in BY_RESOURCE:
        namespace, rest = rest[1], rest[2:]
    if not rest or rest[0] not in BY_RESOURCE or BY_RESOURCE[rest[0]].group != group:
        raise APIError(404, "NotFound", f"the server could not find the requested resource ({path})")
    kind = BY_RESOURCE[rest[0]]
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    return kind, namespace, name, sub


def list_kind(kind: Kind) -> str:
    return kind.kind + "List"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nsplane-apiserver"
    api: "APIServer"

    def log_message(self, fmt, *args):  # noqa: N802 - stdlib name
        log.debug("%s %s", self.command, self.path)

    # ---- plumbing ----------------------------------------------------
    def _send(self, code: int, body: dict | bytes, ctype: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        for w in getattr(self, "_warnings", ()):
            self.send_header("Warning", f"299 - {json.dumps(w)}")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw or b"{}")
        except json.JSONDecodeError as e:
            raise APIError(400, "BadRequest", f"the request body is not valid JSON: {e}") from None

    def _dispatch(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        self._warnings: list[str] = []
        rfile = self.rfile
        try:
            self._authenticate(url.path)
            if url.path in ("/healthz", "/readyz", "/livez"):
                return self._send(200, b"ok", "text/plain")
            if url.path == "/version":
                return self._send(200, discovery.version_info())
            if url.path.startswith("/openapi/") and self.command == "GET":
                return self._send(200, *openapi.serve(url.path, self.headers.get("Accept")))
            doc = discovery.document(url.path, self.headers.get("Accept"))
            if doc is not None:
                return self._send(200, *doc)
            kind, ns, name, sub = parse_path(url.path)
            self._field_validation(kind, sub, q)
            getattr(self, "_do_" + self.command.lower())(kind, ns, name, sub, q)
        except APIError as e:
            self._send(e.code, e.status())
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # a bug must not kill the server; say so loudly
            log.exception("request %s %s failed", self.command, self.path)
            self._send(500, APIError(500, "InternalError", f"Internal error occurred: {e}").status())
        finally:
            self.rfile = rfile

    def _field_validation(self, kind: Kind, sub: str | None, q: dict) -> None:
        """?fieldValidation=Strict|Warn|Ignore on create, update and patch
        bodies (agent/apiserver/openapi.py): Strict rejects unknown fields, Warn adds
        Warning headers, both Warn and Ignore drop them. The body is read
        here and replayed (pruned) to the verb."""
        if self.command not in ("POST", "PUT", "PATCH") or sub:
            return
        self._warnings, raw = openapi.check_body(kind, self._raw_body(), self.command,
                                                 self.headers.get("Content-Type", ""), q.get("fieldValidation"))
        if "Content-Length" in self.headers:
            self.headers.replace_header("Content-Length", str(len(raw)))
        self.rfile = _Replay(raw, self.rfile)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def _authenticate(self, path: str) -> None:
        """kube-apiserver without anonymous auth: a missing or unknown bearer
        token is 401 Unauthorized (health and version stay public)."""
        auth = self.api.authenticator
        if auth is None or getattr(self.server, "trusted", False) or path in PUBLIC_PATHS:
            return
        if auth.user(self.headers.get("Authorization")) is None:
            raise APIError(401, "Unauthorized", "Unauthorized")

    # ---- verbs -------------------------------------------------------
    def _do_get(self, kind, ns, name, sub, q):
        reg = self.api.registry
        if name and sub == "log":
            return self._pod_log(ns, name, q)
        if name and sub in ("exec", "attach") and kind.kind == "Pod":
            return self._pod_stream(ns, name, sub, q)
        if name and sub == "scale":
            writes.require_scalable(kind)
            return self._send(200, writes.scale_of(reg.get(kind, ns, name)))
        as_table = self._table_version(kind, sub)
        if name:
            obj = reg.get(kind, ns, name)
            if as_table:
                return self._send(200, tables.table(kind.kind, [obj], version=as_table, include=self._include(q),
                                                    resource_version=obj["metadata"].get("resourceVersion", "")))
            return self._send(200, obj)
        pred = _predicate(q, kind.kind)
        if q.get("watch") in ("1", "true"):
            return self._watch(kind, ns, q, pred)
        items, rv = reg.store.list(kind.resource, ns if kind.namespaced else None, pred)
        try:
            items, md = paging.page(items, rv, q.get("limit"), q.get("continue"))
        except paging.BadContinue as e:
            raise APIError(400, "BadRequest", str(e)) from None
        if as_table:
            return self._send(200, tables.table(
                kind.kind, items, version=as_table, include=self._include(q), resource_version=md["resourceVersion"],
                continue_token=md.get("continue", ""), remaining=md.get("remainingItemCount")))
        self._send(200, {"kind": list_kind(kind), "apiVersion": kind.api_version, "metadata": md, "items": items})

    def _table_version(self, kind: Kind, sub: str | None) -> str | None:
        """'v1'/'v1beta1' when the client asked for a meta.k8s.io Table (kubectl get)."""
        if sub or not tables.supported(kind.kind):
            return None
        return tables.wants_table(self.headers.get("Accept"))

    @staticmethod
    def _include(q: dict) -> str:
        include = q.get("includeObject") or "Metadata"
        if include not in tables.INCLUDE_OBJECT:
            raise APIError(400, "BadRequest", f'includeObject must be one of {", ".join(tables.INCLUDE_OBJECT)}, '
                                              f'not "{include}"')
        return include

    def _do_post(self, kind, ns, name, sub, q):
        if name and sub in ("exec", "attach") and kind.kind == "Pod":
            return self._pod_stream(ns, name, sub, q)
        if name:
            raise APIError(405, "MethodNotAllowed", "POST to a named resource is not supported")
        reg = self._writer(q)
        self._send(201, reg.create(kind, ns, self._body()))

    def _do_put(self, kind, ns, name, sub, q):
        if not name:
            raise APIError(405, "MethodNotAllowed", "PUT needs a resource name")
        reg = self._writer(q)
        if sub == "scale":
            writes.require_scalable(kind)
            with reg.store.transaction():
                new = writes.with_scale(reg.get(kind, ns, name), self._body())
                out = writes.scale_of(reg.update(kind, ns, name, new))
            return self._send(200, out)
        self._send(200, reg.update(kind, ns, name, self._body(), sub))

    def _do_patch(self, kind, ns, name, sub, q):
        """Strategic merge, JSON merge and JSON patches (agent/apiserver/patch.py), on
        the object, its status, or its scale."""
        if not name:
            raise APIError(405, "MethodNotAllowed", "PATCH needs a resource name")
        raw = self._raw_body()
        ctype = self.headers.get("Content-Type", "")
        reg = self._writer(q)
        if sub == "scale":
            writes.require_scalable(kind)
        with reg.store.transaction():
            cur = reg.get(kind, ns, name)
            target = writes.scale_of(cur) if sub == "scale" else cur
            try:
                patched = patch.apply(ctype, target, raw, "Scale" if sub == "scale" else kind.kind)
            except patch.PatchError as e:
                raise APIError(e.code, {400: "BadRequest", 415: "UnsupportedMediaType"}.get(e.code, "Invalid"),
                               str(e)) from None
            if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
                raise APIError(422, "Invalid", f"{kind.resource} \"{name}\": the patch removed the object's metadata")
            if sub == "scale":
                out = writes.scale_of(reg.update(kind, ns, name, writes.with_scale(cur, patched)))
            else:
                out = reg.update(kind, ns, name, patched, sub)
        self._send(200, out)

    def _do_delete(self, kind, ns, name, sub, q):
        if not name:
            raise APIError(405, "MethodNotAllowed", "collection delete is not supported; name the object")
        body = self._body()
        grace = q.get("gracePeriodSeconds", body.get("gracePeriodSeconds"))
        pre = body.get("preconditions") or {}
        reg = self._writer(q, body)
        obj = writes.delete(reg, kind, ns, name, None if grace is None else int(grace), pre.get("uid"),
                            pre.get("resourceVersion"), writes.propagation(q, body))
        self._send(200, obj)

    def _writer(self, q: dict, body: dict | None = None):
        """The registry, or a dry-run view of it for ?dryRun=All."""
        dry = q.get("dryRun") or ",".join((body or {}).get("dryRun") or [])
        return writes.dry_run_registry(self.api.registry) if writes.check_dry_run(dry) else self.api.registry

    def _raw_body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    # ---- watch and logs ----------------------------------------------
    def _watch(self, kind: Kind, ns, q, pred) -> None:
        store = self.api.registry.store
        scope = ns if kind.namespaced else None
        rv = q.get("resourceVersion")
        initial: list[dict] = []
        if not rv or rv == "0":
            initial, since = store.list(kind.resource, scope, pred)
        else:
            since = int(rv)
        as_table = self._table_version(kind, None)
        include = self._include(q)
        try:
            events = store.watch(kind.resource, scope, since, self.api.stopping,
                                 float(q.get("timeoutSeconds", 1800)))
            first = next(events)   # raises Gone before we commit to a 200
        except Gone as e:
            raise APIError(410, "Expired", str(e)) from None
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for obj in initial:
                self._chunk(_event("ADDED", kind, obj, as_table, include))
            pending = [first]
            for ev in _chain(pending, events):
                if ev is None:
                    self.wfile.flush()
                    continue
                if pred and not pred(ev.obj):
                    continue
                self._chunk(_event(ev.type, kind, ev.obj, as_table, include))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def _chunk(self, event: dict) -> None:
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _pod_log(self, ns, name, q) -> None:
        pod = self.api.registry.get(BY_RESOURCE["pods"], ns, name)
        node = pod.get("spec", {}).get("nodeName")
        if not node:
            raise APIError(400, "BadRequest", f'pod "{name}" is not scheduled to a node yet; wait for it to start')
        addr = self.api.kubelet_address(node)
        url = f"http://{addr}/containerLogs/{ns}/{name}?" + urllib.parse.urlencode(q)
        try:
            with urllib.request.urlopen(url, timeout=None if q.get("follow") == "true" else 10) as r:
                if q.get("follow") == "true":
                    return self._stream_chunked(r)
                return self._send(200, r.read(), "text/plain")
        except urllib.error.HTTPError as e:
            raise APIError(e.code, "BadRequest", e.read().decode(errors="replace").strip()) from None
        except OSError as e:
            raise APIError(503, "ServiceUnavailable",
                           f"cannot reach the kubelet of node {node} at {addr}: {e}") from None

    def _stream_chunked(self, resp) -> None:
        """`logs -f`: relay the kubelet's stream as it comes."""
        chunk = sessions.start_chunked(self)
        try:
            relay.relay_chunked(resp, chunk)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass

    def _pod_stream(self, ns, name, verb, q) -> None:
        """exec/attach: check the pod, then relay the upgraded connection to
        the kubelet of its node (agent/streams/sessions.py)."""
        pod = self.api.registry.get(BY_RESOURCE["pods"], ns, name)
        containers = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
        container = q.get("container") or (containers[0] if containers else "")
        if container not in containers:
            raise APIError(400, "BadRequest", f"container {container} is not valid for pod {name}")
        phase = pod.get("status", {}).get("phase")
        if phase in ("Succeeded", "Failed") or not pod.get("spec", {}).get("nodeName"):
            raise APIError(400, "BadRequest",
                           f"cannot {verb} into a container in a completed pod; current phase is {phase}"
                           if phase in ("Succeeded", "Failed") else f'pod "{name}" is not scheduled to a node yet')
        addr = self.api.kubelet_address(pod["spec"]["nodeName"])
        query = urllib.parse.urlsplit(self.path).query
        try:
            relay.proxy_upgrade(self, addr, f"/{verb}/{ns}/{name}/{container}?{query}")
        except sessions.StreamError as e:
            raise APIError(e.code, "ServiceUnavailable", str(e)) from None


class _Replay:
    """A request body already read, served again to the verb's own read;
    then the connection's stream as before."""

    def __init__(self, data: bytes, rest):
        self._data, self._rest = data, rest

    def read(self, n: int = -1) -> bytes:
        if not self._data:
            return self._rest.read(n)
        if n is None or n < 0 or n >= len(self._data):
            out, self._data = self._data, b""
            return out
        out, self._data = self._data[:n], self._data[n:]
        return out

    def readline(self, limit: int = -1) -> bytes:
        return self.read(limit) if self._data else self._rest.readline(limit)


def _chain(first: list, rest):
    yield from first
    yield from rest


def _event(etype: str, kind: Kind, obj: dict, as_table: str | None, include: str) -> dict:
    """One watch event; its object is a one-row Table when kubectl asked for tables."""
    if as_table:
        obj = tables.table(kind.kind, [obj], version=as_table, include=include,
                           resource_version=obj["metadata"].get("resourceVersion", ""))
    return {"type": etype, "object": obj}


def _predicate(q: dict, kind: str | None = None):
    preds = []
    if q.get("labelSelector"):
        try:
            sel = selectors.parse(q["labelSelector"])
        except ValueError as e:
            raise APIError(400, "BadRequest", str(e)) from None
        preds.append(lambda o: sel.matches(o.get("metadata", {}).get("labels") or {}))
    if q.get("fieldSelector"):
        try:
            preds.append(fields.parse_fields(q["fieldSelector"], kind))
        except ValueError as e:
            raise APIError(400, "BadRequest", str(e)) from None
    if not preds:
        return None
    return lambda o: all(p(o) for p in preds)


class _TCPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    tls: ssl.SSLContext | None = None
    trusted = False            # TCP clients must authenticate (agent/api/pki.py)

    def finish_request(self, request, client_address):
        """TLS handshake on the request's own thread, so a slow client never
        blocks accept()."""
        if self.tls is not None:
            request.settimeout(10)
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                log.debug("TLS handshake with %s failed: %s", client_address, e)
                return
            request.settimeout(None)
        super().finish_request(request, client_address)


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    trusted = True             # mode 0600, root only: the local admin socket

    def get_request(self):
        conn, _ = self.socket.accept()
        return conn, ("unix", 0)


class APIServer:
    """Owns the listeners; `registry` does the work."""

    def __init__(self, registry: Registry, addresses: list[tuple[str, int]], unix_path: str | None = None,
                 kubelet_port: int = 10250, tls: ssl.SSLContext | None = None, authenticator=None):
        """tls: serve HTTPS on the TCP addresses; authenticator: an
        agent.api.pki.Authenticator every TCP request must pass (None: open)."""
        self.registry = registry
        self.stopping = threading.Event()
        self.kubelet_port = kubelet_port
        self.authenticator = authenticator
        handler = type("BoundHandler", (Handler,), {"api": self})
        self.servers: list[socketserver.BaseServer] = [_TCPServer(a, handler) for a in addresses]
        for s in self.servers:
            s.tls = tls
        if unix_path:
            if os.path.exists(unix_path):
                os.unlink(unix_path)
            self.servers.append(_UnixServer(unix_path, handler))
            os.chmod(unix_path, 0o600)
        self.unix_path = unix_path

    def kubelet_address(self, node_name: str) -> str:
        node = self.registry.store.get("nodes", "", node_name)
        ip = internal_ip(node)
        if ip is None:
            raise APIError(503, "ServiceUnavailable", f"node {node_name} has no InternalIP")
        port = node.get("status", {}).get("daemonEndpoints", {}).get("kubeletEndpoint", {}).get("Port")
        return f"{ip}:{port or self.kubelet_port}"

    def start(self) -> None:
        for s in self.servers:
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.5},
                             name=f"api-{s.server_address}", daemon=True).start()

    def stop(self) -> None:
        self.stopping.set()
        for s in self.servers:
            s.shutdown()
            s.server_close()
        if self.unix_path and os.path.exists(self.unix_path):
            os.unlink(self.unix_path)


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False
