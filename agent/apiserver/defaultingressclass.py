"""kube-apiserver's DefaultIngressClass admission plugin
(plugin/pkg/admission/network/defaultingressclass): an Ingress created
without spec.ingressClassName (and without the legacy
`kubernetes.io/ingress.class` annotation) gets the default IngressClass,
the one annotated `ingressclass.kubernetes.io/is-default-class: "true"`;
when several are, the newest (then the first by name), as kube >= 1.28
picks. No default class: the Ingress is left without one."""
from __future__ import annotations

DEFAULT_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_ANNOTATION = "kubernetes.io/ingress.class"


def is_default(ic: dict) -> bool:
    return ((ic.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_ANNOTATION) == "true"


def default_class(classes: list[dict]) -> str | None:
    found = [c for c in classes if is_default(c)]
    if not found:
        return None
    found.sort(key=lambda c: c["metadata"]["name"])
    found.sort(key=lambda c: c["metadata"].get("creationTimestamp") or "", reverse=True)
    return found[0]["metadata"]["name"]


def admit(ingress: dict, classes: list[dict]) -> None:
    """Set `ingress`'s spec.ingressClassName to the default class, in place."""
    spec = ingress.get("spec")
    if not isinstance(spec, dict) or spec.get("ingressClassName") is not None:
        return
    if LEGACY_ANNOTATION in ((ingress.get("metadata") or {}).get("annotations") or {}):
        return
    name = default_class(classes)
    if name is not None:
        spec["ingressClassName"] = name
