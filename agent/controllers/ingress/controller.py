"""The Ingress controller: Ingresses of the `nsplane` class (IngressClasses
whose spec.controller is CONTROLLER) -> one nginx proxy instance
(agent/controllers/proxy), and that instance's address -> every such
Ingress's status.loadBalancer.ingress.

Every change of an Ingress, IngressClass, Service or Secret queues one key;
the sync rebuilds the whole configuration (routes.build, pure), publishes it
(written only when it changed, then a graceful reload in the pods) and
writes the statuses. The proxy's Deployment and LoadBalancer Service are
made when the first Ingress of the class appears, so a cluster without
Ingresses runs no nginx and keeps its pool addresses.

Events on the Ingress, each once per cause (as ingress-nginx reports them:
`Sync` "Scheduled for sync" when its spec changes, Warnings for a Service,
port or TLS Secret that cannot be used, and `RELOAD` "Error reloading
NGINX: ..." with nginx's own message on every Ingress of the class when the
configuration they make fails `nginx -t` (deploy.publish tests it with this
machine's nginx before writing it; the proxy keeps the previous one)).
"""
from __future__ import annotations

import base64
import logging
import ssl
import tempfile
import time

from agent.apiserver.registry import APIError
from agent.controllers.base import Controller, record_event
from agent.controllers.bootstrap import ensure as ensure_object
from agent.controllers.ingress import routes
from agent.controllers.proxy import deploy
from agent.apiserver.defaultingressclass import DEFAULT_ANNOTATION, LEGACY_ANNOTATION

log = logging.getLogger("nsplane.controllers.ingress")

CONTROLLER = "nsplane.io/ingress-nginx"
DEFAULT_CLASS = "nsplane"
COMPONENT = "nginx-ingress-controller"
INSTANCE = deploy.ProxyInstance("nsplane-ingress-nginx")
KEY = "ingresses"
RELOAD = "RELOAD"                # ingress-nginx's Event reason when nginx refuses a configuration
RELOAD_MESSAGE = "Error reloading NGINX: the new configuration fails nginx -t, the previous one keeps serving: "


def default_class() -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": DEFAULT_CLASS, "annotations": {DEFAULT_ANNOTATION: "true"},
                         "labels": {"app.kubernetes.io/name": "nsplane-proxy"}},
            "spec": {"controller": CONTROLLER}}


def ensure_default_class(registry) -> None:
    """The IngressClass `nsplane`, marked default (made at `nsplane up`)."""
    ensure_object(registry, "ingressclasses", default_class())


def ours(ingress: dict, classes: list[dict]) -> bool:
    mine = {c["metadata"]["name"] for c in classes if (c.get("spec") or {}).get("controller") == CONTROLLER}
    spec, md = ingress.get("spec") or {}, ingress["metadata"]
    name = spec.get("ingressClassName") or (md.get("annotations") or {}).get(LEGACY_ANNOTATION)
    return name in mine and not md.get("deletionTimestamp")


def usable_certificate(secret: dict) -> str | None:
    """The Secret's certificate + key as one PEM when nginx could load them."""
    data = secret.get("data") or {}
    try:
        crt = base64.b64decode(data["tls.crt"]).decode()
        key = base64.b64decode(data["tls.key"]).decode()
    except (KeyError, ValueError, UnicodeDecodeError):
        return None
    pem = crt.rstrip("\n") + "\n" + key.rstrip("\n") + "\n"
    with tempfile.NamedTemporaryFile("w", prefix="nsplane-tls-", suffix=".pem") as f:
        f.write(pem)
        f.flush()
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(f.name)
        except (ssl.SSLError, OSError):
            return None
    return pem


