"""The Gateway API controller's edge: it watches GatewayClasses, Gateways,
HTTPRoutes, ReferenceGrants and what they refer to (Services, Secrets,
Namespaces), recomputes everything on any change (plan.py, pure), writes
the statuses the spec defines (GatewayClass Accepted; Gateway addresses,
conditions and listeners; HTTPRoute status.parents, leaving other
controllers' entries alone) and hands each Gateway's proxy configuration to
the proxy machinery (one nginx proxy per Gateway: its own LoadBalancer
address, as each Gateway has its own addresses on a real cluster).
"""
from __future__ import annotations

import base64
import logging
import os
import ssl
import tempfile
import time

from agent.api.objects import now_iso
from agent.apiserver.crd import definition
from agent.apiserver.store import NotFound
from agent.controllers.base import Controller
from agent.controllers.gateway import plan, proxies, proxyconf
from agent.controllers.gateway.conditions import CONTROLLER_NAME, GROUP, stamp
from agent.controllers.proxy import deploy

log = logging.getLogger("nsplane.controllers.gateway")

KEY = ("sync",)
WATCHED = ("gatewayclasses", "gateways", "httproutes", "referencegrants", "services", "secrets", "namespaces")


def _proxy_deployment(self, obj: dict) -> list:
    """A proxy's Deployment changing (its pods becoming ready) resyncs."""
    md = obj["metadata"]
    return [KEY] if md.get("namespace") == deploy.NAMESPACE and md["name"].startswith(proxies.PREFIX) else []


def cert_error(secret: dict) -> str | None:
    """Why a kubernetes.io/tls Secret cannot serve TLS (None: it can): both
    keys present, PEM a TLS library loads, the key matching the certificate."""
    data = secret.get("data") or {}
    try:
        crt, key = (base64.b64decode(data.get(k) or "") for k in ("tls.crt", "tls.key"))
    except ValueError:
        return "tls.crt or tls.key is not base64"
    if not crt or not key:
        return "tls.crt and tls.key are both required"
    with tempfile.TemporaryDirectory(prefix="nsplane-gwcert-") as d:
        paths = [os.path.join(d, n) for n in ("crt", "key")]
        for p, b in zip(paths, (crt, key)):
            with open(p, "wb") as f:
                f.write(b)
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(*paths)
        except (ssl.SSLError, OSError) as e:
            return f"the certificate and key do not load: {e}"
    return None


def pem(secret: dict | None) -> str | None:
    if not secret:
        return None
    data = secret.get("data") or {}
    return (base64.b64decode(data["tls.crt"]).decode() + "\n" + base64.b64decode(data["tls.key"]).decode())


