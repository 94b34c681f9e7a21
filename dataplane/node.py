"""A node's network: its namespace on the underlay bridge, and pod-CIDR routes.

Several nodes share one machine; each is a named network namespace joined to
an underlay bridge in the "host" namespace (the machine's root namespace by
default, a throwaway namespace in tests):

    host netns                                   node netns
    bridge nsplane0 172.28.0.1/24                eth0 172.28.0.11/24
      `- <host_if> (alias = node netns)  <== veth ==>  (ip_forward=1, lo up)

Other nodes' pod CIDRs are reached by plain routes over the underlay
(10.244.1.0/24 via 172.28.0.12), tagged with our own routing protocol number
so `set_pod_routes` replaces exactly its own set. Nothing here adds a route off
the machine: a default route only when the caller passes `gateway_ip`.
All functions are idempotent.
"""

from __future__ import annotations

import errno
import ipaddress
import logging

from pyroute2 import NetlinkError

from . import netns
from .netns import NetworkSetupError

log = logging.getLogger("nsplane.dataplane.node")

NODE_IFNAME = "eth0"
RTPROT_NSPLANE = 78  # `ip route` shows "proto 78" on routes set_pod_routes owns
_MAIN_TABLE = 254


class NodeNetworkError(NetworkSetupError):
    """A node's namespace, uplink or routes could not be set up."""


def _split_cidr(cidr: str, what: str) -> tuple[str, int]:
    try:
        iface = ipaddress.IPv4Interface(cidr)
    except ValueError as exc:
        raise NodeNetworkError(f"{what}: {cidr!r} is not an IPv4 address/prefix") from exc
    return str(iface.ip), iface.network.prefixlen


def ensure_bridge(name: str, address_cidr: str | None, host_netns: str | None = None,
                  alias: str | None = None) -> bool:
    """Create bridge `name` in the host namespace with `address_cidr`, up.

    Returns True if the bridge was created. An existing link of that name that
    is not a bridge is never touched.
    """
    what = f"underlay bridge {name} in {netns.where(host_netns)}"
    created = False
    with netns.ipr(host_netns) as sock:
        msg = netns.link_info(sock, name)
        if msg is not None and netns.link_kind(msg) != "bridge":
            raise NodeNetworkError(
                f"{what}: a {netns.link_kind(msg) or 'non-bridge'} link of that "
                f"name exists and is not ours; choose another bridge name"
            )
        if msg is None:
            try:
                sock.link("add", ifname=name, kind="bridge")
            except NetlinkError as exc:
                raise NodeNetworkError(f"{what}: cannot create it ({exc})") from exc
            created = True
        index = netns.link_index(sock, name)
        if address_cidr:
            address, prefixlen = _split_cidr(address_cidr, what)
            netns.ensure_address(sock, index, address, prefixlen, what)
        attrs = {"ifalias": alias} if alias else {}
        netns.ensure_up(sock, index, **attrs)
    return created


def delete_bridge(name: str, host_netns: str | None = None) -> bool:
    """Delete bridge `name` in the host namespace if present (bridges only)."""
    if host_netns is not None and not netns.exists(host_netns):
        return False
    with netns.ipr(host_netns) as sock:
        msg = netns.link_info(sock, name)
        if msg is None:
            return False
        if netns.link_kind(msg) != "bridge":
            raise NodeNetworkError(
                f"link {name} in {netns.where(host_netns)} is not a bridge; "
                f"not deleting it"
            )
    return netns.delete_link(host_netns, name)


def setup_node(node_netns: str, bridge: str, host_if: str, node_ip_cidr: str,
               gateway_ip: str | None = None, host_netns: str | None = None,
               mtu: int | None = None) -> None:
    """Create node namespace `node_netns` and plug its eth0 into `bridge`."""
    what = f"node {node_netns}"
    address, prefixlen = _split_cidr(node_ip_cidr, what)
    try:
        netns.create(node_netns)
        _require_bridge(bridge, host_netns, what)
        netns.ensure_veth_pair(host_netns, host_if, node_netns, NODE_IFNAME,
                               what, mtu=mtu)
        _setup_host_side(host_netns, bridge, host_if, node_netns)
        _setup_node_side(node_netns, address, prefixlen, gateway_ip, what)
        _enable_forwarding(node_netns)
    except NodeNetworkError:
        raise
    except NetworkSetupError as exc:
        raise NodeNetworkError(str(exc)) from exc
    except NetlinkError as exc:
        raise NodeNetworkError(f"{what}: netlink error {exc}") from exc


