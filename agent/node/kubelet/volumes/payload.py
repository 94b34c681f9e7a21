"""What a configMap, secret, downwardAPI or projected volume holds: a pure
function of the volume source, the objects it names and the pod, giving the
atomic writer's payload {relative path: FileProjection}.

As the kubelet's volume plugins build it (pkg/volume/{configmap,secret,
downwardapi,projected}): without `items` every key becomes a file; with
`items` only those keys, at their paths, with their `mode`, else the
source's `defaultMode` (0644). A missing object is an error unless the
source is `optional`; a missing key named in `items` is an error unless
optional. Errors carry the kubelet's words (`configmap "web" not found`,
`configmap references non-existent config key: nginx.conf`), which the
kubelet puts after `MountVolume.SetUp failed for volume "NAME" : `.

Objects come from `lookup(kind, name)` (kind "configmap" or "secret"; None
when absent); service account tokens from `token(audience, seconds)`.
"""
from __future__ import annotations

import base64
from typing import Callable

from agent.api.fieldpath import metadata_value
from agent.node.kubelet.envvars import resource_field_value
from agent.node.kubelet.volumes.atomicwriter import FileProjection

DEFAULT_MODE = 0o644
DEFAULT_TOKEN_SECONDS = 3600

Lookup = Callable[[str, str], "dict | None"]
TokenSource = Callable[[str, int], str]


class VolumeSetupError(Exception):
    """MountVolume.SetUp failed: the message is the kubelet's."""


def _mode(value, default: int) -> int:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else default


def _keyed(source: dict, values: dict[str, bytes], default_mode: int, missing_key: str) -> dict:
    items = source.get("items") or []
    if not items:
        return {k: FileProjection(v, default_mode) for k, v in values.items()}
    out = {}
    for item in items:
        key = item.get("key", "")
        if key not in values:
            if source.get("optional"):
                continue
            raise VolumeSetupError(f"{missing_key}: {key}")
        out[item.get("path") or key] = FileProjection(values[key], _mode(item.get("mode"), default_mode))
    return out


def configmap_values(cm: dict) -> dict[str, bytes]:
    out = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
    return out


def secret_values(secret: dict) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


def configmap_payload(source: dict, lookup: Lookup, default_mode: int | None = None) -> dict:
    mode = _mode(source.get("defaultMode"), DEFAULT_MODE) if default_mode is None else default_mode
    name = source.get("name", "")
    cm = lookup("configmap", name)
    if cm is None:
        if source.get("optional"):
            return {}
        raise VolumeSetupError(f'configmap "{name}" not found')
    return _keyed(source, configmap_values(cm), mode, "configmap references non-existent config key")


def secret_payload(source: dict, lookup: Lookup, default_mode: int | None = None) -> dict:
    mode = _mode(source.get("defaultMode"), DEFAULT_MODE) if default_mode is None else default_mode
    name = source.get("secretName") or source.get("name", "")
    secret = lookup("secret", name)
    if secret is None:
        if source.get("optional"):
            return {}
        raise VolumeSetupError(f'secret "{name}" not found')
    return _keyed(source, secret_values(secret), mode, "references non-existent secret key")


# ---- downward API ------------------------------------------------------------------

def field_value(pod: dict, path: str) -> str:
    """ExtractFieldPathAsString for the metadata fields a downwardAPI volume may name."""
    try:
        return metadata_value(pod, path)
    except ValueError as e:
        raise VolumeSetupError(str(e)) from None


def resource_value(pod: dict, ref: dict, node_allocatable: dict[str, str]) -> str:
    """The container's limit or request divided by `divisor`, rounded up; an
    unset limit is the node's allocatable (as for env: envvars.py)."""
    name = ref.get("containerName", "")
    containers = (pod.get("spec") or {}).get("containers") or []
    ctr = next((c for c in containers if c.get("name") == name), None)
    if ctr is None:
        raise VolumeSetupError(f"cannot find container: {name}")
    try:
        return resource_field_value(pod, ctr, ref, node_allocatable)
    except ValueError as e:
        raise VolumeSetupError(str(e)) from None


def downward_payload(source: dict, pod: dict, node_allocatable: dict[str, str],
                     default_mode: int | None = None) -> dict:
    mode = _mode(source.get("defaultMode"), DEFAULT_MODE) if default_mode is None else default_mode
    out = {}
    for item in source.get("items") or []:
        if item.get("fieldRef"):
            value = field_value(pod, item["fieldRef"].get("fieldPath", ""))
        elif item.get("resourceFieldRef"):
            value = resource_value(pod, item["resourceFieldRef"], node_allocatable)
        else:
            continue
        out[item.get("path", "")] = FileProjection(value.encode(), _mode(item.get("mode"), mode))
    return out


# ---- projected -------------------------------------------------------------------------

def projected_payload(source: dict, pod: dict, lookup: Lookup, token: TokenSource,
                      node_allocatable: dict[str, str]) -> dict:
    """Every source in order (later paths win); all errors are reported together."""
    mode = _mode(source.get("defaultMode"), DEFAULT_MODE)
    out: dict = {}
    errors: list[str] = []
    for src in source.get("sources") or []:
        try:
            if src.get("configMap") is not None:
                out.update(configmap_payload(src["configMap"], lookup, mode))
            elif src.get("secret") is not None:
                out.update(secret_payload(src["secret"], lookup, mode))
            elif src.get("downwardAPI") is not None:
                out.update(downward_payload(src["downwardAPI"], pod, node_allocatable, mode))
            elif src.get("serviceAccountToken") is not None:
                sat = src["serviceAccountToken"]
                seconds = sat.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS
                out[sat.get("path", "token")] = FileProjection(
                    token(sat.get("audience") or "", int(seconds)).encode(), mode)
            elif src.get("clusterTrustBundle") is not None:
                raise VolumeSetupError("clusterTrustBundle projections are not supported by this kubelet")
        except VolumeSetupError as e:
            errors.append(str(e))
    if errors:
        raise VolumeSetupError(errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]")
    return out


def referenced_objects(volume: dict) -> set[tuple[str, str]]:
    """The (kind, name) objects a volume reads, to know which changes concern it."""
    out = set()
    if volume.get("configMap") is not None:
        out.add(("configmap", volume["configMap"].get("name", "")))
    if volume.get("secret") is not None:
        out.add(("secret", volume["secret"].get("secretName", "")))
    for src in (volume.get("projected") or {}).get("sources") or []:
        if src.get("configMap") is not None:
            out.add(("configmap", src["configMap"].get("name", "")))
        if src.get("secret") is not None:
            out.add(("secret", src["secret"].get("name", "")))
    return out
