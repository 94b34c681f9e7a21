"""dataplane.nft: kube-proxy's packet-flow tests for its nftables mode.

kube-proxy's nftables proxier_test.go checks most features by tracing
packets through the rules it wrote (runPacketFlowTests): for a source,
destination and port, which endpoints can be reached (or REJECT / DROP /
nothing), and whether the packet is masqueraded. The same cases, with the
same inputs and expected outcomes, run here through `dataplane.nft.trace`
(the walker `nsplane trace` uses too) over our rendered `NftRuleset`: the
firewall check, the "no endpoints" checks before and after DNAT in the hook
order of kube-proxy's base chains, the `services` dispatch through
`service-ips` / `service-nodeports`, the per-Service chains (every numgen
branch is followed), the ClusterIP check and masquerading. Session affinity
sets start empty, so their lookups never match.
"""
from __future__ import annotations

import pytest

from dataplane.model import Endpoint, NodeInfo, ServicePort
from dataplane.nft.render import render
from dataplane.nft.trace import outcome, walk

NODE_NAME = "test-node"
NODE_IP, NODE_IP_ALT, EXTERNAL_IP = "192.168.0.2", "192.168.1.2", "192.168.99.11"
NODE_IPS = (NODE_IP, NODE_IP_ALT, EXTERNAL_IP)  # kube-proxy's testNodeIPs (IPv4)
EXTERNAL_CLIENT, EXTERNAL_CLIENT_BLOCKED = "203.0.113.2", "203.0.113.130"
NODE = NodeInfo(NODE_NAME, "10.0.0.0/8", (NODE_IP,), node_port_ips=(NODE_IP,))
SERVICE_CIDRS = ("172.30.0.0/16",)


# ---------------------------------------------------------------- the tracer


def trace(rs, src: str, dst: str, port: int, proto: str = "tcp", node_ips=NODE_IPS) -> tuple[str, bool]:
    """(outcome, masqueraded): outcome is "ip:port, ..." of the reachable
    endpoints (sorted), "REJECT", "DROP" or "" (not touched)."""
    return outcome(walk(rs, src, dst, port, proto, node_ips))


def run_flows(rs, flows) -> None:
    """Each flow: (name, source, destination, port, output, masq[, protocol])."""
    for name, src, dst, port, output, masq, *proto in flows:
        got = trace(rs, src, dst, port, *(p.lower() for p in proto))
        want = (output, masq if output not in ("", "REJECT", "DROP") else False)
        assert got == want, f"{name}: {src} -> {dst}:{port} gave {got}, kube-proxy expects {want}"


def sp(ns, name, port_name="p80", protocol="TCP", cluster_ip="172.30.0.41", port=80, **kw) -> ServicePort:
    return ServicePort(ns, name, port_name, protocol, cluster_ip, port, **kw)


def ep(ip, port=80, node=None, ready=True, serving=True, terminating=False) -> Endpoint:
    return Endpoint(ip, port, ready=ready, serving=serving, terminating=terminating, node_name=node)


def rendered(services, node=NODE):
    return render(services, node, service_cidrs=SERVICE_CIDRS)


# ---------------------------------------------------------------- kube-proxy's cases


def test_no_endpoints_reject():
    rs = rendered({sp("ns1", "svc1", node_port=3001, external_ips=(EXTERNAL_IP,), load_balancer_ips=("1.2.3.4",)): []})
    run_flows(rs, [
        ("pod to cluster IP with no endpoints", "10.0.0.2", "172.30.0.41", 80, "REJECT", False),
        ("external to external IP with no endpoints", EXTERNAL_CLIENT, EXTERNAL_IP, 80, "REJECT", False),
        ("pod to NodePort with no endpoints", "10.0.0.2", NODE_IP, 3001, "REJECT", False),
        ("external to NodePort with no endpoints", EXTERNAL_CLIENT, NODE_IP, 3001, "REJECT", False),
        ("pod to LoadBalancer IP with no endpoints", "10.0.0.2", "1.2.3.4", 80, "REJECT", False),
        ("external to LoadBalancer IP with no endpoints", EXTERNAL_CLIENT, "1.2.3.4", 80, "REJECT", False),
    ])


