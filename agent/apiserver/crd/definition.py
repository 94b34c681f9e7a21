"""CustomResourceDefinitions (apiextensions.k8s.io/v1) as kube-apiserver's
apiextensions strategy treats them, and the resources they serve.

Owns: a CRD's defaults and validation (names, scope, versions with exactly
one storage version, conversion, subresources, printer columns, and the
structural-schema rules, with apiextensions' messages), the status kube's
naming and establishing controllers write (NamesAccepted, Established,
acceptedNames, storedVersions) — set here at once, since the names are
checked when the CRD is written — and `CustomKind`, the served resource
of one version of an established CRD, built from the store by `served`.

Pure but for `served` (which reads the store it is handed).
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from functools import cached_property

from agent.api.kinds import BY_RESOURCE, Kind
from agent.api.objects import now_iso
from agent.apiserver.crd import schema as structural
from agent.apiserver.validation.common import dns1035_label_errors
from agent.apiserver.validation.errors import Errs

GROUP = "apiextensions.k8s.io"
KIND = "CustomResourceDefinition"
RESOURCE = "customresourcedefinitions"
_VERSION_RANK = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


@dataclass(frozen=True)
class CustomKind(Kind):
    """One served version of a custom resource (the CRD is kept for its
    schema, subresources, printer columns and categories)."""
    crd: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def spec_version(self) -> dict:
        return next(v for v in self.crd["spec"]["versions"] if v["name"] == self.version)

    @property
    def schema(self) -> dict:
        return ((self.spec_version.get("schema") or {}).get("openAPIV3Schema")) or {}

    @property
    def subresources(self) -> dict:
        return self.spec_version.get("subresources") or {}

    @property
    def printer_columns(self) -> list[dict]:
        return list(self.spec_version.get("additionalPrinterColumns") or ())

    @property
    def categories(self) -> list[str]:
        return list(self.crd["spec"]["names"].get("categories") or ())

    @property
    def list_kind(self) -> str:
        return self.crd["spec"]["names"].get("listKind") or self.kind + "List"

    @property
    def storage_api_version(self) -> str:
        storage = next(v["name"] for v in self.crd["spec"]["versions"] if v.get("storage"))
        return f"{self.group}/{storage}"

    @cached_property
    def has_defaults(self) -> bool:
        return '"default"' in json.dumps(self.schema)

    def output(self, obj: dict) -> dict:
        """The stored object as this version serves it: conversion None (only
        apiVersion changes), and the schema's defaults applied on read, as
        kube-apiserver defaults objects read from storage."""
        if self.has_defaults:
            obj = structural.apply_defaults(copy.deepcopy(obj), self.schema)
        if obj.get("apiVersion") == self.api_version:
            return obj
        return {**obj, "apiVersion": self.api_version}


def version_priority(name: str) -> tuple:
    """Kube-aware version order (v2 > v1 > v1beta2 > v1beta1 > v1alpha1 > others by name)."""
    m = _VERSION_RANK.match(name)
    if not m:
        return (0, 0, 0, 0)
    stage = {"alpha": 1, "beta": 2, None: 3}[m.group(2)]
    return (1, stage, int(m.group(1)), int(m.group(3) or 0))


def sorted_versions(names) -> list[str]:
    """Most preferred first; versions kube cannot rank come last, by name."""
    return sorted(sorted(names), key=version_priority, reverse=True)


def served(store) -> list[CustomKind]:
    """Every served version of every established CRD in the store."""
    out = []
    for crd in store.list(RESOURCE, copy_items=False)[0]:       # read only: CRDs can be large
        if not _established(crd):
            continue
        spec, names = crd["spec"], crd["spec"]["names"]
        for v in spec.get("versions") or ():
            if v.get("served"):
                out.append(CustomKind(names["kind"], names["plural"], names.get("singular") or names["kind"].lower(),
                                      spec["group"], v["name"], spec.get("scope") == "Namespaced",
                                      tuple(names.get("shortNames") or ()), None, crd))
    return out


def _established(crd: dict) -> bool:
    return any(c.get("type") == "Established" and c.get("status") == "True"
               for c in (crd.get("status") or {}).get("conditions") or ())


# ---- defaults -------------------------------------------------------------------------

def default_crd(crd: dict) -> None:
    spec = crd.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    names = spec.setdefault("names", {})
    if isinstance(names, dict) and isinstance(names.get("kind"), str):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    spec.setdefault("conversion", {"strategy": "None"})


def establish(crd: dict, old: dict | None) -> None:
    """The status kube's naming and establishing controllers write once the
    names are accepted (nothing else in this server can conflict: see
    `name_conflicts`)."""
    names = crd["spec"]["names"]
    st = crd.setdefault("status", {})
    prev = {c.get("type"): c for c in ((old or {}).get("status") or {}).get("conditions") or ()}
    now = now_iso()

    def cond(ctype: str, reason: str, message: str) -> dict:
        c = {"type": ctype, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message}
        p = prev.get(ctype)
        if p and p.get("status") == "True":
            c["lastTransitionTime"] = p.get("lastTransitionTime", now)
        return c

    st["acceptedNames"] = {k: names[k] for k in ("plural", "singular", "shortNames", "kind", "listKind",
                                                 "categories") if names.get(k)}
    st["conditions"] = [cond("NamesAccepted", "NoConflicts", "no conflicts found"),
                        cond("Established", "InitialNamesAccepted", "the initial names have been accepted")]
    stored = list(((old or {}).get("status") or {}).get("storedVersions") or ())
    storage = next(v["name"] for v in crd["spec"]["versions"] if v.get("storage"))
    if storage not in stored:
        stored.append(storage)
    st["storedVersions"] = stored


# ---- validation -------------------------------------------------------------------------

def validate_crd(crd: dict, old: dict | None, others: list[dict]) -> list:
    """apiextensions' ValidateCustomResourceDefinition(Update), with its messages."""
    errs = Errs()
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        errs.required("spec")
        return list(errs)
    group = spec.get("group")
    names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
    if not group:
        errs.required("spec.group")
    elif not isinstance(group, str) or "." not in group:
        errs.invalid("spec.group", group, "should be a domain with at least one dot")
    _validate_names(errs, names)
    name = (crd.get("metadata") or {}).get("name")
    if names.get("plural") and group and name != f'{names["plural"]}.{group}':
        errs.invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group')
    scope = spec.get("scope")
    if scope not in ("Cluster", "Namespaced"):
        errs.not_supported("spec.scope", scope, ["Cluster", "Namespaced"]) if scope else errs.required("spec.scope")
    conv = (spec.get("conversion") or {}).get("strategy", "None")
    if conv != "None":
        errs.not_supported("spec.conversion.strategy", conv, ["None"])  # no webhook can be called from here
    _validate_versions(errs, spec.get("versions"))
    if old is not None:
        ospec = old.get("spec") or {}
        for key in ("group", "scope"):
            if spec.get(key) != ospec.get(key):
                errs.invalid(f"spec.{key}", spec.get(key), "field is immutable")
        if names.get("plural") != (ospec.get("names") or {}).get("plural"):
            errs.invalid("spec.names.plural", names.get("plural"), "field is immutable")
    errs.extend(name_conflicts(crd, others))
    return list(errs)


