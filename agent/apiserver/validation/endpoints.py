"""EndpointSlice (discovery/validation) and Endpoints (core/validation)
validation: address types, addresses, ports, conditions."""
from __future__ import annotations

from agent.api.syntax import dns1123_subdomain_errors
from agent.apiserver.validation.common import (
    check_protocol,
    dns1123_label_errors,
    invalid_ip_msg,
    non_special_ip,
    parse_ip,
    port_num_errors,
)
from agent.apiserver.validation.errors import Errs, child_path

ADDRESS_TYPES = ["FQDN", "IPv4", "IPv6"]


def check_endpoint_slice(errs: Errs, sl: dict, old: dict | None, **_) -> None:
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
        addrs = errs.typed(ep, "addresses", child_path(path, "addresses"), "array", [])
        if not addrs:
            errs.required(child_path(path, "addresses"), "must contain at least 1 address")
        elif len(addrs) > 100:
            errs.add("TooMany", child_path(path, "addresses"), len(addrs), "must have at most 100 items")
        for j, addr in enumerate(addrs):
            _slice_address(errs, atype, addr, f"{child_path(path, 'addresses')}[{j}]")
        node = errs.typed(ep, "nodeName", child_path(path, "nodeName"), "string")
        for msg in dns1123_subdomain_errors(node) if node else []:
            errs.invalid(child_path(path, "nodeName"), node, msg)
        host = errs.typed(ep, "hostname", child_path(path, "hostname"), "string")
        for msg in dns1123_label_errors(host) if host is not None else []:
            errs.invalid(child_path(path, "hostname"), host, msg)
    names: set[str] = set()
    for i, port in enumerate(errs.typed(sl, "ports", "ports", "array", [])):
        path = f"ports[{i}]"
        if not isinstance(port, dict):
            errs.typed({"p": port}, "p", path, "object")
            continue
        name = errs.typed(port, "name", child_path(path, "name"), "string", "")
        for msg in dns1123_label_errors(name) if name else []:
            errs.invalid(child_path(path, "name"), name, msg)
        if name in names:
            errs.duplicate(child_path(path, "name"), name)
        names.add(name)
        check_protocol(errs, port, child_path(path, "protocol"))
        num = errs.typed(port, "port", child_path(path, "port"), "integer")
        for msg in port_num_errors(num) if num is not None else []:
            errs.invalid(child_path(path, "port"), num, msg)
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


def check_endpoints(errs: Errs, ep: dict, old: dict | None, **_) -> None:
    for i, ss in enumerate(errs.typed(ep, "subsets", "subsets", "array", [])):
        path = f"subsets[{i}]"
        if not isinstance(ss, dict):
            errs.typed({"s": ss}, "s", path, "object")
            continue
        ready = errs.typed(ss, "addresses", child_path(path, "addresses"), "array", [])
        not_ready = errs.typed(ss, "notReadyAddresses", child_path(path, "notReadyAddresses"), "array", [])
        if not ready and not not_ready:
            errs.required(path, "must specify `addresses` or `notReadyAddresses`")
        for key, addrs in (("addresses", ready), ("notReadyAddresses", not_ready)):
            for j, addr in enumerate(addrs):
                ap = f"{child_path(path, key)}[{j}].ip"
                ip = str((addr or {}).get("ip", "")) if isinstance(addr, dict) else ""
                if parse_ip(ip) is None:
                    errs.invalid(ap, ip, invalid_ip_msg())
                non_special_ip(errs, ip, ap)
        ports = errs.typed(ss, "ports", child_path(path, "ports"), "array", [])
        for j, port in enumerate(ports):
            pp = f"{child_path(path, 'ports')}[{j}]"
            if not isinstance(port, dict):
                errs.typed({"p": port}, "p", pp, "object")
                continue
            name = errs.typed(port, "name", child_path(pp, "name"), "string", "")
            if len(ports) > 1 and not name:
                errs.required(child_path(pp, "name"))
            for msg in dns1123_label_errors(name) if name else []:
                errs.invalid(child_path(pp, "name"), name, msg)
            num = errs.typed(port, "port", child_path(pp, "port"), "integer", 0)
            for msg in port_num_errors(num):
                errs.invalid(child_path(pp, "port"), num, msg)
            check_protocol(errs, port, child_path(pp, "protocol"))
