"""A container's `env` and `envFrom`, as kube-apiserver validates them
(apis/core/validation: ValidateEnv, validateEnvVarValueFrom, ValidateEnvFrom
and the selectors'), with Kubernetes 1.32's RelaxedEnvironmentVariableValidation
on: a variable name (or envFrom prefix) is any printable ASCII but '='.

One source per valueFrom; fieldRef paths the downward API offers to env
(`metadata.labels['k']`, `status.podIPs`...; not `metadata.labels` whole);
resourceFieldRef resources and divisors; ConfigMap/Secret names and keys.
"""
from __future__ import annotations

from decimal import Decimal

from agent.api.fieldpath import (
    convert_field_label,
    split_subscript,
    subscript_key_errors,
)
from agent.api.syntax import dns1123_subdomain_errors, relaxed_env_var_name_errors
from agent.apiserver.validation.config import config_key_errors
from agent.apiserver.validation.errors import Errs, child_path

ENV_FIELD_PATHS = ["metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                   "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP",
                   "status.podIPs"]
RESOURCE_PATHS = ["limits.cpu", "limits.ephemeral-storage", "limits.memory", "requests.cpu",
                  "requests.ephemeral-storage", "requests.memory"]
HUGEPAGES_PREFIXES = ("limits.hugepages-", "requests.hugepages-")
_BYTES = "1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei"
CPU_DIVISORS = {"1m", "1"}
BYTE_DIVISORS = set(_BYTES.split(", "))

_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}


def check_env(errs: Errs, ctr: dict, path: str) -> None:
    """ValidateEnv and ValidateEnvFrom of one container."""
    epath = child_path(path, "env")
    for i, env in enumerate(errs.typed(ctr, "env", epath, "array", [])):
        if isinstance(env, dict):
            _env_var(errs, env, f"{epath}[{i}]")
    fpath = child_path(path, "envFrom")
    for i, source in enumerate(errs.typed(ctr, "envFrom", fpath, "array", [])):
        if isinstance(source, dict):
            _env_from(errs, source, f"{fpath}[{i}]", fpath)