def name_conflicts(crd: dict, others: list[dict]) -> list:
    """Built-in resources and other CRDs own their plural: this server keys
    objects by plural, so two groups cannot share one here."""
    errs = Errs()
    spec = crd["spec"]
    plural = (spec.get("names") or {}).get("plural")
    if plural in BY_RESOURCE or plural == RESOURCE:
        errs.invalid("spec.names.plural", plural, f'"{plural}" is a built-in resource of this server; '
                                                 "nsplane serves one resource per plural name: choose another plural")
    for other in others:
        if other["metadata"]["name"] != crd["metadata"].get("name") and \
                other["spec"]["names"].get("plural") == plural:
            errs.invalid("spec.names.plural", plural, f'already served by CustomResourceDefinition '
                                                     f'"{other["metadata"]["name"]}"; nsplane serves one resource '
                                                     "per plural name: choose another plural")
    return list(errs)


def _validate_names(errs: Errs, names: dict) -> None:
    for key in ("plural", "singular"):
        v = names.get(key)
        if key == "plural" and not v:
            errs.required("spec.names.plural")
        elif v:
            for msg in dns1035_label_errors(v) if isinstance(v, str) else ["must be a string"]:
                errs.invalid(f"spec.names.{key}", v, msg)
    for key in ("kind", "listKind"):
        v = names.get(key)
        if not v:
            errs.required(f"spec.names.{key}")
            continue
        problems = dns1035_label_errors(v.lower()) if isinstance(v, str) else ["must be a string"]
        if problems:
            errs.invalid(f"spec.names.{key}", v, "may have mixed case, but should otherwise match: "
                         + ",".join(problems))
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        errs.invalid("spec.names.listKind", names["listKind"], "kind and listKind cannot be the same")
    for i, short in enumerate(names.get("shortNames") or ()):
        for msg in dns1035_label_errors(short) if isinstance(short, str) else ["must be a string"]:
            errs.invalid(f"spec.names.shortNames[{i}]", short, msg)