def test_cluster_ip_general():
    both = [("10.180.0.1", NODE_NAME), ("10.180.2.1", "node2")]
    services = {sp("ns1", "svc1", "http"): [ep("10.180.0.1", node=NODE_NAME)]}
    for name, proto, port, target in (("http", "TCP", 80, 80), ("https", "TCP", 443, 8443), ("dns-udp", "UDP", 53, 53),
                                      ("dns-tcp", "TCP", 53, 5353), ("dns-sctp", "SCTP", 53, 53)):
        services[sp("ns2", "svc2", name, proto, "172.30.0.42", port)] = [ep(ip, target, node=n) for ip, n in both]
    run_flows(rendered(services), [
        ("simple clusterIP", "10.180.0.2", "172.30.0.41", 80, "10.180.0.1:80", False),
        ("hairpin to cluster IP", "10.180.0.1", "172.30.0.41", 80, "10.180.0.1:80", True),
        ("clusterIP with multiple endpoints", "10.180.0.2", "172.30.0.42", 80, "10.180.0.1:80, 10.180.2.1:80", False),
        ("clusterIP with TargetPort", "10.180.0.2", "172.30.0.42", 443, "10.180.0.1:8443, 10.180.2.1:8443", False),
        ("same port (TCP)", "10.180.0.2", "172.30.0.42", 53, "10.180.0.1:5353, 10.180.2.1:5353", False, "TCP"),
        ("same port (UDP)", "10.180.0.2", "172.30.0.42", 53, "10.180.0.1:53, 10.180.2.1:53", False, "UDP"),
        ("same port (SCTP)", "10.180.0.2", "172.30.0.42", 53, "10.180.0.1:53, 10.180.2.1:53", False, "SCTP"),
        ("TCP-only port does not match UDP traffic", "10.180.0.2", "172.30.0.42", 80, "REJECT", False, "UDP"),
        ("svc1 does not accept svc2's ports", "10.180.0.2", "172.30.0.41", 443, "REJECT", False),
        ("packet to unallocated cluster ip", "10.180.0.2", "172.30.0.50", 80, "DROP", False),
    ])


def test_load_balancer():
    rs = rendered({sp("ns1", "svc1", node_port=3001, load_balancer_ips=("1.2.3.4", "5.6.7.8"),
                      load_balancer_source_ranges=("192.168.0.0/24", " 203.0.113.0/25")): [ep("10.180.0.1")]})
    out = "10.180.0.1:80"
    run_flows(rs, [
        ("pod to cluster IP", "10.0.0.2", "172.30.0.41", 80, out, False),
        ("external to nodePort", EXTERNAL_CLIENT, NODE_IP, 3001, out, True),
        ("nodePort bypasses LoadBalancerSourceRanges", EXTERNAL_CLIENT_BLOCKED, NODE_IP, 3001, out, True),
        ("accepted external to LB1", EXTERNAL_CLIENT, "1.2.3.4", 80, out, True),
        ("accepted external to LB2", EXTERNAL_CLIENT, "5.6.7.8", 80, out, True),
        ("blocked external to LB1", EXTERNAL_CLIENT_BLOCKED, "1.2.3.4", 80, "DROP", False),
        ("blocked external to LB2", EXTERNAL_CLIENT_BLOCKED, "5.6.7.8", 80, "DROP", False),
        ("pod to LB1 (blocked by LoadBalancerSourceRanges)", "10.0.0.2", "1.2.3.4", 80, "DROP", False),
        ("pod to LB2 (blocked by LoadBalancerSourceRanges)", "10.0.0.2", "5.6.7.8", 80, "DROP", False),
        ("node to LB1 (allowed by LoadBalancerSourceRanges)", NODE_IP, "1.2.3.4", 80, out, True),
        ("node to LB2 (allowed by LoadBalancerSourceRanges)", NODE_IP, "5.6.7.8", 80, out, True),
        ("same node to LB1, SNATted to LB1 (implicitly allowed)", "1.2.3.4", "1.2.3.4", 80, out, True),
        ("same node to LB2, SNATted to LB2 (implicitly allowed)", "5.6.7.8", "5.6.7.8", 80, out, True),
    ])


@pytest.mark.parametrize("node_port_ips, alt_allowed", [((NODE_IP,), False), ((NODE_IP, NODE_IP_ALT), True),
                                                        (None, False)])
