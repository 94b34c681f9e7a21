"""kubectl's columns and cells for PersistentVolumeClaims (kube-apiserver's
printPersistentVolumeClaim: pkg/printers/internalversion).

Registered into agent/api/printers.py's tables (`COLUMNS`, `ROWS`).
"""
from __future__ import annotations

from agent.api import durations as p

COLUMNS = {
    "PersistentVolumeClaim": (["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS",
                               "VOLUMEATTRIBUTESCLASS", "AGE"], ["VOLUMEMODE"]),
}
_MODES = (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP"))
CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"


def access_modes(modes: list) -> str:
    """GetAccessModesAsString: RWO, ROX, RWX, RWOP in that order, comma separated."""
    return ",".join(short for mode, short in _MODES if mode in (modes or []))


def claim_class(pvc: dict) -> str:
    """GetPersistentVolumeClaimClass: the beta annotation, else spec.storageClassName."""
    ann = (pvc.get("metadata") or {}).get("annotations") or {}
    if CLASS_ANNOTATION in ann:
        return ann[CLASS_ANNOTATION]
    return (pvc.get("spec") or {}).get("storageClassName") or ""


def _pvc(pvc: dict, wide: bool, now) -> list[str]:
    md, spec, st = pvc.get("metadata") or {}, pvc.get("spec") or {}, pvc.get("status") or {}
    phase = "Terminating" if md.get("deletionTimestamp") else st.get("phase", "")
    capacity = modes = ""
    if spec.get("volumeName"):
        modes, capacity = access_modes(st.get("accessModes") or []), str((st.get("capacity") or {}).get("storage", ""))
    row = [md.get("name", ""), phase, spec.get("volumeName", ""), capacity, modes, claim_class(pvc),
           spec.get("volumeAttributesClassName") or "<unset>", p.since(md.get("creationTimestamp"), now)]
    return row + ([spec.get("volumeMode") or "<unset>"] if wide else [])


ROWS = {"PersistentVolumeClaim": _pvc}