class GatewayController(Controller):
    name = "gateway-controller"
    watches = {**{r: (lambda self, o: [KEY]) for r in WATCHED}, "deployments": _proxy_deployment}

    def __init__(self, store, registry, gateway_proxies=None):
        """`gateway_proxies` runs one proxy per Gateway (proxies.GatewayProxies)."""
        super().__init__(store, registry)
        self.proxies = gateway_proxies or proxies.GatewayProxies(store, registry)
        self._certs: dict = {}

    def _cert_error(self, secret: dict) -> str | None:
        key = (secret["metadata"].get("uid"), secret["metadata"].get("resourceVersion"))
        if key not in self._certs:
            self._certs = {k: v for k, v in self._certs.items() if k[0] != key[0]}
            self._certs[key] = cert_error(secret)
        return self._certs[key]

    def snapshot(self) -> plan.Snapshot:
        def items(r):
            return self.store.list(r)[0]
        return plan.Snapshot(items("gatewayclasses"), items("gateways"), items("httproutes"), items("services"),
                             [s for s in items("secrets") if s.get("type") == "kubernetes.io/tls"],
                             items("referencegrants"), items("namespaces"))

    def sync(self, key) -> float | None:
        t0 = time.monotonic()
        snap = self.snapshot()
        secrets = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in snap.secrets}
        mine = plan.ours(snap.classes)
        configs, addresses, problems = {}, {}, {}
        # first the proxies (their addresses go into the statuses), then the statuses
        res = plan.build(snap, self._cert_error, lambda k: None)
        for k, prog in res.programs.items():
            configs[k] = proxyconf.to_proxy(prog, lambda ns, n: pem(secrets.get((ns, n))))
            ports = [p for p, _ in prog.ports] or [80]
            addresses[k], problems[k] = self.proxies.apply(k[0], k[1], ports, configs[k], prog.address)
        wanted = {proxies.instance_name(*k) for k in res.programs}
        for name in self.proxies.running():
            if name not in wanted:
                log.info("removing proxy %s: its Gateway is gone", name)
                self.proxies.remove(name)
        ready = {k: self.proxies.ready(*k) for k in res.programs}
        rejected = {k: self.proxies.rejected(*k) for k in res.programs}
        res = plan.build(snap, self._cert_error, addresses.get, problems.get, lambda k: ready.get(k, False),
                         rejected.get)
        kinds = {k.resource: k for k in definition.served(self.store) if k.group == GROUP}
        self._write_classes(kinds, snap, res, mine)
        self._write_gateways(kinds, snap, res)
        self._write_routes(kinds, snap, res)
        log.info("gateway sync: %d gateways, %d routes in %.0f ms", len(res.programs), len(snap.routes),
                 (time.monotonic() - t0) * 1000)
        return 5.0 if any(a is None for a in addresses.values()) or not all(ready.values()) else None

    def _put(self, kind, obj: dict, status: dict) -> None:
        md = obj["metadata"]
        if kind is None or (obj.get("status") or {}) == status:      # kind None: its CRD is being deleted
            return
        try:
            self.registry.guaranteed_update(kind, md.get("namespace"), md["name"],
                                            lambda cur: {**cur, "status": status}, subresource="status")
        except NotFound:
            pass

    def _write_classes(self, kinds, snap, res, mine) -> None:
        now = now_iso()
        for gc in snap.classes:
            name = gc["metadata"]["name"]
            if name not in mine:
                continue
            old = (gc.get("status") or {}).get("conditions")
            conds = stamp(res.class_conditions[name], old, gc["metadata"].get("generation", 1), now)
            self._put(kinds.get("gatewayclasses"), gc, {**(gc.get("status") or {}), "conditions": conds})

    def _write_gateways(self, kinds, snap, res) -> None:
        now = now_iso()
        for gw in snap.gateways:
            md = gw["metadata"]
            st = res.gateway_status.get((md["namespace"], md["name"]))
            if st is None:
                continue
            gen = md.get("generation", 1)
            old = gw.get("status") or {}
            old_listeners = {x.get("name"): x for x in old.get("listeners") or ()}
            new = {"addresses": st["addresses"],
                   "conditions": stamp(st["conditions"], old.get("conditions"), gen, now),
                   "listeners": [{**x, "conditions": stamp(x["conditions"],
                                                           (old_listeners.get(x["name"]) or {}).get("conditions"),
                                                           gen, now)} for x in st["listeners"]]}
            if not new["addresses"]:
                del new["addresses"]
            self._put(kinds.get("gateways"), gw, new)

    def _write_routes(self, kinds, snap, res) -> None:
        now = now_iso()
        for route in snap.routes:
            md = route["metadata"]
            ours = res.route_parents.get((md["namespace"], md["name"]), [])
            old = (route.get("status") or {}).get("parents") or []
            theirs = [p for p in old if p.get("controllerName") != CONTROLLER_NAME]
            old_ours = {_ref_key(p["parentRef"], md["namespace"]): p for p in old
                        if p.get("controllerName") == CONTROLLER_NAME}
            gen = md.get("generation", 1)
            stamped = [{**p, "conditions": stamp(p["conditions"], (old_ours.get(_ref_key(p["parentRef"],
                                                                                          md["namespace"]))
                                                                   or {}).get("conditions"), gen, now)}
                       for p in ours]
            if not stamped and not old_ours:
                continue
            self._put(kinds.get("httproutes"), route, {**(route.get("status") or {}), "parents": theirs + stamped})


def _ref_key(ref: dict, ns: str) -> tuple:
    return (ref.get("group", GROUP), ref.get("kind", "Gateway"), ref.get("namespace") or ns, ref.get("name"),
            ref.get("sectionName"), ref.get("port"))
