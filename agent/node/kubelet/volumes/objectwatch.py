"""One watch per ConfigMap and Secret the node's pods use, as the kubelet's
watch-based configmap/secret managers (pkg/kubelet/util/manager
watch_based_manager.go) keep them: an informer on the object's namespace
with `fieldSelector=metadata.name=<name>`.

A node may not list or watch every Secret of the cluster: the API server's
Node authorizer lets it read only the objects its own pods reference, one
name at a time (agent/apiserver/rbac/node.py). A watch is started the first
time a pod's volume asks for an object and stopped (its connection closed,
its thread ended) once no pod of the node uses it, as the kubelet stops the
reflector when an object's last reference goes.
"""
from __future__ import annotations

import threading
from typing import Callable

from agent.api.client import Client, Informer

Key = tuple[str, str, str]            # (kind: "configmap" | "secret", namespace, name)


class ObjectWatches:
    def __init__(self, client: Client, on_change: Callable[[str, dict | None, dict | None], None]):
        self.client, self.on_change = client, on_change
        self._watches: dict[Key, tuple[Informer, threading.Event]] = {}
        self._lock = threading.Lock()
        self._stop: threading.Event | None = None

    def start(self, stop: threading.Event) -> None:
        self._stop = stop
        threading.Thread(target=self._stop_all_with, args=(stop,), name="object-watches", daemon=True).start()

    def _stop_all_with(self, stop: threading.Event) -> None:
        stop.wait()
        self.retain(set())

    def get(self, kind: str, namespace: str, name: str) -> tuple[dict | None, bool]:
        """(the object as last seen, whether its watch has listed); starts the
        watch on first use (nothing is watched before start())."""
        key = (kind, namespace, name)
        with self._lock:
            entry = self._watches.get(key)
            if entry is None:
                if self._stop is None or self._stop.is_set() or not name:
                    return None, False
                inf = Informer(self.client, f"{kind}s", namespace, field_selector=f"metadata.name={name}")
                inf.add_handler(lambda old, new, k=kind: self.on_change(k, old, new))
                entry = self._watches[key] = (inf, threading.Event())
                threading.Thread(target=inf.run, args=(entry[1],), name=f"watch-{kind}-{namespace}-{name}",
                                 daemon=True).start()
        inf = entry[0]
        return inf.get(namespace, name), inf.synced.is_set()

    def retain(self, keys: set[Key]) -> None:
        """Stop the watches of objects no longer in `keys`."""
        with self._lock:
            for key in [k for k in self._watches if k not in keys]:
                inf, stop = self._watches.pop(key)
                inf.close(stop)     # its thread and connections end now, not at the watch's timeout

    def watched(self) -> set[Key]:
        with self._lock:
            return set(self._watches)