def test_node_ports(node_port_ips, alt_allowed):
    """kube-proxy's "ipv4" and "ipv4, multiple nodeport-addresses" cases, and
    an unset nodePortAddresses, which in nftables mode means the primary IP."""
    node = NodeInfo(NODE_NAME, "10.0.0.0/8", (NODE_IP,), node_port_ips=node_port_ips)
    rs = rendered({sp("ns1", "svc1", node_port=3001): [ep("10.180.0.1"), ep("10.180.2.1", node=NODE_NAME)]}, node)
    out = "10.180.0.1:80, 10.180.2.1:80"
    run_flows(rs, [
        ("pod to cluster IP", "10.0.0.2", "172.30.0.41", 80, out, False),
        ("external to nodePort", EXTERNAL_CLIENT, NODE_IP, 3001, out, True),
        ("node to nodePort", NODE_IP, NODE_IP, 3001, out, True),
        ("nodePort on secondary IP", EXTERNAL_CLIENT, NODE_IP_ALT, 3001, out if alt_allowed else "", True),
    ])


def _policy_service(local: bool) -> dict:
    return {sp("ns1", "svc1", node_port=3001, external_ips=(EXTERNAL_IP,), load_balancer_ips=("1.2.3.4",),
               external_policy_local=local, health_check_node_port=30000 if local else 0):
            [ep("10.180.0.1"), ep("10.180.2.1", node=NODE_NAME)]}


def test_external_traffic_policy_local():
    both, local = "10.180.0.1:80, 10.180.2.1:80", "10.180.2.1:80"
    run_flows(rendered(_policy_service(True)), [
        ("pod to cluster IP hits both endpoints, unmasqueraded", "10.0.0.2", "172.30.0.41", 80, both, False),
        ("pod to external IP hits both endpoints, unmasqueraded", "10.0.0.2", EXTERNAL_IP, 80, both, False),
        ("external to external IP hits only local endpoint", EXTERNAL_CLIENT, EXTERNAL_IP, 80, local, False),
        ("pod to LB IP hits only both endpoints, unmasqueraded", "10.0.0.2", "1.2.3.4", 80, both, False),
        ("external to LB IP hits only local endpoint, unmasqueraded", EXTERNAL_CLIENT, "1.2.3.4", 80, local, False),
        ("pod to NodePort hits both endpoints, unmasqueraded", "10.0.0.2", NODE_IP, 3001, both, False),
        ("external to NodePort hits only local endpoint, unmasqueraded", EXTERNAL_CLIENT, NODE_IP, 3001, local, False),
    ])


def test_external_traffic_policy_cluster():
    both = "10.180.0.1:80, 10.180.2.1:80"
    run_flows(rendered(_policy_service(False)), [
        ("pod to cluster IP hits both endpoints, unmasqueraded", "10.0.0.2", "172.30.0.41", 80, both, False),
        ("pod to external IP hits both endpoints, masqueraded", "10.0.0.2", EXTERNAL_IP, 80, both, True),
        ("external to external IP hits both endpoints, masqueraded", EXTERNAL_CLIENT, EXTERNAL_IP, 80, both, True),
        ("pod to LB IP hits both endpoints, masqueraded", "10.0.0.2", "1.2.3.4", 80, both, True),
        ("external to LB IP hits both endpoints, masqueraded", EXTERNAL_CLIENT, "1.2.3.4", 80, both, True),
        ("pod to NodePort hits both endpoints, masqueraded", "10.0.0.2", NODE_IP, 3001, both, True),
        ("external to NodePort hits both endpoints, masqueraded", EXTERNAL_CLIENT, NODE_IP, 3001, both, True),
    ])


def _masquerade_services() -> dict:
    """TestInternalExternalMasquerade's three LoadBalancers: Cluster, eTP:Local, iTP:Local."""
    out = {}
    for i, (lb, kw) in enumerate((("1.2.3.4", {}), ("5.6.7.8", {"external_policy_local": True}),
                                  ("9.10.11.12", {"internal_policy_local": True})), start=1):
        s = sp(f"ns{i}", f"svc{i}", cluster_ip=f"172.30.0.4{i}", node_port=3000 + i, load_balancer_ips=(lb,),
               health_check_node_port=30000 + i, **kw)
        out[s] = [ep(f"10.180.0.{i}", node=NODE_NAME), ep(f"10.180.1.{i}", node="remote")]
    return out


