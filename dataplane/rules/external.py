"""A Service port's external destinations: external IPs, load-balancer IPs,
NodePorts, and the KUBE-EXT / KUBE-FW chains behind them.

Every external destination leads to the port's KUBE-EXT- chain (through
KUBE-FW- when loadBalancerSourceRanges apply to a load-balancer IP), which
masquerades (externalTrafficPolicy Cluster) or short-circuits pod and node
traffic to the Cluster chain (Local), then jumps to the external policy
chain. Without usable endpoints, filter KUBE-EXTERNAL-SERVICES REJECTs or
DROPs instead; KUBE-PROXY-FIREWALL drops what KUBE-FW- let fall through; a
healthCheckNodePort is ACCEPTed in filter KUBE-NODEPORTS. The jump from
KUBE-SERVICES to KUBE-NODEPORTS follows nodePortAddresses and
localhostNodePorts (`nodeports_jumps`). Pure.
"""
from __future__ import annotations

import ipaddress

from dataplane.chains import MARK_MASQ
from dataplane.dispatch import ip_key
from dataplane.model import NodeInfo
from dataplane.rules.service import ServiceOut, ServicePlan

_NODEPORTS_COMMENT = '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"'
# The last rule of nat KUBE-SERVICES: local destinations go on to the NodePorts.
NODEPORTS_JUMP = f"{_NODEPORTS_COMMENT} -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"


def nodeports_jumps(node: NodeInfo) -> list[str]:
    """The last rules of nat KUBE-SERVICES (after "-A KUBE-SERVICES "), as
    kube-proxy writes them: every local address unless nodePortAddresses
    names some (`node.node_port_ips`), one rule per address then; 127/8 is
    left out when iptables.localhostNodePorts is false."""
    if node.node_port_ips is None:
        if node.localhost_node_ports:
            return [NODEPORTS_JUMP]
        return [f"{_NODEPORTS_COMMENT} -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS"]
    return [f"{_NODEPORTS_COMMENT} -d {ip} -j KUBE-NODEPORTS" for ip in node.node_port_ips
            if node.localhost_node_ports or not ipaddress.ip_address(ip).is_loopback]


def render_external(p: ServicePlan, out: ServiceOut) -> None:
    """All of the port's external rules, in kube-proxy's order."""
    _render_external_ips(p, out)
    _render_load_balancer_ips(p, out)
    _render_node_ports(p, out)
    _render_ext_chain(p, out)
    _render_fw_chain(p, out)


def _render_external_ips(p: ServicePlan, out: ServiceOut) -> None:
    sp = p.sp
    for ip in sp.external_ips:
        match = f"-m {p.proto} -p {p.proto} -d {ip} --dport {sp.port}"
        if p.choice.has_any:
            out.share("nat", "KUBE-SERVICES", ip_key(ip),
                      f'-m comment --comment "{sp.spn} external IP" {match} -j {p.chains.ext}')
        if not p.has_external:
            target, comment = p.external_filter
            out.share("filter", "KUBE-EXTERNAL-SERVICES", None, f"-m comment --comment {comment} {match} -j {target}")


def _render_load_balancer_ips(p: ServicePlan, out: ServiceOut) -> None:
    sp = p.sp
    for ip in sp.load_balancer_ips:
        match = f"-m {p.proto} -p {p.proto} -d {ip} --dport {sp.port}"
        if p.choice.has_any:
            out.share("nat", "KUBE-SERVICES", ip_key(ip),
                      f'-m comment --comment "{sp.spn} loadbalancer IP" {match} -j {p.lb_chain}')
        if p.uses_fw_chain:
            out.share("filter", "KUBE-PROXY-FIREWALL", None,
                      f'-m comment --comment "{sp.spn} traffic not accepted by {p.chains.fw}" {match} -j DROP')
    if not p.has_external:
        target, comment = p.external_filter
        for ip in sp.load_balancer_ips:
            out.share("filter", "KUBE-EXTERNAL-SERVICES", None,
                      f"-m comment --comment {comment} -m {p.proto} -p {p.proto} -d {ip} --dport {sp.port} -j {target}")


def _render_node_ports(p: ServicePlan, out: ServiceOut) -> None:
    sp = p.sp
    if sp.node_port:
        if p.choice.has_any:
            out.share("nat", "KUBE-NODEPORTS", (p.proto, sp.node_port),
                      f"-m comment --comment {sp.spn} -m {p.proto} -p {p.proto} --dport {sp.node_port} -j {p.chains.ext}")
        if not p.has_external:
            target, comment = p.external_filter
            out.share("filter", "KUBE-EXTERNAL-SERVICES", None,
                      f"-m comment --comment {comment} -m addrtype --dst-type LOCAL "
                      f"-m {p.proto} -p {p.proto} --dport {sp.node_port} -j {target}")
    if sp.health_check_node_port:
        out.share("filter", "KUBE-NODEPORTS", None,
                  f'-m comment --comment "{sp.spn} health check node port" '
                  f"-m tcp -p tcp --dport {sp.health_check_node_port} -j ACCEPT")


def _render_ext_chain(p: ServicePlan, out: ServiceOut) -> None:
    """KUBE-EXT-: masquerade (Cluster policy) or short-circuit pod and node
    traffic to the Cluster chain (Local policy), then the policy chain."""
    if not p.uses_ext_chain:
        return
    sp, ext = p.sp, p.chains.ext
    out.nat_chain(ext)
    if not sp.external_policy_local:
        out.rule(ext, f'-m comment --comment "masquerade traffic for {sp.spn} external destinations" -j {MARK_MASQ}')
    else:
        if out.node.if_local:
            out.rule(ext, f'-m comment --comment "pod traffic for {sp.spn} external destinations" '
                          f"{out.node.if_local} -j {p.chains.svc}")
        out.rule(ext, f'-m comment --comment "masquerade LOCAL traffic for {sp.spn} external destinations" '
                      f"-m addrtype --src-type LOCAL -j {MARK_MASQ}")
        out.rule(ext, f'-m comment --comment "route LOCAL traffic for {sp.spn} external destinations" '
                      f"-m addrtype --src-type LOCAL -j {p.chains.svc}")
    if p.has_external:
        out.rule(ext, f"-j {p.external_policy_chain}")


def _render_fw_chain(p: ServicePlan, out: ServiceOut) -> None:
    """KUBE-FW-: let loadBalancerSourceRanges (and the node itself) through to
    KUBE-EXT; anything else falls out undNATed and KUBE-PROXY-FIREWALL drops it."""
    if not p.uses_fw_chain:
        return
    sp, fw = p.sp, p.chains.fw
    out.nat_chain(fw)
    head = f'-m comment --comment "{sp.spn} loadbalancer IP"'
    allow_from_node = False
    for cidr in sp.load_balancer_source_ranges:
        out.rule(fw, f"{head} -s {cidr} -j {p.chains.ext}")
        allow_from_node = allow_from_node or any(_in_cidr(ip, cidr) for ip in out.node.node_ips)
    if allow_from_node:
        for ip in sp.load_balancer_ips:
            out.rule(fw, f"{head} -s {ip} -j {p.chains.ext}")
    out.rule(fw, f'-m comment --comment "other traffic to {sp.spn} will be dropped by KUBE-PROXY-FIREWALL"')


def _in_cidr(ip: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
