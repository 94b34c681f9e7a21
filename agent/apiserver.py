"""The API server: Kubernetes REST paths over HTTP, on TCP and a Unix socket.

Routes `/api/v1/...` and `/apis/<group>/<version>/...` for the kinds in
`agent.kinds`: get, list (labelSelector, fieldSelector), watch (from a
resourceVersion, newline-delimited JSON events), create, update (PUT, with
resourceVersion conflicts), merge PATCH, delete (gracePeriodSeconds), the
status subresource, and pod logs (proxied to the node's kubelet). Errors are
`Status` objects. The registry does defaulting, validation and allocation.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from agent import selectors
from agent.kinds import BY_RESOURCE, KINDS, Kind
from agent.registry import APIError, Registry
from agent.store import Gone

log = logging.getLogger("nsplane.apiserver")
VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-nsplane", "platform": "linux/amd64",
           "goVersion": "python", "compiler": "nsplane"}


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
        try:
            if url.path in ("/healthz", "/readyz", "/livez"):
                return self._send(200, b"ok", "text/plain")
            if url.path == "/version":
                return self._send(200, VERSION)
            p = url.path.rstrip("/")
            if p in ("/api", "/apis", "/api/v1") or (p.startswith("/apis/") and p.count("/") == 3):
                return self._send(200, discovery(p))
            kind, ns, name, sub = parse_path(url.path)
            getattr(self, "_do_" + self.command.lower())(kind, ns, name, sub, q)
        except APIError as e:
            self._send(e.code, e.status())
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # a bug must not kill the server; say so loudly
            log.exception("request %s %s failed", self.command, self.path)
            self._send(500, APIError(500, "InternalError", f"Internal error occurred: {e}").status())

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    # ---- verbs -------------------------------------------------------
    def _do_get(self, kind, ns, name, sub, q):
        reg = self.api.registry
        if name and sub == "log":
            return self._pod_log(ns, name, q)
        if name:
            obj = reg.get(kind, ns, name)
            return self._send(200, obj)
        pred = _predicate(q)
        if q.get("watch") in ("1", "true"):
            return self._watch(kind, ns, q, pred)
        items, rv = reg.store.list(kind.resource, ns if kind.namespaced else None, pred)
        self._send(200, {"kind": list_kind(kind), "apiVersion": kind.api_version,
                         "metadata": {"resourceVersion": str(rv)}, "items": items})

    def _do_post(self, kind, ns, name, sub, q):
        if name:
            raise APIError(405, "MethodNotAllowed", "POST to a named resource is not supported")
        if q.get("dryRun"):
            raise APIError(400, "BadRequest", "dryRun is not supported by nsplane yet; apply without --dry-run=server")
        self._send(201, self.api.registry.create(kind, ns, self._body()))

    def _do_put(self, kind, ns, name, sub, q):
        if not name:
            raise APIError(405, "MethodNotAllowed", "PUT needs a resource name")
        self._send(200, self.api.registry.update(kind, ns, name, self._body(), sub))

    def _do_patch(self, kind, ns, name, sub, q):
        if not name:
            raise APIError(405, "MethodNotAllowed", "PATCH needs a resource name")
        patch = self._body()
        reg = self.api.registry
        with reg.store._lock:
            cur = reg.get(kind, ns, name)
            new = merge_patch(cur, patch)
            new["metadata"]["resourceVersion"] = patch.get("metadata", {}).get(
                "resourceVersion", cur["metadata"]["resourceVersion"])
            self._send(200, reg.update(kind, ns, name, new, sub))

    def _do_delete(self, kind, ns, name, sub, q):
        if not name:
            raise APIError(405, "MethodNotAllowed", "collection delete is not supported; name the object")
        body = self._body()
        grace = q.get("gracePeriodSeconds", body.get("gracePeriodSeconds"))
        uid = (body.get("preconditions") or {}).get("uid")
        obj = self.api.registry.delete(kind, ns, name, None if grace is None else int(grace), uid)
        self._send(200, obj)

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
                self._chunk({"type": "ADDED", "object": obj})
            pending = [first]
            for ev in _chain(pending, events):
                if ev is None:
                    self.wfile.flush()
                    continue
                if pred and not pred(ev.obj):
                    continue
                self._chunk({"type": ev.type, "object": ev.obj})
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
            with urllib.request.urlopen(url, timeout=10) as r:
                return self._send(200, r.read(), "text/plain")
        except urllib.error.HTTPError as e:
            raise APIError(e.code, "BadRequest", e.read().decode(errors="replace").strip()) from None
        except OSError as e:
            raise APIError(503, "ServiceUnavailable",
                           f"cannot reach the kubelet of node {node} at {addr}: {e}") from None


def _chain(first: list, rest):
    yield from first
    yield from rest


def _predicate(q: dict):
    preds = []
    if q.get("labelSelector"):
        try:
            sel = selectors.parse(q["labelSelector"])
        except ValueError as e:
            raise APIError(400, "BadRequest", str(e)) from None
        preds.append(lambda o: sel.matches(o.get("metadata", {}).get("labels") or {}))
    if q.get("fieldSelector"):
        try:
            preds.append(selectors.parse_fields(q["fieldSelector"]))
        except ValueError as e:
            raise APIError(400, "BadRequest", str(e)) from None
    if not preds:
        return None
    return lambda o: all(p(o) for p in preds)


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def discovery(path: str) -> dict:
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/apis":
        groups = sorted({k.group for k in KINDS if k.group})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": g, "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
             "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"}} for g in groups]}
    gv = path.removeprefix("/api/").removeprefix("/apis/")
    kinds = [k for k in KINDS if k.api_version == gv]
    if not kinds:
        raise APIError(404, "NotFound", f"the server could not find the requested resource ({path})")
    verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
    res = []
    for k in kinds:
        res.append({"name": k.resource, "singularName": k.singular, "namespaced": k.namespaced,
                    "kind": k.kind, "verbs": verbs, "shortNames": list(k.short_names)})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": res}


class _TCPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        conn, _ = self.socket.accept()
        return conn, ("unix", 0)


class APIServer:
    """Owns the listeners; `registry` does the work."""

    def __init__(self, registry: Registry, addresses: list[tuple[str, int]], unix_path: str | None = None,
                 kubelet_port: int = 10250):
        self.registry = registry
        self.stopping = threading.Event()
        self.kubelet_port = kubelet_port
        handler = type("BoundHandler", (Handler,), {"api": self})
        self.servers: list[socketserver.BaseServer] = [_TCPServer(a, handler) for a in addresses]
        if unix_path:
            if os.path.exists(unix_path):
                os.unlink(unix_path)
            self.servers.append(_UnixServer(unix_path, handler))
            os.chmod(unix_path, 0o600)
        self.unix_path = unix_path

    def kubelet_address(self, node_name: str) -> str:
        node = self.registry.store.get("nodes", "", node_name)
        for a in node.get("status", {}).get("addresses", []):
            if a.get("type") == "InternalIP":
                return f"{a['address']}:{node.get('status', {}).get('daemonEndpoints', {}).get('kubeletEndpoint', {}).get('Port', self.kubelet_port)}"
        raise APIError(503, "ServiceUnavailable", f"node {node_name} has no InternalIP")

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
