"""kube-apiserver's validation of Ingress and IngressClass
(pkg/apis/networking/validation: ValidateIngressCreate/Update,
ValidateIngressClass/Update), with kube's messages:

    Ingress.networking.k8s.io "web" is invalid: spec.rules[0].http.paths[0].pathType: Required value:
        pathType must be specified
    Ingress.networking.k8s.io "web" is invalid: spec.rules[0].http.paths[0].backend: Invalid value: "":
        cannot set both port name & port number

Pure: dicts in, causes out (after metadata checks in validation/__init__).
"""
from __future__ import annotations

import ipaddress
import re

from agent.api.syntax import dns1123_subdomain_errors, regex_error
from agent.apiserver.validation.common import dns1035_label_errors, port_name_errors, port_num_errors
from agent.apiserver.validation.errors import Errs, GoRepr

PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")
CLASS_ANNOTATION = "kubernetes.io/ingress.class"
_INVALID_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
_INVALID_SUFFIXES = ("/..", "/.")
_WILDCARD_FMT = "\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_WILDCARD_MSG = ("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which "
                 "must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric "
                 "character")
_HTTP_PATH_FMT = "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+"
MAX_CONTROLLER = 250


def wildcard_subdomain_errors(value: str) -> list[str]:
    """validation.IsWildcardDNS1123Subdomain."""
    errs = ["must be no more than 253 characters"] if len(value) > 253 else []
    if not re.fullmatch(_WILDCARD_FMT, value):
        errs.append(regex_error(_WILDCARD_MSG, _WILDCARD_FMT, "*.example.com"))
    return errs


def _host_errors(host: str) -> list[str]:
    return wildcard_subdomain_errors(host) if "*" in host else dns1123_subdomain_errors(host)


def _d(node) -> dict:
    return node if isinstance(node, dict) else {}


def _l(node) -> list:
    return node if isinstance(node, list) else []


def check_ingress(errs: Errs, ing: dict, old: dict | None, **_) -> None:
    md, spec = _d(ing.get("metadata")), _d(ing.get("spec"))
    annotation = _d(md.get("annotations")).get(CLASS_ANNOTATION)
    cls = spec.get("ingressClassName")
    if annotation is not None and cls is not None and annotation != cls:
        errs.invalid(f"annotations.{CLASS_ANNOTATION}", annotation, "must match `ingressClassName` when both are "
                                                                    "specified")
    rules = _l(spec.get("rules"))
    if not rules and spec.get("defaultBackend") is None:
        value = GoRepr("[]networking.IngressRule(nil)" if spec.get("rules") is None else "[]networking.IngressRule{}")
        errs.invalid("spec", value, "either `defaultBackend` or `rules` must be specified")
    if spec.get("defaultBackend") is not None:
        _backend(errs, _d(spec["defaultBackend"]), "spec.defaultBackend")
    for i, rule in enumerate(rules):
        _rule(errs, _d(rule), f"spec.rules[{i}]")
    for t, tls in enumerate(_l(spec.get("tls"))):
        tls = _d(tls)
        for h, host in enumerate(_l(tls.get("hosts"))):
            for msg in _host_errors(str(host)):
                errs.invalid(f"spec.tls[{t}].hosts[{h}]", host, msg)
        if tls.get("secretName"):
            for msg in dns1123_subdomain_errors(str(tls["secretName"])):
                errs.invalid(f"spec.tls[{t}].secretName", tls["secretName"], msg)
    if cls is not None:
        for msg in dns1123_subdomain_errors(str(cls)):
            errs.invalid("spec.ingressClassName", cls, msg)


def _rule(errs: Errs, rule: dict, path: str) -> None:
    host = rule.get("host") or ""
    if host:
        try:
            ipaddress.ip_address(host)
            errs.invalid(f"{path}.host", host, "must be a DNS name, not an IP address")
        except ValueError:
            pass
        for msg in _host_errors(host):
            errs.invalid(f"{path}.host", host, msg)
    if rule.get("http") is None:
        return
    paths = _l(_d(rule["http"]).get("paths"))
    if not paths:
        errs.required(f"{path}.http.paths")
    for j, p in enumerate(paths):
        _path(errs, _d(p), f"{path}.http.paths[{j}]")


