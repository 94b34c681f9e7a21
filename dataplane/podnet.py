"""A pod's network: its namespace, eth0 and the routes that join it to the node.

Routed like the CNI ptp plugin (and Calico), not bridged. For pod 10.244.0.5
on a node whose pod CIDR gateway is 10.244.0.1:

    node netns                              pod netns
    <host_if>  10.244.0.1/32   <== veth ==>  eth0  10.244.0.5/32
    10.244.0.5/32 dev <host_if>              10.244.0.1 dev eth0 scope link
                                             default via 10.244.0.1 dev eth0

Every host-side veth carries the same gateway /32, so each pod's packets enter
the node's IP stack (and its iptables) instead of a bridge. Functions run in
the node namespace given as `node_netns` (None: the caller's own, which is how
the node agent calls them). All of them are idempotent: setting up a healthy
pod again changes nothing, a half-made one is repaired, tearing down twice is
fine.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil

from pyroute2 import NetlinkError

from . import conntrack
from . import netns as nsops
from .netns import NetworkSetupError

POD_IFNAME = "eth0"
_RT_SCOPE_LINK = 253


class PodNetworkError(NetworkSetupError):
    """A pod's network could not be set up, read or torn down."""


log = logging.getLogger(__name__)


def _label(pod_netns: str, label: str | None) -> str:
    return f"pod {label}" if label else f"pod netns {pod_netns}"


def setup_pod(netns: str, host_if: str, pod_ip: str, gateway: str,
              mtu: int = 1500, *, node_netns: str | None = None,
              label: str | None = None) -> None:
    """Give the pod whose namespace is `netns` its eth0, `pod_ip` and routes.

    `host_if` is the node-side veth name (see `names.pod_ifname`), `gateway`
    the pod CIDR's gateway address, `label` e.g. "default/web-1" for messages.
    """
    what = f"{_label(netns, label)} on node {nsops.where(node_netns)}"
    for value in (pod_ip, gateway):
        _check_ipv4(value, what)
    try:
        nsops.create(netns)
        # One socket per namespace for the whole set-up (opening one is ~0.5 ms).
        with nsops.ipr(node_netns) as node, nsops.ipr(netns) as pod:
            fresh = nsops.veth_pair_on(node, node_netns, host_if, pod, netns, POD_IFNAME, what, mtu=mtu)
            _setup_node_side(node, node_netns, host_if, netns, pod_ip, gateway, mtu, what)
            _setup_pod_side(pod, pod_ip, gateway, mtu, what, fresh)
    except NetworkSetupError as exc:
        raise PodNetworkError(str(exc)) from exc
    except NetlinkError as exc:
        raise PodNetworkError(f"{what}: netlink error {exc}") from exc


def _check_ipv4(value: str, what: str) -> None:
    try:
        ipaddress.IPv4Address(value)
    except ValueError as exc:
        raise PodNetworkError(f"{what}: {value!r} is not an IPv4 address") from exc


def _setup_node_side(sock, node_netns: str | None, host_if: str, pod_netns: str,
                     pod_ip: str, gateway: str, mtu: int, what: str) -> None:
    """Gateway /32 on the host veth, proxy ARP off, /32 route to the pod.

    The veth's alias is the pod's netns name, so `ip link` in the node says
    which pod each veth serves.
    """
    index = nsops.link_index(sock, host_if)
    nsops.ensure_up(sock, index, mtu=mtu, ifalias=pod_netns)
    nsops.ensure_address(sock, index, gateway, 32, what)
    _ensure_route(sock, what, dst=pod_ip, dst_len=32, oif=index,
                  scope=_RT_SCOPE_LINK)
    key = f"net.ipv4.conf.{host_if}.proxy_arp"
    if nsops.sysctl_get(node_netns, key) != "0":
        nsops.sysctl_set(node_netns, key, "0")