MASQUERADE_FLOWS = [  # kube-proxy's base expectations (working local detector, no masqueradeAll)
    ("pod to ClusterIP", "10.0.0.2", "172.30.0.41", 80, "10.180.0.1:80, 10.180.1.1:80", False),
    ("pod to NodePort", "10.0.0.2", NODE_IP, 3001, "10.180.0.1:80, 10.180.1.1:80", True),
    ("pod to LB", "10.0.0.2", "1.2.3.4", 80, "10.180.0.1:80, 10.180.1.1:80", True),
    ("node to ClusterIP", NODE_IP, "172.30.0.41", 80, "10.180.0.1:80, 10.180.1.1:80", True),
    ("node to NodePort", NODE_IP, NODE_IP, 3001, "10.180.0.1:80, 10.180.1.1:80", True),
    ("node to LB", NODE_IP, "1.2.3.4", 80, "10.180.0.1:80, 10.180.1.1:80", True),
    ("external to ClusterIP", EXTERNAL_CLIENT, "172.30.0.41", 80, "10.180.0.1:80, 10.180.1.1:80", True),
    ("external to NodePort", EXTERNAL_CLIENT, NODE_IP, 3001, "10.180.0.1:80, 10.180.1.1:80", True),
    ("external to LB", EXTERNAL_CLIENT, "1.2.3.4", 80, "10.180.0.1:80, 10.180.1.1:80", True),
    ("pod to ClusterIP with eTP:Local", "10.0.0.2", "172.30.0.42", 80, "10.180.0.2:80, 10.180.1.2:80", False),
    ("pod to NodePort with eTP:Local", "10.0.0.2", NODE_IP, 3002, "10.180.0.2:80, 10.180.1.2:80", False),
    ("pod to LB with eTP:Local", "10.0.0.2", "5.6.7.8", 80, "10.180.0.2:80, 10.180.1.2:80", False),
    ("node to ClusterIP with eTP:Local", NODE_IP, "172.30.0.42", 80, "10.180.0.2:80, 10.180.1.2:80", True),
    ("node to NodePort with eTP:Local", NODE_IP, NODE_IP, 3001, "10.180.0.1:80, 10.180.1.1:80", True),
    ("node to LB with eTP:Local", NODE_IP, "5.6.7.8", 80, "10.180.0.2:80, 10.180.1.2:80", True),
    ("external to ClusterIP with eTP:Local", EXTERNAL_CLIENT, "172.30.0.42", 80, "10.180.0.2:80, 10.180.1.2:80", True),
    ("external to NodePort with eTP:Local", EXTERNAL_CLIENT, NODE_IP, 3002, "10.180.0.2:80", False),
    ("external to LB with eTP:Local", EXTERNAL_CLIENT, "5.6.7.8", 80, "10.180.0.2:80", False),
    ("pod to ClusterIP with iTP:Local", "10.0.0.2", "172.30.0.43", 80, "10.180.0.3:80", False),
    ("pod to NodePort with iTP:Local", "10.0.0.2", NODE_IP, 3003, "10.180.0.3:80, 10.180.1.3:80", True),
    ("pod to LB with iTP:Local", "10.0.0.2", "9.10.11.12", 80, "10.180.0.3:80, 10.180.1.3:80", True),
    ("node to ClusterIP with iTP:Local", NODE_IP, "172.30.0.43", 80, "10.180.0.3:80", True),
    ("node to NodePort with iTP:Local", NODE_IP, NODE_IP, 3003, "10.180.0.3:80, 10.180.1.3:80", True),
    ("node to LB with iTP:Local", NODE_IP, "9.10.11.12", 80, "10.180.0.3:80, 10.180.1.3:80", True),
    ("external to ClusterIP with iTP:Local", EXTERNAL_CLIENT, "172.30.0.43", 80, "10.180.0.3:80", True),
    ("external to NodePort with iTP:Local", EXTERNAL_CLIENT, NODE_IP, 3003, "10.180.0.3:80, 10.180.1.3:80", True),
    ("external to LB with iTP:Local", EXTERNAL_CLIENT, "9.10.11.12", 80, "10.180.0.3:80, 10.180.1.3:80", True),
]
NO_DETECTOR = {  # kube-proxy's overrides without a LocalTrafficDetector
    "node to ClusterIP": (None, False), "node to ClusterIP with eTP:Local": (None, False),
    "node to ClusterIP with iTP:Local": (None, False), "external to ClusterIP": (None, False),
    "external to ClusterIP with eTP:Local": (None, False), "external to ClusterIP with iTP:Local": (None, False),
    "pod to NodePort with eTP:Local": ("10.180.0.2:80", None), "pod to LB with eTP:Local": ("10.180.0.2:80", None),
}
MASQUERADE_ALL = {"pod to ClusterIP": (None, True), "pod to ClusterIP with eTP:Local": (None, True),
                  "pod to ClusterIP with iTP:Local": (None, True)}


