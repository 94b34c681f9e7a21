"""The pure parts of `nsplane trace --from outside|NODE` and of the route and
masquerade lines: ARP cache and link parsing, the node owning an address,
source NAT read from a conntrack entry, `ip route get` in words."""
from agent.cli.trace import path

NEIGH = "172.28.0.200 dev nsplane5a1b2c3d lladdr 02:7D:B6:19:D5:2F REACHABLE\n"
LINKS = ("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default "
         "qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n"
         "2: eth0@if7: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group "
         "default qlen 1000\\    link/ether 02:7d:b6:19:d5:2f brd ff:ff:ff:ff:ff:ff link-netns x\n")


def test_neigh_mac_reads_the_answer_and_ignores_failures():
    assert path.neigh_mac(NEIGH) == "02:7d:b6:19:d5:2f"
    assert path.neigh_mac("172.28.0.200 dev br0 FAILED\n") is None
    assert path.neigh_mac("") is None


def test_macs_lists_ethernet_addresses_only():
    assert path.macs(LINKS) == {"02:7d:b6:19:d5:2f"}


def test_node_of_matches_status_addresses():
    nodes = [{"metadata": {"name": "node-1"}, "status": {"addresses": [{"type": "InternalIP", "address": "172.28.0.11"}]}},
             {"metadata": {"name": "node-2"}, "status": {"addresses": [{"type": "InternalIP", "address": "172.28.0.12"}]}}]
    assert path.node_of("172.28.0.12", nodes) == "node-2"
    assert path.node_of("172.28.0.200", nodes) is None


def entry(line):
    return path.parse_conntrack(line)


def test_source_nat_sees_address_and_port_rewrites():
    plain = entry("tcp 6 119 TIME_WAIT src=10.244.0.4 dst=10.96.5.5 sport=34874 dport=80 "
                  "src=10.244.1.3 dst=10.244.0.4 sport=8080 dport=34874 [ASSURED] mark=0 use=1")
    masq = entry("tcp 6 119 TIME_WAIT src=172.28.0.1 dst=172.28.0.200 sport=5000 dport=80 "
                 "src=10.244.1.3 dst=172.28.0.11 sport=8080 dport=5000 [ASSURED] mark=0 use=1")
    # from the node itself: same address, the masquerade picked another port
    node = entry("tcp 6 119 TIME_WAIT src=172.28.0.11 dst=10.96.5.5 sport=40502 dport=80 "
                 "src=10.244.1.3 dst=172.28.0.11 sport=8080 dport=37423 [ASSURED] mark=0 use=1")
    assert not path.source_nat(plain)
    assert path.source_nat(masq)
    assert path.source_nat(node)


def test_masquerade_why_names_the_policy_and_the_source():
    assert "externalTrafficPolicy Cluster" in path.masquerade_why(True, "Cluster", "outside")
    assert "externalTrafficPolicy Cluster" in path.masquerade_why(True, None, "outside")
    assert path.masquerade_why(False, "Local", "outside").startswith("no masquerade: externalTrafficPolicy Local")
    assert path.masquerade_why(True, None, "node").startswith("masquerade: the source is the node itself")
    assert path.masquerade_why(False, None, "pod") == "no masquerade: the source is a pod and keeps its address"


def test_route_words():
    assert path.route_words("10.96.0.99 via 172.28.0.1 dev eth0 src 172.28.0.11 uid 0") == \
        "via 172.28.0.1 dev eth0 (from 172.28.0.11)"
    assert path.route_words("local 172.28.0.11 dev lo src 172.28.0.11 uid 0").startswith("to the local machine dev lo")
    assert path.route_words("RTNETLINK answers: Network is unreachable") == \
        "nowhere (RTNETLINK answers: Network is unreachable)"


def test_verdict_without_a_service_says_where_the_kernel_routes_it():
    v = path.verdict([], None, False, "10.96.5.5:81", "timed out", "10.96.5.5 via 172.28.0.1 dev eth0 src 172.28.0.11")
    assert v == ("no Service has 10.96.5.5:81: no rule of KUBE-SERVICES matches, the kernel routes it via "
                 "172.28.0.1 dev eth0 (from 172.28.0.11) and it gets no answer (timed out)")


def test_udp_targets_parse_and_need_a_port():
    assert path.parse_target("udp://10.96.0.10:53") == ("10.96.0.10", 53, "udp://10.96.0.10:53")
    assert path.protocol("udp://10.96.0.10:53") == "udp" and path.protocol("http://web") == "tcp"
    try:
        path.parse_target("udp://dns")
    except ValueError as e:
        assert "needs its port" in str(e)
    else:
        raise AssertionError("udp without a port was accepted")
