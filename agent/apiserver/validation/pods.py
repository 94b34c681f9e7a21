"""Pod and pod template validation: containers, ports, probes, restart
policy, dnsPolicy and dnsConfig, which Pod fields an update may change, and
the pods/binding subresource's Binding."""
from __future__ import annotations

import ipaddress

from agent.api.syntax import dns1123_subdomain_errors
from agent.apiserver.validation.common import (
    check_nonneg,
    check_protocol,
    dns1123_label_errors,
    port_name_errors,
    port_num_errors,
    port_num_or_name,
)
from agent.apiserver.validation.env import check_env
from agent.apiserver.validation.errors import Cause, Errs, child_path

RESTART_POLICIES = ["Always", "OnFailure", "Never"]
DNS_POLICIES = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
MAX_DNS_NAMESERVERS = 3         # apis/core/validation: MaxDNSNameservers
MAX_DNS_SEARCH_PATHS = 32       # MaxDNSSearchPaths
MAX_DNS_SEARCH_LIST_CHARS = 2048  # MaxDNSSearchListChars


def check_pod_spec(errs: Errs, spec, path: str, *, template: bool = False) -> None:
    if not isinstance(spec, dict):
        errs.required(child_path(path, "containers"))
        return
    names: set[str] = set()
    for group in ("initContainers", "containers"):
        ctrs = errs.typed(spec, group, child_path(path, group), "array", [])
        if group == "containers" and not ctrs:
            errs.required(child_path(path, "containers"))
        for i, ctr in enumerate(ctrs):
            _container(errs, ctr, f"{child_path(path, group)}[{i}]", names, probes=group == "containers")
    policy = errs.typed(spec, "restartPolicy", child_path(path, "restartPolicy"), "string", "Always")
    if policy not in RESTART_POLICIES:
        errs.not_supported(child_path(path, "restartPolicy"), policy, RESTART_POLICIES)
    elif template and policy != "Always":
        errs.not_supported(child_path(path, "restartPolicy"), policy, ["Always"])
    check_nonneg(errs, spec, "terminationGracePeriodSeconds", child_path(path, "terminationGracePeriodSeconds"))
    node = errs.typed(spec, "nodeName", child_path(path, "nodeName"), "string")
    for msg in dns1123_subdomain_errors(node) if node else []:
        errs.invalid(child_path(path, "nodeName"), node, msg)
    for key in ("hostname", "subdomain"):   # the pod's DNS name <hostname>.<subdomain>.<ns>.svc...
        value = errs.typed(spec, key, child_path(path, key), "string")
        for msg in dns1123_label_errors(value) if value else []:
            errs.invalid(child_path(path, key), value, msg)
    _dns(errs, spec, path)


def _dns(errs: Errs, spec: dict, path: str) -> None:
    """validateDNSPolicy and validatePodDNSConfig: what the kubelet turns into
    the pod's resolv.conf (search paths' own syntax is not checked here)."""
    policy = errs.typed(spec, "dnsPolicy", child_path(path, "dnsPolicy"), "string", "ClusterFirst")
    if policy not in DNS_POLICIES:
        errs.not_supported(child_path(path, "dnsPolicy"), policy, DNS_POLICIES)
    cpath = child_path(path, "dnsConfig")
    config = errs.typed(spec, "dnsConfig", cpath, "object")
    if config is None:
        if policy == "None":
            errs.required(cpath, "must provide `dnsConfig` when `dnsPolicy` is None")
        return
    npath = child_path(cpath, "nameservers")
    servers = errs.typed(config, "nameservers", npath, "array", [])
    if policy == "None" and not servers:
        errs.required(npath, "must provide at least one DNS nameserver when `dnsPolicy` is None")
    if len(servers) > MAX_DNS_NAMESERVERS:
        errs.invalid(npath, servers, f"must not have more than {MAX_DNS_NAMESERVERS} nameservers")
    for i, server in enumerate(servers):
        try:
            ipaddress.ip_address(server)
        except ValueError:
            errs.invalid(f"{npath}[{i}]", server, "must be valid IP address")
    spath = child_path(cpath, "searches")
    searches = errs.typed(config, "searches", spath, "array", [])
    if len(searches) > MAX_DNS_SEARCH_PATHS:
        errs.invalid(spath, searches, f"must not have more than {MAX_DNS_SEARCH_PATHS} search paths")
    if len(" ".join(str(x) for x in searches)) > MAX_DNS_SEARCH_LIST_CHARS:
        errs.invalid(spath, searches, f"must not have more than {MAX_DNS_SEARCH_LIST_CHARS} characters "
                     "(including spaces) in the search list")
    for i, option in enumerate(errs.typed(config, "options", child_path(cpath, "options"), "array", [])):
        if not (option or {}).get("name"):
            errs.required(f"{child_path(cpath, 'options')}[{i}].name", "must not be empty")


