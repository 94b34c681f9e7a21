"""A Service port's ClusterIP: its KUBE-SERVICES rule and the masquerade of
off-cluster sources.

With internal endpoints, nat KUBE-SERVICES sends the ClusterIP:port to the
internal policy chain (KUBE-SVC-, or KUBE-SVL- for internalTrafficPolicy
Local), whose first rule marks traffic from outside the cluster CIDR for
masquerading (kube-proxy's LocalTrafficDetector: by cluster CIDR, or
as detectLocalMode says), or every packet when
iptables.masqueradeAll is set. Without them,
filter KUBE-SERVICES REJECTs ("has no endpoints") or DROPs ("has no local
endpoints"). Pure.
"""
from __future__ import annotations

from dataplane.chains import MARK_MASQ
from dataplane.dispatch import ip_key
from dataplane.rules.service import ServiceOut, ServicePlan


def render_cluster_ip(p: ServicePlan, out: ServiceOut) -> None:
    sp = p.sp
    if not sp.cluster_ip:
        return
    match = f"-m {p.proto} -p {p.proto} -d {sp.cluster_ip} --dport {sp.port}"
    key = ip_key(sp.cluster_ip)
    if p.has_internal:
        comment = f'-m comment --comment "{sp.spn} cluster IP"'
        out.share("nat", "KUBE-SERVICES", key, f"{comment} {match} -j {p.internal_chain}")
        if out.node.masquerade_all:  # every ClusterIP connection is masqueraded
            out.nat_chain(p.internal_chain)
            out.rule(p.internal_chain, f"{comment} {match} -j {MARK_MASQ}")
        elif out.node.if_local:
            out.nat_chain(p.internal_chain)
            out.rule(p.internal_chain, f"{comment} {match} ! {out.node.if_local} -j {MARK_MASQ}")
    else:
        target, comment = p.internal_filter
        out.share("filter", "KUBE-SERVICES", key, f"-m comment --comment {comment} {match} -j {target}")
