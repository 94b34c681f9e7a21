"""agent.api.kubeproxyconfig and the options it feeds into the render.

Validation messages are kube-proxy's (pkg/proxy/apis/config/validation);
the masqueradeAll expectations are proxier_test.go's
(TestInternalExternalMasquerade: with masqueradeAll every ClusterIP flow is
masqueraded; without it only off-cluster sources are)."""
from __future__ import annotations

import pytest

from agent.api import kubeproxyconfig as kpc
from dataplane.model import Endpoint, NodeInfo, ServicePort
from dataplane.rules import render
from tests.unit.test_rules import EXTERNAL_CLIENT as EXTERNAL
from tests.unit.test_rules import Tracer

CIDR = "10.244.0.0/16"
DEFAULT = kpc.default_config_text(CIDR)


def with_lines(*pairs: tuple[str, str]) -> str:
    text = DEFAULT
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new)
    return text


def test_default_is_todays_behaviour():
    config, errors = kpc.parse(DEFAULT)
    assert errors == []
    assert config == kpc.ProxyConfig(cluster_cidr=CIDR, min_sync_period=0.05, sync_period=30.0)
    assert config.masquerade_bit == 14 and not config.masquerade_all and config.localhost_node_ports
    assert config.metrics_bind_address == "127.0.0.1:10249"
    assert config.healthz_bind_address == "0.0.0.0:10256"
    assert "kubeconfig" not in DEFAULT  # node agents have their own credentials


def test_kubeproxy_defaults_apply_to_a_minimal_config():
    config, errors = kpc.parse("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n")
    assert errors == []
    assert (config.min_sync_period, config.sync_period, config.masquerade_bit, config.cluster_cidr) == (1.0, 30.0, 14, "")


@pytest.mark.parametrize("pairs, message", [
    ((("masqueradeBit: null", "masqueradeBit: 32"),),
     "KubeProxyConfiguration.KubeProxyIPTablesConfiguration.MasqueradeBit: Invalid value: 32: "
     "must be within the range [0, 31]"),
    ((("masqueradeBit: null", "masqueradeBit: -1"),),
     "KubeProxyConfiguration.KubeProxyIPTablesConfiguration.MasqueradeBit: Invalid value: -1: "
     "must be within the range [0, 31]"),
    ((("minSyncPeriod: 50ms", "minSyncPeriod: 1m"),),
     'KubeProxyConfiguration.KubeProxyIPTablesConfiguration.SyncPeriod: Invalid value: "1m0s": must be greater '
     "than or equal to KubeProxyConfiguration.KubeProxyIPTablesConfiguration.MinSyncPeriod"),
    ((("minSyncPeriod: 50ms", "minSyncPeriod: -1s"),),
     'KubeProxyConfiguration.KubeProxyIPTablesConfiguration.MinSyncPeriod: Invalid value: "-1s": '
     "must be greater than or equal to 0"),
    ((("syncPeriod: 30s", "syncPeriod: -30s"),),
     'KubeProxyConfiguration.KubeProxyIPTablesConfiguration.SyncPeriod: Invalid value: "-30s": must be greater than 0'),
    ((("clusterCIDR: 10.244.0.0/16", "clusterCIDR: 10.244.0.0"),),
     'KubeProxyConfiguration.ClusterCIDR: Invalid value: "10.244.0.0": must be a valid CIDR block '
     "(e.g. 10.100.0.0/16 or fde4:8dba:82e1::/48)"),
    ((('metricsBindAddress: ""', "metricsBindAddress: 127.0.0.1"),),
     'KubeProxyConfiguration.MetricsBindAddress: Invalid value: "127.0.0.1": must be IP:port'),
    ((('healthzBindAddress: ""', "healthzBindAddress: 0.0.0.0:99999"),),
     'KubeProxyConfiguration.HealthzBindAddress: Invalid value: "99999": must be a valid port'),
    ((("  min: null", "  min: -5"),),
     "KubeProxyConfiguration.KubeProxyConntrackConfiguration.Min: Invalid value: -5: "
     "must be greater than or equal to 0"),
    ((('mode: ""', "mode: userspace"),),
     'KubeProxyConfiguration.Mode: Unsupported value: "userspace": supported values: "iptables", "ipvs", "nftables"'),
])
def test_invalid_configs_get_kube_proxys_messages(pairs, message):
    config, errors = kpc.parse(with_lines(*pairs))
    assert config is None
    assert message in errors


