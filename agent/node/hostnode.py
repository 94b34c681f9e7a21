"""Host mode, the node's side: this network namespace is the node (a VM's
root namespace). The node's InternalIP is an existing interface's address;
the agent prepares the namespace as `dataplane.node.setup_node` prepares a
namespace node (forwarding, the Service route) and keeps pod egress
masquerade as configured. The CLI's side (`up --host-mode`, `join`, systemd
units) is agent/cli/hostmode.py."""
from __future__ import annotations

import socket

from agent.api.config import ClusterConfig
from dataplane import iptables, netns
from dataplane import node as nodenet

EGRESS_CHAIN = "NSPLANE-EGRESS"
EGRESS_JUMP = f'-m comment --comment "nsplane pod egress masquerade" -j {EGRESS_CHAIN}'
_IFA_F_SECONDARY = 0x01


class HostModeError(Exception):
    pass


def egress_restore(cluster_cidr: str, enabled: bool, nat: iptables.TableState) -> str:
    """iptables-restore input making pod egress masquerade exactly `enabled`
    (as the CNI ptp plugin's ipMasq: pod-to-pod and multicast untouched)."""
    jumps = nat.count("POSTROUTING", EGRESS_JUMP)
    if not enabled and not jumps and EGRESS_CHAIN not in nat.chains:
        return ""
    lines = ["*nat", f":{EGRESS_CHAIN} - [0:0]"]          # declared = flushed with --noflush
    if enabled:
        c = f"-A {EGRESS_CHAIN} -s {cluster_cidr}"
        lines += [f'{c} -d {cluster_cidr} -m comment --comment "pod to pod: no SNAT" -j RETURN',
                  f"{c} -d 224.0.0.0/4 -j RETURN",
                  f'{c} -m comment --comment "pods to the outside: SNAT to the node" -j MASQUERADE']
        lines += [f"-A POSTROUTING {EGRESS_JUMP}"] if jumps == 0 else [f"-D POSTROUTING {EGRESS_JUMP}"] * (jumps - 1)
    else:
        lines += [f"-D POSTROUTING {EGRESS_JUMP}"] * jumps + [f"-X {EGRESS_CHAIN}"]
    return "\n".join(lines + ["COMMIT"]) + "\n"


def interface_address(iface: str) -> tuple[str, int]:
    """(primary IPv4 address, prefix length) of `iface` in this namespace."""
    with netns.ipr(None) as sock:
        index = netns.link_index(sock, iface)
        if index is None:
            raise HostModeError(f"interface {iface} does not exist in {netns.where(None)}; "
                                "`ip -br addr` lists the interfaces; pass --iface NAME")
        primary = [(m.get_attr("IFA_ADDRESS"), m["prefixlen"]) for m in sock.get_addr(index=index, family=2)
                   if not m["flags"] & _IFA_F_SECONDARY]
    if not primary:
        raise HostModeError(f"interface {iface} has no IPv4 address; give it one (the VM's private network) "
                            "or pass another --iface")
    return primary[0]


def node_identity(cfg: ClusterConfig) -> tuple[str, str]:
    """(node name, InternalIP) of this machine in host mode."""
    address, _ = interface_address(cfg.host_iface)
    return cfg.host_node or socket.gethostname(), address


def prepare_node(cfg: ClusterConfig) -> None:
    """What setup_node does for a namespace node, done to this namespace: forwarding
    sysctls, the Service CIDR route, and pod egress masquerade as configured."""
    nodenet.enable_forwarding(None, cfg.host_iface)
    nodenet.ensure_service_route(None, cfg.service_cidr)
    set_egress_masquerade(cfg.cluster_cidr, cfg.masquerade_egress)


def set_egress_masquerade(cluster_cidr: str, enabled: bool) -> None:
    text = egress_restore(cluster_cidr, enabled, iptables.read_tables(("nat",))["nat"])
    if text:
        iptables.restore(text)
