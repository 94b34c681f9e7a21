"""`nsplane down`'s sweep: remove every kernel object a cluster left behind.

Like mininet's `mn -c`, but exact: it removes only what `names` produces for
the given cluster, never anything else.

- links in the host namespace: the cluster's bridge (`names.bridge_name`),
  every link whose alias is "<cluster>" (pass `alias=cluster` to
  `ensure_bridge`) or starts with "<cluster>-" (setup_node stamps each node's
  uplink with its node namespace name);
- node network namespaces named exactly "<cluster>-node-<n>", and pod network
  namespaces that have a UTS file in the cluster's `uts_dir` (the kubelet
  creates it before the pod's netns), veth ends inside them going with them;
- those UTS files (umount, unlink);
- /etc/netns/<name> directories of the namespaces above (pod resolv.conf and
  hosts).

A bare prefix match is not enough: cluster "nsplane" must not sweep the
namespaces of a cluster called "nsplane-t1234" running beside it.

Processes are not ours to kill here: the caller stops the agents and pods
first, otherwise a namespace lives on (invisible) until its last process exits.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field

from . import names, netns, uts
from .node import delete_bridge


@dataclass
class Swept:
    """What `sweep` removed, per kind of object."""

    links: list[str] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)
    uts_files: list[str] = field(default_factory=list)
    etc_dirs: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One human-readable line per removed object, for `nsplane down`."""
        return ([f"link {n}" for n in self.links]
                + [f"netns {n}" for n in self.netns]
                + [f"uts {p}" for p in self.uts_files]
                + [f"dir {p}" for p in self.etc_dirs])

    def __bool__(self) -> bool:
        return bool(self.lines())


def sweep(cluster: str, uts_dir: str | None = None, host_netns: str | None = None,
          etc_dir: str = netns.ETC_NETNS_DIR) -> Swept:
    """Remove everything of `cluster`; idempotent. Returns what was removed."""
    prefix = names.netns_prefix(cluster)
    swept = Swept()
    swept.links = _sweep_links(cluster, prefix, host_netns)
    pods = _uts_names(uts_dir)
    ours = owned_netns(cluster, uts_dir)
    swept.uts_files = sorted(p for p in (uts.uts_path(uts_dir, n) for n in sorted(pods)) if uts.remove(p))
    for name in sorted(ours):
        if netns.delete(name):
            swept.netns.append(name)
    swept.etc_dirs = _sweep_etc(ours | pods, etc_dir)
    return swept


def _uts_names(uts_dir: str | None) -> set[str]:
    return set(os.listdir(uts_dir)) if uts_dir and os.path.isdir(uts_dir) else set()


def owned_netns(cluster: str, uts_dir: str | None) -> set[str]:
    """The existing network namespaces of `cluster`: its nodes by exact name,
    its pods by their UTS file in `uts_dir`."""
    pods = _uts_names(uts_dir)
    return {n for n in netns.list_names(names.netns_prefix(cluster))
            if n in pods or names.is_node_netns(cluster, n)}


def netns_pids(name: str) -> list[int]:
    """PIDs of the processes running in named namespace `name` (`ip netns pids`)."""
    out = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, timeout=10).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def _sweep_links(cluster: str, prefix: str, host_netns: str | None) -> list[str]:
    if host_netns is not None and not netns.exists(host_netns):
        return []
    with netns.ipr(host_netns) as sock:
        ours = [m.get_attr("IFLA_IFNAME") for m in sock.get_links()
                if _owned_alias(m.get_attr("IFLA_IFALIAS") or "", cluster, prefix)]
    removed = [n for n in ours if netns.delete_link(host_netns, n)]
    bridge = names.bridge_name(cluster)
    if delete_bridge(bridge, host_netns):
        removed.append(bridge)
    return removed


def _owned_alias(alias: str, cluster: str, prefix: str) -> bool:
    """Bridges carry the cluster name as alias, node uplinks their netns name."""
    return alias == cluster or names.is_node_netns(cluster, alias)


def _sweep_etc(ours: set[str], etc_dir: str) -> list[str]:
    removed = []
    for name in sorted(ours):
        full = os.path.join(etc_dir, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
            removed.append(full)
    return removed