def _env_var(errs: Errs, env: dict, path: str) -> None:
    name = errs.typed(env, "name", f"{path}.name", "string", "")
    if not name:
        errs.required(f"{path}.name")
    for msg in relaxed_env_var_name_errors(name):
        errs.invalid(f"{path}.name", name, msg)
    value = errs.typed(env, "value", f"{path}.value", "string", "")
    source = errs.typed(env, "valueFrom", f"{path}.valueFrom", "object")
    if source is None:
        return
    vpath = f"{path}.valueFrom"
    checks = {"fieldRef": _field_ref, "resourceFieldRef": _resource_field_ref,
              "configMapKeyRef": _key_ref, "secretKeyRef": _key_ref}
    sources = 0
    for key, check in checks.items():
        ref = errs.typed(source, key, f"{vpath}.{key}", "object")
        if ref is not None:
            sources += 1
            check(errs, ref, f"{vpath}.{key}")
    if sources == 0:
        errs.invalid(vpath, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` "
                                "or `secretKeyRef`")
    elif value:
        errs.invalid(vpath, "", "may not be specified when `value` is not empty")
    elif sources > 1:
        errs.invalid(vpath, "", "may not have more than one field specified at a time")


def _field_ref(errs: Errs, ref: dict, path: str) -> None:
    """validateObjectFieldSelector with the paths env may use."""
    version = errs.typed(ref, "apiVersion", f"{path}.apiVersion", "string", "v1")
    field_path = errs.typed(ref, "fieldPath", f"{path}.fieldPath", "string", "")
    if not version:
        errs.required(f"{path}.apiVersion")
        return
    if not field_path:
        errs.required(f"{path}.fieldPath")
        return
    try:
        internal = convert_field_label(version, field_path)
    except ValueError as e:
        errs.invalid(f"{path}.fieldPath", field_path, f"error converting fieldPath: {e}")
        return
    head, sub, subscripted = split_subscript(internal)
    if subscripted:
        key = sub.lower() if head == "metadata.annotations" else sub
        for msg in subscript_key_errors(head, sub):
            errs.invalid(path, key, msg)
    elif internal not in ENV_FIELD_PATHS:
        errs.not_supported(f"{path}.fieldPath", internal, ENV_FIELD_PATHS)


def canonical_quantity(text) -> str:
    """resource.Quantity's String() for the divisors kube accepts (1, 1m, 1k,
    1Mi...); another value comes back as given (and is refused)."""
    raw = str(text).strip()
    number = raw.rstrip("numkKMGTPEi")
    suffix = raw[len(number):]
    try:
        value = Decimal(number)
    except ArithmeticError:
        return raw
    if suffix in _BINARY:
        value *= Decimal(1024) ** _BINARY[suffix]
        for name, power in [("", 0), *_BINARY.items()]:
            if value == Decimal(1024) ** power:
                return "1" + name
        return raw
    if suffix in _DECIMAL and "e" not in number.lower():
        value *= Decimal(10) ** _DECIMAL[suffix]
        for name, power in _DECIMAL.items():
            if value == Decimal(10) ** power:
                return "1" + name
        return raw
    return "1" if value == 1 else raw


def _is_zero(divisor) -> bool:
    try:
        return Decimal(str(divisor).rstrip("numkMGTPEi") or "x") == 0
    except ArithmeticError:
        return False


def _resource_field_ref(errs: Errs, ref: dict, path: str) -> None:
    """validateContainerResourceFieldSelector (env: containerName optional)."""
    resource = errs.typed(ref, "resource", f"{path}.resource", "string", "")
    if not resource:
        errs.required(f"{path}.resource")
    elif resource not in RESOURCE_PATHS and not resource.startswith(HUGEPAGES_PREFIXES):
        errs.not_supported(f"{path}.resource", resource, RESOURCE_PATHS)
    divisor = ref.get("divisor")
    if divisor is None or _is_zero(divisor):
        return
    canonical = canonical_quantity(divisor)
    name = resource.split(".", 1)[-1]
    if name == "cpu" and canonical not in CPU_DIVISORS:
        errs.invalid(f"{path}.divisor", resource, "only divisor's values 1m and 1 are supported with the "
                                                  "cpu resource")
    elif name == "memory" and canonical not in BYTE_DIVISORS:
        errs.invalid(f"{path}.divisor", resource, f"only divisor's values {_BYTES} are supported with the "
                                                  "memory resource")
    elif name == "ephemeral-storage" and canonical not in BYTE_DIVISORS:
        errs.invalid(f"{path}.divisor", resource, f"only divisor's values {_BYTES} are supported with the "
                                                  "local ephemeral storage resource")
    elif name.startswith("hugepages-") and canonical not in BYTE_DIVISORS:
        errs.invalid(f"{path}.divisor", resource, f"only divisor's values {_BYTES} are supported with the "
                                                  "hugepages resource")


def _key_ref(errs: Errs, ref: dict, path: str) -> None:
    """validateConfigMapKeySelector / validateSecretKeySelector."""
    name = errs.typed(ref, "name", f"{path}.name", "string", "")
    for msg in dns1123_subdomain_errors(name):
        errs.invalid(f"{path}.name", name, msg)
    key = errs.typed(ref, "key", f"{path}.key", "string", "")
    if not key:
        errs.required(f"{path}.key")
    for msg in config_key_errors(key) if key else []:
        errs.invalid(f"{path}.key", key, msg)


def _env_from(errs: Errs, source: dict, path: str, list_path: str) -> None:
    prefix = errs.typed(source, "prefix", f"{path}.prefix", "string", "")
    for msg in relaxed_env_var_name_errors(prefix) if prefix else []:
        errs.invalid(f"{path}.prefix", prefix, msg)
    sources = 0
    for key in ("configMapRef", "secretRef"):
        ref = errs.typed(source, key, f"{path}.{key}", "object")
        if ref is None:
            continue
        sources += 1
        name = errs.typed(ref, "name", f"{path}.{key}.name", "string", "")
        if not name:
            errs.required(f"{path}.{key}.name")
        masked = name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name   # a generateName prefix
        for msg in dns1123_subdomain_errors(masked) if name else []:
            errs.invalid(f"{path}.{key}.name", name, msg)
    if sources == 0:
        errs.invalid(list_path, "", "must specify one of: `configMapRef` or `secretRef`")
    elif sources > 1:
        errs.invalid(list_path, "", "may not have more than one field specified at a time")
