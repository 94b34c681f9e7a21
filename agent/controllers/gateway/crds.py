"""The Gateway API's standard-channel CRDs (v1.2.1: GatewayClass, Gateway,
HTTPRoute, GRPCRoute, ReferenceGrant; the files beside this module, copied
unchanged from kubernetes-sigs/gateway-api) installed when a cluster's
control plane starts, so `kubectl explain httproute` works on a fresh
cluster as it does on kind with cloud-provider-kind or on k3s. A CRD that is
already there (the user applied it, perhaps a newer release) is left alone.
"""
from __future__ import annotations

import logging
import os

import yaml

from agent.api.kinds import BY_RESOURCE
from agent.apiserver.crd import definition
from agent.apiserver.registry import APIError, Registry
from agent.controllers.gateway.conditions import CLASS_NAME, CONTROLLER_NAME, GROUP

log = logging.getLogger("nsplane.controllers.gateway")

BUNDLE = os.path.join(os.path.dirname(__file__), "standard-v1.2.1")
RESOURCE = "customresourcedefinitions"


def bundle() -> list[dict]:
    """The CRDs of the bundle, in file-name order."""
    out = []
    for name in sorted(os.listdir(BUNDLE)):
        if name.endswith(".yaml"):
            with open(os.path.join(BUNDLE, name)) as f:
                out.extend(d for d in yaml.load_all(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) if d)
    return out


def install(registry: Registry) -> list[str]:
    """Create every CRD of the bundle that is missing; the names created."""
    kind = BY_RESOURCE[RESOURCE]
    made = []
    for crd in bundle():
        name = crd["metadata"]["name"]
        try:
            registry.get(kind, None, name)
            continue
        except APIError as e:
            if e.code != 404:
                raise
        registry.create(kind, None, crd)
        made.append(name)
    if made:
        log.info("installed the Gateway API standard channel CRDs: %s", ", ".join(made))
    return made


def default_class(registry: Registry, store) -> None:
    """GatewayClass `nsplane` naming our controller (left alone if present),
    as k3s and cloud-provider-kind ship one."""
    kind = next((k for k in definition.served(store) if k.group == GROUP and k.resource == "gatewayclasses"
                 and k.version == "v1"), None)
    if kind is None:
        return
    try:
        registry.get(kind, None, CLASS_NAME)
    except APIError as e:
        if e.code != 404:
            raise
        registry.create(kind, None, {"apiVersion": f"{GROUP}/v1", "kind": "GatewayClass",
                                     "metadata": {"name": CLASS_NAME},
                                     "spec": {"controllerName": CONTROLLER_NAME,
                                              "description": "nsplane's nginx proxy, one per Gateway"}})
