"""kube-apiserver's validation for the kinds we serve, with kube's messages.

`validate(kind, obj, old)` returns a list of `Cause(field, reason, message)` —
the same triples kube puts in a 422 Status's `details.causes` — and
`format_invalid(kind, name, causes)` builds the Status message exactly as
apierrors.NewInvalid does:

    Service "web" is invalid: spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive

Rules are ports of k8s.io/kubernetes/pkg/apis/{core,apps,discovery}/validation
(and the Service REST strategy's clusterIP / nodePort checks), in kube's order.
Fields that kube's defaulters fill in (type, protocol, sessionAffinity,
targetPort, restartPolicy, replicas...) are treated as their defaults when
absent, so this can run before or after defaulting. A value of the wrong JSON
type (e.g. `app: 1` in a selector) is a `FieldValueTypeInvalid` cause worded
like kube's schema validation ("... in body must be of type string").

Pure: dicts in, causes out. Allocation conflicts (clusterIP / nodePort already
allocated, clusterIP outside the service CIDR) belong to the allocator.
"""
from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

from agent import kinds
from agent.selectors import _go_quote as go_quote
from agent.selectors import (dns1123_subdomain_errors, from_label_selector, label_value_errors,
                             qualified_name_errors, regex_error)

_OMIT = object()


class Cause(NamedTuple):
    field: str
    reason: str      # FieldValueInvalid, FieldValueRequired, ...
    message: str     # kube's ErrorBody: 'Invalid value: 70000: must be ...'

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


_TYPES = {"Invalid": ("FieldValueInvalid", "Invalid value"),
          "Required": ("FieldValueRequired", "Required value"),
          "Forbidden": ("FieldValueForbidden", "Forbidden"),
          "Duplicate": ("FieldValueDuplicate", "Duplicate value"),
          "NotSupported": ("FieldValueNotSupported", "Unsupported value"),
          "TooLong": ("FieldValueTooLong", "Too long"),
          "TooMany": ("FieldValueTooMany", "Too many"),
          "TypeInvalid": ("FieldValueTypeInvalid", "Invalid value")}


class Errs(list):
    """A field.ErrorList: helpers append Causes with kube's wording."""

    def add(self, kind: str, path: str, value=_OMIT, detail: str = "") -> None:
        reason, text = _TYPES[kind]
        body = text if value is _OMIT else f"{text}: {go_value(value)}"
        self.append(Cause(path, reason, body + (f": {detail}" if detail else "")))

    def invalid(self, path, value, detail):
        self.add("Invalid", path, value, detail)

    def required(self, path, detail=""):
        self.add("Required", path, detail=detail)

    def forbidden(self, path, detail):
        self.add("Forbidden", path, detail=detail)

    def duplicate(self, path, value):
        self.add("Duplicate", path, value)

    def not_supported(self, path, value, valid):
        self.add("NotSupported", path, value, "supported values: " + ", ".join(f'"{v}"' for v in valid))

    def typed(self, node, key, path, want, default=None):
        """node[key] if it has JSON type `want` ("string", "integer", "object",
        "array", "boolean"); else record a type error and return `default`."""
        if not isinstance(node, dict) or node.get(key) is None:
            return default
        v = node[key]
        if type_name(v) == want:
            return v
        got = type_name(v)
        self.add("TypeInvalid", path, got, f"{path} in body must be of type {want}: {go_value(got)}")
        return default


# ---- Go's %v / %q / %#v, as field.Error.ErrorBody prints bad values ------------

def type_name(v) -> str:
    """The JSON/OpenAPI type name of a decoded value."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _go_elem(v) -> str:
    return go_quote(v) if isinstance(v, str) else go_value(v)


def go_value(v) -> str:
    """How kube prints a bad value: ints/bools plainly, strings %q, maps and
    slices as Go's %#v (map[string]string{"app":"x"}, []string{"a", "b"})."""
    if isinstance(v, GoRepr):
        return v.text
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return go_quote(v)
    if isinstance(v, dict):
        vt = "string" if all(isinstance(x, str) for x in v.values()) else "interface {}"
        body = ", ".join(f"{go_quote(str(k))}:{_go_elem(v[k])}" for k in sorted(v, key=str))
        return f"map[string]{vt}{{{body}}}"
    if isinstance(v, list):
        vt = "string" if all(isinstance(x, str) for x in v) else "interface {}"
        return f"[]{vt}{{" + ", ".join(_go_elem(x) for x in v) + "}"
    return str(v)


class GoRepr:
    """A value whose Go %#v rendering is precomputed (structs)."""

    def __init__(self, text: str):
        self.text = text


def go_intstr(v) -> GoRepr:
    if isinstance(v, str):
        return GoRepr(f'intstr.IntOrString{{Type:1, IntVal:0, StrVal:{go_quote(v)}}}')
    return GoRepr(f'intstr.IntOrString{{Type:0, IntVal:{int(v or 0)}, StrVal:""}}')


