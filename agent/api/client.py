"""A small client for our API server (the Kubernetes REST API), over TCP or a
Unix socket, with list+watch and a shared-informer-style cache.

Used by the controllers' peers out of process (node agents, the coredns pod)
and by the CLI. One keep-alive connection per thread.
"""
from __future__ import annotations

import http.client
import json
import logging
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from typing import Callable, Iterator

from agent.api.kinds import BY_RESOURCE, Kind

log = logging.getLogger("nsplane.client")


class APIStatusError(Exception):
    """The server answered with a Status; `.status` holds it."""

    def __init__(self, status: dict):
        self.status = status
        self.code = status.get("code", 0)
        self.reason = status.get("reason", "")
        super().__init__(status.get("message") or f"HTTP {self.code}")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class Client:
    def __init__(self, server: str, timeout: float = 30.0, ca_file: str | None = None,
                 token: str | None = None, user_agent: str = "nsplane"):
        """server: 'https://host:port' (verified with ca_file, authenticated
        with a bearer token), 'http://host:port' or 'unix:///path/to/api.sock'.
        user_agent names the writer in managedFields ("kubelet/v1.32.0 ...")."""
        self.server = server
        self.user_agent = user_agent
        self.timeout = timeout
        self.token = token
        self._tls = None
        if server.startswith("https://"):
            self._tls = ssl.create_default_context(cafile=ca_file)
        self._local = threading.local()

    def _connect(self, timeout: float | None = None) -> http.client.HTTPConnection:
        t = timeout or self.timeout
        if self.server.startswith("unix://"):
            return _UnixConnection(self.server[len("unix://"):], t)
        u = urllib.parse.urlsplit(self.server)
        if self._tls is not None:
            return http.client.HTTPSConnection(u.hostname, u.port or 443, timeout=t, context=self._tls)
        return http.client.HTTPConnection(u.hostname, u.port or 80, timeout=t)

    def _headers(self, **extra) -> dict:
        h = {"Accept": "application/json", "User-Agent": self.user_agent, **extra}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        return h

    def request(self, method: str, path: str, body: dict | None = None, query: dict | None = None,
                content_type: str = "application/json") -> dict | str:
        if query:
            path += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = json.dumps(body).encode() if body is not None else None
        headers = self._headers(**{"Content-Type": content_type})
        for attempt in (0, 1):
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = self._connect()
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        if resp.getheader("Content-Type", "").startswith("text/plain"):
            if resp.status >= 400:
                raise APIStatusError({"code": resp.status, "message": raw.decode(errors="replace")})
            return raw.decode(errors="replace")
        obj = json.loads(raw or b"{}")
        if resp.status >= 400:
            raise APIStatusError(obj if obj.get("kind") == "Status" else {"code": resp.status, "message": raw.decode()})
        return obj

    # ---- typed helpers -----------------------------------------------
    @staticmethod
    def kind(resource: str | Kind) -> Kind:
        return resource if isinstance(resource, Kind) else BY_RESOURCE[resource]

    def get(self, resource, name: str, namespace: str | None = None) -> dict:
        k = self.kind(resource)
        return self.request("GET", k.path(namespace, name))

    def list(self, resource, namespace: str | None = None, label_selector: str | None = None,
             field_selector: str | None = None) -> dict:
        k = self.kind(resource)
        return self.request("GET", k.path(namespace), query={
            "labelSelector": label_selector, "fieldSelector": field_selector})

    def create(self, resource, obj: dict, namespace: str | None = None) -> dict:
        k = self.kind(resource)
        ns = namespace or obj.get("metadata", {}).get("namespace")
        return self.request("POST", k.path(ns if k.namespaced else None), obj)

    def update(self, resource, obj: dict, subresource: str | None = None) -> dict:
        k = self.kind(resource)
        md = obj["metadata"]
        return self.request("PUT", k.path(md.get("namespace"), md["name"], subresource), obj)

    def patch(self, resource, name: str, patch: dict, namespace: str | None = None,
              subresource: str | None = None) -> dict:
        k = self.kind(resource)
        return self.request("PATCH", k.path(namespace, name, subresource), patch,
                            content_type="application/merge-patch+json")

    def delete(self, resource, name: str, namespace: str | None = None, grace: int | None = None,
               uid: str | None = None) -> dict:
        k = self.kind(resource)
        body = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace is not None:
            body["gracePeriodSeconds"] = grace
        if uid:
            body["preconditions"] = {"uid": uid}
        return self.request("DELETE", k.path(namespace, name), body)

    def logs(self, name: str, namespace: str, **query) -> str:
        return self.request("GET", BY_RESOURCE["pods"].path(namespace, name, "log"), query=query)

    def watch(self, resource, namespace: str | None = None, resource_version: str | None = None,
              label_selector: str | None = None, field_selector: str | None = None,
              timeout: int = 300, stop: threading.Event | None = None,
              opened: Callable[[http.client.HTTPConnection], None] | None = None) -> Iterator[dict]:
        """Yield watch events ({"type", "object"}) until the server ends the stream.
        `opened(conn)` is told the stream's connection (closing it ends the watch at once)."""
        k = self.kind(resource)
        q = {"watch": "1", "resourceVersion": resource_version, "labelSelector": label_selector,
             "fieldSelector": field_selector, "timeoutSeconds": str(timeout)}
        path = k.path(namespace) + "?" + urllib.parse.urlencode({a: b for a, b in q.items() if b is not None})
        conn = self._connect(timeout=timeout + 30)
        try:
            if opened is not None:
                # Connected before it is told, and `stop` checked after: a close()
                # racing with the start of the watch either finds a socket to shut
                # down or has set `stop` by the time it is checked here.
                if conn.sock is None:
                    conn.connect()
                opened(conn)
                if stop is not None and stop.is_set():
                    return
            conn.request("GET", path, headers=self._headers())
            resp = conn.getresponse()
            if resp.status != 200:
                raise APIStatusError(json.loads(resp.read() or b"{}"))
            while stop is None or not stop.is_set():
                line = resp.readline()
                if not line:
                    return
                yield json.loads(line)
        finally:
            conn.close()