def _setup_pod_side(sock, pod_ip: str, gateway: str, mtu: int,
                    what: str, fresh: bool) -> None:
    """lo up; eth0 with pod_ip/32, a link route to the gateway, default via it
    (a `fresh` eth0, just made, has no address to drop)."""
    nsops.ensure_up(sock, nsops.link_index(sock, "lo"))
    index = nsops.link_index(sock, POD_IFNAME)
    if not fresh:
        _drop_other_addresses(sock, index, pod_ip)
    nsops.ensure_address(sock, index, pod_ip, 32, what)
    nsops.ensure_up(sock, index, mtu=mtu)
    _ensure_route(sock, what, dst=gateway, dst_len=32, oif=index,
                  scope=_RT_SCOPE_LINK)
    _ensure_route(sock, what, dst="0.0.0.0", dst_len=0, oif=index,
                  gateway=gateway)


def _drop_other_addresses(sock, index: int, pod_ip: str) -> None:
    """A re-used pod namespace keeps exactly one address: the one asked for."""
    for address, prefixlen in nsops.ipv4_addresses(sock, index):
        if (address, prefixlen) != (pod_ip, 32):
            sock.addr("del", index=index, address=address, prefixlen=prefixlen)


def _ensure_route(sock, what: str, **route) -> None:
    """Add or update one main-table IPv4 route (netlink "replace")."""
    try:
        sock.route("replace", family=2, table=254, **route)
    except NetlinkError as exc:
        raise PodNetworkError(
            f"{what}: cannot add route {route.get('dst')}/{route.get('dst_len')} "
            f"({exc})"
        ) from exc


def teardown_pod(netns: str, host_if: str, *, node_netns: str | None = None,
                 etc_dir: str = nsops.ETC_NETNS_DIR) -> list[str]:
    """Remove a pod's veth, namespace and /etc/netns/<name>; idempotent.

    Returns what was removed ("link X", "netns Y", "dir Z").
    """
    removed = []
    ip = pod_ip_of(netns)
    try:
        if nsops.delete_link(node_netns, host_if):
            removed.append(f"link {host_if}")
    except NetworkSetupError as exc:
        raise PodNetworkError(str(exc)) from exc
    if nsops.delete(netns):
        removed.append(f"netns {netns}")
    if ip:
        # The node's entries to the pod, all dead now: none may steer a reused
        # source port here (dataplane/conntrack.py: the rollout's unreachables).
        try:
            if conntrack.clear_endpoint(ip, node_netns):
                removed.append(f"conntrack entries of {ip}")
        except conntrack.ConntrackError as exc:
            log.warning("pod %s: clearing its conntrack entries failed: %s", netns, exc)
    etc = os.path.join(etc_dir, netns)
    if os.path.isdir(etc):
        shutil.rmtree(etc)
        removed.append(f"dir {etc}")
    return removed


def pod_ip_of(netns: str) -> str | None:
    """The IPv4 address on the pod's eth0, or None (no namespace / no eth0).

    The node agent uses it to adopt pods that outlived an agent restart.
    """
    try:
        with nsops.ipr(netns) as sock:
            index = nsops.link_index(sock, POD_IFNAME)
            addresses = nsops.ipv4_addresses(sock, index) if index else []
    except (NetworkSetupError, NetlinkError, OSError):
        return None
    return next((a for a, plen in addresses if plen == 32), None)


def healthy(netns: str, host_if: str, pod_ip: str, gateway: str, *,
            node_netns: str | None = None) -> bool:
    """True if the pod's network is fully in place (cheap check, no changes)."""
    if pod_ip_of(netns) != pod_ip:
        return False
    with nsops.ipr(node_netns) as node:
        index = nsops.link_index(node, host_if)
        if index is None or (gateway, 32) not in nsops.ipv4_addresses(node, index):
            return False
        routes = node.get_routes(family=2, table=254, dst=pod_ip)
        if not any(r.get_attr("RTA_OIF") == index for r in routes):
            return False
    with nsops.ipr(netns) as pod:
        defaults = [r for r in pod.get_routes(family=2, table=254)
                    if r["dst_len"] == 0]
        return any(r.get_attr("RTA_GATEWAY") == gateway for r in defaults)