def go_label_selector(sel) -> GoRepr:
    sel = sel or {}
    ml = sel.get("matchLabels")
    ml_s = go_value(ml) if ml else "map[string]string(nil)"
    exprs = sel.get("matchExpressions")
    if exprs:
        parts = [f'v1.LabelSelectorRequirement{{Key:{go_quote(str(e.get("key", "")))}, '
                 f'Operator:{go_quote(str(e.get("operator", "")))}, '
                 f'Values:{go_value(list(e.get("values") or [])) if e.get("values") else "[]string(nil)"}}}'
                 for e in exprs]
        ex_s = "[]v1.LabelSelectorRequirement{" + ", ".join(parts) + "}"
    else:
        ex_s = "[]v1.LabelSelectorRequirement(nil)"
    return GoRepr(f"v1.LabelSelector{{MatchLabels:{ml_s}, MatchExpressions:{ex_s}}}")


def _p(path: str, child: str) -> str:
    return f"{path}.{child}" if path else child


# ---- names, labels, metadata -------------------------------------------------

_DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL = "[a-z]([-a-z0-9]*[a-z0-9])?"


def dns1123_label_errors(value: str) -> list[str]:
    errs = ["must be no more than 63 characters"] if len(value) > 63 else []
    if not re.fullmatch(_DNS1123_LABEL, value):
        errs.append(regex_error("a lowercase RFC 1123 label must consist of lower case alphanumeric "
                                "characters or '-', and must start and end with an alphanumeric character",
                                _DNS1123_LABEL, "my-name", "123-abc"))
    return errs


def dns1035_label_errors(value: str) -> list[str]:
    errs = ["must be no more than 63 characters"] if len(value) > 63 else []
    if not re.fullmatch(_DNS1035_LABEL, value):
        errs.append(regex_error("a DNS-1035 label must consist of lower case alphanumeric characters or "
                                "'-', start with an alphabetic character, and end with an alphanumeric character",
                                _DNS1035_LABEL, "my-name", "abc-123"))
    return errs


_NAME_RULES = {"Service": dns1035_label_errors, "Namespace": dns1123_label_errors}


def validate_labels(errs: Errs, labels, path: str) -> None:
    """ValidateLabels: keys are qualified names, values label values; all strings."""
    if labels is None:
        return
    if not isinstance(labels, dict):
        errs.typed({"x": labels}, "x", path, "object")
        return
    for k in sorted(labels, key=str):
        v = labels[k]
        for msg in qualified_name_errors(str(k)):
            errs.invalid(path, str(k), msg)
        if not isinstance(v, str):
            errs.typed(labels, k, f"{path}.{k}", "string")
            continue
        for msg in label_value_errors(v):
            errs.invalid(path, v, msg)


def _annotations(errs: Errs, ann, path: str) -> None:
    if ann is None:
        return
    if not isinstance(ann, dict):
        errs.typed({"x": ann}, "x", path, "object")
        return
    size = 0
    for k in sorted(ann, key=str):
        for msg in qualified_name_errors(str(k).lower()):
            errs.invalid(path, str(k), msg)
        v = errs.typed(ann, k, f"{path}.{k}", "string", "")
        size += len(str(k)) + len(v)
    if size > 256 * 1024:
        errs.add("TooLong", path, detail=f"must have at most {256 * 1024} bytes")


def validate_meta(errs: Errs, kind: str, md, namespaced: bool) -> None:
    """ValidateObjectMeta."""
    if not isinstance(md, dict):
        errs.required("metadata.name", "name or generateName is required")
        return
    name_rule = _NAME_RULES.get(kind, dns1123_subdomain_errors)
    gen = errs.typed(md, "generateName", "metadata.generateName", "string", "")
    if gen:
        masked = gen[:-1] + "a" if gen.endswith("-") else gen
        for msg in name_rule(masked):
            errs.invalid("metadata.generateName", gen, msg)
    name = errs.typed(md, "name", "metadata.name", "string", "")
    if not name:
        errs.required("metadata.name", "name or generateName is required")
    else:
        for msg in name_rule(name):
            errs.invalid("metadata.name", name, msg)
    ns = errs.typed(md, "namespace", "metadata.namespace", "string", "")
    if namespaced:
        if not ns:
            errs.required("metadata.namespace")
        for msg in (dns1123_label_errors(ns) if ns else []):
            errs.invalid("metadata.namespace", ns, msg)
    elif ns:
        errs.forbidden("metadata.namespace", "not allowed on this type")
    gen_n = errs.typed(md, "generation", "metadata.generation", "integer", 0)
    if gen_n < 0:
        errs.invalid("metadata.generation", gen_n, "must be greater than or equal to 0")
    validate_labels(errs, md.get("labels"), "metadata.labels")
    _annotations(errs, md.get("annotations"), "metadata.annotations")


def _meta_update(errs: Errs, md: dict, old_md: dict) -> None:
    for key in ("name", "namespace", "uid", "creationTimestamp"):
        new, old = md.get(key), old_md.get(key)
        if new and old and new != old:
            errs.invalid(f"metadata.{key}", new, "field is immutable")


# ---- shared pieces ------------------------------------------------------------

PROTOCOLS = ["SCTP", "TCP", "UDP"]


def port_num_errors(port: int) -> list[str]:
    return [] if 1 <= port <= 65535 else ["must be between 1 and 65535, inclusive"]


