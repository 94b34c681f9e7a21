"""Checks shared by every kind: names, labels, annotations, metadata (create
and update), ports, protocols, IPs, and the Namespace kind."""
from __future__ import annotations

import ipaddress
import re

from agent.api.syntax import (
    dns1123_subdomain_errors,
    label_value_errors,
    qualified_name_errors,
    regex_error,
)
from agent.apiserver.validation.errors import Errs, go_value, type_name

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


def path_segment_errors(name: str) -> list[str]:
    """path.IsValidPathSegmentName (ValidateRBACName: `system:node` is a valid Role name)."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


_NAME_RULES = {"Service": dns1035_label_errors, "Namespace": dns1123_label_errors,
               **{k: path_segment_errors for k in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")}}


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


def validate_annotations(errs: Errs, ann, path: str) -> None:
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
    validate_annotations(errs, md.get("annotations"), "metadata.annotations")


def validate_meta_update(errs: Errs, md: dict, old_md: dict) -> None:
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


def check_protocol(errs: Errs, node: dict, path: str) -> str:
    proto = errs.typed(node, "protocol", path, "string", "TCP")
    if proto not in PROTOCOLS:
        errs.not_supported(path, proto, PROTOCOLS)
    return proto


def check_nonneg(errs: Errs, node: dict, key: str, path: str) -> None:
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


def check_namespace(errs: Errs, ns: dict, old: dict | None, **_) -> None:
    spec = errs.typed(ns, "spec", "spec", "object", {})
    for i, fin in enumerate(errs.typed(spec, "finalizers", "spec.finalizers", "array", [])):
        for msg in qualified_name_errors(str(fin)):
            errs.invalid(f"spec.finalizers[{i}]", fin, msg)
