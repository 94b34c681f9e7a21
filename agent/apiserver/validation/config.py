"""kube-apiserver's validation of ConfigMaps, Secrets and ServiceAccounts
(pkg/apis/core/validation: ValidateConfigMap[Update], ValidateSecret[Update],
ValidateServiceAccount[Update]), with kube's messages:

    ConfigMap "c" is invalid: data[a b]: Invalid value: "a b": a valid config key must consist of
        alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name',
        regex used for validation is '[-._a-zA-Z0-9]+')
    Secret "s" is invalid: data[tls.key]: Required value
    ConfigMap "c" is invalid: data: Forbidden: field is immutable when `immutable` is set

Runs on the stored (JSON) form: Secret.data and ConfigMap.binaryData values
are base64 strings already checked and made canonical by
agent/apiserver/configdata.py, and stringData is already merged into data
(kube validates the internal object, where it no longer exists). Keys are
checked in sorted order (kube's come in Go's random map order).
"""
from __future__ import annotations

import base64

from agent.api import kubeproxyconfig
from agent.api.syntax import regex_error
from agent.apiserver.validation.errors import Errs
from agent.apiserver.validation.gojson import unmarshal_object_error

MAX_SIZE = 1024 * 1024      # core.MaxSecretSize, for Secrets and ConfigMaps alike
_KEY_RE_TEXT = "[-._a-zA-Z0-9]+"
_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"

SECRET_TYPES_REQUIRED = {
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"


def config_key_errors(key: str) -> list[str]:
    """validation.IsConfigMapKey."""
    errs = []
    if len(key) > 253:
        errs.append("must be no more than 253 characters")
    if not key or not all(c.isascii() and (c.isalnum() or c in "-._") for c in key):
        errs.append(regex_error(_KEY_MSG, _KEY_RE_TEXT, "key.name", "KEY_NAME", "key-name"))
    if key == ".":
        errs.append("must not be '.'")
    elif key == "..":
        errs.append("must not be '..'")
    elif key.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def _bytes(value) -> bytes:
    try:
        return base64.b64decode(value or "")
    except (ValueError, TypeError):
        return b""


def _map(obj: dict, key: str) -> dict:
    v = obj.get(key)
    return v if isinstance(v, dict) else {}


# ---- ConfigMap ---------------------------------------------------------------------

def check_config_map(errs: Errs, cm: dict, old: dict | None, **_) -> None:
    data, binary = _map(cm, "data"), _map(cm, "binaryData")
    if old is not None:
        _immutable(errs, cm, old, ("data", "binaryData"))
    errs.typed(cm, "immutable", "immutable", "boolean")
    total = 0
    for key in sorted(data):
        for msg in config_key_errors(key):
            errs.invalid(f"data[{key}]", key, msg)
        if key in binary:
            errs.invalid(f"data[{key}]", key, "duplicate of key present in binaryData")
        total += len(str(data[key] or "").encode())
    for key in sorted(binary):
        for msg in config_key_errors(key):
            errs.invalid(f"binaryData[{key}]", key, msg)
        if key in data:
            errs.invalid(f"binaryData[{key}]", key, "duplicate of key present in data")
        total += len(_bytes(binary[key]))
    if (cm.get("metadata") or {}).get("namespace") == kubeproxyconfig.NAMESPACE and \
            (cm.get("metadata") or {}).get("name") == kubeproxyconfig.NAME and kubeproxyconfig.KEY in data:
        # not kube-apiserver's: kube-proxy's own validation, so a bad edit is refused
        # here instead of crash-looping kube-proxy (the running configuration stays)
        for msg in kubeproxyconfig.parse(str(data[kubeproxyconfig.KEY] or ""))[1]:
            errs.invalid(f"data[{kubeproxyconfig.KEY}]", "<config.conf>", msg)
    if total > MAX_SIZE:
        # field.NewPath("") prints as "[]": kube's message reads `[]: Too long: ...`
        errs.add("TooLong", "[]", detail=f"must have at most {MAX_SIZE} bytes")


def _immutable(errs: Errs, new: dict, old: dict, fields: tuple[str, ...]) -> None:
    if old.get("immutable") is not True:
        return
    if new.get("immutable") is not True:
        errs.forbidden("immutable", "field is immutable when `immutable` is set")
    for f in fields:
        if (new.get(f) or None) != (old.get(f) or None):
            errs.forbidden(f, "field is immutable when `immutable` is set")


# ---- Secret --------------------------------------------------------------------------

def check_secret(errs: Errs, secret: dict, old: dict | None, **_) -> None:
    if old is not None:
        new_type, old_type = secret.get("type") or "Opaque", old.get("type") or "Opaque"
        if new_type != old_type:
            errs.invalid("type", new_type, "field is immutable")
        _immutable(errs, secret, old, ("data",))
    errs.typed(secret, "immutable", "immutable", "boolean")
    data = _map(secret, "data")
    total = 0
    for key in sorted(data):
        for msg in config_key_errors(key):
            errs.invalid(f"data[{key}]", key, msg)
        total += len(_bytes(data[key]))
    if total > MAX_SIZE:
        errs.add("TooLong", "data", detail=f"must have at most {MAX_SIZE} bytes")
    _check_secret_type(errs, secret, data)


def _check_secret_type(errs: Errs, secret: dict, data: dict) -> None:
    stype = secret.get("type") or "Opaque"
    if stype == "kubernetes.io/service-account-token":
        ann = (secret.get("metadata") or {}).get("annotations") or {}
        if not ann.get(SA_NAME_ANNOTATION):
            errs.required(f"metadata.annotations[{SA_NAME_ANNOTATION}]")
    elif stype in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson"):
        key = ".dockercfg" if stype == "kubernetes.io/dockercfg" else ".dockerconfigjson"
        if key not in data:
            errs.required(f"data[{key}]")
            return
        problem = unmarshal_object_error(_bytes(data[key]))
        if problem:
            errs.invalid(f"data[{key}]", "<secret contents redacted>", problem)
    elif stype == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            errs.required("data[username]")
            errs.required("data[password]")
    elif stype == "kubernetes.io/ssh-auth":
        if not _bytes(data.get("ssh-privatekey")):
            errs.required("data[ssh-privatekey]")
    elif stype == "kubernetes.io/tls":
        for key in SECRET_TYPES_REQUIRED[stype]:
            if key not in data:
                errs.required(f"data[{key}]")


# ---- ServiceAccount ------------------------------------------------------------------------

def check_service_account(errs: Errs, sa: dict, old: dict | None, **_) -> None:
    """Only ObjectMeta is validated (done by the caller); the field types are checked here."""
    errs.typed(sa, "automountServiceAccountToken", "automountServiceAccountToken", "boolean")
    for field in ("secrets", "imagePullSecrets"):
        items = errs.typed(sa, field, field, "array", [])
        for i, ref in enumerate(items):
            if not isinstance(ref, dict):
                errs.typed({"x": ref}, "x", f"{field}[{i}]", "object")


__all__ = ["MAX_SIZE", "check_config_map", "check_secret", "check_service_account", "config_key_errors"]
