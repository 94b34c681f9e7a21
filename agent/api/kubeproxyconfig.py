"""kube-proxy's KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) as
kubeadm stores it: ConfigMap kube-system/kube-proxy, key `config.conf`.

`default_config_text(cluster_cidr, mode)` is what `nsplane up` writes: the fields
kubeadm writes, holding nsplane's behaviour as values (no
`clientConnection.kubeconfig`: node agents have their own credentials).
`parse(text)` reads a config.conf into a `ProxyConfig` (defaults as kube-proxy
applies them) and returns kube-proxy's own validation errors
(pkg/proxy/apis/config/validation), worded and pathed as kube-proxy prints
them, e.g.

    KubeProxyConfiguration.KubeProxyIPTablesConfiguration.MasqueradeBit: Invalid value: 32: must be within the range [0, 31]

The API server refuses a ConfigMap whose config.conf has errors, and the node
agents apply only a valid one. Pure.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

import yaml

from agent.api.durations import go_duration, parse_duration  # noqa: F401 - go_duration re-exported

NAMESPACE, NAME, KEY = "kube-system", "kube-proxy", "config.conf"
API_VERSION, KIND = "kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration"
ROOT = "KubeProxyConfiguration"
IPT = f"{ROOT}.KubeProxyIPTablesConfiguration"
NFT = f"{ROOT}.KubeProxyNFTablesConfiguration"
MODES = ("iptables", "nftables")
CT = f"{ROOT}.KubeProxyConntrackConfiguration"
LOCAL_MODES = ("ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix", "")


@dataclass(frozen=True)
class ProxyConfig:
    """The options nsplane's proxier honours, after kube-proxy's defaulting."""

    mode: str = "iptables"
    cluster_cidr: str = ""
    detect_local_mode: str = "ClusterCIDR"
    bridge_interface: str = ""
    interface_name_prefix: str = ""
    masquerade_all: bool = False
    masquerade_bit: int = 14
    localhost_node_ports: bool = True
    min_sync_period: float = 1.0
    sync_period: float = 30.0
    node_port_addresses: tuple[str, ...] = ()
    metrics_bind_address: str = "127.0.0.1:10249"
    healthz_bind_address: str = "0.0.0.0:10256"
    conntrack: dict = field(default_factory=dict, compare=False, hash=False)


def default_config_text(cluster_cidr: str, mode: str = "") -> str:
    """config.conf as kubeadm writes it (v1alpha1, kubeadm's field set and
    defaults), with `clusterCIDR` the cluster's pod CIDR and `mode` (`nsplane
    up --proxy-mode`; "" is kube-proxy's default, iptables)."""
    return f"""apiVersion: {API_VERSION}
bindAddress: 0.0.0.0
bindAddressHardFail: false
clientConnection:
  acceptContentTypes: ""
  burst: 0
  contentType: ""
  qps: 0
clusterCIDR: {cluster_cidr}
configSyncPeriod: 0s
conntrack:
  maxPerCore: null
  min: null
  tcpBeLiberal: false
  tcpCloseWaitTimeout: null
  tcpEstablishedTimeout: null
  udpStreamTimeout: 0s
  udpTimeout: 0s
detectLocal:
  bridgeInterface: ""
  interfaceNamePrefix: ""
detectLocalMode: ""
enableProfiling: false
healthzBindAddress: ""
hostnameOverride: ""
iptables:
  localhostNodePorts: null
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 50ms
  syncPeriod: 30s
kind: {KIND}
metricsBindAddress: ""
mode: {mode or '""'}
nodePortAddresses: null
oomScoreAdj: null
portRange: ""
showHiddenMetricsForVersion: ""
winkernel:
  enableDSR: false
  forwardHealthCheckVip: false
  networkName: ""
  rootHnsEndpointName: ""
  sourceVip: ""
"""


# v1alpha1's fields, for kube-proxy's strict decoding (an unknown field is an error)
FIELDS = {
    "": {"apiVersion", "kind", "featureGates", "clientConnection", "logging", "hostnameOverride", "bindAddress",
         "healthzBindAddress", "metricsBindAddress", "bindAddressHardFail", "enableProfiling",
         "showHiddenMetricsForVersion", "mode", "iptables", "ipvs", "nftables", "winkernel", "detectLocalMode",
         "detectLocal", "clusterCIDR", "nodePortAddresses", "oomScoreAdj", "conntrack", "configSyncPeriod",
         "portRange", "windowsRunAsService"},
    "iptables": {"masqueradeAll", "masqueradeBit", "localhostNodePorts", "syncPeriod", "minSyncPeriod"},
    "ipvs": {"syncPeriod", "minSyncPeriod", "scheduler", "excludeCIDRs", "strictARP", "tcpTimeout", "tcpFinTimeout",
             "udpTimeout"},
    "nftables": {"masqueradeAll", "masqueradeBit", "syncPeriod", "minSyncPeriod"},
    "conntrack": {"maxPerCore", "min", "tcpEstablishedTimeout", "tcpCloseWaitTimeout", "tcpBeLiberal", "udpTimeout",
                  "udpStreamTimeout"},
    "detectLocal": {"bridgeInterface", "interfaceNamePrefix"},
    "clientConnection": {"kubeconfig", "acceptContentTypes", "contentType", "qps", "burst"},
    "winkernel": {"networkName", "sourceVip", "enableDSR", "rootHnsEndpointName", "forwardHealthCheckVip"},
}


def unknown_fields(doc: dict) -> list[str]:
    """Field paths of `doc` that v1alpha1 does not have ("iptables.masqueradAll")."""
    out = [key for key in doc if key not in FIELDS[""]]
    for section, known in FIELDS.items():
        if section and isinstance(doc.get(section), dict):
            out += [f"{section}.{key}" for key in doc[section] if key not in known]
    return out


def parse(text: str) -> tuple[ProxyConfig | None, list[str]]:
    """(config, []) for a valid config.conf, (None, errors) otherwise."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        return None, [f"failed to decode {KEY}: {e}"]
    if not isinstance(doc, dict):
        return None, [f"failed to decode {KEY}: not a {KIND} object"]
    unknown = unknown_fields(doc)
    if unknown:
        return None, ["failed to decode: strict decoding error: "
                      + ", ".join(f'unknown field "{path}"' for path in unknown)]
    errs: list[str] = []
    if doc.get("kind") not in (None, KIND) or doc.get("apiVersion") not in (None, API_VERSION):
        errs.append(f'no kind "{doc.get("kind")}" is registered for version "{doc.get("apiVersion")}" '
                    f'(want kind {KIND}, apiVersion {API_VERSION})')
    mode = doc.get("mode") or "iptables"
    # masquerading and the sync periods come from the section of the mode in use
    ipt = _section(doc, "nftables" if mode == "nftables" else "iptables")
    ipt_path = NFT if mode == "nftables" else IPT  # where its errors point
    ct = _section(doc, "conntrack")

    def duration(section: dict, key: str, path: str, default: float) -> float:
        value = section.get(key)
        if value in (None, "", "0s", "0", 0) and default:
            return default
        try:
            return parse_duration(str(value)) if value is not None else default
        except ValueError as e:
            errs.append(f"{path}: Invalid value: {value!r}: {e}")
            return default

    masq_bit = ipt.get("masqueradeBit")
    masq_bit = 14 if masq_bit is None else masq_bit
    if not isinstance(masq_bit, int) or isinstance(masq_bit, bool) or not 0 <= masq_bit <= 31:
        errs.append(f"{ipt_path}.MasqueradeBit: Invalid value: {masq_bit}: must be within the range [0, 31]")
        masq_bit = 14
    sync = duration(ipt, "syncPeriod", f"{ipt_path}.SyncPeriod", 30.0)
    min_sync = duration(ipt, "minSyncPeriod", f"{ipt_path}.MinSyncPeriod", 1.0)
    if sync <= 0:
        errs.append(f'{ipt_path}.SyncPeriod: Invalid value: "{go_duration(sync)}": must be greater than 0')
    if min_sync < 0:
        errs.append(f'{ipt_path}.MinSyncPeriod: Invalid value: "{go_duration(min_sync)}": must be greater than or equal to 0')
    if min_sync > sync:
        errs.append(f'{ipt_path}.SyncPeriod: Invalid value: "{go_duration(min_sync)}": '
                    f"must be greater than or equal to {ipt_path}.MinSyncPeriod")
    for key, name in (("tcpEstablishedTimeout", "TCPEstablishedTimeout"), ("tcpCloseWaitTimeout", "TCPCloseWaitTimeout"),
                      ("udpTimeout", "UDPTimeout"), ("udpStreamTimeout", "UDPStreamTimeout")):
        if ct.get(key) is not None and duration(ct, key, f"{CT}.{name}", 0.0) < 0:
            errs.append(f'{CT}.{name}: Invalid value: "{ct[key]}": must be greater than or equal to 0')
    for key, name in (("maxPerCore", "MaxPerCore"), ("min", "Min")):
        if ct.get(key) is not None and (not isinstance(ct[key], int) or ct[key] < 0):
            errs.append(f"{CT}.{name}: Invalid value: {ct[key]}: must be greater than or equal to 0")

    if mode not in ("iptables", "ipvs", "nftables"):
        errs.append(f'{ROOT}.Mode: Unsupported value: "{mode}": supported values: "iptables", "ipvs", "nftables"')
    elif mode not in MODES:
        errs.append(f'{ROOT}.Mode: Unsupported value: "{mode}": nsplane implements "iptables" and "nftables" '
                    '(ipvs is not planned)')

    cluster_cidr = str(doc.get("clusterCIDR") or "")
    if cluster_cidr:
        cidrs = cluster_cidr.split(",")
        if len(cidrs) > 2:
            errs.append(f'{ROOT}.ClusterCIDR: Invalid value: "{cluster_cidr}": only one CIDR allowed or a valid '
                        "DualStack CIDR (e.g. 10.100.0.0/16,fde4:8dba:82e1::/48)")
        elif not all(_is_cidr(c) for c in cidrs):
            errs.append(f'{ROOT}.ClusterCIDR: Invalid value: "{cluster_cidr}": must be a valid CIDR block '
                        "(e.g. 10.100.0.0/16 or fde4:8dba:82e1::/48)")

    detect = doc.get("detectLocalMode") or ""
    detect_section = _section(doc, "detectLocal")
    bridge = str(detect_section.get("bridgeInterface") or "")
    prefix = str(detect_section.get("interfaceNamePrefix") or "")
    if detect not in LOCAL_MODES:
        errs.append(f'{ROOT}.DetectLocalMode: Unsupported value: "{detect}": supported values: '
                    + ", ".join(f'"{m}"' for m in LOCAL_MODES))
    elif detect == "BridgeInterface" and not bridge:
        errs.append(f'{ROOT}.InterfaceName: Invalid value: "": must not be empty')
    elif detect == "InterfaceNamePrefix" and not prefix:
        errs.append(f'{ROOT}.InterfacePrefix: Invalid value: "": must not be empty')

    addresses = doc.get("nodePortAddresses") or []
    if not isinstance(addresses, list):
        errs.append(f"{ROOT}.NodePortAddresses: Invalid value: {addresses!r}: must be a list")
        addresses = []
    for i, a in enumerate(addresses):
        if a == "primary":
            if i != 0 or len(addresses) != 1:
                errs.append(f"{ROOT}.NodePortAddresses[{i}]: Invalid value: \"primary\": can't use both 'primary' and CIDRs")
            break
        if not _is_cidr(str(a)):
            errs.append(f'{ROOT}.NodePortAddresses[{i}]: Invalid value: "{a}": must be a valid CIDR')

    metrics = doc.get("metricsBindAddress") or "127.0.0.1:10249"
    healthz = doc.get("healthzBindAddress") or "0.0.0.0:10256"
    errs += _host_port(metrics, f"{ROOT}.MetricsBindAddress")
    errs += _host_port(healthz, f"{ROOT}.HealthzBindAddress")

    for key, name in (("maxPerCore", "MaxPerCore"), ("min", "Min")):
        if isinstance(ct.get(key), int) and ct[key] > 0:
            errs.append(f"{CT}.{name}: Unsupported value: {ct[key]}: nf_conntrack_max is not per network "
                        "namespace; nsplane leaves it to the host (use 0 or null)")
    localhost = ipt.get("localhostNodePorts") if mode == "iptables" else False  # nftables: never 127.0.0.1
    if errs:
        return None, errs
    return ProxyConfig(mode=mode, cluster_cidr=cluster_cidr, detect_local_mode=detect or "ClusterCIDR",
                       bridge_interface=bridge, interface_name_prefix=prefix,
                       masquerade_all=bool(ipt.get("masqueradeAll")), masquerade_bit=masq_bit,
                       localhost_node_ports=localhost is not False, min_sync_period=min_sync, sync_period=sync,
                       node_port_addresses=tuple(addresses), metrics_bind_address=metrics,
                       healthz_bind_address=healthz, conntrack=dict(ct)), []


def with_mode(text: str, mode: str) -> str:
    """config.conf `text` with its top-level `mode:` set to `mode` (added when absent), the rest untouched."""
    value = mode or '""'
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^mode:", line):
            lines[i] = f"mode: {value}"
            break
    else:
        lines.append(f"mode: {value}")
    return "\n".join(lines) + "\n"


def local_detector(config: ProxyConfig, node_pod_cidr: str) -> str | None:
    """The IfLocal() match of kube-proxy's LocalTrafficDetector for this
    configuration ("" for none, e.g. ClusterCIDR without a clusterCIDR)."""
    mode = config.detect_local_mode
    if mode == "NodeCIDR":
        return f"-s {node_pod_cidr}" if node_pod_cidr else ""
    if mode == "BridgeInterface":
        return f"-i {config.bridge_interface}"
    if mode == "InterfaceNamePrefix":
        return f"-i {config.interface_name_prefix}+"
    return f"-s {config.cluster_cidr}" if config.cluster_cidr else ""


def node_port_ips(config: ProxyConfig, primary_ip: str, local_ips: list[str]) -> tuple[str, ...] | None:
    """nodePortAddresses resolved as kube-proxy does: None (every local
    address) when empty; the node's primary IP for ["primary"]; else the
    local IPv4 addresses within the CIDRs."""
    if not config.node_port_addresses:
        return None
    if config.node_port_addresses == ("primary",):
        return (primary_ip,)
    nets = [ipaddress.ip_network(c.strip(), strict=False) for c in config.node_port_addresses]
    return tuple(ip for ip in local_ips
                 if any(ipaddress.ip_address(ip) in n for n in nets if n.version == 4))


# conntrack option -> (per-netns sysctl under net.netfilter, kube-proxy's default in seconds)
CONNTRACK_SYSCTLS = {
    "tcpEstablishedTimeout": ("nf_conntrack_tcp_timeout_established", 86400.0),
    "tcpCloseWaitTimeout": ("nf_conntrack_tcp_timeout_close_wait", 3600.0),
    "udpTimeout": ("nf_conntrack_udp_timeout", 0.0),
    "udpStreamTimeout": ("nf_conntrack_udp_timeout_stream", 0.0),
}


def conntrack_sysctls(config: ProxyConfig) -> dict[str, int]:
    """The per-namespace conntrack sysctls kube-proxy sets for this
    configuration: each timeout above 0 (a null timeout takes kube-proxy's
    default: 24h established, 1h close-wait), and tcp_be_liberal when
    tcpBeLiberal is true. maxPerCore/min (nf_conntrack_max, hashsize) are
    host-wide and not set."""
    out: dict[str, int] = {}
    for key, (sysctl, default) in CONNTRACK_SYSCTLS.items():
        value = config.conntrack.get(key)
        seconds = default if value is None else parse_duration(str(value))
        if seconds > 0:
            out[sysctl] = int(seconds)
    if config.conntrack.get("tcpBeLiberal") is True:
        out["nf_conntrack_tcp_be_liberal"] = 1
    return out


def _section(doc: dict, key: str) -> dict:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return False
    return "/" in text


def _host_port(value: str, path: str) -> list[str]:
    """kube-proxy's validateHostPort."""
    host, sep, port = str(value).rpartition(":")
    if not sep or not host:
        return [f'{path}: Invalid value: "{value}": must be IP:port']
    errs = []
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        errs.append(f'{path}: Invalid value: "{host}": must be a valid IP')
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        errs.append(f'{path}: Invalid value: "{port}": must be a valid port')
    return errs