@pytest.mark.parametrize("pairs, fragment", [
    ((('mode: ""', "mode: ipvs"),), 'nsplane implements "iptables" and "nftables" (ipvs is not planned)'),
    ((("maxPerCore: null", "maxPerCore: 32768"),), "nf_conntrack_max is not per network namespace"),
])
def test_options_not_honoured_yet_are_refused_not_ignored(pairs, fragment):
    config, errors = kpc.parse(with_lines(*pairs))
    assert config is None and any(fragment in e for e in errors), errors


@pytest.mark.parametrize("pairs, message", [
    ((('detectLocalMode: ""', "detectLocalMode: Pod"),),
     'KubeProxyConfiguration.DetectLocalMode: Unsupported value: "Pod": supported values: "ClusterCIDR", '
     '"NodeCIDR", "BridgeInterface", "InterfaceNamePrefix", ""'),
    ((('detectLocalMode: ""', "detectLocalMode: BridgeInterface"),),
     'KubeProxyConfiguration.InterfaceName: Invalid value: "": must not be empty'),
    ((('detectLocalMode: ""', "detectLocalMode: InterfaceNamePrefix"),),
     'KubeProxyConfiguration.InterfacePrefix: Invalid value: "": must not be empty'),
    ((("nodePortAddresses: null", "nodePortAddresses: [10.0.0.0/8, primary]"),),
     "KubeProxyConfiguration.NodePortAddresses[1]: Invalid value: \"primary\": can't use both 'primary' and CIDRs"),
    ((("nodePortAddresses: null", "nodePortAddresses: [10.0.0.1]"),),
     'KubeProxyConfiguration.NodePortAddresses[0]: Invalid value: "10.0.0.1": must be a valid CIDR'),
])
def test_detect_local_and_node_port_address_validation(pairs, message):
    config, errors = kpc.parse(with_lines(*pairs))
    assert config is None and message in errors, errors


def test_local_detectors():
    def detector(*pairs):
        config, errors = kpc.parse(with_lines(*pairs))
        assert not errors
        return kpc.local_detector(config, "10.244.1.0/24")
    assert detector() == "-s 10.244.0.0/16"
    assert detector(("clusterCIDR: 10.244.0.0/16", 'clusterCIDR: ""')) == ""
    assert detector(('detectLocalMode: ""', "detectLocalMode: NodeCIDR")) == "-s 10.244.1.0/24"
    assert detector(('detectLocalMode: ""', "detectLocalMode: BridgeInterface"),
                    ('bridgeInterface: ""', "bridgeInterface: cbr0")) == "-i cbr0"
    assert detector(('detectLocalMode: ""', "detectLocalMode: InterfaceNamePrefix"),
                    ('interfaceNamePrefix: ""', "interfaceNamePrefix: veth")) == "-i veth+"


def test_node_port_addresses_resolution():
    local = ["127.0.0.1", "192.168.0.2", "10.244.0.1"]

    def resolve(value):
        config, errors = kpc.parse(with_lines(("nodePortAddresses: null", f"nodePortAddresses: {value}")))
        assert not errors
        return kpc.node_port_ips(config, "192.168.0.2", local)
    assert resolve("null") is None
    assert resolve("[primary]") == ("192.168.0.2",)
    assert resolve("[192.168.0.0/24, 127.0.0.0/8]") == ("127.0.0.1", "192.168.0.2")
    assert resolve("[172.16.0.0/12]") == ()


