"""A proxy instance as Kubernetes objects, and publishing its configuration.

An instance (`ProxyInstance`) is, in namespace `nsplane-ingress`:
- Deployment `<name>`: nginx pods. The container's command is a small POSIX
  shell supervisor (RELOADER): it starts `/usr/sbin/nginx -c
  /etc/nsplane-proxy/nginx.conf` in the foreground, polls the two mounted
  volumes' `..data` links (the kubelet swaps them atomically on every
  change) every 0.2 s, and on a change runs `nginx -t` and then SIGHUP: a
  graceful reload, old workers finish their in-flight requests and
  connections, nothing is dropped. A config that fails `nginx -t` is not
  loaded (its error is in `kubectl logs`); the next change is tried again.
  SIGTERM becomes nginx's graceful SIGQUIT. Offline the image is the `nginx`
  stand-in, a read-only view of this machine, so `/bin/sh` and
  `/usr/sbin/nginx` are the machine's (Debian's nginx-light, provision.sh);
  with registry access the same command runs in the real nginx image.
- ConfigMap `<name>` (key nginx.conf), mounted at CONF_DIR.
- Secret `<name>-certs` (keys `<cert>.pem`: certificate + key, and
  `default.pem`, a self-signed "Kubernetes Ingress Controller Fake
  Certificate" as ingress-nginx has), mounted at CERTS_DIR.
- Service `<name>`, type LoadBalancer: its pool address (the LB controller
  fills status.loadBalancer.ingress) is the instance's address.

API (what a controller uses):
- `ensure(registry, inst)`: make whatever of the above is missing (idempotent).
- `publish(registry, inst, config)`: render `config` (model.ProxyConfig),
  have this machine's nginx test it (check.py; refused: ConfigRejected,
  nothing written) and write the Secret, then the ConfigMap, each only when
  it changed; returns True when something was written. Reaches nginx within ~RELOAD_POLL + the
  kubelet's volume update.
- `address(store, inst)`: the Service's load-balancer IP, or None (pending).
- `remove(registry, inst)`: delete the instance's objects (its pods go with
  the Deployment); the namespace stays.
"""
from __future__ import annotations

import base64
import os
import subprocess
import tempfile
from dataclasses import dataclass

from agent.api.kinds import BY_RESOURCE
from agent.apiserver.registry import APIError
from agent.apiserver.store import NotFound
from agent.controllers.bootstrap import ensure as ensure_object
from agent.controllers.proxy import check, nginx
from agent.controllers.proxy.model import ProxyConfig

NAMESPACE = "nsplane-ingress"
IMAGE = "nginx:1.27"
CONF_DIR = "/etc/nsplane-proxy"
CERTS_DIR = "/etc/nsplane-proxy-certs"
RELOAD_POLL = 0.2
FAKE_CERT_SUBJECT = "/O=Acme Co/CN=Kubernetes Ingress Controller Fake Certificate"

RELOADER = f"""set -u
conf={CONF_DIR}/nginx.conf
state() {{ readlink {CONF_DIR}/..data {CERTS_DIR}/..data; }}
/usr/sbin/nginx -c "$conf" &
nginx=$!
trap 'kill -QUIT $nginx; wait $nginx; exit 0' TERM INT
last=$(state)
while kill -0 $nginx 2>/dev/null; do
  sleep {RELOAD_POLL}
  now=$(state)
  [ "$now" = "$last" ] && continue
  last=$now
  if /usr/sbin/nginx -t -q -c "$conf"; then
    echo "nsplane: configuration changed, reloading nginx" >&2
    kill -HUP $nginx
  else
    echo "nsplane: new configuration rejected by nginx -t; still serving the previous one" >&2
  fi
done
wait $nginx
"""


@dataclass(frozen=True)
class ProxyInstance:
    name: str                                        # nsplane-...: Deployment, Service, ConfigMap
    namespace: str = NAMESPACE
    ports: tuple[tuple[str, int], ...] = (("http", 80), ("https", 443))
    replicas: int = 1

    @property
    def labels(self) -> dict:
        return {"app.kubernetes.io/name": "nsplane-proxy", "app.kubernetes.io/instance": self.name,
                "app.kubernetes.io/component": "controller"}

    @property
    def certs_secret(self) -> str:
        return f"{self.name}-certs"


def deployment(inst: ProxyInstance) -> dict:
    container = {
        "name": "nginx", "image": IMAGE, "command": ["/bin/sh", "-c", RELOADER],
        "ports": [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in inst.ports]
        + [{"name": "health", "containerPort": nginx.HEALTH_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": nginx.HEALTH_PORT},
                           "periodSeconds": 1, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": nginx.HEALTH_PORT},
                          "initialDelaySeconds": 10, "periodSeconds": 10, "failureThreshold": 5},
        "volumeMounts": [{"name": "config", "mountPath": CONF_DIR, "readOnly": True},
                         {"name": "certs", "mountPath": CERTS_DIR, "readOnly": True}]}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": inst.name, "namespace": inst.namespace, "labels": inst.labels},
            "spec": {"replicas": inst.replicas, "selector": {"matchLabels": inst.labels},
                     "template": {"metadata": {"labels": inst.labels}, "spec": {
                         "automountServiceAccountToken": False,
                         "terminationGracePeriodSeconds": 30,
                         "containers": [container],
                         "volumes": [{"name": "config", "configMap": {"name": inst.name}},
                                     {"name": "certs", "secret": {"secretName": inst.certs_secret}}]}}}}