def port_name_errors(name: str) -> list[str]:
    """validation.IsValidPortName (IANA_SVC_NAME)."""
    errs = []
    if len(name) > 15:
        errs.append("must be no more than 15 characters")
    if not re.fullmatch("[-a-z0-9]+", name):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", name):
        errs.append("must contain at least one letter (a-z)")
    if "--" in name:
        errs.append("must not contain consecutive hyphens")
    if name and (name[0] == "-" or name[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def port_num_or_name(errs: Errs, value, path: str) -> None:
    """ValidatePortNumOrName for an IntOrString port."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        errs.add("TypeInvalid", path, type_name(value),
                 f"{path} in body must be of type int-or-string: {go_value(type_name(value))}")
    elif isinstance(value, int):
        for msg in port_num_errors(value):
            errs.invalid(path, value, msg)
    else:
        for msg in port_name_errors(value):
            errs.invalid(path, value, msg)


def _protocol(errs: Errs, node: dict, path: str) -> str:
    proto = errs.typed(node, "protocol", path, "string", "TCP")
    if proto not in PROTOCOLS:
        errs.not_supported(path, proto, PROTOCOLS)
    return proto


def _nonneg(errs: Errs, node: dict, key: str, path: str) -> None:
    v = errs.typed(node, key, path, "integer")
    if v is not None and v < 0:
        errs.invalid(path, v, "must be greater than or equal to 0")


def parse_ip(value: str):
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def non_special_ip(errs: Errs, value: str, path: str) -> None:
    """ValidateNonSpecialIP / ValidateEndpointIP."""
    ip = parse_ip(value)
    if ip is None:
        errs.invalid(path, value, "must be a valid IP address")
        return
    if ip.is_unspecified:
        errs.invalid(path, value, f"may not be unspecified ({value})")
    if ip.is_loopback:
        errs.invalid(path, value, "may not be in the loopback range (127.0.0.0/8, ::1/128)")
    if ip.is_link_local and not ip.is_multicast:
        errs.invalid(path, value, "may not be in the link-local range (169.254.0.0/16, fe80::/10)")
    if ip in ipaddress.ip_network("224.0.0.0/24") if ip.version == 4 else \
            ip in ipaddress.ip_network("ff02::/16"):
        errs.invalid(path, value, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")


def invalid_ip_msg() -> str:
    return "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"


# ---- entry points ----------------------------------------------------------------

def validate(kind: str, obj: dict, old: dict | None = None, *,
             node_port_range: tuple[int, int] = (30000, 32767)) -> list[Cause]:
    """All causes that make `obj` invalid (create when `old` is None, else update)."""
    errs = Errs()
    if not isinstance(obj, dict):
        errs.add("TypeInvalid", "", type_name(obj), f"body must be of type object: {go_value(type_name(obj))}")
        return list(errs)
    k = kinds.BY_KIND.get(kind)
    md = obj.get("metadata")
    if old is not None and isinstance(md, dict):
        _meta_update(errs, md, old.get("metadata") or {})
    validate_meta(errs, kind, md, k.namespaced if k else True)
    checker = CHECKS.get(kind)
    if checker:
        checker(errs, obj, old, node_port_range=node_port_range)
    return list(errs)


def qualified_kind(kind: str) -> str:
    k = kinds.BY_KIND.get(kind)
    return f"{kind}.{k.group}" if k and k.group else kind


def format_invalid(kind: str, name: str, causes: list[Cause]) -> str:
    """apierrors.NewInvalid's message: `Kind[.group] "name" is invalid: ...`."""
    msgs = list(dict.fromkeys(str(c) for c in causes))
    head = f'{qualified_kind(kind)} {go_value(name)} is invalid'
    if not msgs:
        return head
    return f"{head}: {msgs[0] if len(msgs) == 1 else '[' + ', '.join(msgs) + ']'}"


def invalid_status(kind: str, name: str, causes: list[Cause]) -> dict:
    """The 422 Status object kube-apiserver answers with."""
    k = kinds.BY_KIND.get(kind)
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format_invalid(kind, name, causes), "reason": "Invalid", "code": 422,
            "details": {"name": name, "group": k.group if k else "", "kind": kind,
                        "causes": [{"reason": c.reason, "message": c.message, "field": c.field}
                                   for c in causes]}}


# ---- Service ------------------------------------------------------------------------

SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]


def _needs_node_ports(stype: str) -> bool:
    return stype in ("NodePort", "LoadBalancer")


def _cluster_ips(spec: dict, old_spec: dict | None) -> list:
    """spec.clusterIPs as the REST strategy normalises them before validation."""
    ip = spec.get("clusterIP") or ""
    ips = list(spec.get("clusterIPs") or [])
    old_ips = list((old_spec or {}).get("clusterIPs") or [])
    if old_spec is not None and spec.get("type", "ClusterIP") == "ExternalName" \
            and old_spec.get("type", "ClusterIP") != "ExternalName" \
            and (ips == old_ips or not ips) and ip in ("", old_spec.get("clusterIP")):
        return []                         # dropTypeDependentFields clears them
    if old_spec is not None and not ip and not ips and spec.get("type", "ClusterIP") != "ExternalName":
        return old_ips or ([old_spec["clusterIP"]] if old_spec.get("clusterIP") else [])  # patchAllocatedValues
    if ip and (not ips or (old_spec is not None and ips == old_ips)):
        return [ip] + ips[1:]
    return ips