Handler = Callable[[dict | None, dict | None], None]

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def compact(obj: dict, drop_target_refs: bool = False) -> dict:
    """A copy of an API object fit for a long-lived cache of thousands: no
    metadata.managedFields or kubectl's last-applied annotation (large, never
    read by a cache's users), optionally no EndpointSlice endpoints[].targetRef,
    and every dict key and short string interned, so 10,000 Services share one
    "metadata", "TCP" or "SingleStack" instead of holding a copy each (what
    client-go's informer transforms are for)."""
    md = obj.get("metadata") or {}
    if "managedFields" in md or LAST_APPLIED in (md.get("annotations") or {}):
        md = {k: v for k, v in md.items() if k != "managedFields"}
        annotations = {k: v for k, v in (md.pop("annotations", None) or {}).items() if k != LAST_APPLIED}
        md.update({"annotations": annotations} if annotations else {})
        obj = {**obj, "metadata": md}
    if drop_target_refs and obj.get("endpoints"):
        obj = {**obj, "endpoints": [{k: v for k, v in ep.items() if k != "targetRef"} for ep in obj["endpoints"]]}
    return _interned(obj)


def _interned(value):
    if isinstance(value, dict):
        return {sys.intern(k): _interned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_interned(v) for v in value]
    if isinstance(value, str) and len(value) <= 32:
        return sys.intern(value)
    return value


class Informer:
    """List, then watch from the list's resourceVersion; keep a cache; call
    handlers with (old, new) — new None on delete. Relists on 410 Gone or a
    dropped connection. Handlers run on the informer's thread. `transform`
    (e.g. `compact`) is applied to every object before it is cached or handed
    to a handler."""

    def __init__(self, client: Client, resource: str, namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None,
                 transform: Callable[[dict], dict] | None = None):
        self.client, self.resource, self.transform = client, resource, transform
        self.namespace, self.label_selector, self.field_selector = namespace, label_selector, field_selector
        self.cache: dict[tuple[str, str], dict] = {}
        self.handlers: list[Handler] = []
        self.synced = threading.Event()
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None

    def close(self, stop: threading.Event) -> None:
        """Set `stop` (the event run() was given) and end its watch at once,
        not at the server's next event or timeout: a stopped informer keeps
        no thread and no connection."""
        stop.set()
        conn = self._conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _opened(self, conn: http.client.HTTPConnection) -> None:
        self._conn = conn

    def add_handler(self, fn: Handler) -> None:
        self.handlers.append(fn)

    def items(self) -> list[dict]:
        with self._lock:
            return list(self.cache.values())

    def get(self, namespace: str, name: str) -> dict | None:
        return self.cache.get((namespace or "", name))

    def _key(self, obj: dict) -> tuple[str, str]:
        md = obj["metadata"]
        return md.get("namespace", "") or "", md["name"]

    def _emit(self, old, new) -> None:
        for h in self.handlers:
            try:
                h(old, new)
            except Exception:
                log.exception("%s handler failed", self.resource)

    def _relist(self) -> str:
        lst = self.client.list(self.resource, self.namespace, self.label_selector, self.field_selector)
        items = lst["items"] if self.transform is None else [self.transform(o) for o in lst["items"]]
        fresh = {self._key(o): o for o in items}
        with self._lock:
            old = self.cache
            self.cache = fresh
        for k, o in fresh.items():
            prev = old.get(k)
            if prev is None or prev["metadata"].get("resourceVersion") != o["metadata"].get("resourceVersion"):
                self._emit(prev, o)
        for k, o in old.items():
            if k not in fresh:
                self._emit(o, None)
        self.synced.set()
        return lst["metadata"]["resourceVersion"]

    def run(self, stop: threading.Event) -> None:
        rv = None
        while not stop.is_set():
            try:
                if rv is None:
                    rv = self._relist()
                for ev in self.client.watch(self.resource, self.namespace, rv, self.label_selector,
                                            self.field_selector, stop=stop, opened=self._opened):
                    obj = ev["object"]
                    if ev["type"] == "ERROR":
                        rv = None
                        break
                    if self.transform is not None:
                        obj = self.transform(obj)
                    rv = obj["metadata"].get("resourceVersion", rv)
                    key = self._key(obj)
                    with self._lock:
                        old = self.cache.get(key)
                        if ev["type"] == "DELETED":
                            self.cache.pop(key, None)
                        else:
                            self.cache[key] = obj
                    self._emit(old, None if ev["type"] == "DELETED" else obj)
            except APIStatusError as e:
                if e.code == 410:
                    rv = None
                    continue
                log.warning("watch %s: %s", self.resource, e)
                stop.wait(1.0)
            except (OSError, http.client.HTTPException, json.JSONDecodeError) as e:
                log.debug("watch %s dropped: %s; retrying", self.resource, e)
                rv = None
                stop.wait(0.5)

    def start(self, stop: threading.Event) -> threading.Thread:
        t = threading.Thread(target=self.run, args=(stop,), name=f"informer-{self.resource}", daemon=True)
        t.start()
        return t


def wait_synced(informers, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    for inf in informers:
        if not inf.synced.wait(max(0.0, deadline - time.monotonic())):
            return False
    return True
