"""kube-apiserver's validation of PersistentVolumeClaims (pkg/apis/core/validation:
ValidatePersistentVolumeClaim[Spec|Update]), with kube's messages:

    PersistentVolumeClaim "data" is invalid: [spec.accessModes: Required value: at least 1 access mode
        is required, spec.resources[storage]: Required value]
    PersistentVolumeClaim "data" is invalid: spec: Forbidden: spec is immutable after creation except
        resources.requests and volumeAttributesClassName for bound claims

kube appends a diff of the two specs to the last message; it is left out here.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from agent.api.syntax import dns1123_subdomain_errors
from agent.apiserver.validation.errors import Errs

ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
VOLUME_MODES = ("Block", "Filesystem")
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_SUFFIX = {"": 1, "m": Decimal("0.001"), "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15,
           "E": 10 ** 18, "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}
IMMUTABLE = "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"


def quantity_value(text) -> Decimal | None:
    """A resource.Quantity's value, or None when `text` is not one."""
    m = _QUANTITY.match(str(text).strip())
    if not m:
        return None
    number, suffix = m.groups()
    try:
        if suffix in _SUFFIX:
            return Decimal(number) * Decimal(_SUFFIX[suffix])
        if suffix[:1] in "eE":
            return Decimal(number + suffix)
    except InvalidOperation:
        return None
    return None


def check_pvc_spec(errs: Errs, spec: dict, path: str = "spec") -> None:
    """ValidatePersistentVolumeClaimSpec."""
    modes = errs.typed(spec, "accessModes", f"{path}.accessModes", "array", [])
    if not modes:
        errs.required(f"{path}.accessModes", "at least 1 access mode is required")
    for mode in modes:
        if mode not in ACCESS_MODES:
            errs.not_supported(f"{path}.accessModes", mode, ACCESS_MODES)
    if "ReadWriteOncePod" in modes and any(m != "ReadWriteOncePod" for m in modes):
        errs.forbidden(f"{path}.accessModes", "may not use ReadWriteOncePod with other access modes")
    requests = ((spec.get("resources") or {}).get("requests") or {}) if isinstance(spec.get("resources"), dict) \
        else {}
    key = f"{path}.resources[storage]"
    if not isinstance(requests, dict) or requests.get("storage") is None:
        errs.required(key)
    else:
        value = quantity_value(requests["storage"])
        if value is None:
            errs.invalid(key, str(requests["storage"]), "quantities must match the regular expression "
                         "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
        elif value <= 0:
            errs.invalid(key, str(requests["storage"]), "must be greater than zero")
    sc = errs.typed(spec, "storageClassName", f"{path}.storageClassName", "string", "")
    for msg in dns1123_subdomain_errors(sc) if sc else ():
        errs.invalid(f"{path}.storageClassName", sc, msg)
    mode = spec.get("volumeMode")
    if mode is not None and mode not in VOLUME_MODES:
        errs.not_supported(f"{path}.volumeMode", mode, VOLUME_MODES)


def check_pvc(errs: Errs, pvc: dict, old: dict | None, **_) -> None:
    spec = pvc.get("spec") if isinstance(pvc.get("spec"), dict) else {}
    check_pvc_spec(errs, spec)
    if old is None:
        return
    was, now = dict(old.get("spec") or {}), dict(spec)
    if not was.get("volumeName"):            # the binder may set volumeName once
        was["volumeName"] = now.get("volumeName")
    if (old.get("status") or {}).get("phase") == "Bound":     # resizing a bound claim
        for s in (was, now):
            s["resources"] = {**(s.get("resources") or {}), "requests": None}
            s.pop("volumeAttributesClassName", None)
    if {k: v for k, v in was.items() if v is not None} != {k: v for k, v in now.items() if v is not None}:
        errs.forbidden("spec", IMMUTABLE)
