"""Watch streaming: `?watch=true` on a list path answers with one chunked
200 of newline-delimited JSON events (`{"type": "ADDED", "object": {...}}`),
as kube-apiserver does: first the current objects when the client gave no
resourceVersion (or "0"), then every change after it from the store's event
log, until the client goes, the timeout passes or the server stops. A
resourceVersion older than the log holds is the 410 Expired `Status` that
tells an informer to list again. When kubectl asked for Tables, each event's
object is a one-row Table.
"""
from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler
from typing import Callable

from agent.api.kinds import Kind
from agent.apiserver import tables
from agent.apiserver.crd import custom
from agent.apiserver.crd.definition import KIND, CustomKind
from agent.apiserver.registry import APIError
from agent.apiserver.store import Gone, Store


def stream(request: BaseHTTPRequestHandler, store: Store, kind: Kind, namespace: str | None, query: dict,
           pred: Callable[[dict], bool] | None, stopping: threading.Event,
           as_table: str | None, include: str) -> None:
    """Serve one watch on `request`'s connection (chunked, HTTP/1.1)."""
    scope = namespace if kind.namespaced else None
    rv = query.get("resourceVersion")
    initial: list[dict] = []
    if not rv or rv == "0":
        initial, since = store.list(kind.resource, scope, pred)
    else:
        try:
            since = int(rv)
        except ValueError:
            raise APIError(400, "BadRequest", f'invalid resource version "{rv}": it must be a number') from None
    try:
        timeout = float(query.get("timeoutSeconds", 1800))
    except ValueError:
        raise APIError(400, "BadRequest", f'invalid value for timeoutSeconds "{query["timeoutSeconds"]}": '
                                          f'it must be a number of seconds') from None
    try:
        events = store.watch(kind.resource, scope, since, stopping, timeout)
        first = next(events)   # raises Gone before we commit to a 200
    except Gone as e:
        raise APIError(410, "Expired", str(e)) from None
    request.send_response(200)
    request.send_header("Content-Type", "application/json")
    request.send_header("Transfer-Encoding", "chunked")
    request.end_headers()
    try:
        for obj in initial:
            _chunk(request, event("ADDED", kind, obj, as_table, include))
        for ev in itertools.chain([first], events):
            if ev is None:
                request.wfile.flush()
                continue
            if pred and not pred(ev.obj):
                continue
            _chunk(request, event(ev.type, kind, ev.obj, as_table, include))
        request.wfile.write(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError, OSError):
        request.close_connection = True


def event(etype: str, kind: Kind, obj: dict, as_table: str | None, include: str) -> dict:
    """One watch event; its object is a one-row Table when kubectl asked for tables."""
    if isinstance(kind, CustomKind):
        obj = kind.output(obj)
    if as_table:
        obj = table(kind, [obj], version=as_table, include=include,
                    resource_version=obj["metadata"].get("resourceVersion", ""))
    return {"type": etype, "object": obj}


def table(kind: Kind, objs: list[dict], **kw) -> dict:
    """The Table of a built-in kind (agent/apiserver/tables.py) or of a
    custom resource (its CRD's printer columns)."""
    if isinstance(kind, CustomKind) or kind.kind == KIND:
        return custom.table(kind, objs, **kw)
    return tables.table(kind.kind, objs, **kw)


def _chunk(request: BaseHTTPRequestHandler, event: dict) -> None:
    data = json.dumps(event).encode() + b"\n"
    request.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
    request.wfile.flush()