def _service(errs: Errs, svc: dict, old: dict | None, *, node_port_range, **_) -> None:
    spec = errs.typed(svc, "spec", "spec", "object", {})
    old_spec = (old or {}).get("spec") or {} if old is not None else None
    stype = errs.typed(spec, "type", "spec.type", "string", "ClusterIP")
    ips = _cluster_ips(spec, old_spec)
    headless = bool(ips) and ips[0] == "None"
    ports = errs.typed(spec, "ports", "spec.ports", "array", [])
    if old_spec is not None:
        _service_update(errs, stype, ips, old_spec)
    if not ports and not headless and stype != "ExternalName":
        errs.required("spec.ports")
    if stype in ("LoadBalancer", "NodePort") and headless:
        errs.invalid("spec.clusterIPs[0]", "None", f"may not be set to 'None' for {stype} services")
    elif stype == "ExternalName":
        if ips:
            errs.forbidden("spec.clusterIPs", "may not be set for ExternalName services")
        cname = errs.typed(spec, "externalName", "spec.externalName", "string", "").removesuffix(".")
        if not cname:
            errs.required("spec.externalName")
        for msg in dns1123_subdomain_errors(cname) if cname else []:
            errs.invalid("spec.externalName", cname, msg)
    names: set[str] = set()
    for i, port in enumerate(ports):
        _service_port(errs, port, len(ports) > 1, names, f"spec.ports[{i}]")
    if spec.get("selector") is not None:
        validate_labels(errs, spec["selector"], "spec.selector")
    _session_affinity(errs, spec)
    if stype != "ExternalName":
        _cluster_ip_fields(errs, spec, ips)
    for i, ip in enumerate(errs.typed(spec, "externalIPs", "spec.externalIPs", "array", [])):
        if parse_ip(str(ip)) is None:
            errs.invalid(f"spec.externalIPs[{i}]", ip, invalid_ip_msg())
        else:
            non_special_ip(errs, ip, f"spec.externalIPs[{i}]")
    if stype not in SERVICE_TYPES:
        errs.not_supported("spec.type", stype, SERVICE_TYPES)
    _service_node_ports(errs, stype, ports, old_spec, node_port_range)
    _service_port_duplicates(errs, ports)
    _service_external(errs, spec, stype, old_spec)


def _service_update(errs: Errs, stype: str, ips: list, old_spec: dict) -> None:
    """validateUpgradeDowngradeClusterIPs: a set clusterIP may not change."""
    old_type = old_spec.get("type", "ClusterIP")
    old_ips = list(old_spec.get("clusterIPs") or ([old_spec["clusterIP"]] if old_spec.get("clusterIP") else []))
    if "ExternalName" in (stype, old_type) or not old_ips:
        return
    if old_ips[0] == "None" and ips and ips[0] == "None":
        return
    if len(old_ips) == len(ips):
        for i, ip in enumerate(old_ips):
            if ip != ips[i]:
                errs.invalid(f"spec.clusterIPs[{i}]", ips, "may not change once set")
    elif len(ips) < len(old_ips) and not ips:
        errs.invalid("spec.clusterIPs[0]", ips, "primary clusterIP can not be unset")


def _service_port(errs: Errs, port, require_name: bool, names: set, path: str) -> None:
    if not isinstance(port, dict):
        errs.typed({"p": port}, "p", path, "object")
        return
    name = errs.typed(port, "name", _p(path, "name"), "string", "")
    if require_name and not name:
        errs.required(_p(path, "name"))
    elif name:
        for msg in dns1123_label_errors(name):
            errs.invalid(_p(path, "name"), name, msg)
        if name in names:
            errs.duplicate(_p(path, "name"), name)
        names.add(name)
    num = errs.typed(port, "port", _p(path, "port"), "integer", 0)
    for msg in port_num_errors(num):
        errs.invalid(_p(path, "port"), num, msg)
    _protocol(errs, port, _p(path, "protocol"))
    target = port.get("targetPort")
    if target not in (None, 0, ""):
        port_num_or_name(errs, target, _p(path, "targetPort"))
    app = errs.typed(port, "appProtocol", _p(path, "appProtocol"), "string")
    for msg in qualified_name_errors(app) if app is not None else []:
        errs.invalid(_p(path, "appProtocol"), app, msg)


def _session_affinity(errs: Errs, spec: dict) -> None:
    aff = errs.typed(spec, "sessionAffinity", "spec.sessionAffinity", "string", "None")
    cfg = errs.typed(spec, "sessionAffinityConfig", "spec.sessionAffinityConfig", "object")
    if aff not in ("ClientIP", "None"):
        errs.not_supported("spec.sessionAffinity", aff, ["ClientIP", "None"])
    elif aff == "None" and cfg is not None:
        errs.forbidden("spec.sessionAffinityConfig", "must not be set when session affinity is None")
    elif aff == "ClientIP" and cfg is not None:
        path = "spec.sessionAffinityConfig.clientIP.timeoutSeconds"
        timeout = errs.typed(cfg.get("clientIP") or {}, "timeoutSeconds", path, "integer", 10800)
        if timeout <= 0 or timeout > 86400:
            errs.invalid(path, timeout, "must be greater than 0 and less than 86400")