def test_conntrack_sysctls():
    config, _ = kpc.parse(DEFAULT)
    assert kpc.conntrack_sysctls(config) == {"nf_conntrack_tcp_timeout_established": 86400,
                                             "nf_conntrack_tcp_timeout_close_wait": 3600}
    config, errors = kpc.parse(with_lines(("tcpEstablishedTimeout: null", "tcpEstablishedTimeout: 2h"),
                                          ("tcpCloseWaitTimeout: null", "tcpCloseWaitTimeout: 0s"),
                                          ("udpTimeout: 0s", "udpTimeout: 45s"),
                                          ("tcpBeLiberal: false", "tcpBeLiberal: true")))
    assert errors == []
    assert kpc.conntrack_sysctls(config) == {"nf_conntrack_tcp_timeout_established": 7200,
                                             "nf_conntrack_udp_timeout": 45, "nf_conntrack_tcp_be_liberal": 1}
    _, errors = kpc.parse(with_lines(("udpTimeout: 0s", "udpTimeout: -1s")))
    assert 'KubeProxyConfiguration.KubeProxyConntrackConfiguration.UDPTimeout: Invalid value: "-1s": ' \
           "must be greater than or equal to 0" in errors


def test_unknown_fields_are_refused_as_kube_proxys_strict_decoding_does():
    config, errors = kpc.parse(with_lines(("masqueradeAll: false", "masqueradAll: true"), ("mode: \"\"", "mod: x")))
    assert config is None
    assert errors == ['failed to decode: strict decoding error: unknown field "mod", '
                      'unknown field "iptables.masqueradAll"']


def test_yaml_errors_and_wrong_kind():
    assert kpc.parse("a: [")[0] is None
    config, errors = kpc.parse("apiVersion: v1\nkind: ConfigMap\n")
    assert config is None and "KubeProxyConfiguration" in errors[0]


@pytest.mark.parametrize("text, seconds", [("0", 0), ("1s", 1), ("500ms", 0.5), ("1h0m0s", 3600), ("1m30s", 90),
                                           ("-2s", -2), ("1.5s", 1.5)])
def test_go_durations(text, seconds):
    assert kpc.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "1", "1x", "1s2"])
def test_bad_go_durations(text):
    with pytest.raises(ValueError):
        kpc.parse_duration(text)


def test_go_duration_printing():
    assert [kpc.go_duration(s) for s in (0, 30, 60, 90, 3600, 0.05, -1)] == \
        ["0s", "30s", "1m0s", "1m30s", "1h0m0s", "0.05s", "-1s"]


# ---------------------------------------------------------------- rendering


SVC = ServicePort("ns1", "svc1", "p80", "TCP", "172.30.0.41", 80)
EPS = [Endpoint("10.180.0.1", 80)]


def test_masquerade_all_rule_as_kube_proxy_writes_it():
    text = render({SVC: EPS}, NodeInfo("n", "10.0.0.0/8", masquerade_all=True)).text
    chain = next(line.split()[1] for line in text.splitlines() if line.startswith("-A KUBE-SVC-"))
    assert f'-A {chain} -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ' \
           "-j KUBE-MARK-MASQ" in text.splitlines()
    assert "! -s 10.0.0.0/8" not in text.split(f"-A {chain}")[1]


@pytest.mark.parametrize("masquerade_all, src, masq", [
    (False, "10.0.0.2", False),   # pod to ClusterIP: kept
    (False, "192.168.0.2", True),  # node (off-cluster CIDR) to ClusterIP
    (True, "10.0.0.2", True),     # masqueradeAll: everything
    (True, "192.168.0.2", True),
])
def test_masquerade_all_packet_flows(masquerade_all, src, masq):
    text = render({SVC: EPS}, NodeInfo("n", "10.0.0.0/8", ("192.168.0.2",), masquerade_all=masquerade_all)).text
    assert Tracer(text).trace(src, "172.30.0.41", 80) == (["10.180.0.1:80"], masq)


def test_no_cluster_cidr_means_no_local_detector():
    text = render({SVC: EPS}, NodeInfo("n", "")).text
    assert "KUBE-MARK-MASQ" not in "".join(line for line in text.splitlines() if line.startswith("-A KUBE-SVC-"))
    assert Tracer(text).trace("192.168.0.9", "172.30.0.41", 80) == (["10.180.0.1:80"], False)


# ---------------------------------------------------------------- localhostNodePorts, nodePortAddresses
# (proxier_test.go: TestDisableLocalhostNodePortsIPv4, ...WithNodeAddress, TestNodePorts / nodePortAddresses)

NODEPORT = ServicePort("ns1", "svc1", "p80", "TCP", "10.69.0.10", 80, node_port=30001)
COMMENT = '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"'


