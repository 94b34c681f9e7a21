"""Several clusters on one machine, as kind lets them live side by side.

Every cluster has its own name, state directory, bridge, namespaces and
kubeconfig context; what they could share is the API port and the underlay
(and the LoadBalancer range, which lies on the underlay). A new cluster
(`nsplane --cluster NAME up` without a cluster.json yet) is placed here:
the first API port from 6443 and the first /24 from 172.28.0.0/24 that no
other cluster of the state directory uses and nothing on the machine holds,
or the ones given with --api-port / --underlay, checked the same way. An
existing cluster keeps what it was created with. `nsplane clusters` lists
them all with their state.

`choose_api_port`, `choose_underlay` and `rows` are pure; `place` reads the
machine (bound ports, addresses and routes) through thin helpers.
"""
from __future__ import annotations

import errno
import glob
import ipaddress
import os
import re
import socket

from agent.api.config import ClusterConfig
from agent.cli.processes import ClusterError, running_pid
from dataplane import names, netns

FIRST_API_PORT = 6443
API_PORTS = 100                       # 6443 .. 6542
UNDERLAY_SPACE = "172.28.0.0/16"      # one /24 per cluster: 172.28.0.0/24 (the default), .1.0/24, ...


# ---- pure ----------------------------------------------------------------

def choose_api_port(taken: set[int], in_use=lambda port: False) -> int:
    """The first API port from 6443 another cluster does not have and nothing holds."""
    for port in range(FIRST_API_PORT, FIRST_API_PORT + API_PORTS):
        if port not in taken and not in_use(port):
            return port
    raise ClusterError(f"no free API port in {FIRST_API_PORT}-{FIRST_API_PORT + API_PORTS - 1}; "
                       "give one with --api-port")


def choose_underlay(taken: list[ipaddress.IPv4Network], space: str = UNDERLAY_SPACE) -> str:
    """The first /24 of `space` that overlaps none of `taken`."""
    for net in ipaddress.ip_network(space).subnets(new_prefix=24):
        if not any(net.overlaps(t) for t in taken):
            return str(net)
    raise ClusterError(f"no free /24 underlay in {space}; give one with --underlay")


def parse_underlay(text: str) -> ipaddress.IPv4Network:
    """--underlay: an IPv4 network from /16 to /26 (node IPs are .11 up, LoadBalancers .200-.250 when it has them)."""
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as e:
        raise ClusterError(f"--underlay {text}: {e}; give a network such as 172.28.5.0/24") from None
    if net.version != 4 or not 16 <= net.prefixlen <= 26:
        raise ClusterError(f"--underlay {text}: must be an IPv4 network from /16 to /26, such as 172.28.5.0/24")
    return net


def rows(clusters: list[tuple[ClusterConfig, str]]) -> list[list[str]]:
    """`nsplane clusters`: NAME, API, NODES, UNDERLAY, STATE per (config, state)."""
    out = [["NAME", "API", "NODES", "UNDERLAY", "STATE"]]
    for cfg, state in sorted(clusters, key=lambda x: x[0].name):
        underlay = f"host ({cfg.host_iface or 'this machine'})" if cfg.host_mode else cfg.underlay_cidr
        api = cfg.server_url or (cfg.loopback_api_url if not cfg.host_mode else cfg.api_url)
        out.append([cfg.name, api, str(len(cfg.node_list) if not cfg.host_mode else 1), underlay, state])
    return out