class IngressController(Controller):
    name = "ingress-controller"
    watches = {"ingresses": lambda self, o: [KEY], "ingressclasses": lambda self, o: [KEY],
               "services": lambda self, o: [KEY],
               "secrets": lambda self, o: [KEY] if o["metadata"].get("namespace") != INSTANCE.namespace else [],
               "deployments": lambda self, o: [KEY] if o["metadata"].get("namespace") == INSTANCE.namespace else []}

    def __init__(self, store, registry):
        super().__init__(store, registry)
        self._certs: dict[tuple, tuple[str, str | None]] = {}     # key -> (resourceVersion, pem)
        self._reported: set[tuple] = set()
        self._synced: dict[str, int] = {}                          # uid -> generation announced
        self._deployed = False

    def sync(self, key) -> float | None:
        start = time.monotonic()
        classes = self.store.list("ingressclasses")[0]
        all_ings = self.store.list("ingresses")[0]
        ings = [i for i in all_ings if ours(i, classes)]
        if not ings and not self._deployed:
            self._deployed = deploy.address(self.store, INSTANCE) is not None or self._present()
            if not self._deployed:
                return None
        deploy.ensure(self.registry, INSTANCE)          # again if someone deleted a part of it
        self._deployed = True
        services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in self.store.list("services")[0]}
        config, problems = routes.build(ings, services, self._tls_certs(ings))
        try:
            changed = deploy.publish(self.registry, INSTANCE, config)
        except deploy.ConfigRejected as e:
            changed = False
            log.warning("ingress: nginx -t refused the new configuration: %s", e.message)
            problems = problems + [routes.Problem(i["metadata"]["namespace"], i["metadata"]["name"], RELOAD,
                                                  RELOAD_MESSAGE + e.message) for i in ings]
        self._events(ings, problems)
        address = deploy.address(self.store, INSTANCE)
        self._statuses(ings, address)
        self._release([i for i in all_ings if not ours(i, classes)], address)
        if changed:
            log.info("ingress: configuration of %d Ingresses published in %.3fs", len(ings), time.monotonic() - start)
        return None

    def _tls_certs(self, ings: list[dict]) -> dict:
        out = {}
        for ing in ings:
            ns = ing["metadata"]["namespace"]
            for entry in (ing.get("spec") or {}).get("tls") or []:
                name = entry.get("secretName")
                if not name:
                    continue
                try:
                    secret = self.store.get("secrets", ns, name)
                except Exception:
                    continue
                rv = secret["metadata"].get("resourceVersion", "")
                cached = self._certs.get((ns, name))
                if cached is None or cached[0] != rv:
                    cached = (rv, usable_certificate(secret))
                    self._certs[(ns, name)] = cached
                out[(ns, name)] = cached[1]
        return out

    def _events(self, ings: list[dict], problems: list[routes.Problem]) -> None:
        by_name = {(i["metadata"]["namespace"], i["metadata"]["name"]): i for i in ings}
        for ing in ings:
            md = ing["metadata"]
            if self._synced.get(md["uid"]) != md.get("generation"):
                self._synced[md["uid"]] = md.get("generation")
                record_event(self.registry, ing, "Sync", "Scheduled for sync", component=COMPONENT)
        now = set()
        for p in problems:
            ing = by_name.get((p.namespace, p.name))
            if ing is None:
                continue
            key = (ing["metadata"]["uid"], p.reason, p.message)
            now.add(key)
            if key not in self._reported:
                record_event(self.registry, ing, p.reason, p.message, "Warning", COMPONENT)
        self._reported = now

    def _present(self) -> bool:
        """The proxy exists (made before this process started)."""
        try:
            self.store.get("configmaps", INSTANCE.namespace, INSTANCE.name)
            return True
        except Exception:
            return False

    def _release(self, others: list[dict], address: str | None) -> None:
        """An Ingress that moved to another class loses our address."""
        for ing in others:
            lb = ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            if address and any(i.get("ip") == address for i in lb) and not ing["metadata"].get("deletionTimestamp"):
                self.put_status("ingresses", ing, {"loadBalancer": {}})

    def _statuses(self, ings: list[dict], address: str | None) -> None:
        want = {"loadBalancer": {"ingress": [{"ip": address}]} if address else {}}
        for ing in ings:
            if (ing.get("status") or {}) == want:
                continue
            try:
                self.put_status("ingresses", ing, want)
            except APIError as e:
                if e.code != 404:
                    raise