def jumps(node: NodeInfo) -> list[str]:
    text = render({NODEPORT: [Endpoint("10.244.0.1", 80)]}, node).text
    return [line for line in text.splitlines() if line.startswith("-A KUBE-SERVICES") and "KUBE-NODEPORTS" in line]


def test_localhost_node_ports_default_and_disabled():
    assert jumps(NodeInfo("n", "")) == [f"-A KUBE-SERVICES {COMMENT} -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"]
    assert jumps(NodeInfo("n", "", localhost_node_ports=False)) == \
        [f"-A KUBE-SERVICES {COMMENT} -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS"]


def test_node_port_addresses_one_rule_per_address():
    assert jumps(NodeInfo("n", "", node_port_ips=("192.168.0.2", "127.0.0.1"))) == [
        f"-A KUBE-SERVICES {COMMENT} -d 192.168.0.2 -j KUBE-NODEPORTS",
        f"-A KUBE-SERVICES {COMMENT} -d 127.0.0.1 -j KUBE-NODEPORTS"]
    # 127.0.0.0/8 listed but localhostNodePorts false: no rule for it (TestDisableLocalhostNodePortsIPv4WithNodeAddress)
    assert jumps(NodeInfo("n", "", localhost_node_ports=False, node_port_ips=("127.0.0.1",))) == []


def test_node_port_packet_flows_follow_node_port_addresses():
    node = NodeInfo("n", "10.0.0.0/8", ("192.168.0.2",), node_port_ips=("192.168.0.2",))
    text = render({NODEPORT: [Endpoint("10.244.0.1", 80)]}, node).text
    tracer = Tracer(text, node_ips=("192.168.0.2", "192.168.0.3", "127.0.0.1"))
    assert tracer.trace(EXTERNAL, "192.168.0.2", 30001)[0] == ["10.244.0.1:80"]
    assert tracer.trace(EXTERNAL, "192.168.0.3", 30001)[0] == []


@pytest.mark.parametrize("detect, rule", [
    ("-s 10.244.1.0/24", "! -s 10.244.1.0/24 -j KUBE-MARK-MASQ"),
    ("-i cbr0", "! -i cbr0 -j KUBE-MARK-MASQ"),
    ("-i veth+", "! -i veth+ -j KUBE-MARK-MASQ"),
])
def test_detect_local_modes_in_the_masquerade_rule(detect, rule):
    text = render({SVC: EPS}, NodeInfo("n", "10.0.0.0/8", detect_local=detect)).text
    svc_rules = [line for line in text.splitlines() if line.startswith("-A KUBE-SVC-")]
    assert svc_rules[0].endswith(f'-m tcp -p tcp -d 172.30.0.41 --dport 80 {rule}')
    local = ServicePort("ns1", "svc1", "p80", "TCP", "10.69.0.10", 80, node_port=30001, external_policy_local=True)
    ext = render({local: [Endpoint("10.244.0.1", 80, node_name="n")]}, NodeInfo("n", "10.0.0.0/8", detect_local=detect))
    assert any(line.endswith(f'"pod traffic for ns1/svc1:p80 external destinations" {detect} -j '
                             f"KUBE-SVC-XPGD46QRK7WJZT7O") for line in ext.text.splitlines()), ext.text


def test_nftables_mode_reads_its_own_section():
    text = with_lines(('mode: ""', "mode: nftables")) + "nftables:\n  masqueradeBit: 5\n  minSyncPeriod: 2s\n  syncPeriod: 20s\n"
    config, errors = kpc.parse(text)
    assert errors == [] and config.mode == "nftables"
    assert (config.masquerade_bit, config.min_sync_period, config.sync_period) == (5, 2.0, 20.0)
    assert config.localhost_node_ports is False  # kube-proxy's nftables mode never serves NodePorts on 127.0.0.1
    config, errors = kpc.parse(with_lines(('mode: ""', "mode: nftables")) + "nftables:\n  masqueradeBit: 40\n")
    assert errors == ["KubeProxyConfiguration.KubeProxyNFTablesConfiguration.MasqueradeBit: Invalid value: 40: "
                      "must be within the range [0, 31]"]
