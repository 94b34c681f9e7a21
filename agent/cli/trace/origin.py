"""The edge of `nsplane trace --from outside|NODE`: one real connection from
the cluster's outside world (the namespace of the underlay bridge, where a
LAN client of a LoadBalancer or NodePort stands) or from a node's own
namespace, to an IP:port. Reads every node's per-rule packet counters
before and after, finds the node that took the packet (for a load-balancer
IP: the node whose MAC the outside's ARP cache learnt, the speaker's
announcement; for a node address: that node), and reads the connection's
conntrack entry and the route to the endpoint on it. On a node in
kube-proxy's nftables mode (no counters) the connection is walked through
that node's table ip kube-proxy instead (trace/nftpath.py). Reads only.
"""
from __future__ import annotations

from agent.api.client import Client
from agent.api.config import ClusterConfig
from agent.cli.doctor.facts import node_namespace, read_nft
from agent.cli.trace import nftpath, path
from agent.cli.trace.probe import (
    NOTES,
    TraceError,
    _counters,
    _run,
    conntrack,
    endpoint_facts,
    find_service,
    keeper,
    local_addresses,
    route,
    send,
)

OUTSIDE = "outside"


def _origin(cfg: ClusterConfig, nodes: list[dict], origin: str) -> tuple[str | None, str]:
    """(network namespace, description) of where the connection starts."""
    if origin == OUTSIDE:
        return cfg.host_netns, f"outside (the underlay's host namespace {cfg.host_netns or '(this one)'})"
    if origin not in [n["metadata"]["name"] for n in nodes]:
        have = ", ".join(n["metadata"]["name"] for n in nodes) or "none"
        raise TraceError(f'--from {origin}: no such node (nodes: {have}); use --from outside or a node name')
    return node_namespace(cfg, origin), f"node {origin}"


def _arp_owner(cfg: ClusterConfig, src_ns: str | None, ip: str, nodes: list[dict]) -> tuple[str | None, str]:
    """(node that answered ARP for `ip` as the outside saw it, evidence)."""
    text = _run(src_ns, ["ip", "neigh", "show", ip]).stdout.strip()
    mac = path.neigh_mac(text)
    if not mac:
        return None, f"no ARP answer for {ip} in the outside's neighbour table ({text or 'no entry'})"
    for n in nodes:
        name = n["metadata"]["name"]
        if mac in path.macs(_run(node_namespace(cfg, name), ["ip", "-o", "link"]).stdout):
            return name, f"ARP: {ip} is at {mac}, an interface of {name} (its speaker answers for it)"
    return None, f"ARP: {ip} is at {mac}, which is no node's interface"


def trace_from(cfg: ClusterConfig, client: Client, origin: str, target: str) -> dict:
    try:
        host, port, url = path.parse_target(target)
    except ValueError as e:
        raise TraceError(str(e)) from None
    if not path.is_ip(host):
        raise TraceError(f'"{target}": from {origin} give an address (a load-balancer IP, a node IP and '
                         f'nodePort, or a cluster IP), e.g. http://172.28.0.200; cluster DNS names resolve '
                         f'only inside pods')
    nodes = client.list("nodes")["items"]
    src_ns, described = _origin(cfg, nodes, origin)
    report: dict = {"from": origin, "origin": described, "url": url, "notes": NOTES[:1]}
    found, report["service"] = find_service(client, host, port)
    spaces = {n["metadata"]["name"]: node_namespace(cfg, n["metadata"]["name"]) for n in nodes}
    tables = {name: read_nft(ns) for name, ns in spaces.items()}  # each node's mode, from what it holds
    counted = [name for name in spaces if tables[name] is None]
    before = {name: _counters(spaces[name]) for name in counted}
    report["answer"], local_ip, local_port = send(src_ns, host, port, url, host)
    after = {name: _counters(spaces[name]) for name in counted}
    reached = report["reached"] = report["answer"]["reached"]
    report["hops"] = [{"node": name, **h} for name in counted
                      for h in path.hit(before[name], after[name], keeper(after[name], found))]
    if origin != OUTSIDE:
        owner, how = origin, f"the connection starts on {origin}: nat OUTPUT -> KUBE-SERVICES there"
    elif path.node_of(host, nodes):
        owner = path.node_of(host, nodes)
        how = f"{host} is node {owner}'s address"
    else:
        owner, how = _arp_owner(cfg, src_ns, host, nodes)
    report["node"], report["nodeEvidence"] = owner, how
    entry = conntrack(spaces[owner], local_ip, local_port, path.protocol(url)) if owner else None
    report["conntrack"] = entry
    report["sourceIP"] = local_ip
    report.update(endpoint_facts(client, entry))
    report["mode"] = "nftables" if owner and tables[owner] is not None else "iptables"
    if report["mode"] == "nftables":
        walked, _, note = nftpath.hops(tables[owner], local_ip, host, port, path.protocol(url),
                                       local_addresses(spaces[owner]), report.get("endpoint"))
        report["hops"] += [{"node": owner, **h} for h in walked]
        report["notes"] = [nftpath.NOTE, *([note] if note else [])]
    if entry:
        report["masqueradeWhy"] = path.masquerade_why(report["masquerade"], (report["service"] or {}).get(
            "externalTrafficPolicy"), OUTSIDE if origin == OUTSIDE else "node")
    if owner:
        report["route"] = route(spaces[owner], report["endpoint"].rpartition(":")[0] if entry else host)
    report["verdict"] = path.verdict(report["hops"], entry, reached, "" if found else f"{host}:{port}",
                                     report["answer"]["error"], "" if found else report.get("route", ""),
                                     report["mode"])
    return report
