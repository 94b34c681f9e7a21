"""Admission that changes a pod on create: kube-apiserver's ServiceAccount
admission plugin (plugin/pkg/admission/serviceaccount).

A pod gets the `kube-api-access-<5 random>` projected volume (a bound
service account token of 3607 s, the `kube-root-ca.crt` ConfigMap's ca.crt
and the namespace), mounted read-only at
/var/run/secrets/kubernetes.io/serviceaccount in every container and init
container that has no mount of its own there, unless
spec.automountServiceAccountToken is false, or the pod leaves it unset and
its ServiceAccount says false. Mirror pods are left alone.

A pod naming a ServiceAccount that does not exist is refused as kube
refuses it ("error looking up service account ..."), except `default`,
which the serviceaccount controller makes just after its namespace: a pod
created in that instant is admitted with the volume, as if it were there.
"""
from __future__ import annotations

import random
from typing import Callable

SA_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
VOLUME_PREFIX = "kube-api-access-"
TOKEN_SECONDS = 3607               # the kubelet's warp: kube-apiserver issues 3607 s tokens to pods
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"     # apimachinery's rand.String alphabet


def api_access_volume(name: str) -> dict:
    return {"name": name, "projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1",
                                                                      "fieldPath": "metadata.namespace"}}]}}]}}


class Forbidden(Exception):
    """The pod is refused (kube's 403 Forbidden); the message is kube's."""


def admit_pod(service_account: Callable[[str, str], "dict | None"], pod: dict,
              rand: random.Random | None = None) -> None:
    """Mutate `pod` (already defaulted) as the ServiceAccount admission plugin
    does; `service_account(namespace, name)` is the ServiceAccount or None."""
    md, spec = pod.get("metadata") or {}, pod.get("spec")
    if not isinstance(spec, dict) or MIRROR_ANNOTATION in (md.get("annotations") or {}):
        return
    sa_name = spec.get("serviceAccountName") or "default"
    namespace = md.get("namespace", "default")
    sa = service_account(namespace, sa_name)
    if sa is None and sa_name != "default":
        raise Forbidden(f'pods "{md.get("name", "")}" is forbidden: error looking up service account '
                        f'{namespace}/{sa_name}: serviceaccount "{sa_name}" not found')
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        automount = (sa or {}).get("automountServiceAccountToken")
    if automount is False:
        return
    mount_service_account_token(spec, rand or random.Random())


def mount_service_account_token(spec: dict, rand: random.Random) -> None:
    volumes = spec.get("volumes") if isinstance(spec.get("volumes"), list) else []
    existing = next((v.get("name") for v in volumes if isinstance(v, dict)
                     and str(v.get("name", "")).startswith(VOLUME_PREFIX)), None)
    name = existing or VOLUME_PREFIX + "".join(rand.choice(_NAME_CHARS) for _ in range(5))
    needed = False
    for group in ("initContainers", "containers"):
        for ctr in spec.get(group) or []:
            if not isinstance(ctr, dict):
                continue
            mounts = ctr.get("volumeMounts") if isinstance(ctr.get("volumeMounts"), list) else []
            if any(isinstance(m, dict) and m.get("mountPath") == SA_MOUNT_PATH for m in mounts):
                continue
            ctr["volumeMounts"] = [*mounts, {"name": name, "readOnly": True, "mountPath": SA_MOUNT_PATH}]
            needed = True
    if needed and not existing:
        spec["volumes"] = [*volumes, api_access_volume(name)]