def _cluster_ip_fields(errs: Errs, spec: dict, ips: list) -> None:
    ip = spec.get("clusterIP") or ""
    if ip and ips and ips[0] != ip:
        errs.invalid("spec.clusterIPs", ips, "first value must match `clusterIP`")
    for i, cip in enumerate(ips):
        if i == 0 and cip == "None":
            if len(ips) > 1:
                errs.invalid("spec.clusterIPs", ips, "'None' must be the first and only value")
            continue
        if not isinstance(cip, str) or parse_ip(cip) is None:
            errs.invalid(f"spec.clusterIPs[{i}]", cip, invalid_ip_msg())


def _service_node_ports(errs: Errs, stype: str, ports: list, old_spec, node_port_range) -> None:
    old_node_ports = set()
    if old_spec is not None and _needs_node_ports(old_spec.get("type", "ClusterIP")):
        old_node_ports = {p.get("nodePort") for p in old_spec.get("ports") or [] if isinstance(p, dict)}
    seen = set()
    lo, hi = node_port_range
    for i, port in enumerate(p for p in ports if isinstance(p, dict)):
        path = f"spec.ports[{i}].nodePort"
        np = errs.typed(port, "nodePort", path, "integer", 0)
        if not np:
            continue
        if stype == "ClusterIP" and np not in old_node_ports:
            errs.forbidden(path, "may not be used when `type` is 'ClusterIP'")
            continue
        key = (port.get("protocol", "TCP"), np)
        if key in seen:
            errs.duplicate(path, np)
        seen.add(key)
        if _needs_node_ports(stype) and not lo <= np <= hi:
            errs.invalid(path, np, "provided port is not in the valid range. "
                                   f"The range of valid ports is {lo}-{hi}")


def _go_service_port(protocol, port) -> GoRepr:
    return GoRepr(f'core.ServicePort{{Name:"", Protocol:{go_quote(str(protocol))}, '
                  f'AppProtocol:(*string)(nil), Port:{port}, '
                  'TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}')


def _service_port_duplicates(errs: Errs, ports: list) -> None:
    seen = set()
    for i, port in enumerate(ports):
        if not isinstance(port, dict):
            continue
        key = (port.get("protocol", "TCP"), port.get("port"))
        if key in seen:
            errs.duplicate(f"spec.ports[{i}]", _go_service_port(*key))
        seen.add(key)


def _service_external(errs: Errs, spec: dict, stype: str, old_spec) -> None:
    ranges = errs.typed(spec, "loadBalancerSourceRanges", "spec.loadBalancerSourceRanges", "array", [])
    if ranges and stype != "LoadBalancer":
        errs.forbidden("spec.LoadBalancerSourceRanges", "may only be used when `type` is 'LoadBalancer'")
    for i, cidr in enumerate(ranges):
        try:
            ipaddress.ip_network(str(cidr).strip(), strict=False)
            ok = "/" in str(cidr)
        except ValueError:
            ok = False
        if not ok:
            errs.invalid(f"spec.LoadBalancerSourceRanges[{i}]", str(cidr).strip(),
                         "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")
    if spec.get("allocateLoadBalancerNodePorts") is not None and stype != "LoadBalancer":
        errs.forbidden("spec.allocateLoadBalancerNodePorts", "may only be used when `type` is 'LoadBalancer'")
    etp = errs.typed(spec, "externalTrafficPolicy", "spec.externalTrafficPolicy", "string", "")
    accessible = _needs_node_ports(stype) or (stype == "ClusterIP" and spec.get("externalIPs"))
    kept = old_spec is not None and etp == old_spec.get("externalTrafficPolicy")
    if not accessible and etp and not kept:
        errs.invalid("spec.externalTrafficPolicy", etp, "may only be set for externally-accessible services")
    elif accessible and etp and etp not in ("Cluster", "Local"):
        errs.not_supported("spec.externalTrafficPolicy", etp, ["Cluster", "Local"])
    hc = errs.typed(spec, "healthCheckNodePort", "spec.healthCheckNodePort", "integer", 0)
    if hc and not (stype == "LoadBalancer" and etp == "Local"):
        errs.invalid("spec.healthCheckNodePort", hc,
                     "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'")
    itp = errs.typed(spec, "internalTrafficPolicy", "spec.internalTrafficPolicy", "string", "Cluster")
    if stype != "ExternalName" and itp not in ("Cluster", "Local"):
        errs.not_supported("spec.internalTrafficPolicy", itp, ["Cluster", "Local"])


# ---- Pod spec ---------------------------------------------------------------------------

RESTART_POLICIES = ["Always", "OnFailure", "Never"]


def _pod_spec(errs: Errs, spec, path: str, *, template: bool = False) -> None:
    if not isinstance(spec, dict):
        errs.required(_p(path, "containers"))
        return
    names: set[str] = set()
    for group in ("initContainers", "containers"):
        ctrs = errs.typed(spec, group, _p(path, group), "array", [])
        if group == "containers" and not ctrs:
            errs.required(_p(path, "containers"))
        for i, ctr in enumerate(ctrs):
            _container(errs, ctr, f"{_p(path, group)}[{i}]", names, probes=group == "containers")
    policy = errs.typed(spec, "restartPolicy", _p(path, "restartPolicy"), "string", "Always")
    if policy not in RESTART_POLICIES:
        errs.not_supported(_p(path, "restartPolicy"), policy, RESTART_POLICIES)
    elif template and policy != "Always":
        errs.not_supported(_p(path, "restartPolicy"), policy, ["Always"])
    _nonneg(errs, spec, "terminationGracePeriodSeconds", _p(path, "terminationGracePeriodSeconds"))
    errs.typed(spec, "nodeName", _p(path, "nodeName"), "string")


