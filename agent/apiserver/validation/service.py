"""Service validation (core/validation ValidateService and the Service REST
strategy's clusterIP / nodePort / type-change checks), in kube's order."""
from __future__ import annotations

import ipaddress

from agent.api.syntax import dns1123_subdomain_errors, go_quote, qualified_name_errors
from agent.apiserver.validation.common import (
    check_protocol,
    dns1123_label_errors,
    invalid_ip_msg,
    non_special_ip,
    parse_ip,
    port_num_errors,
    port_num_or_name,
    validate_labels,
)
from agent.apiserver.validation.errors import Errs, GoRepr, child_path

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


def check_service(errs: Errs, svc: dict, old: dict | None, *, node_port_range, **_) -> None:
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
    name = errs.typed(port, "name", child_path(path, "name"), "string", "")
    if require_name and not name:
        errs.required(child_path(path, "name"))
    elif name:
        for msg in dns1123_label_errors(name):
            errs.invalid(child_path(path, "name"), name, msg)
        if name in names:
            errs.duplicate(child_path(path, "name"), name)
        names.add(name)
    num = errs.typed(port, "port", child_path(path, "port"), "integer", 0)
    for msg in port_num_errors(num):
        errs.invalid(child_path(path, "port"), num, msg)
    check_protocol(errs, port, child_path(path, "protocol"))
    target = port.get("targetPort")
    if target not in (None, 0, ""):
        port_num_or_name(errs, target, child_path(path, "targetPort"))
    app = errs.typed(port, "appProtocol", child_path(path, "appProtocol"), "string")
    for msg in qualified_name_errors(app) if app is not None else []:
        errs.invalid(child_path(path, "appProtocol"), app, msg)


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
