"""Pod volumes and volumeMounts, as kube-apiserver validates them
(apis/core/validation: ValidateVolumes, validateVolumeMounts): one source per
volume, unique names, each source's required fields, modes, item paths and
downward API fields; mounts that name a volume, unique mount paths, subPath
inside the volume.

    spec.containers[0].volumeMounts[0].name: Not found: "cfg"
    spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/data": must be unique
    spec.volumes[0]: Required value: must specify a volume type
"""
from __future__ import annotations

from agent.apiserver.validation.common import dns1123_label_errors
from agent.apiserver.validation.config import config_key_errors
from agent.apiserver.validation.errors import Errs, child_path

SOURCES = ("hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs",
           "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker",
           "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk",
           "photonPersistentDisk", "projected", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral",
           "image")
HOST_PATH_TYPES = ["", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate",
                   "Socket"]
VOLUME_FIELDS = ["metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid"]
RESOURCES = ["limits.cpu", "limits.ephemeral-storage", "limits.memory", "requests.cpu",
             "requests.ephemeral-storage", "requests.memory"]
MODE_MSG = "must be a number between 0 and 0777 (octal), both inclusive"
MIN_TOKEN_SECONDS, MAX_TOKEN_SECONDS = 600, 1 << 32


def check_volumes(errs: Errs, spec: dict, path: str) -> dict[str, dict]:
    """Validate spec.volumes; the valid ones by name."""
    vpath = child_path(path, "volumes")
    out: dict[str, dict] = {}
    for p, vol in errs.objects(spec, "volumes", vpath):
        name = errs.typed(vol, "name", child_path(p, "name"), "string", "")
        if not name:
            errs.required(child_path(p, "name"))
        for msg in dns1123_label_errors(name) if name else []:
            errs.invalid(child_path(p, "name"), name, msg)
        if name and name in out:
            errs.duplicate(child_path(p, "name"), name)
        sources = [k for k in SOURCES if vol.get(k) is not None]
        if not sources:
            errs.required(p, "must specify a volume type")
        for extra in sources[1:]:
            errs.forbidden(child_path(p, extra), "may not specify more than 1 volume type")
        if sources:
            _source(errs, sources[0], vol[sources[0]], child_path(p, sources[0]))
        out.setdefault(name, vol)
    return out


def _mode(errs: Errs, node: dict, key: str, path: str) -> None:
    value = node.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
        errs.invalid(child_path(path, key), value, MODE_MSG)


def _local_path(errs: Errs, value: str, path: str, reserved: bool = True) -> None:
    """validateLocalDescendingPath (+ NonReserved: no leading '..')."""
    if value.startswith("/"):
        errs.invalid(path, value, "must be a relative path")
    if ".." in value.split("/"):
        errs.invalid(path, value, "must not contain '..'")
    elif reserved and value.startswith(".."):
        errs.invalid(path, value, "must not start with '..'")


def _items(errs: Errs, src: dict, path: str) -> None:
    for p, item in errs.objects(src, "items", child_path(path, "items")):
        key = errs.typed(item, "key", child_path(p, "key"), "string", "")
        if not key:
            errs.required(child_path(p, "key"))
        for msg in config_key_errors(key) if key else []:
            errs.invalid(child_path(p, "key"), key, msg)
        ipath_ = errs.typed(item, "path", child_path(p, "path"), "string", "")
        if not ipath_:
            errs.required(child_path(p, "path"))
        else:
            _local_path(errs, ipath_, child_path(p, "path"))
        _mode(errs, item, "mode", p)


def _downward(errs: Errs, src: dict, path: str, projected: bool) -> None:
    for p, item in errs.objects(src, "items", child_path(path, "items")):
        value = errs.typed(item, "path", child_path(p, "path"), "string", "")
        if not value:
            errs.required(child_path(p, "path"))
        else:
            _local_path(errs, value, child_path(p, "path"))
        _mode(errs, item, "mode", p)
        field, res = item.get("fieldRef"), item.get("resourceFieldRef")
        if field is not None and res is not None:
            errs.invalid(p, "resource", "fieldRef and resourceFieldRef can not be specified simultaneously")
        elif isinstance(field, dict):
            fp = field.get("fieldPath", "")
            if not fp:
                errs.required(child_path(p, "fieldRef.fieldPath"))
            elif fp not in VOLUME_FIELDS and not any(
                    fp.startswith(f"{k}['") and fp.endswith("']") for k in ("metadata.labels", "metadata.annotations")):
                errs.not_supported(child_path(p, "fieldRef.fieldPath"), fp, VOLUME_FIELDS)
        elif isinstance(res, dict):
            if not res.get("containerName"):
                errs.required(child_path(p, "resourceFieldRef.containerName"))
            if not res.get("resource"):
                errs.required(child_path(p, "resourceFieldRef.resource"))
            elif res["resource"] not in RESOURCES:
                errs.not_supported(child_path(p, "resourceFieldRef.resource"), res["resource"], RESOURCES)
        else:
            errs.required(p, "one of fieldRef and resourceFieldRef is required")
    if not projected:
        _mode(errs, src, "defaultMode", path)