def _container(errs: Errs, ctr, path: str, names: set, *, probes: bool) -> None:
    if not isinstance(ctr, dict):
        errs.typed({"c": ctr}, "c", path, "object")
        return
    name = errs.typed(ctr, "name", _p(path, "name"), "string", "")
    if not name:
        errs.required(_p(path, "name"))
    for msg in dns1123_label_errors(name) if name else []:
        errs.invalid(_p(path, "name"), name, msg)
    if name and name in names:
        errs.duplicate(_p(path, "name"), name)
    names.add(name)
    image = errs.typed(ctr, "image", _p(path, "image"), "string", "")
    if not image:
        errs.required(_p(path, "image"))
    elif image != image.strip():
        errs.invalid(_p(path, "image"), image, "must not have leading or trailing whitespace")
    for key in ("command", "args"):
        for j, _ in enumerate(errs.typed(ctr, key, _p(path, key), "array", [])):
            errs.typed(ctr[key], j, f"{_p(path, key)}[{j}]", "string")
    for j, env in enumerate(errs.typed(ctr, "env", _p(path, "env"), "array", [])):
        if isinstance(env, dict):
            if not errs.typed(env, "name", f"{_p(path, 'env')}[{j}].name", "string"):
                errs.required(f"{_p(path, 'env')}[{j}].name")
            errs.typed(env, "value", f"{_p(path, 'env')}[{j}].value", "string")
    _container_ports(errs, errs.typed(ctr, "ports", _p(path, "ports"), "array", []), _p(path, "ports"))
    if probes:
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            p = errs.typed(ctr, probe, _p(path, probe), "object")
            if p is not None:
                _probe(errs, p, _p(path, probe), probe != "readinessProbe")


def _container_ports(errs: Errs, ports: list, path: str) -> None:
    names: set[str] = set()
    for i, port in enumerate(ports):
        p = f"{path}[{i}]"
        if not isinstance(port, dict):
            errs.typed({"p": port}, "p", p, "object")
            continue
        name = errs.typed(port, "name", _p(p, "name"), "string", "")
        msgs = port_name_errors(name) if name else []
        for msg in msgs:
            errs.invalid(_p(p, "name"), name, msg)
        if name and not msgs and name in names:
            errs.duplicate(_p(p, "name"), name)
        names.add(name)
        cport = errs.typed(port, "containerPort", _p(p, "containerPort"), "integer", 0)
        if not cport:
            errs.required(_p(p, "containerPort"))
        for msg in port_num_errors(cport) if cport else []:
            errs.invalid(_p(p, "containerPort"), cport, msg)
        hport = errs.typed(port, "hostPort", _p(p, "hostPort"), "integer", 0)
        for msg in port_num_errors(hport) if hport else []:
            errs.invalid(_p(p, "hostPort"), hport, msg)
        _protocol(errs, port, _p(p, "protocol"))


def _probe(errs: Errs, probe: dict, path: str, success_must_be_one: bool) -> None:
    handlers = [h for h in ("exec", "httpGet", "tcpSocket", "grpc") if probe.get(h) is not None]
    for extra in handlers[1:]:
        errs.forbidden(_p(path, extra), "may not specify more than 1 handler type")
    if not handlers:
        errs.required(path, "must specify a handler type")
    elif handlers[0] == "exec":
        if not (probe["exec"] or {}).get("command"):
            errs.required(_p(path, "exec.command"))
    elif handlers[0] in ("httpGet", "tcpSocket"):
        h = probe[handlers[0]] or {}
        port = h.get("port")
        if port is None:
            errs.invalid(_p(path, f"{handlers[0]}.port"), 0, "must be between 1 and 65535, inclusive")
        else:
            port_num_or_name(errs, port, _p(path, f"{handlers[0]}.port"))
        scheme = h.get("scheme", "HTTP")
        if handlers[0] == "httpGet" and scheme not in ("HTTP", "HTTPS"):
            errs.not_supported(_p(path, "httpGet.scheme"), scheme, ["HTTP", "HTTPS"])
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        _nonneg(errs, probe, key, _p(path, key))
    if success_must_be_one and probe.get("successThreshold") not in (None, 1):
        errs.invalid(_p(path, "successThreshold"), probe["successThreshold"], "must be 1")


def _pod(errs: Errs, pod: dict, old: dict | None, **_) -> None:
    spec = errs.typed(pod, "spec", "spec", "object")
    _pod_spec(errs, spec, "spec")
    if old is not None and isinstance(spec, dict):
        _pod_update(errs, spec, old.get("spec") or {})


_POD_MUTABLE = {"activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"}


def _pod_update(errs: Errs, spec: dict, old_spec: dict) -> None:
    mutable = _POD_MUTABLE | ({"nodeName"} if not old_spec.get("nodeName") else set())

    def masked(s: dict) -> dict:
        out = {k: v for k, v in s.items() if k not in mutable}
        for group in ("containers", "initContainers"):
            if isinstance(out.get(group), list):
                out[group] = [{k: v for k, v in c.items() if k != "image"} if isinstance(c, dict) else c
                              for c in out[group]]
        return out
    if masked(spec) != masked(old_spec):
        errs.forbidden("spec", "pod updates may not change fields other than `spec.containers[*].image`,"
                               "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
                               "`spec.tolerations` (only additions to existing tolerations),"
                               "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
                               "previously negative)")