def _validate_versions(errs: Errs, versions) -> None:
    if not versions:
        errs.required("spec.versions", "must have exactly one version marked as storage version")
        return
    storage = [v for v in versions if isinstance(v, dict) and v.get("storage")]
    if len(storage) != 1:
        errs.invalid("spec.versions", [v.get("name") for v in versions if isinstance(v, dict)],
                     "must have exactly one version marked as storage version")
    seen = set()
    for i, v in enumerate(versions):
        path = f"spec.versions[{i}]"
        vname = v.get("name") if isinstance(v, dict) else None
        if not vname:
            errs.required(f"{path}.name")
        else:
            for msg in dns1035_label_errors(vname):
                errs.invalid(f"{path}.name", vname, msg)
            if vname in seen:
                errs.invalid("spec.versions", vname, "must appear only once")
            seen.add(vname)
        sch = ((v.get("schema") or {}) if isinstance(v, dict) else {}).get("openAPIV3Schema")
        if not isinstance(sch, dict):
            errs.required(f"{path}.schema.openAPIV3Schema", "schemas are required")
        else:
            structural_errors(errs, sch, f"{path}.schema.openAPIV3Schema", root=True)
        sub = (v.get("subresources") or {}) if isinstance(v, dict) else {}
        scale = sub.get("scale")
        if isinstance(scale, dict):
            for key in ("specReplicasPath", "statusReplicasPath"):
                p = scale.get(key)
                if not p:
                    errs.required(f"{path}.subresources.scale.{key}")
                elif not str(p).startswith(".spec." if key == "specReplicasPath" else ".status."):
                    errs.invalid(f"{path}.subresources.scale.{key}", p,
                                 f"should be a json path under .{'spec' if key == 'specReplicasPath' else 'status'}")
        for j, col in enumerate((v.get("additionalPrinterColumns") or ()) if isinstance(v, dict) else ()):
            cpath = f"{path}.additionalPrinterColumns[{j}]"
            for key in ("name", "type", "jsonPath"):
                if not col.get(key):
                    errs.required(f"{cpath}.{key}")
            if col.get("type") and col["type"] not in ("integer", "number", "string", "boolean", "date"):
                errs.not_supported(f"{cpath}.type", col["type"], ["boolean", "date", "integer", "number", "string"])


def structural_errors(errs: Errs, node: dict, path: str, root: bool = False) -> None:
    """The structural-schema rules: every specified field has a type (unless
    it preserves unknown fields or is int-or-string), arrays have items,
    properties and additionalProperties exclude each other, the root is an object."""
    t = node.get("type")
    if root and t != "object":
        if not t:
            errs.required(f"{path}.type", "must not be empty at the root")
        else:
            errs.invalid(f"{path}.type", t, "must be object at the root")
    if node.get(structural.PRESERVE) is False:
        errs.invalid(f"{path}.{structural.PRESERVE}", False, "must be true or undefined")
    if node.get(structural.INT_OR_STRING):
        if t:
            errs.invalid(f"{path}.type", t, f"must be empty if {structural.INT_OR_STRING} is true")
    elif not t and not node.get(structural.PRESERVE) and not root:
        errs.required(f"{path}.type", "must not be empty for specified object fields")
    if t == "array" and not isinstance(node.get("items"), dict):
        errs.required(f"{path}.items", "must be specified")
    if node.get("properties") and node.get("additionalProperties") not in (None, False):
        errs.forbidden(f"{path}.additionalProperties", "additionalProperties and properties are mutual exclusive")
    if node.get(structural.EMBEDDED) and t != "object":
        errs.invalid(f"{path}.type", t, f"must be object if {structural.EMBEDDED} is true")
    for key, sub in (node.get("properties") or {}).items():
        if isinstance(sub, dict):
            structural_errors(errs, sub, f"{path}.properties[{key}]")
    if isinstance(node.get("items"), dict):
        structural_errors(errs, node["items"], f"{path}.items")
    if isinstance(node.get("additionalProperties"), dict):
        structural_errors(errs, node["additionalProperties"], f"{path}.additionalProperties")