def _require_bridge(bridge: str, host_netns: str | None, what: str) -> None:
    with netns.ipr(host_netns) as sock:
        msg = netns.link_info(sock, bridge)
    if msg is None or netns.link_kind(msg) != "bridge":
        raise NodeNetworkError(
            f"{what}: bridge {bridge} does not exist in "
            f"{netns.where(host_netns)}; call ensure_bridge first"
        )


def _setup_host_side(host_netns: str | None, bridge: str, host_if: str,
                     node_netns: str) -> None:
    """Enslave the host end to the bridge; its alias names the node (cleanup)."""
    with netns.ipr(host_netns) as sock:
        index = netns.link_index(sock, host_if)
        master = netns.link_index(sock, bridge)
        sock.link("set", index=index, master=master)
        netns.ensure_up(sock, index, ifalias=node_netns)


def _setup_node_side(node_netns: str, address: str, prefixlen: int,
                     gateway_ip: str | None, what: str) -> None:
    with netns.ipr(node_netns) as sock:
        netns.ensure_up(sock, netns.link_index(sock, "lo"))
        index = netns.link_index(sock, NODE_IFNAME)
        for other, plen in netns.ipv4_addresses(sock, index):
            if (other, plen) != (address, prefixlen):
                sock.addr("del", index=index, address=other, prefixlen=plen)
        netns.ensure_address(sock, index, address, prefixlen, what)
        netns.ensure_up(sock, index)
        if gateway_ip:
            _replace_route(sock, what, dst="0.0.0.0", dst_len=0, gateway=gateway_ip)


def _enable_forwarding(node_netns: str | None, uplink: str = NODE_IFNAME) -> None:
    """ip_forward=1 inside the node; route_localnet=1 so NodePorts answer on
    127.0.0.1 as kube-proxy's iptables mode arranges (its KUBE-FIREWALL rule
    drops martian localnet traffic from outside); relax strict rp_filter to loose.
    None: the caller's own namespace, with `uplink` its interface to the
    other nodes (host mode, agent/cli/hostmode.py)."""
    for key in ("net.ipv4.ip_forward", "net.ipv4.conf.all.route_localnet"):
        if netns.sysctl_get(node_netns, key) != "1":
            netns.sysctl_set(node_netns, key, "1")
    for scope in ("all", "default", uplink):
        key = f"net.ipv4.conf.{scope}.rp_filter"
        if netns.sysctl_get(node_netns, key) == "1":
            netns.sysctl_set(node_netns, key, "2")


enable_forwarding = _enable_forwarding


def _replace_route(sock, what: str, **route) -> None:
    try:
        sock.route("replace", family=2, table=_MAIN_TABLE, **route)
    except NetlinkError as exc:
        hint = " (is the next hop on the underlay?)" if exc.code == errno.ENETUNREACH else ""
        raise NodeNetworkError(
            f"{what}: cannot set route {route.get('dst')}/{route.get('dst_len')} "
            f"via {route.get('gateway')} ({exc}){hint}"
        ) from exc


def pod_routes(node_netns: str | None) -> dict[str, str]:
    """The pod-CIDR routes `set_pod_routes` owns in `node_netns`: {cidr: via}."""
    with netns.ipr(node_netns) as sock:
        return _owned_routes(sock)


def _owned_routes(sock) -> dict[str, str]:
    found = {}
    for msg in sock.get_routes(family=2, table=_MAIN_TABLE):
        if msg["proto"] == RTPROT_NSPLANE:
            cidr = f"{msg.get_attr('RTA_DST') or '0.0.0.0'}/{msg['dst_len']}"
            found[cidr] = msg.get_attr("RTA_GATEWAY")
    return found