def service(inst: ProxyInstance) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": inst.name, "namespace": inst.namespace, "labels": inst.labels},
            "spec": {"type": "LoadBalancer", "selector": inst.labels,
                     "ports": [{"name": n, "port": p, "targetPort": n, "protocol": "TCP"} for n, p in inst.ports]}}


def configmap(inst: ProxyInstance, text: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": inst.name, "namespace": inst.namespace, "labels": inst.labels},
            "data": {"nginx.conf": text}}


def certs_secret(inst: ProxyInstance, pems: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": inst.certs_secret, "namespace": inst.namespace, "labels": inst.labels},
            "data": {f"{k}.pem": base64.b64encode(v.encode()).decode() for k, v in sorted(pems.items())}}


def fake_certificate() -> str:
    """A new self-signed certificate + key (PEM), as ingress-nginx's default."""
    with tempfile.TemporaryDirectory(prefix="nsplane-cert-") as d:
        key, crt = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                            "-nodes", "-keyout", key, "-out", crt, "-days", "3650", "-subj", FAKE_CERT_SUBJECT,
                            "-addext", "subjectAltName=DNS:ingress.local"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"openssl could not make the proxy's default certificate: {r.stderr.strip()}")
        with open(crt) as c, open(key) as k:
            return c.read() + k.read()


def ensure(registry, inst: ProxyInstance) -> None:
    """The namespace, certificates, configuration, Deployment and Service of `inst`."""
    ensure_object(registry, "namespaces", {"metadata": {"name": inst.namespace}})
    try:
        registry.get(BY_RESOURCE["secrets"], inst.namespace, inst.certs_secret)
    except APIError as e:
        if e.code != 404:
            raise
        ensure_object(registry, "secrets", certs_secret(inst, {nginx.DEFAULT_CERT: fake_certificate()}))
    ensure_object(registry, "configmaps", configmap(inst, nginx.render(ProxyConfig(), CERTS_DIR)))
    ensure_object(registry, "deployments", deployment(inst))
    ensure_object(registry, "services", service(inst))


class ConfigRejected(Exception):
    """nginx -t refused a configuration; nothing was published."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def publish(registry, inst: ProxyInstance, config: ProxyConfig) -> bool:
    """Write `config`'s certificates, then its nginx.conf; True if anything
    changed. A change that this machine's nginx -t refuses (check.py) is not
    written: ConfigRejected with nginx's message, the pods keep serving the
    previous configuration."""
    secrets, cms = BY_RESOURCE["secrets"], BY_RESOURCE["configmaps"]
    cur_secret = registry.get(secrets, inst.namespace, inst.certs_secret)
    data = cur_secret.get("data") or {}
    default = base64.b64decode(data[f"{nginx.DEFAULT_CERT}.pem"]).decode() \
        if f"{nginx.DEFAULT_CERT}.pem" in data else fake_certificate()
    pems = {**config.certs, nginx.DEFAULT_CERT: default}
    want = certs_secret(inst, pems)
    text = nginx.render(config, CERTS_DIR)
    cur_cm = registry.get(cms, inst.namespace, inst.name)
    new_certs, new_text = data != want["data"], (cur_cm.get("data") or {}).get("nginx.conf") != text
    if not (new_certs or new_text):
        return False
    problem = check.test(config, pems, f"{CONF_DIR}/nginx.conf", CERTS_DIR)
    if problem:
        raise ConfigRejected(problem)
    if new_certs:
        registry.update(secrets, inst.namespace, inst.certs_secret, {**cur_secret, "data": want["data"]})
    if new_text:
        registry.update(cms, inst.namespace, inst.name, {**cur_cm, "data": {"nginx.conf": text}})
    return True


def address(store, inst: ProxyInstance) -> str | None:
    """The instance's address from the pool (its Service's status), or None."""
    try:
        svc = store.get("services", inst.namespace, inst.name)
    except NotFound:
        return None
    for ing in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        if ing.get("ip"):
            return ing["ip"]
    return None


def remove(registry, inst: ProxyInstance) -> None:
    """Delete `inst`'s Deployment, Service, ConfigMap and Secret (those that exist)."""
    for resource, name in (("deployments", inst.name), ("services", inst.name), ("configmaps", inst.name),
                           ("secrets", inst.certs_secret)):
        try:
            registry.delete(BY_RESOURCE[resource], inst.namespace, name)
        except APIError as e:
            if e.code != 404:
                raise