def render(table: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return "".join("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n" for r in table)


# ---- the machine ---------------------------------------------------------------

def known(state_dir: str) -> list[ClusterConfig]:
    """Every cluster with a cluster.json in `state_dir`."""
    out = []
    for path in sorted(glob.glob(os.path.join(state_dir, "*", "cluster.json"))):
        try:
            out.append(ClusterConfig.load(path))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(out, key=lambda c: c.name)


def state(cfg: ClusterConfig) -> str:
    """Running while any of its processes (server, node agents) runs."""
    roles = [os.path.basename(p)[:-4] for p in glob.glob(os.path.join(cfg.rundir, "*.pid"))]
    return "Running" if any(running_pid(cfg, r) for r in roles) else "Stopped"


def port_in_use(port: int, where: str | None) -> bool:
    """Something listens on 127.0.0.1:port in `where` (None: this namespace)."""
    if where is not None and not netns.exists(where):
        return False
    sock = netns.socket_in(where) if where else socket.socket()
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as e:
        return e.errno == errno.EADDRINUSE
    finally:
        sock.close()
    return False


def networks_in_use(where: str | None) -> list[ipaddress.IPv4Network]:
    """IPv4 networks of the addresses and routes in `where` (None: this namespace), default route aside."""
    if where is not None and not netns.exists(where):
        return []
    out = []
    with netns.ipr(where) as sock:
        for msg in sock.get_addr(family=socket.AF_INET):
            out.append(ipaddress.ip_network(f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}", strict=False))
        for msg in sock.get_routes(family=socket.AF_INET, table=254):
            dst = msg.get_attr("RTA_DST")
            if dst and msg["dst_len"] and not dst.startswith("127."):
                out.append(ipaddress.ip_network(f"{dst}/{msg['dst_len']}", strict=False))
    return [n for n in out if not n.is_loopback]


def place(cfg: ClusterConfig, api_port: int | None = None, underlay: str | None = None,
          host_netns: str | None = None) -> list[str]:
    """Give a new cluster its API port, underlay (and so LB range) and host
    namespace; check the flags of an existing one. Returns what was chosen,
    to say."""
    fresh = not os.path.exists(cfg.path)
    if fresh and re.search(r"-(node-\d+|host)$", cfg.name):
        raise ClusterError(f'cluster name "{cfg.name}" ends like the namespace of a node or of a cluster\'s '
                           f'outside world ("-node-N", "-host"); choose another name')
    if not fresh:
        for flag, given, have in (("--api-port", api_port, cfg.api_port), ("--underlay", underlay, cfg.underlay_cidr),
                                  ("--host-netns", host_netns, cfg.host_netns)):
            if given is not None and str(given) != str(have):
                raise ClusterError(f"cluster {cfg.name} was created with {flag} {have}; `nsplane --cluster "
                                   f"{cfg.name} down --purge` it first to change it")
        return []
    if host_netns is not None:
        if not host_netns.startswith(names.PREFIX):
            raise ClusterError(f"--host-netns {host_netns}: the name must start with {names.PREFIX!r}")
        cfg.host_netns = host_netns
    others = [o for o in known(cfg.state_dir) if o.name != cfg.name and not o.host_mode]
    said = []
    if api_port is not None:
        if not 1 <= api_port <= 65535:
            raise ClusterError(f"--api-port {api_port}: must be between 1 and 65535")
        owner = next((o.name for o in others if o.api_port == api_port), None)
        if owner:
            raise ClusterError(f"--api-port {api_port} is the API port of cluster {owner}; choose another, "
                               "or leave --api-port out to have a free one picked")
        if port_in_use(api_port, cfg.host_netns):
            raise ClusterError(f"--api-port {api_port}: 127.0.0.1:{api_port} is already in use; choose another")
        cfg.api_port = api_port
    else:
        cfg.api_port = choose_api_port({o.api_port for o in others}, lambda p: port_in_use(p, cfg.host_netns))
        said.append(f"API port {cfg.api_port}")
    ours = [(o.name, ipaddress.ip_network(o.underlay_cidr)) for o in others]
    if underlay is not None:
        net = parse_underlay(underlay)
        owner = next((n for n, o in ours if o.overlaps(net)), None)
        if owner:
            raise ClusterError(f"--underlay {underlay} overlaps the underlay of cluster {owner}; choose another, "
                               "or leave --underlay out to have a free one picked")
        busy = next((n for n in networks_in_use(cfg.host_netns) if n.overlaps(net)), None)
        if busy:
            raise ClusterError(f"--underlay {underlay} overlaps {busy}, which is in use on this machine; "
                               "choose another")
        cfg.underlay_cidr = str(net)
    else:
        cfg.underlay_cidr = choose_underlay([o for _, o in ours] + networks_in_use(cfg.host_netns))
        said.append(f"underlay {cfg.underlay_cidr}")
    if not cfg.lb_pool:
        said.append(f"LoadBalancer range {cfg.load_balancer_pool}")
    return said
