"""An HTTPRoute's rules checked and resolved: matches whose regular
expressions do not compile, header names nginx cannot read, and filter
combinations the spec forbids make a rule invalid (dropped, with the route's
`PartiallyInvalid`, or `Accepted` False `UnsupportedValue` /
`IncompatibleFilters` when none is left); backendRefs (and RequestMirror's)
resolve to Services, with the spec's ResolvedRefs reasons (InvalidKind,
RefNotPermitted, BackendNotFound). An unresolved backend keeps its weight
and answers 500, as the spec asks.

Pure: Services and grants are handed in."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from agent.controllers.gateway import grants as refgrants
from agent.controllers.gateway.conditions import GROUP

HEADER_NAME = re.compile(r"^[A-Za-z0-9-]+$")
QUERY_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")


@dataclass(frozen=True)
class Backend:
    """A weighted destination: `address` is the Service's ClusterIP:port, or
    None when the reference did not resolve (that share answers 500)."""
    name: str
    weight: int
    address: str | None


class RuleProblem(Exception):
    """Why a rule cannot be implemented (reason, message)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


# What Python's re takes but nginx's PCRE refuses (which would fail `nginx -t`): the a/L/u flags, \N{...}, \u and \U
PYTHON_ONLY = re.compile(r"\(\?[imsx]*[aLu]|\\N\{|\\[uU]")


def _regex(value: str, where: str) -> None:
    try:
        re.compile(value)
    except re.error as e:
        raise RuleProblem("UnsupportedValue", f"{where}: invalid regular expression {value!r}: {e}") from None
    if PYTHON_ONLY.search(value):
        raise RuleProblem("UnsupportedValue", f"{where}: regular expression {value!r} uses a construct nginx's "
                                              "PCRE does not have")
    if "\n" in value:
        raise RuleProblem("UnsupportedValue", f"{where}: a regular expression may not contain a newline")


def check_rule(rule: dict, i: int) -> None:
    """Raise RuleProblem when rule `i` cannot be implemented."""
    for j, m in enumerate(rule.get("matches") or ()):
        where = f"spec.rules[{i}].matches[{j}]"
        path = m.get("path") or {}
        if path.get("type") == "RegularExpression":
            _regex(path.get("value", ""), where + ".path.value")
        for k, h in enumerate(m.get("headers") or ()):
            if not HEADER_NAME.match(h.get("name", "")):
                raise RuleProblem("UnsupportedValue", f"{where}.headers[{k}].name: {h.get('name')!r} is not "
                                                      "a header name nsplane can match (letters, digits, '-')")
            if h.get("type") == "RegularExpression":
                _regex(h.get("value", ""), f"{where}.headers[{k}].value")
        for k, q in enumerate(m.get("queryParams") or ()):
            if not QUERY_NAME.match(q.get("name", "")):
                raise RuleProblem("UnsupportedValue", f"{where}.queryParams[{k}].name: invalid name")
            if q.get("type") == "RegularExpression":
                _regex(q.get("value", ""), f"{where}.queryParams[{k}].value")
    kinds = [f.get("type") for f in rule.get("filters") or ()]
    if "URLRewrite" in kinds and "RequestRedirect" in kinds:
        raise RuleProblem("IncompatibleFilters",
                          f"spec.rules[{i}].filters: URLRewrite and RequestRedirect cannot be used together")
    for f in rule.get("filters") or ():
        if f.get("type") not in ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect",
                                 "URLRewrite", "RequestMirror"):
            raise RuleProblem("UnsupportedValue", f"spec.rules[{i}].filters: filter type {f.get('type')} "
                                                  "is not supported")
        mod = f.get("requestHeaderModifier") or f.get("responseHeaderModifier") or {}
        names = [h.get("name", "") for h in (mod.get("set") or []) + (mod.get("add") or [])] + \
            list(mod.get("remove") or ())
        bad = next((n for n in names if not HEADER_NAME.match(n)), None)
        if bad is not None:
            raise RuleProblem("UnsupportedValue", f"spec.rules[{i}].filters: header name {bad!r} is not one "
                                                  "nsplane can set (letters, digits, '-')")
        path = (f.get("urlRewrite") or f.get("requestRedirect") or {}).get("path") or {}
        if path.get("type") == "ReplacePrefixMatch" and any(
                (m.get("path") or {}).get("type", "PathPrefix") != "PathPrefix" for m in rule.get("matches") or ()):
            raise RuleProblem("UnsupportedValue", f"spec.rules[{i}].filters: ReplacePrefixMatch needs "
                                                  "PathPrefix matches")


@dataclass
class Resolver:
    """Resolves backendRefs of one route: `service_of(ns, name)` returns the
    Service or None. `problems` collects (reason, message), first one wins
    in ResolvedRefs."""
    route_ns: str
    service_of: Callable
    grants: list
    problems: list

    def backend(self, ref: dict) -> Backend:
        ns, name = ref.get("namespace") or self.route_ns, ref.get("name", "")
        group, kind = ref.get("group", ""), ref.get("kind", "Service")
        label = f"{ns}/{name}"
        weight = ref.get("weight", 1)
        if group != "" or kind != "Service":
            self.problems.append(("InvalidKind", f"backendRef {group or 'core'}/{kind} {label}: "
                                                 "only core Services are supported"))
            return Backend(label, weight, None)
        if not refgrants.permitted(self.grants, from_group=GROUP, from_kind="HTTPRoute", from_ns=self.route_ns,
                                   to_group="", to_kind="Service", to_ns=ns, to_name=name):
            self.problems.append(("RefNotPermitted", f"backendRef Service {label} is in another namespace and "
                                                     "no ReferenceGrant there allows it"))
            return Backend(label, weight, None)
        svc = self.service_of(ns, name)
        if svc is None:
            self.problems.append(("BackendNotFound", f"Service {label} does not exist"))
            return Backend(label, weight, None)
        port = ref.get("port")
        spec = svc.get("spec") or {}
        if port is None or not any(p.get("port") == port for p in spec.get("ports") or ()):
            self.problems.append(("BackendNotFound", f"Service {label} has no port {port}"))
            return Backend(label, weight, None)
        ip = spec.get("clusterIP")
        if not ip or ip == "None":
            self.problems.append(("BackendNotFound", f"Service {label} has no cluster IP (headless)"))
            return Backend(label, weight, None)
        return Backend(label, weight, f"{ip}:{port}")

    def backends(self, rule: dict) -> list[Backend]:
        return [self.backend(r) for r in rule.get("backendRefs") or ()]