def _source(errs: Errs, kind: str, src, path: str) -> None:
    if not isinstance(src, dict):
        errs.typed({"s": src}, "s", path, "object")
        return
    if kind == "hostPath":
        if not src.get("path"):
            errs.required(child_path(path, "path"))
        if src.get("type") not in (None, *HOST_PATH_TYPES):
            errs.not_supported(child_path(path, "type"), src["type"], HOST_PATH_TYPES)
    elif kind in ("configMap", "secret"):
        key = "name" if kind == "configMap" else "secretName"
        if not src.get(key):
            errs.required(child_path(path, key))
        _mode(errs, src, "defaultMode", path)
        _items(errs, src, path)
    elif kind == "downwardAPI":
        _downward(errs, src, path, projected=False)
    elif kind == "projected":
        _projected(errs, src, path)
    elif kind == "emptyDir":
        medium = src.get("medium", "")
        if medium not in ("", "Memory", "HugePages") and not str(medium).startswith("HugePages-"):
            errs.not_supported(child_path(path, "medium"), medium, ["", "Memory", "HugePages"])


def _projected(errs: Errs, src: dict, path: str) -> None:
    _mode(errs, src, "defaultMode", path)
    paths: set[str] = set()
    for p, s in errs.objects(src, "sources", child_path(path, "sources")):
        kinds = [k for k in ("secret", "configMap", "downwardAPI", "serviceAccountToken", "clusterTrustBundle")
                 if s.get(k) is not None]
        if not kinds:
            errs.required(p, "must specify exactly 1 projected volume type")
        for extra in kinds[1:]:
            errs.forbidden(child_path(p, extra), "may not specify more than 1 volume type per source")
        for kind in kinds[:1]:
            sub, kp = s[kind], child_path(p, kind)
            if not isinstance(sub, dict):
                errs.typed({"s": sub}, "s", kp, "object")
                continue
            if kind in ("secret", "configMap"):
                if not sub.get("name"):
                    errs.required(child_path(kp, "name"))
                _items(errs, sub, kp)
                new = [it.get("path") for it in sub.get("items") or [] if isinstance(it, dict)]
            elif kind == "downwardAPI":
                _downward(errs, sub, kp, projected=True)
                new = [it.get("path") for it in sub.get("items") or [] if isinstance(it, dict)]
            elif kind == "serviceAccountToken":
                new = [_token(errs, sub, kp)]
            else:
                new = [sub.get("path")]
            for value in new:
                if value and value in paths:
                    errs.invalid(kp, value, "conflicting duplicate paths")
                paths.add(value or "")


def _token(errs: Errs, sub: dict, path: str) -> str:
    seconds = sub.get("expirationSeconds")
    if isinstance(seconds, int) and not isinstance(seconds, bool):
        if seconds < MIN_TOKEN_SECONDS:
            errs.invalid(child_path(path, "expirationSeconds"), seconds,
                         "may not specify a duration less than 10 minutes")
        elif seconds > MAX_TOKEN_SECONDS:
            errs.invalid(child_path(path, "expirationSeconds"), seconds,
                         "may not specify a duration larger than 2^32 seconds")
    value = sub.get("path") or ""
    if not value:
        errs.required(child_path(path, "path"))
    else:
        _local_path(errs, value, child_path(path, "path"))
    return value


def check_volume_mounts(errs: Errs, ctr: dict, path: str, volumes: dict[str, dict]) -> None:
    seen: set[str] = set()
    for p, vm in errs.objects(ctr, "volumeMounts", child_path(path, "volumeMounts")):
        name = errs.typed(vm, "name", child_path(p, "name"), "string", "")
        if not name:
            errs.required(child_path(p, "name"))
        elif name not in volumes:
            errs.add("NotFound", child_path(p, "name"), name)
        mount_path = errs.typed(vm, "mountPath", child_path(p, "mountPath"), "string", "")
        if not mount_path:
            errs.required(child_path(p, "mountPath"))
        elif mount_path in seen:
            errs.invalid(child_path(p, "mountPath"), mount_path, "must be unique")
        seen.add(mount_path)
        sub = errs.typed(vm, "subPath", child_path(p, "subPath"), "string", "")
        expr = errs.typed(vm, "subPathExpr", child_path(p, "subPathExpr"), "string", "")
        if sub and expr:
            errs.invalid(child_path(p, "subPathExpr"), expr, "subPathExpr and subPath are mutually exclusive")
        if sub:
            _local_path(errs, sub, child_path(p, "subPath"), reserved=False)
        if expr:
            _local_path(errs, expr, child_path(p, "subPathExpr"), reserved=False)
        errs.typed(vm, "readOnly", child_path(p, "readOnly"), "boolean")
