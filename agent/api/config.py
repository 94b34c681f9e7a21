"""Cluster configuration: the addresses, ranges and paths one cluster uses.

Written by `nsplane up` to <state_dir>/cluster.json and read by every process
of the cluster (server, node agents, CLI). Defaults follow DESIGN.md's
network model. Tests make their own cluster with another name, state dir,
bridge and underlay, so they never touch a user's cluster.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
from dataclasses import dataclass, field

from agent.api.durations import parse_duration as parse_go_duration
from dataplane import names

DEFAULT_CLUSTER = "nsplane"
def parse_duration(text: str) -> float:
    """Seconds in a Go duration ("1h", "1h0m0s", "90s", "1.5h", "0"), as
    kube's flags take them; ValueError with the accepted form otherwise."""
    try:
        seconds = parse_go_duration(text)
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise ValueError(f'invalid duration "{text.strip()}": use a number and a unit, such as 1h, 30m, 90s or 1h30m')
    return seconds


@dataclass
class ClusterConfig:
    name: str = DEFAULT_CLUSTER
    state_dir: str = "/var/lib/nsplane"
    run_dir: str = "/run/nsplane"
    service_cidr: str = "10.96.0.0/12"
    cluster_cidr: str = "10.244.0.0/16"
    node_port_range: tuple[int, int] = (30000, 32767)
    cluster_domain: str = "cluster.local"
    dns_ip: str = "10.96.0.10"
    underlay_cidr: str = "172.28.0.0/24"
    api_port: int = 6443
    kubelet_port: int = 10250
    nodes: int = 1                        # how many nodes `up` starts (node-1 .. node-N)
    node_indexes: list[int] = field(default_factory=list)   # the nodes after `nsplane node add/remove`
    host_netns: str | None = None         # where the bridge lives; None = this (root) namespace
    dns: bool = True                      # run coredns behind kube-dns
    upstream_dns: list[str] = field(default_factory=list)
    lb_pool: str = ""                     # "first-last" on the underlay; "" = .200-.250; "none" = disabled
    python: str = ""                      # interpreter for our processes (default: the running one)
    # host mode (agent/cli/hostmode.py): the node is the namespace the agent runs in (a VM's root namespace)
    host_mode: bool = False
    host_iface: str = ""                  # its InternalIP is this interface's address
    host_node: str = ""                   # this machine's node name
    advertise_address: str = ""           # the API server's address (host mode: host_iface's)
    server_url: str = ""                  # a joined machine (`nsplane join`): the API server's URL
    masquerade_egress: bool = False       # pods reach beyond the cluster through SNAT to the node's address
    insecure_registries: list[str] = field(default_factory=list)   # pulled from over plain HTTP (host[:port], CIDR)
    event_ttl: float = 3600.0             # seconds an Event is kept after it last happened (kube's --event-ttl)
    proxy_mode: str = ""                  # KubeProxyConfiguration mode of a new cluster ("" = iptables)

    def __post_init__(self):
        if not self.name.startswith(names.PREFIX):
            raise ValueError(f"cluster name {self.name!r} must start with {names.PREFIX!r}")
        self.node_port_range = tuple(self.node_port_range)

    # ---- derived ---------------------------------------------------
    @property
    def dir(self) -> str:
        return os.path.join(self.state_dir, self.name)

    @property
    def rundir(self) -> str:
        return os.path.join(self.run_dir, self.name)

    @property
    def path(self) -> str:
        return os.path.join(self.dir, "cluster.json")

    @property
    def db_path(self) -> str:
        return os.path.join(self.dir, "store.db")

    @property
    def api_socket(self) -> str:
        return os.path.join(self.rundir, "api.sock")

    @property
    def bridge(self) -> str:
        return names.bridge_name(self.name)

    @property
    def host_ip(self) -> str:
        """The host's (the "outside world's") address on the underlay: the API listens here."""
        if self.advertise_address:
            return self.advertise_address
        return str(ipaddress.ip_network(self.underlay_cidr).network_address + 1)

    @property
    def underlay_prefix(self) -> int:
        return ipaddress.ip_network(self.underlay_cidr).prefixlen

    @property
    def node_list(self) -> list[int]:
        return sorted(self.node_indexes) if self.node_indexes else list(range(1, self.nodes + 1))

    def node_name(self, index: int) -> str:
        return f"node-{index}"

    def node_ip(self, index: int) -> str:
        return str(ipaddress.ip_network(self.underlay_cidr).network_address + 10 + index)

    @property
    def load_balancer_pool(self) -> str:
        """The LoadBalancer address range ("none" when disabled), like a MetalLB IPAddressPool."""
        if self.lb_pool:
            return self.lb_pool
        net = ipaddress.ip_network(self.underlay_cidr)
        last = min(250, net.num_addresses - 2)
        first = min(200, last)
        return f"{net.network_address + first}-{net.network_address + last}"

    @property
    def api_url(self) -> str:
        """HTTPS on the underlay, verified with `ca_file` (see agent/api/pki.py)."""
        if self.server_url:
            return self.server_url
        return f"https://{self.host_ip}:{self.api_port}"

    @property
    def loopback_api_url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def pki_dir(self) -> str:
        return os.path.join(self.dir, "pki")

    @property
    def ca_file(self) -> str:
        return os.path.join(self.pki_dir, "ca.crt")

    def token_file(self, role: str) -> str:
        """The bearer token of `role` (admin, node, coredns), written by `nsplane up`."""
        return os.path.join(self.pki_dir, f"{role}.token")

    def client_auth(self, role: str) -> dict:
        """Keyword arguments for agent.api.client.Client over TCP as `role`."""
        with open(self.token_file(role)) as f:
            return {"ca_file": self.ca_file, "token": f.read().strip()}

    def node_auth(self, node: str) -> dict:
        """Client arguments of node `node`'s agent: its own token (system:node:<node>)
        when it has one, else the token joined machines share."""
        own = f"node-{node}"
        return self.client_auth(own if os.path.exists(self.token_file(own)) else "node")

    @property
    def local_api_url(self) -> str:
        return f"unix://{self.api_socket}"

    # ---- persistence ------------------------------------------------
    def save(self) -> None:
        os.makedirs(self.dir, exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(dataclasses.asdict(self), f, indent=2)
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, path: str) -> "ClusterConfig":
        with open(path) as f:
            data = json.load(f)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def find(cls, name: str | None = None, state_dir: str | None = None) -> "ClusterConfig":
        """The saved config of cluster `name` (env NSPLANE_CLUSTER, else the default)."""
        name = name or os.environ.get("NSPLANE_CLUSTER") or DEFAULT_CLUSTER
        state_dir = state_dir or os.environ.get("NSPLANE_STATE_DIR") or cls.state_dir
        path = os.path.join(state_dir, name, "cluster.json")
        if os.path.exists(path):
            return cls.load(path)
        return cls(name=name, state_dir=state_dir)
