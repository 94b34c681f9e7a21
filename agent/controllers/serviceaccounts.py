"""What kube-controller-manager puts in every namespace for the pods there:

- the `serviceaccount` controller (pkg/controller/serviceaccount): a
  ServiceAccount named `default` in every active namespace, made when the
  namespace appears and made again when it is deleted;
- the `root-ca-cert-publisher` (pkg/controller/certificates/rootcacertpublisher):
  the ConfigMap `kube-root-ca.crt` holding the cluster CA (`ca.crt`), which
  pods use to verify the API server; made, and put back when deleted or
  changed.

Both write through the registry like any client; a namespace that is gone
or terminating is left alone.
"""
from __future__ import annotations

from agent.api.kinds import BY_RESOURCE
from agent.apiserver.registry import APIError
from agent.controllers.base import Controller

DEFAULT_SA = "default"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
               "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
               "distributions of Kubernetes clusters.")


def _namespace_key(self, obj: dict) -> list:
    return [obj["metadata"]["name"]]


def _named(name: str):
    def keys(self, obj: dict) -> list:
        md = obj["metadata"]
        return [md.get("namespace")] if md.get("name") == name else []
    return keys


class _PerNamespace(Controller):
    """sync(namespace) for active namespaces only; a create that loses a race
    with the namespace's deletion is not an error."""

    def sync(self, key) -> None:
        ns = self.live("namespaces", "", key)
        if ns is None or (ns.get("status") or {}).get("phase", "Active") != "Active":
            return
        try:
            self.reconcile(key)
        except APIError as e:
            if e.code not in (403, 404, 409):      # terminating, gone, made meanwhile
                raise

    def reconcile(self, namespace: str) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class ServiceAccountsController(_PerNamespace):
    name = "serviceaccount-controller"
    watches = {"namespaces": _namespace_key, "serviceaccounts": _named(DEFAULT_SA)}

    def reconcile(self, namespace: str) -> None:
        kind = BY_RESOURCE["serviceaccounts"]
        try:
            self.registry.get(kind, namespace, DEFAULT_SA)
        except APIError as e:
            if e.code != 404:
                raise
            self.registry.create(kind, namespace, {"metadata": {"name": DEFAULT_SA, "namespace": namespace}})


class RootCACertPublisher(_PerNamespace):
    name = "root-ca-cert-publisher"
    watches = {"namespaces": _namespace_key, "configmaps": _named(ROOT_CA_CONFIGMAP)}

    def __init__(self, store, registry, ca_pem: str):
        super().__init__(store, registry)
        self.data = {"ca.crt": ca_pem}

    def reconcile(self, namespace: str) -> None:
        kind = BY_RESOURCE["configmaps"]
        try:
            cm = self.registry.get(kind, namespace, ROOT_CA_CONFIGMAP)
        except APIError as e:
            if e.code != 404:
                raise
            self.registry.create(kind, namespace, {
                "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": namespace,
                             "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
                "data": dict(self.data)})
            return
        annotations = cm["metadata"].get("annotations") or {}
        if cm.get("data") == self.data and annotations.get(DESCRIPTION_ANNOTATION):
            return
        cm["data"] = dict(self.data)
        cm["metadata"]["annotations"] = {**annotations, DESCRIPTION_ANNOTATION: DESCRIPTION}
        self.registry.update(kind, namespace, ROOT_CA_CONFIGMAP, cm)