@pytest.mark.parametrize("masquerade_all, detector", [(False, True), (False, False), (True, True), (True, False)])
def test_internal_external_masquerade(masquerade_all, detector):
    overrides = dict(MASQUERADE_ALL if masquerade_all else {})
    if not detector:  # with masqueradeAll, only the eTP:Local short-circuit overrides still apply
        overrides.update({k: v for k, v in NO_DETECTOR.items() if not masquerade_all or v[0] is not None})
    node = NodeInfo(NODE_NAME, "10.0.0.0/8" if detector else "", (NODE_IP,), masquerade_all=masquerade_all,
                    node_port_ips=(NODE_IP,))
    flows = []
    for name, src, dst, port, output, masq in MASQUERADE_FLOWS:
        new_output, new_masq = overrides.get(name, (None, None))
        flows.append((name, src, dst, port, output if new_output is None else new_output,
                      masq if new_masq is None else new_masq))
    run_flows(rendered(_masquerade_services(), node), flows)


def _terminating(policy_local: bool, endpoints) -> object:
    s = sp("ns1", "svc1", "", cluster_ip="172.30.1.1", load_balancer_ips=("1.2.3.4",),
           external_policy_local=policy_local, health_check_node_port=30000)
    return rendered({s: endpoints})


def test_terminating_endpoints_traffic_policy_cluster():
    """TestTerminatingEndpointsTrafficPolicyCluster: ready endpoints win; only
    serving terminating ones are used when none is ready; never non-serving."""
    cases = [
        ([ep("10.0.1.1", node=NODE_NAME), ep("10.0.1.2", node=NODE_NAME),
          ep("10.0.1.3", ready=False, terminating=True, node="another-node"),
          ep("10.0.1.4", ready=False, serving=False, terminating=True, node="another-node"),
          ep("10.0.1.5", node="another-node")], "10.0.1.1:80, 10.0.1.2:80, 10.0.1.5:80"),
        ([ep("10.0.1.2", ready=False, terminating=True, node=NODE_NAME),
          ep("10.0.1.3", ready=False, terminating=True, node=NODE_NAME),
          ep("10.0.1.4", ready=False, serving=False, terminating=True, node="another-node"),
          ep("10.0.1.5", ready=False, terminating=True, node="another-node")], "10.0.1.2:80, 10.0.1.3:80, 10.0.1.5:80"),
        ([ep("10.0.1.5", ready=False, terminating=True, node="node-1")], "10.0.1.5:80"),
        ([ep("10.0.1.5", ready=False, serving=False, terminating=True, node=NODE_NAME),
          ep("10.0.1.5", ready=False, serving=False, terminating=True, node="node-1")], "REJECT"),
    ]
    for endpoints, output in cases:
        for rs in (_terminating(False, endpoints), _terminating(False, [])):
            run_flows(rs, [("pod to clusterIP", "10.0.0.2", "172.30.1.1", 80, output, False),
                           ("external to LB", EXTERNAL_CLIENT, "1.2.3.4", 80, output, True)])
            output = "REJECT"  # after the endpoints are deleted


def test_terminating_endpoints_traffic_policy_local_without_local_endpoints():
    """The last two cases of TestTerminatingEndpointsTrafficPolicyLocal: a
    remote serving terminating endpoint serves the ClusterIP but not external
    traffic (DROP); no usable endpoint anywhere is REJECT."""
    remote = [ep("10.0.1.5", ready=False, terminating=True, node="node-1")]
    run_flows(_terminating(True, remote), [("pod to clusterIP", "10.0.0.2", "172.30.1.1", 80, "10.0.1.5:80", False),
                                           ("external to LB", EXTERNAL_CLIENT, "1.2.3.4", 80, "DROP", False)])
    unusable = [ep("10.0.1.5", ready=False, serving=False, terminating=True, node=n) for n in (NODE_NAME, "node-1")]
    run_flows(_terminating(True, unusable), [("pod to clusterIP", "10.0.0.2", "172.30.1.1", 80, "REJECT", False),
                                             ("external to LB", EXTERNAL_CLIENT, "1.2.3.4", 80, "REJECT", False)])