# ---- Deployment / ReplicaSet ----------------------------------------------------------

def _label_selector(errs: Errs, sel: dict, path: str) -> None:
    """ValidateLabelSelector (strict label values)."""
    validate_labels(errs, sel.get("matchLabels"), _p(path, "matchLabels"))
    for i, expr in enumerate(errs.typed(sel, "matchExpressions", _p(path, "matchExpressions"), "array", [])):
        ep = f"{_p(path, 'matchExpressions')}[{i}]"
        if not isinstance(expr, dict):
            errs.typed({"e": expr}, "e", ep, "object")
            continue
        op, values = expr.get("operator"), errs.typed(expr, "values", _p(ep, "values"), "array", [])
        if op in ("In", "NotIn"):
            if not values:
                errs.required(_p(ep, "values"), "must be specified when `operator` is 'In' or 'NotIn'")
        elif op in ("Exists", "DoesNotExist"):
            if values:
                errs.forbidden(_p(ep, "values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
        else:
            errs.invalid(_p(ep, "operator"), op if op is not None else "", "not a valid selector operator")
        for msg in qualified_name_errors(str(expr.get("key", ""))):
            errs.invalid(_p(ep, "key"), str(expr.get("key", "")), msg)
        for j, v in enumerate(values):
            if errs.typed(values, j, f"{_p(ep, 'values')}[{j}]", "string") is not None:
                for msg in label_value_errors(v):
                    errs.invalid(f"{_p(ep, 'values')}[{j}]", v, msg)


def _workload(errs: Errs, obj: dict, old: dict | None, **_) -> None:
    spec = errs.typed(obj, "spec", "spec", "object", {})
    _nonneg(errs, spec, "replicas", "spec.replicas")
    _nonneg(errs, spec, "minReadySeconds", "spec.minReadySeconds")
    sel = errs.typed(spec, "selector", "spec.selector", "object")
    n_before = len(errs)
    if sel is None:
        errs.required("spec.selector")
    else:
        _label_selector(errs, sel, "spec.selector")
        if not sel.get("matchLabels") and not sel.get("matchExpressions"):
            errs.invalid("spec.selector", go_label_selector(sel), "empty selector is invalid for deployment")
    template = errs.typed(spec, "template", "spec.template", "object")
    if template is None:
        errs.required("spec.template")
        return
    tmd = errs.typed(template, "metadata", "spec.template.metadata", "object", {})
    labels = tmd.get("labels") or {}
    if sel is not None and len(errs) == n_before:
        selector = from_label_selector(sel)
        if not selector.empty and isinstance(labels, dict) and not selector.matches(labels):
            errs.invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`")
    validate_labels(errs, tmd.get("labels"), "spec.template.metadata.labels")
    _annotations(errs, tmd.get("annotations"), "spec.template.metadata.annotations")
    _pod_spec(errs, template.get("spec"), "spec.template.spec", template=True)
    if obj.get("kind", "Deployment") == "Deployment":
        _strategy(errs, errs.typed(spec, "strategy", "spec.strategy", "object", {}))
    if old is not None:
        old_sel = (old.get("spec") or {}).get("selector")
        if old_sel is not None and sel is not None and old_sel != sel:
            errs.invalid("spec.selector", go_label_selector(sel), "field is immutable")


def _percent_or_int(errs: Errs, v, path: str) -> int:
    if isinstance(v, str):
        if not re.fullmatch("[0-9]+%", v):
            errs.invalid(path, v, regex_error("a valid percent string must be a numeric string followed "
                                              "by an ending '%'", "[0-9]+%", "1%", "93%"))
            return -1
        if int(v[:-1]) > 100 and path.endswith("maxUnavailable"):
            errs.invalid(path, v, "must not be greater than 100%")
        return int(v[:-1])
    if isinstance(v, int) and not isinstance(v, bool):
        if v < 0:
            errs.invalid(path, v, "must be greater than or equal to 0")
        return v
    return -1


def _strategy(errs: Errs, strategy: dict) -> None:
    stype = strategy.get("type", "RollingUpdate")
    ru = strategy.get("rollingUpdate")
    if stype == "Recreate":
        if ru is not None:
            errs.forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")
    elif stype == "RollingUpdate":
        ru = ru or {}
        mu, ms = ru.get("maxUnavailable", "25%"), ru.get("maxSurge", "25%")
        a = _percent_or_int(errs, mu, "spec.strategy.rollingUpdate.maxUnavailable")
        b = _percent_or_int(errs, ms, "spec.strategy.rollingUpdate.maxSurge")
        if a == 0 and b == 0:
            errs.invalid("spec.strategy.rollingUpdate.maxUnavailable", go_intstr(mu), "may not be 0 when `maxSurge` is 0")
    else:
        errs.not_supported("spec.strategy.type", stype, ["Recreate", "RollingUpdate"])


# ---- EndpointSlice / Endpoints ------------------------------------------------------------

ADDRESS_TYPES = ["FQDN", "IPv4", "IPv6"]


def _endpoint_slice(errs: Errs, sl: dict, old: dict | None, **_) -> None:
    atype = errs.typed(sl, "addressType", "addressType", "string", "")
    if old is None:
        if not atype:
            errs.required("addressType")
            return
        if atype not in ADDRESS_TYPES:
            errs.not_supported("addressType", atype, ADDRESS_TYPES)
            return
    for i, ep in enumerate(errs.typed(sl, "endpoints", "endpoints", "array", [])):
        path = f"endpoints[{i}]"
        if not isinstance(ep, dict):
            errs.typed({"e": ep}, "e", path, "object")
            continue
        addrs = errs.typed(ep, "addresses", _p(path, "addresses"), "array", [])
        if not addrs:
            errs.required(_p(path, "addresses"), "must contain at least 1 address")
        elif len(addrs) > 100:
            errs.add("TooMany", _p(path, "addresses"), len(addrs), "must have at most 100 items")
        for j, addr in enumerate(addrs):
            _slice_address(errs, atype, addr, f"{_p(path, 'addresses')}[{j}]")
        node = errs.typed(ep, "nodeName", _p(path, "nodeName"), "string")
        for msg in dns1123_subdomain_errors(node) if node else []:
            errs.invalid(_p(path, "nodeName"), node, msg)
        host = errs.typed(ep, "hostname", _p(path, "hostname"), "string")
        for msg in dns1123_label_errors(host) if host is not None else []:
            errs.invalid(_p(path, "hostname"), host, msg)
    names: set[str] = set()
    for i, port in enumerate(errs.typed(sl, "ports", "ports", "array", [])):
        path = f"ports[{i}]"
        if not isinstance(port, dict):
            errs.typed({"p": port}, "p", path, "object")
            continue
        name = errs.typed(port, "name", _p(path, "name"), "string", "")
        for msg in dns1123_label_errors(name) if name else []:
            errs.invalid(_p(path, "name"), name, msg)
        if name in names:
            errs.duplicate(_p(path, "name"), name)
        names.add(name)
        _protocol(errs, port, _p(path, "protocol"))
        num = errs.typed(port, "port", _p(path, "port"), "integer")
        for msg in port_num_errors(num) if num is not None else []:
            errs.invalid(_p(path, "port"), num, msg)
    if old is not None and old.get("addressType") and atype != old.get("addressType"):
        errs.invalid("addressType", atype, "field is immutable")


def _slice_address(errs: Errs, atype: str, addr, path: str) -> None:
    if not isinstance(addr, str):
        errs.typed({"a": addr}, "a", path, "string")
        return
    ip = parse_ip(addr)
    if atype in ("IPv4", "IPv6"):
        if ip is None or ip.version != int(atype[-1]):
            errs.invalid(path, addr, f"must be a valid {atype} address")
        else:
            non_special_ip(errs, addr, path)
    elif atype == "FQDN":
        for msg in dns1123_subdomain_errors(addr):
            errs.invalid(path, addr, msg)


def _endpoints(errs: Errs, ep: dict, old: dict | None, **_) -> None:
    for i, ss in enumerate(errs.typed(ep, "subsets", "subsets", "array", [])):
        path = f"subsets[{i}]"
        if not isinstance(ss, dict):
            errs.typed({"s": ss}, "s", path, "object")
            continue
        ready = errs.typed(ss, "addresses", _p(path, "addresses"), "array", [])
        not_ready = errs.typed(ss, "notReadyAddresses", _p(path, "notReadyAddresses"), "array", [])
        if not ready and not not_ready:
            errs.required(path, "must specify `addresses` or `notReadyAddresses`")
        for key, addrs in (("addresses", ready), ("notReadyAddresses", not_ready)):
            for j, addr in enumerate(addrs):
                ap = f"{_p(path, key)}[{j}].ip"
                ip = str((addr or {}).get("ip", "")) if isinstance(addr, dict) else ""
                if parse_ip(ip) is None:
                    errs.invalid(ap, ip, invalid_ip_msg())
                non_special_ip(errs, ip, ap)
        ports = errs.typed(ss, "ports", _p(path, "ports"), "array", [])
        for j, port in enumerate(ports):
            pp = f"{_p(path, 'ports')}[{j}]"
            if not isinstance(port, dict):
                errs.typed({"p": port}, "p", pp, "object")
                continue
            name = errs.typed(port, "name", _p(pp, "name"), "string", "")
            if len(ports) > 1 and not name:
                errs.required(_p(pp, "name"))
            for msg in dns1123_label_errors(name) if name else []:
                errs.invalid(_p(pp, "name"), name, msg)
            num = errs.typed(port, "port", _p(pp, "port"), "integer", 0)
            for msg in port_num_errors(num):
                errs.invalid(_p(pp, "port"), num, msg)
            _protocol(errs, port, _p(pp, "protocol"))


def _namespace(errs: Errs, ns: dict, old: dict | None, **_) -> None:
    spec = errs.typed(ns, "spec", "spec", "object", {})
    for i, fin in enumerate(errs.typed(spec, "finalizers", "spec.finalizers", "array", [])):
        for msg in qualified_name_errors(str(fin)):
            errs.invalid(f"spec.finalizers[{i}]", fin, msg)


CHECKS = {
    "Service": _service,
    "Pod": _pod,
    "Deployment": _workload,
    "ReplicaSet": _workload,
    "EndpointSlice": _endpoint_slice,
    "Endpoints": _endpoints,
    "Namespace": _namespace,
}