def _container(errs: Errs, ctr, path: str, names: set, *, probes: bool) -> None:
    if not isinstance(ctr, dict):
        errs.typed({"c": ctr}, "c", path, "object")
        return
    name = errs.typed(ctr, "name", child_path(path, "name"), "string", "")
    if not name:
        errs.required(child_path(path, "name"))
    for msg in dns1123_label_errors(name) if name else []:
        errs.invalid(child_path(path, "name"), name, msg)
    if name and name in names:
        errs.duplicate(child_path(path, "name"), name)
    names.add(name)
    image = errs.typed(ctr, "image", child_path(path, "image"), "string", "")
    if not image:
        errs.required(child_path(path, "image"))
    elif image != image.strip():
        errs.invalid(child_path(path, "image"), image, "must not have leading or trailing whitespace")
    for key in ("command", "args"):
        for j, _ in enumerate(errs.typed(ctr, key, child_path(path, key), "array", [])):
            errs.typed(ctr[key], j, f"{child_path(path, key)}[{j}]", "string")
    check_env(errs, ctr, path)
    _container_ports(errs, errs.typed(ctr, "ports", child_path(path, "ports"), "array", []), child_path(path, "ports"))
    if probes:
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            p = errs.typed(ctr, probe, child_path(path, probe), "object")
            if p is not None:
                _probe(errs, p, child_path(path, probe), probe != "readinessProbe")


def _container_ports(errs: Errs, ports: list, path: str) -> None:
    names: set[str] = set()
    for i, port in enumerate(ports):
        p = f"{path}[{i}]"
        if not isinstance(port, dict):
            errs.typed({"p": port}, "p", p, "object")
            continue
        name = errs.typed(port, "name", child_path(p, "name"), "string", "")
        msgs = port_name_errors(name) if name else []
        for msg in msgs:
            errs.invalid(child_path(p, "name"), name, msg)
        if name and not msgs and name in names:
            errs.duplicate(child_path(p, "name"), name)
        names.add(name)
        cport = errs.typed(port, "containerPort", child_path(p, "containerPort"), "integer", 0)
        if not cport:
            errs.required(child_path(p, "containerPort"))
        for msg in port_num_errors(cport) if cport else []:
            errs.invalid(child_path(p, "containerPort"), cport, msg)
        hport = errs.typed(port, "hostPort", child_path(p, "hostPort"), "integer", 0)
        for msg in port_num_errors(hport) if hport else []:
            errs.invalid(child_path(p, "hostPort"), hport, msg)
        check_protocol(errs, port, child_path(p, "protocol"))


def _probe(errs: Errs, probe: dict, path: str, success_must_be_one: bool) -> None:
    handlers = [h for h in ("exec", "httpGet", "tcpSocket", "grpc") if probe.get(h) is not None]
    for extra in handlers[1:]:
        errs.forbidden(child_path(path, extra), "may not specify more than 1 handler type")
    if not handlers:
        errs.required(path, "must specify a handler type")
    elif handlers[0] == "exec":
        if not (probe["exec"] or {}).get("command"):
            errs.required(child_path(path, "exec.command"))
    elif handlers[0] in ("httpGet", "tcpSocket"):
        h = probe[handlers[0]] or {}
        port = h.get("port")
        if port is None:
            errs.invalid(child_path(path, f"{handlers[0]}.port"), 0, "must be between 1 and 65535, inclusive")
        else:
            port_num_or_name(errs, port, child_path(path, f"{handlers[0]}.port"))
        scheme = h.get("scheme", "HTTP")
        if handlers[0] == "httpGet" and scheme not in ("HTTP", "HTTPS"):
            errs.not_supported(child_path(path, "httpGet.scheme"), scheme, ["HTTP", "HTTPS"])
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        check_nonneg(errs, probe, key, child_path(path, key))
    if success_must_be_one and probe.get("successThreshold") not in (None, 1):
        errs.invalid(child_path(path, "successThreshold"), probe["successThreshold"], "must be 1")


def check_pod(errs: Errs, pod: dict, old: dict | None, **_) -> None:
    spec = errs.typed(pod, "spec", "spec", "object")
    check_pod_spec(errs, spec, "spec")
    if old is not None and isinstance(spec, dict):
        _pod_update(errs, spec, old.get("spec") or {})


_POD_MUTABLE = {"activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"}


def _pod_update(errs: Errs, spec: dict, old_spec: dict) -> None:
    """ValidatePodUpdate. spec.nodeName is not among what may change: a pod is
    bound through its binding subresource (validate_binding), never by an update."""
    def masked(s: dict) -> dict:
        out = {k: v for k, v in s.items() if k not in _POD_MUTABLE}
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


def validate_binding(binding: dict) -> list[Cause]:
    """ValidatePodBinding: a Binding's target is a Node, named."""
    errs = Errs()
    target = errs.typed(binding, "target", "target", "object", {})
    kind = errs.typed(target, "kind", "target.kind", "string", "")
    if kind and kind != "Node":
        errs.not_supported("target.kind", kind, ["Node", "<empty>"])
    if not errs.typed(target, "name", "target.name", "string", ""):
        errs.required("target.name")
    return list(errs)
