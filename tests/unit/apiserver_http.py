"""An API server (store, registry, bootstrap objects; no controllers) on
127.0.0.1 for the unit tests, and one JSON request helper that returns the
status code, body and headers whatever the code."""
from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request

from agent.apiserver.registry import Registry
from agent.apiserver.serving import APIServer
from agent.apiserver.store import Store
from agent.controllers import bootstrap


@contextlib.contextmanager
def serving(tmp_path):
    """Yields the server's base URL; always stops it."""
    store = Store(str(tmp_path / "store.db"))
    registry = Registry(store)
    bootstrap.bootstrap(registry, "172.28.0.1", 6443)
    server = APIServer(registry, [("127.0.0.1", 0)], str(tmp_path / "api.sock"))
    server.start()
    try:
        host, port = server.servers[0].server_address
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        store.close()


def call(base: str, method: str, path: str, body=None, ctype: str = "application/json",
         accept: str = "application/json", user_agent: str = "kubectl/v1.32.0"):
    """(code, decoded JSON body, headers); `body` is JSON-encoded unless bytes."""
    data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
    r = urllib.request.Request(base + path, data=data, method=method,
                               headers={"Content-Type": ctype, "Accept": accept, "User-Agent": user_agent})
    try:
        with urllib.request.urlopen(r) as resp:
            return resp.status, json.loads(resp.read()), resp.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), e.headers
