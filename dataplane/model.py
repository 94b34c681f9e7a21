"""The proxier's plain data: a Service port, its endpoints, and the node.

These are the only shapes `dataplane.rules` knows. They mirror what
kube-proxy keeps after converting API objects (its ServicePort and Endpoint
interfaces in pkg/proxy), reduced to what the iptables rules need.
`agent.node.proxy.changes` converts Service / EndpointSlice JSON into them in
exactly one place; nothing here knows the API server exists.

All classes are frozen so they can be dict keys, compared for no-op detection
and shared between the informer callbacks and the sync loop without copying.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One address:port of an EndpointSlice endpoint, with its conditions.

    `ready`, `serving` and `terminating` follow discovery.k8s.io/v1 conditions
    as kube-proxy reads them (a missing ready/serving means true, a missing
    terminating means false). `node_name` decides whether the endpoint is
    local for externalTrafficPolicy/internalTrafficPolicy Local.
    """

    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str | None = None
    address: str = field(init=False, repr=False, compare=False, hash=False, default="")

    def __post_init__(self) -> None:
        # "ip:port", kube-proxy's Endpoint.String() (IPv4 only here); computed
        # once because the renderer needs it several times per endpoint.
        object.__setattr__(self, "address", f"{self.ip}:{self.port}")


@dataclass(frozen=True, slots=True)
class ServicePort:
    """One port of one Service: kube-proxy's unit of rules (a ServicePortName
    plus protocol). `cluster_ip` None means the port gets no ClusterIP rules
    (headless Services never reach the renderer)."""

    namespace: str
    name: str
    port_name: str
    protocol: str  # "TCP" | "UDP" | "SCTP"
    cluster_ip: str | None
    port: int
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    load_balancer_source_ranges: tuple[str, ...] = ()
    external_policy_local: bool = False  # externalTrafficPolicy: Local
    internal_policy_local: bool = False  # internalTrafficPolicy: Local
    health_check_node_port: int = 0
    affinity_timeout: int = 0  # 0 = sessionAffinity None, else ClientIP timeout seconds
    _spn: str = field(init=False, repr=False, compare=False, hash=False, default="")
    _hash: int = field(init=False, repr=False, compare=False, hash=False, default=0)

    def __post_init__(self) -> None:
        spn = f"{self.namespace}/{self.name}"
        if self.port_name:
            spn = f"{spn}:{self.port_name}"
        object.__setattr__(self, "_spn", spn)
        # Hashed once: a sync looks every Service port up several times.
        object.__setattr__(self, "_hash", hash((spn, self.protocol, self.cluster_ip, self.port, self.node_port)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def spn(self) -> str:
        """kube-proxy's ServicePortName.String(): "ns/name:port" or "ns/name"."""
        return self._spn

    @property
    def externally_accessible(self) -> bool:
        """kube-proxy's ExternallyAccessible(): any NodePort, LB IP or external IP."""
        return bool(self.node_port or self.load_balancer_ips or self.external_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        """Cluster-policy endpoints are needed unless the port is internal-Local
        only (external Local still needs them for short-circuiting)."""
        return not self.internal_policy_local or self.externally_accessible

    @property
    def uses_local_endpoints(self) -> bool:
        return self.internal_policy_local or (self.external_policy_local and self.externally_accessible)


@dataclass(frozen=True)
class NodeInfo:
    """The node the rules are rendered for.

    `cluster_cidr` is the pod CIDR of the whole cluster (kube-proxy's
    --cluster-cidr, LocalTrafficDetector by CIDR); `node_ips` are this node's
    addresses (used to let the node itself through a loadBalancerSourceRanges
    firewall, as kube-proxy does with its node IP). `masquerade_bit` and
    `masquerade_all` are KubeProxyConfiguration's iptables.masqueradeBit and
    iptables.masqueradeAll; `localhost_node_ports` and `node_port_ips` decide
    which local addresses NodePorts answer on (iptables.localhostNodePorts;
    nodePortAddresses, resolved by the node agent to this node's addresses
    within those CIDRs, or its primary IP for "primary"); `detect_local` is
    detectLocalMode's match ("-s <node pod CIDR>", "-i <bridge>",
    "-i <prefix>+").
    """

    name: str
    cluster_cidr: str
    node_ips: tuple[str, ...] = ()
    masquerade_bit: int = 14
    masquerade_all: bool = False  # KubeProxyConfiguration iptables.masqueradeAll
    localhost_node_ports: bool = True  # iptables.localhostNodePorts
    node_port_ips: tuple[str, ...] | None = None  # nodePortAddresses resolved to local IPs; None: all
    detect_local: str | None = None  # the local detector's match; None: "-s <cluster_cidr>"

    @property
    def if_local(self) -> str:
        """kube-proxy's LocalTrafficDetector IfLocal() match ("" when there is
        none): by cluster CIDR unless detectLocalMode chose another."""
        if self.detect_local is None:
            return f"-s {self.cluster_cidr}" if self.cluster_cidr else ""
        return self.detect_local

    @property
    def masquerade_mark(self) -> str:
        """The mark as kube-proxy formats it (Go's "%#08x": 1<<14 -> 0x00004000)."""
        return f"0x{1 << self.masquerade_bit:08x}"