def _path(errs: Errs, p: dict, path: str) -> None:
    ptype, value = p.get("pathType"), p.get("path") or ""
    if ptype is None:
        errs.required(f"{path}.pathType", "pathType must be specified")
        return
    if ptype in ("Exact", "Prefix"):
        if not value.startswith("/"):
            errs.invalid(f"{path}.path", value, "must be an absolute path")
        for seq in _INVALID_SEQUENCES if value else ():
            if seq in value:
                errs.invalid(f"{path}.path", value, f"must not contain '{seq}'")
        for suffix in _INVALID_SUFFIXES if value else ():
            if value.endswith(suffix):
                errs.invalid(f"{path}.path", value, f"cannot end with '{suffix}'")
    elif ptype == "ImplementationSpecific":
        if value and not value.startswith("/"):
            errs.invalid(f"{path}.path", value, "must be an absolute path")
    else:
        errs.not_supported(f"{path}.pathType", ptype, PATH_TYPES)
    _backend(errs, _d(p.get("backend")), f"{path}.backend")


def _backend(errs: Errs, b: dict, path: str) -> None:
    """validateIngressBackend."""
    svc, res = b.get("service"), b.get("resource")
    if svc is not None and res is not None:
        errs.invalid(path, "", "cannot set both resource and service backends")
    elif res is not None:
        res = _d(res)
        if not res.get("kind"):
            errs.required(f"{path}.resource.kind")
        if not res.get("name"):
            errs.required(f"{path}.resource.name")
    elif svc is not None:
        svc = _d(svc)
        name = svc.get("name") or ""
        if not name:
            errs.required(f"{path}.service.name")
        for msg in dns1035_label_errors(name) if name else ():
            errs.invalid(f"{path}.service.name", name, msg)
        port = _d(svc.get("port"))
        pname, pnum = port.get("name") or "", port.get("number") or 0
        if pname and pnum:
            errs.invalid(path, "", "cannot set both port name & port number")
        elif pname:
            for msg in port_name_errors(pname):
                errs.invalid(f"{path}.service.port.name", pname, msg)
        elif pnum:
            for msg in port_num_errors(pnum) if isinstance(pnum, int) else ["must be an integer"]:
                errs.invalid(f"{path}.service.port.number", pnum, msg)
        else:
            errs.required(path, "port name or number is required")
    else:
        errs.invalid(path, "", "resource or service backend is required")


def check_ingress_class(errs: Errs, ic: dict, old: dict | None, **_) -> None:
    spec = _d(ic.get("spec"))
    ctl = spec.get("controller") or ""
    if old is not None and ctl != (_d(old.get("spec")).get("controller") or ""):
        errs.invalid("spec.controller", ctl, "field is immutable")
    if len(ctl) > MAX_CONTROLLER:
        errs.add("TooLong", "spec.controller", detail=f"may not be more than {MAX_CONTROLLER} bytes")
    _domain_prefixed_path(errs, "spec.controller", ctl)
    params = spec.get("parameters")
    if params is None:
        return
    params = _d(params)
    if not params.get("kind"):
        errs.required("spec.parameters.kind", "kind is required")
    if not params.get("name"):
        errs.required("spec.parameters.name", "name is required")
    scope = params.get("scope", "Cluster")
    if scope == "Namespace" and not params.get("namespace"):
        errs.required("spec.parameters.namespace", "`parameters.scope` is set to 'Namespace'")
    elif scope == "Cluster" and params.get("namespace"):
        errs.forbidden("spec.parameters.namespace", "`parameters.scope` is set to 'Cluster'")
    elif scope not in ("Cluster", "Namespace"):
        errs.not_supported("spec.parameters.scope", scope, ("Cluster", "Namespace"))


def _domain_prefixed_path(errs: Errs, path: str, value: str) -> None:
    """validation.IsDomainPrefixedPath."""
    if not value:
        errs.required(path)
        return
    host, _, rest = value.partition("/")
    if not host or not rest:
        errs.invalid(path, value, 'must be a domain-prefixed path (such as "acme.io/foo")')
        return
    for msg in dns1123_subdomain_errors(host):
        errs.invalid(path, host, msg)
    if not re.fullmatch(_HTTP_PATH_FMT, rest):
        errs.invalid(path, rest, regex_error("Invalid path", _HTTP_PATH_FMT))