def set_pod_routes(node_netns: str | None, routes: dict[str, str]) -> tuple[list[str], list[str]]:
    """Make the routes to other nodes' pod CIDRs exactly `routes` ({cidr: via}).

    `node_netns` None means the caller's own namespace (the node agent).
    Returns (added_or_changed, removed) CIDRs, for the caller's log.
    """
    what = f"pod routes in node {netns.where(node_netns)}"
    wanted = {}
    for cidr, via in routes.items():
        try:
            net = ipaddress.IPv4Network(cidr)
            ipaddress.IPv4Address(via)
        except ValueError as exc:
            raise NodeNetworkError(f"{what}: bad route {cidr} via {via}: {exc}") from exc
        wanted[str(net)] = via
    with netns.ipr(node_netns) as sock:
        current = _owned_routes(sock)
        removed = sorted(set(current) - set(wanted))
        for cidr in removed:
            dst, plen = cidr.split("/")
            sock.route("del", family=2, table=_MAIN_TABLE, dst=dst,
                       dst_len=int(plen), proto=RTPROT_NSPLANE)
        changed = sorted(c for c in wanted if current.get(c) != wanted[c])
        for cidr in changed:
            dst, plen = cidr.split("/")
            _replace_route(sock, what, dst=dst, dst_len=int(plen),
                           gateway=wanted[cidr], proto=RTPROT_NSPLANE)
    return changed, removed


def sync_pod_routes(node_netns: str | None, routes: dict[str, str], what: str = "pod routes") -> None:
    """`set_pod_routes` for long-running loops: logs what changed, never raises."""
    try:
        added, removed = set_pod_routes(node_netns, routes)
        if added or removed:
            log.info("%s: +%s -%s", what, added, removed)
    except Exception as e:
        log.error("%s %s: %s", what, routes, e)


def teardown_node(node_netns: str, host_if: str, host_netns: str | None = None) -> list[str]:
    """Remove a node's uplink veth and namespace; idempotent. Returns what went."""
    removed = []
    if netns.delete_link(host_netns, host_if):
        removed.append(f"link {host_if}")
    if netns.delete(node_netns):
        removed.append(f"netns {node_netns}")
    return removed


SERVICE_IFNAME = "nsplane-svc"   # its peer, nsplane-svc0, stays down


def ensure_service_route(node_netns: str | None, service_cidr: str) -> None:
    """Route the Service CIDR in the node to a dummy device.

    A real node sends Service traffic towards its default route; here the
    node has none (nothing routes off the machine). Packets to a ClusterIP
    must still be *forwarded*, so that kube-proxy's REJECT in filter FORWARD
    answers "connection refused" for a Service without endpoints; a packet no
    rule claims ends on the dummy device, which drops it.
    """
    what = f"service CIDR {service_cidr} in node {netns.where(node_netns)}"
    dst, dst_len = _split_cidr(service_cidr, what)
    with netns.ipr(node_netns) as sock:
        index = netns.link_index(sock, SERVICE_IFNAME)
        if index is None:
            sock.link("add", ifname=SERVICE_IFNAME, kind="veth", peer={"ifname": SERVICE_IFNAME + "0"})
            index = netns.link_index(sock, SERVICE_IFNAME)
        netns.ensure_up(sock, index)
        _replace_route(sock, what, dst=str(ipaddress.ip_network(service_cidr).network_address),
                       dst_len=dst_len, oif=index)


def ensure_loopback(node_netns: str | None) -> None:
    """Bring `lo` up (a fresh namespace has it down)."""
    with netns.ipr(node_netns) as sock:
        netns.ensure_up(sock, netns.link_index(sock, "lo"))


def local_ipv4_addresses(node_netns: str | None) -> list[str]:
    """Every IPv4 address on an interface of `node_netns` (None: this
    namespace), loopback included: what kube-proxy resolves nodePortAddresses
    CIDRs against."""
    with netns.ipr(node_netns) as sock:
        return [msg.get_attr("IFA_ADDRESS") for msg in sock.get_addr(family=2)]
