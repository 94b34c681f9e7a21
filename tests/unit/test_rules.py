"""dataplane.rules: the rendered iptables-restore text against kube-proxy's.

The expected texts are kube-proxy's own expectations (proxier_test.go,
TestOverallIPTablesRules / TestOnlyLocalExternalIPs) for the same input,
rewritten for the three places where our configuration differs from the fake
proxier there: the mark is formatted as real kube-proxy formats
1<<14 ("0x00004000"), MASQUERADE has --random-fully, and there are no nfacct
counters. Texts are compared the way kube-proxy's assertIPTablesRulesEqual
does: chain declarations as a set, rules grouped per chain in order.

A small packet tracer walks the rendered nat (then filter) rules for a
(source, destination, port) and reports the possible DNAT targets, REJECT or
DROP, and whether the packet would be masqueraded.
"""
from __future__ import annotations

import ipaddress
import shlex
import textwrap

import pytest

from dataplane.chains import (
    endpoint_chain_name,
    is_service_chain,
    port_proto_hash,
    service_chains,
)
from dataplane.model import Endpoint, NodeInfo, ServicePort
from dataplane.rules import render

NODE = NodeInfo(name="test-node", cluster_cidr="10.0.0.0/8", node_ips=("192.168.0.2",))
EXTERNAL_CLIENT = "203.0.113.2"
EXTERNAL_CLIENT_BLOCKED = "203.0.113.130"


def sp(ns, name, port_name="p80", protocol="TCP", cluster_ip="172.30.0.41", port=80, **kw) -> ServicePort:
    return ServicePort(ns, name, port_name, protocol, cluster_ip, port, **kw)


# ---------------------------------------------------------------- comparing rule texts


def tables(text: str) -> dict[str, tuple[frozenset[str], dict[str, list[str]]]]:
    """{table: (chain declarations, {chain: [rules in order]})}."""
    result: dict[str, tuple[frozenset[str], dict[str, list[str]]]] = {}
    table = None
    decls: set[str] = set()
    rules: dict[str, list[str]] = {}
    for line in text.strip().splitlines():
        line = line.strip()
        if line.startswith("*"):
            table, decls, rules = line[1:], set(), {}
        elif line == "COMMIT":
            result[table] = (frozenset(decls), rules)
        elif line.startswith(":"):
            decls.add(line)
        elif line.startswith("-A "):
            rules.setdefault(line.split()[1], []).append(line)
        elif line:
            raise AssertionError(f"unexpected line {line!r}")
    return result


def assert_rules_equal(expected: str, actual: str) -> None:
    exp, act = tables(textwrap.dedent(expected)), tables(actual)
    assert set(exp) == set(act)
    for table in exp:
        assert sorted(act[table][0]) == sorted(exp[table][0]), f"{table} chain declarations"
        for chain in set(exp[table][1]) | set(act[table][1]):
            assert act[table][1].get(chain) == exp[table][1].get(chain), f"{table} {chain}"


# ---------------------------------------------------------------- packet tracer


class Tracer:
    """Walks rendered rules like a packet would (kube-proxy's packet-flow tests).

    Every statistic-random rule is taken both ways, so the result lists every
    endpoint the packet can reach. `--rcheck` affinity rules never match (a
    fresh client). Returns (sorted DNAT targets or ["REJECT"]/["DROP"]/[], masq).
    """

    def __init__(self, text: str, node_ips=NODE.node_ips):
        self.rules = {t: rules for t, (_, rules) in tables(text).items()}
        self.node_ips = set(node_ips)

    def trace(self, src: str, dst: str, dport: int, proto: str = "tcp"):
        pkt = dict(src=src, dst=dst, dport=dport, proto=proto)
        results = self._walk("nat", self._chain("nat", "KUBE-SERVICES"), pkt, masq=False)
        targets, masq = set(), False
        for verdict, marked in results:
            if verdict is None:
                verdict = self._filter(pkt)
            if verdict:
                targets.add(verdict)
            masq = masq or marked
        return sorted(targets), masq

    def _filter(self, pkt):
        for chain in ("KUBE-PROXY-FIREWALL", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES"):
            for verdict, _ in self._walk("filter", self._chain("filter", chain), pkt, masq=False):
                if verdict in ("REJECT", "DROP"):
                    return verdict
        return None

    def _walk(self, table, rules, pkt, masq):
        """All outcomes of running `rules`: (DNAT target | verdict | None = fell through, masq)."""
        outcomes = []
        for i, rule in enumerate(rules):
            tokens = shlex.split(rule)
            matched, random = self._matches(tokens[2:], pkt)
            if not matched:
                continue
            target, to = self._target(tokens)
            if target == "KUBE-MARK-MASQ":
                masq = True
                continue
            if target is None:
                continue
            if target == "DNAT":
                outcomes.append((to, masq))
            elif target in ("REJECT", "DROP", "ACCEPT", "RETURN"):
                outcomes.append((target if target != "RETURN" else None, masq))
            else:
                for sub_verdict, sub_masq in self._walk(table, self._chain(table, target), pkt, masq):
                    if sub_verdict is None:  # fell out of the sub-chain: go on after the jump
                        outcomes.extend(self._walk(table, rules[i + 1:], pkt, sub_masq))
                    else:
                        outcomes.append((sub_verdict, sub_masq))
            if not random:
                return outcomes
        outcomes.append((None, masq))
        return outcomes

    def _chain(self, table, chain):
        return self.rules[table].get(chain, [])

    @staticmethod
    def _target(tokens):
        if "-j" not in tokens:
            return None, None
        i = tokens.index("-j")
        to = tokens[tokens.index("--to-destination") + 1] if "--to-destination" in tokens else None
        return tokens[i + 1], to

    def _matches(self, toks, pkt):
        """(matches?, is a statistic-random rule)."""
        neg, random, i = False, False, 0
        while i < len(toks):
            t = toks[i]
            if t == "!":
                neg = True
                i += 1
                continue
            val = toks[i + 1] if i + 1 < len(toks) else None
            ok = True
            if t in ("-s", "-d"):
                ip = pkt["src" if t == "-s" else "dst"]
                ok = ipaddress.ip_address(ip) in ipaddress.ip_network(val, strict=False)
            elif t == "-p":
                ok = val == pkt["proto"]
            elif t == "--dport":
                low, _, high = val.partition(":")
                ok = int(low) <= pkt["dport"] <= int(high or low)
            elif t in ("--dst-type", "--src-type"):
                ip = pkt["dst" if t == "--dst-type" else "src"]
                ok = ip in self.node_ips or ip.startswith("127.")
            elif t == "--rcheck":
                ok = False
            elif t == "--probability":
                random = True
            elif t == "-j":
                break
            if neg:
                ok = not ok
                neg = False
            if not ok:
                return False, random
            i += 2 if t in ("-s", "-d", "-p", "--dport", "--dst-type", "--src-type", "-m", "--comment",
                            "--mode", "--probability", "--name", "--seconds", "--ctstate", "--mark") else 1
        return True, random


# ---------------------------------------------------------------- kube-proxy's overall test


def overall_services() -> dict[ServicePort, list[Endpoint]]:
    """TestOverallIPTablesRules' six Services and their EndpointSlices."""
    return {
        sp("ns1", "svc1", cluster_ip="172.30.0.41"): [Endpoint("10.180.0.1", 80)],
        sp("ns2", "svc2", cluster_ip="172.30.0.42", node_port=3001, load_balancer_ips=("1.2.3.4",),
           external_ips=("192.168.99.22",), external_policy_local=True,
           health_check_node_port=30000): [Endpoint("10.180.0.2", 80)],
        sp("ns3", "svc3", cluster_ip="172.30.0.43", node_port=3003): [Endpoint("10.180.0.3", 80)],
        sp("ns4", "svc4", cluster_ip="172.30.0.44", external_ips=("192.168.99.33",)): [
            Endpoint("10.180.0.4", 80),
            Endpoint("10.180.0.5", 80, node_name="test-node"),
        ],
        sp("ns5", "svc5", cluster_ip="172.30.0.45", node_port=3002, load_balancer_ips=("5.6.7.8",),
           load_balancer_source_ranges=("203.0.113.0/25",), affinity_timeout=10800): [Endpoint("10.180.0.3", 80)],
        sp("ns6", "svc6", cluster_ip="172.30.0.46"): [],
    }


OVERALL_EXPECTED = """
    *filter
    :KUBE-NODEPORTS - [0:0]
    :KUBE-SERVICES - [0:0]
    :KUBE-EXTERNAL-SERVICES - [0:0]
    :KUBE-FIREWALL - [0:0]
    :KUBE-FORWARD - [0:0]
    :KUBE-PROXY-FIREWALL - [0:0]
    -A KUBE-NODEPORTS -m comment --comment "ns2/svc2:p80 health check node port" -m tcp -p tcp --dport 30000 -j ACCEPT
    -A KUBE-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT
    -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j DROP
    -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j DROP
    -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP
    -A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
    -A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
    -A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x00004000/0x00004000 -j ACCEPT
    -A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
    -A KUBE-PROXY-FIREWALL -m comment --comment "ns5/svc5:p80 traffic not accepted by KUBE-FW-NUKIZ6OKUXPJNT4C" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j DROP
    COMMIT
    *nat
    :KUBE-NODEPORTS - [0:0]
    :KUBE-SERVICES - [0:0]
    :KUBE-EXT-4SW47YFZTEDKD3PK - [0:0]
    :KUBE-EXT-GNZBNJ2PO5MGZ6GT - [0:0]
    :KUBE-EXT-NUKIZ6OKUXPJNT4C - [0:0]
    :KUBE-EXT-X27LE4BHSL4DOUIK - [0:0]
    :KUBE-FW-NUKIZ6OKUXPJNT4C - [0:0]
    :KUBE-MARK-MASQ - [0:0]
    :KUBE-POSTROUTING - [0:0]
    :KUBE-SEP-C6EBXVWJJZMIWKLZ - [0:0]
    :KUBE-SEP-I77PXRDZVX7PMWMN - [0:0]
    :KUBE-SEP-OYPFS5VJICHGATKP - [0:0]
    :KUBE-SEP-RS4RBKLTHTF2IUXJ - [0:0]
    :KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
    :KUBE-SEP-UKSFD7AGPMPPLUHC - [0:0]
    :KUBE-SVC-4SW47YFZTEDKD3PK - [0:0]
    :KUBE-SVC-GNZBNJ2PO5MGZ6GT - [0:0]
    :KUBE-SVC-NUKIZ6OKUXPJNT4C - [0:0]
    :KUBE-SVC-X27LE4BHSL4DOUIK - [0:0]
    :KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
    -A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
    -A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp --dport 3003 -j KUBE-EXT-X27LE4BHSL4DOUIK
    -A KUBE-NODEPORTS -m comment --comment ns5/svc5:p80 -m tcp -p tcp --dport 3002 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
    -A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
    -A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
    -A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 external IP" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
    -A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
    -A KUBE-SERVICES -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 -j KUBE-SVC-X27LE4BHSL4DOUIK
    -A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 -j KUBE-SVC-4SW47YFZTEDKD3PK
    -A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 external IP" -m tcp -p tcp -d 192.168.99.33 --dport 80 -j KUBE-EXT-4SW47YFZTEDKD3PK
    -A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 -j KUBE-SVC-NUKIZ6OKUXPJNT4C
    -A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j KUBE-FW-NUKIZ6OKUXPJNT4C
    -A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
    -A KUBE-EXT-4SW47YFZTEDKD3PK -m comment --comment "masquerade traffic for ns4/svc4:p80 external destinations" -j KUBE-MARK-MASQ
    -A KUBE-EXT-4SW47YFZTEDKD3PK -j KUBE-SVC-4SW47YFZTEDKD3PK
    -A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
    -A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
    -A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
    -A KUBE-EXT-NUKIZ6OKUXPJNT4C -m comment --comment "masquerade traffic for ns5/svc5:p80 external destinations" -j KUBE-MARK-MASQ
    -A KUBE-EXT-NUKIZ6OKUXPJNT4C -j KUBE-SVC-NUKIZ6OKUXPJNT4C
    -A KUBE-EXT-X27LE4BHSL4DOUIK -m comment --comment "masquerade traffic for ns3/svc3:p80 external destinations" -j KUBE-MARK-MASQ
    -A KUBE-EXT-X27LE4BHSL4DOUIK -j KUBE-SVC-X27LE4BHSL4DOUIK
    -A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 203.0.113.0/25 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
    -A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"
    -A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000
    -A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN
    -A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000
    -A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
    -A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -s 10.180.0.5 -j KUBE-MARK-MASQ
    -A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.5:80
    -A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
    -A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
    -A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
    -A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
    -A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
    -A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
    -A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
    -A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
    -A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -s 10.180.0.4 -j KUBE-MARK-MASQ
    -A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.4:80
    -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
    -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC
    -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.5:80" -j KUBE-SEP-C6EBXVWJJZMIWKLZ
    -A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
    -A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -j KUBE-SEP-RS4RBKLTHTF2IUXJ
    -A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
    -A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --rcheck --seconds 10800 --reap -j KUBE-SEP-I77PXRDZVX7PMWMN
    -A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -j KUBE-SEP-I77PXRDZVX7PMWMN
    -A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
    -A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.180.0.3:80" -j KUBE-SEP-OYPFS5VJICHGATKP
    -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
    -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ
    COMMIT
    """


def test_chain_names_hash_like_kube_proxy():
    assert port_proto_hash("ns1/svc1:p80", "TCP") == "XPGD46QRK7WJZT7O"
    assert service_chains("ns1/svc1:p80", "TCP").svl == "KUBE-SVL-XPGD46QRK7WJZT7O"
    assert endpoint_chain_name("ns1/svc1:p80", "TCP", "10.180.0.1:80") == "KUBE-SEP-SXIVWICOYRO3J4NJ"
    assert endpoint_chain_name("ns1/svc1:p80", "TCP", "10.180.2.1:80") == "KUBE-SEP-ZX7GRIZKSNUQ3LAJ"
    assert port_proto_hash("ns1/svc1:p80", "UDP") != port_proto_hash("ns1/svc1:p80", "TCP")
    assert is_service_chain("KUBE-FW-NUKIZ6OKUXPJNT4C") and not is_service_chain("KUBE-SERVICES")


def test_fast_base32_equals_the_standard_encoding():
    import base64
    import hashlib

    for i in range(500):
        text = f"ns{i}/svc{i * 7}:p{i}tcp10.244.{i % 256}.{i % 7}:80"
        reference = base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]
        assert port_proto_hash(text, "") == reference


def test_service_port_name():
    assert sp("default", "web", port_name="").spn == "default/web"
    assert sp("default", "web", port_name="http").spn == "default/web:http"


def test_overall_rules_match_kube_proxy():
    ruleset = render(overall_services(), NODE)
    assert_rules_equal(OVERALL_EXPECTED, ruleset.text)
    expected = tables(textwrap.dedent(OVERALL_EXPECTED))
    for table in ("nat", "filter"):
        assert ruleset.chains[table] == {decl[1:].split()[0] for decl in expected[table][0]}
    assert "KUBE-PROXY-FIREWALL" in ruleset.chains["filter"]


@pytest.mark.parametrize(
    "src,dst,port,expected,masq",
    [
        ("10.0.0.2", "172.30.0.41", 80, ["10.180.0.1:80"], False),  # pod -> ClusterIP
        (EXTERNAL_CLIENT, "172.30.0.41", 80, ["10.180.0.1:80"], True),  # off-cluster -> ClusterIP
        ("10.0.0.2", "172.30.0.46", 80, ["REJECT"], False),  # no endpoints
        ("10.0.0.2", "172.30.0.41", 81, [], False),  # wrong port: untouched
        (EXTERNAL_CLIENT, "1.2.3.4", 80, ["DROP"], False),  # ETP Local, no local endpoint
        (EXTERNAL_CLIENT, "192.168.0.2", 3001, ["DROP"], False),  # same, via NodePort
        ("10.0.0.2", "1.2.3.4", 80, ["10.180.0.2:80"], False),  # pod short-circuits to Cluster
        ("192.168.0.2", "192.168.0.2", 3001, ["10.180.0.2:80"], True),  # node itself
        (EXTERNAL_CLIENT, "192.168.0.2", 3003, ["10.180.0.3:80"], True),  # NodePort, Cluster
        (EXTERNAL_CLIENT, "192.168.99.33", 80, ["10.180.0.4:80", "10.180.0.5:80"], True),  # external IP
        (EXTERNAL_CLIENT, "5.6.7.8", 80, ["10.180.0.3:80"], True),  # LB, allowed source range
        (EXTERNAL_CLIENT_BLOCKED, "5.6.7.8", 80, ["DROP"], False),  # LB, outside source range
        (EXTERNAL_CLIENT_BLOCKED, "192.168.0.2", 3002, ["10.180.0.3:80"], True),  # NodePort ignores ranges
    ],
)
def test_overall_packet_flows(src, dst, port, expected, masq):
    tracer = Tracer(render(overall_services(), NODE).text)
    assert tracer.trace(src, dst, port) == (expected, masq)


# ---------------------------------------------------------------- kube-proxy's ETP Local test

ONLY_LOCAL_EXPECTED = """
    *filter
    :KUBE-NODEPORTS - [0:0]
    :KUBE-SERVICES - [0:0]
    :KUBE-EXTERNAL-SERVICES - [0:0]
    :KUBE-FIREWALL - [0:0]
    :KUBE-FORWARD - [0:0]
    :KUBE-PROXY-FIREWALL - [0:0]
    -A KUBE-NODEPORTS -m comment --comment "ns1/svc1:p80 health check node port" -m tcp -p tcp --dport 30000 -j ACCEPT
    -A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
    -A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
    -A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x00004000/0x00004000 -j ACCEPT
    -A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
    COMMIT
    *nat
    :KUBE-NODEPORTS - [0:0]
    :KUBE-SERVICES - [0:0]
    :KUBE-EXT-XPGD46QRK7WJZT7O - [0:0]
    :KUBE-MARK-MASQ - [0:0]
    :KUBE-POSTROUTING - [0:0]
    :KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
    :KUBE-SEP-ZX7GRIZKSNUQ3LAJ - [0:0]
    :KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
    :KUBE-SVL-XPGD46QRK7WJZT7O - [0:0]
    -A KUBE-NODEPORTS -m comment --comment ns1/svc1:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-XPGD46QRK7WJZT7O
    -A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
    -A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 external IP" -m tcp -p tcp -d 192.168.99.11 --dport 80 -j KUBE-EXT-XPGD46QRK7WJZT7O
    -A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j KUBE-EXT-XPGD46QRK7WJZT7O
    -A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
    -A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "pod traffic for ns1/svc1:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-XPGD46QRK7WJZT7O
    -A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "masquerade LOCAL traffic for ns1/svc1:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
    -A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "route LOCAL traffic for ns1/svc1:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-XPGD46QRK7WJZT7O
    -A KUBE-EXT-XPGD46QRK7WJZT7O -j KUBE-SVL-XPGD46QRK7WJZT7O
    -A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000
    -A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN
    -A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000
    -A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
    -A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
    -A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
    -A KUBE-SEP-ZX7GRIZKSNUQ3LAJ -m comment --comment ns1/svc1:p80 -s 10.180.2.1 -j KUBE-MARK-MASQ
    -A KUBE-SEP-ZX7GRIZKSNUQ3LAJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.2.1:80
    -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
    -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-SXIVWICOYRO3J4NJ
    -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.2.1:80" -j KUBE-SEP-ZX7GRIZKSNUQ3LAJ
    -A KUBE-SVL-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.2.1:80" -j KUBE-SEP-ZX7GRIZKSNUQ3LAJ
    COMMIT
    """


def only_local_services():
    svc = sp("ns1", "svc1", node_port=3001, external_ips=("192.168.99.11",), load_balancer_ips=("1.2.3.4",),
             external_policy_local=True, health_check_node_port=30000)
    # Given in reverse order: the renderer sorts endpoints by "ip:port".
    return {svc: [Endpoint("10.180.2.1", 80, node_name="test-node"), Endpoint("10.180.0.1", 80)]}


def test_external_traffic_policy_local_matches_kube_proxy():
    assert_rules_equal(ONLY_LOCAL_EXPECTED, render(only_local_services(), NODE).text)


@pytest.mark.parametrize(
    "src,dst,port,expected",
    [
        ("10.0.0.2", "172.30.0.41", 80, ["10.180.0.1:80", "10.180.2.1:80"]),
        (EXTERNAL_CLIENT, "192.168.99.11", 80, ["10.180.2.1:80"]),
        (EXTERNAL_CLIENT, "1.2.3.4", 80, ["10.180.2.1:80"]),
        (EXTERNAL_CLIENT, "192.168.0.2", 3001, ["10.180.2.1:80"]),
    ],
)
def test_external_traffic_policy_local_flows(src, dst, port, expected):
    assert Tracer(render(only_local_services(), NODE).text).trace(src, dst, port) == (expected, False)


# ---------------------------------------------------------------- our own concrete cases


def web_services():
    web = sp("default", "web", port_name="", cluster_ip="10.96.0.20")
    empty = sp("default", "empty", port_name="", cluster_ip="10.96.0.21")
    dns_udp = sp("kube-system", "kube-dns", "dns", "UDP", "10.96.0.10", 53)
    dns_tcp = sp("kube-system", "kube-dns", "dns-tcp", "TCP", "10.96.0.10", 53)
    eps = [Endpoint("10.244.0.5", 80), Endpoint("10.244.1.5", 80), Endpoint("10.244.0.6", 80)]
    dns_eps = [Endpoint("10.244.0.9", 53)]
    return {web: eps, empty: [], dns_udp: dns_eps, dns_tcp: dns_eps}


def test_three_endpoints_no_endpoints_udp_and_multiport():
    text = render(web_services(), NODE).text
    web = service_chains("default/web", "TCP").svc
    sep = {ip: endpoint_chain_name("default/web", "TCP", f"{ip}:80") for ip in ("10.244.0.5", "10.244.0.6", "10.244.1.5")}
    udp = service_chains("kube-system/kube-dns:dns", "UDP").svc
    udp_sep = endpoint_chain_name("kube-system/kube-dns:dns", "UDP", "10.244.0.9:53")
    tcp_sep = endpoint_chain_name("kube-system/kube-dns:dns-tcp", "TCP", "10.244.0.9:53")
    assert udp_sep != tcp_sep
    nat = tables(text)["nat"][1]
    assert nat[web] == [
        f'-A {web} -m comment --comment "default/web cluster IP" -m tcp -p tcp -d 10.96.0.20 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ',
        f'-A {web} -m comment --comment "default/web -> 10.244.0.5:80" -m statistic --mode random --probability 0.3333333333 -j {sep["10.244.0.5"]}',
        f'-A {web} -m comment --comment "default/web -> 10.244.0.6:80" -m statistic --mode random --probability 0.5000000000 -j {sep["10.244.0.6"]}',
        f'-A {web} -m comment --comment "default/web -> 10.244.1.5:80" -j {sep["10.244.1.5"]}',
    ]
    assert nat[sep["10.244.1.5"]] == [
        f"-A {sep['10.244.1.5']} -m comment --comment default/web -s 10.244.1.5 -j KUBE-MARK-MASQ",
        f"-A {sep['10.244.1.5']} -m comment --comment default/web -m tcp -p tcp -j DNAT --to-destination 10.244.1.5:80",
    ]
    assert nat[udp][0] == (
        f'-A {udp} -m comment --comment "kube-system/kube-dns:dns cluster IP" -m udp -p udp -d 10.96.0.10 --dport 53 '
        "! -s 10.0.0.0/8 -j KUBE-MARK-MASQ"
    )
    assert nat[udp_sep][1].endswith("-m udp -p udp -j DNAT --to-destination 10.244.0.9:53")
    filt = tables(text)["filter"][1]
    assert filt["KUBE-SERVICES"] == [
        '-A KUBE-SERVICES -m comment --comment "default/empty has no endpoints" -m tcp -p tcp -d 10.96.0.21 --dport 80 -j REJECT'
    ]
    assert not any("empty" in rule for rules in nat.values() for rule in rules)
    tracer = Tracer(text)
    assert tracer.trace("10.244.0.7", "10.96.0.10", 53, "udp") == (["10.244.0.9:53"], False)
    assert tracer.trace("10.244.0.7", "10.96.0.10", 53, "tcp") == (["10.244.0.9:53"], False)
    assert tracer.trace("10.244.0.7", "10.96.0.20", 80) == (["10.244.0.5:80", "10.244.0.6:80", "10.244.1.5:80"], False)
    # Hairpin: the endpoint reaching itself through the Service is masqueraded.
    assert tracer.trace("10.244.0.5", "10.96.0.20", 80)[1] is True


def test_kube_services_ends_with_nodeports_jump():
    nat = tables(render(web_services(), NODE).text)["nat"][1]
    assert nat["KUBE-SERVICES"][-1] == (
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in '
        'this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS'
    )


def test_terminating_endpoints_used_only_when_none_ready():
    svc = sp("default", "web", port_name="", cluster_ip="10.96.0.20")
    ready = Endpoint("10.244.0.5", 80)
    terminating = Endpoint("10.244.0.6", 80, ready=False, serving=True, terminating=True)
    not_serving = Endpoint("10.244.0.7", 80, ready=False, serving=False, terminating=True)
    tracer = Tracer(render({svc: [ready, terminating, not_serving]}, NODE).text)
    assert tracer.trace("10.244.1.1", "10.96.0.20", 80)[0] == ["10.244.0.5:80"]
    tracer = Tracer(render({svc: [terminating, not_serving]}, NODE).text)
    assert tracer.trace("10.244.1.1", "10.96.0.20", 80)[0] == ["10.244.0.6:80"]
    tracer = Tracer(render({svc: [not_serving, Endpoint("10.244.0.8", 80, ready=False)]}, NODE).text)
    assert tracer.trace("10.244.1.1", "10.96.0.20", 80)[0] == ["REJECT"]


def test_internal_traffic_policy_local():
    svc = sp("default", "web", port_name="", cluster_ip="10.96.0.20", internal_policy_local=True)
    local = Endpoint("10.244.0.5", 80, node_name="test-node")
    remote = Endpoint("10.244.1.5", 80, node_name="other")
    text = render({svc: [local, remote]}, NODE).text
    nat = tables(text)["nat"][1]
    svl = service_chains("default/web", "TCP").svl
    assert nat["KUBE-SERVICES"][0].endswith(f"-j {svl}")
    assert service_chains("default/web", "TCP").svc not in nat
    assert Tracer(text).trace("10.244.0.9", "10.96.0.20", 80) == (["10.244.0.5:80"], False)
    # No local endpoint: traffic to the ClusterIP is dropped, not rejected.
    text = render({svc: [remote]}, NODE).text
    assert tables(text)["filter"][1]["KUBE-SERVICES"] == [
        '-A KUBE-SERVICES -m comment --comment "default/web has no local endpoints" -m tcp -p tcp -d 10.96.0.20 --dport 80 -j DROP'
    ]
    assert Tracer(text).trace("10.244.0.9", "10.96.0.20", 80) == (["DROP"], False)


def test_external_policy_local_without_local_endpoints_drops_external_only():
    svc = sp("default", "web", port_name="", cluster_ip="10.96.0.20", node_port=30080, external_policy_local=True)
    text = render({svc: [Endpoint("10.244.1.5", 80, node_name="other")]}, NODE).text
    tracer = Tracer(text)
    assert tracer.trace(EXTERNAL_CLIENT, "192.168.0.2", 30080) == (["DROP"], False)
    assert tracer.trace("10.244.0.9", "192.168.0.2", 30080) == (["10.244.1.5:80"], False)
    assert tracer.trace("10.244.0.9", "10.96.0.20", 80) == (["10.244.1.5:80"], False)
    assert service_chains("default/web", "TCP").svl not in tables(text)["nat"][1]


def test_session_affinity_rules():
    svc = sp("default", "web", port_name="", cluster_ip="10.96.0.20", affinity_timeout=180)
    text = render({svc: [Endpoint("10.244.0.5", 80), Endpoint("10.244.0.6", 80)]}, NODE).text
    chain = service_chains("default/web", "TCP").svc
    seps = [endpoint_chain_name("default/web", "TCP", f"10.244.0.{i}:80") for i in (5, 6)]
    rules = tables(text)["nat"][1][chain]
    assert rules[1:3] == [
        f'-A {chain} -m comment --comment "default/web -> 10.244.0.{i}:80" -m recent --name {sep} '
        f"--rcheck --seconds 180 --reap -j {sep}"
        for i, sep in zip((5, 6), seps)
    ]
    assert "-m recent --name {0} --set -m tcp".format(seps[0]) in tables(text)["nat"][1][seps[0]][1]


def test_large_cluster_drops_endpoint_comments():
    services = {
        sp("default", f"s{i}", port_name="", cluster_ip=f"10.96.{i // 250}.{i % 250 + 1}"): [
            Endpoint(f"10.244.{i // 250}.{i % 250 + 1}", 80), Endpoint(f"10.245.{i // 250}.{i % 250 + 1}", 80)]
        for i in range(501)
    }
    nat = tables(render(services, NODE).text)["nat"][1]
    chain = service_chains("default/s0", "TCP").svc
    sep = endpoint_chain_name("default/s0", "TCP", "10.244.0.1:80")
    assert nat[chain][1] == f"-A {chain} -m statistic --mode random --probability 0.5000000000 -j {sep}"
    assert nat[sep] == [f"-A {sep} -s 10.244.0.1 -j KUBE-MARK-MASQ",
                        f"-A {sep} -m tcp -p tcp -j DNAT --to-destination 10.244.0.1:80"]
    assert '"default/s0 cluster IP"' in nat[chain][0]


def test_large_cluster_dnats_endpoints_on_known_nodes_from_the_service_chain():
    """Above 1,000 endpoints an endpoint with a node gets no KUBE-SEP chain;
    local ones get one hairpin rule each (per IP) at the head of KUBE-POSTROUTING."""
    local, remote = "10.244.9.7", "10.244.9.9"
    services = {
        sp("default", f"s{i}", port_name="", cluster_ip=f"10.96.{i // 250}.{i % 250 + 1}"): [
            Endpoint(local if i < 2 else f"10.244.{i // 250}.{i % 250 + 1}", 80, node_name="test-node"),
            Endpoint(remote, 80 + i, node_name="other-node")]
        for i in range(501)
    }
    affinity = sp("default", "sticky", port_name="", cluster_ip="10.97.0.1", affinity_timeout=10800)
    etp_local = sp("default", "lb", port_name="", cluster_ip="10.97.0.2", node_port=30002, external_policy_local=True)
    nodeless = sp("default", "manual", port_name="", cluster_ip="10.97.0.3")
    for extra in (affinity, etp_local):
        services[extra] = [Endpoint(remote, 80, node_name="other-node")]
    services[nodeless] = [Endpoint("192.168.7.7", 80)]
    ruleset = render(services, NODE)
    nat = tables(ruleset.text)["nat"][1]

    chain = service_chains("default/s0", "TCP").svc
    assert nat[chain][1:] == [
        f"-A {chain} -m statistic --mode random --probability 0.5000000000 -m tcp -p tcp -j DNAT --to-destination {local}:80",
        f"-A {chain} -m tcp -p tcp -j DNAT --to-destination {remote}:80"]
    assert endpoint_chain_name("default/s0", "TCP", f"{local}:80") not in nat
    hairpin = [r for r in nat["KUBE-POSTROUTING"] if "hairpin" in r]
    assert nat["KUBE-POSTROUTING"][:len(hairpin)] == hairpin  # before the mark check
    assert len(hairpin) == 500  # the local IP serves s0 and s1 but has one rule; remote IPs have none
    assert f'-A KUBE-POSTROUTING -m comment --comment "hairpin traffic of local endpoint {local}" ' \
           f"-s {local} -d {local} -j KUBE-MARK-MASQ" in hairpin
    assert not any(remote in r for r in hairpin)
    for kept, address in ((affinity, f"{remote}:80"), (etp_local, f"{remote}:80"), (nodeless, "192.168.7.7:80")):
        assert endpoint_chain_name(kept.spn, "TCP", address) in nat, kept.spn
    tracer = Tracer(ruleset.text)
    assert tracer.trace("10.244.5.5", "10.96.0.1", 80) == ([f"{local}:80", f"{remote}:80"], False)
    assert tracer.trace("203.0.113.9", "10.96.0.1", 80) == ([f"{local}:80", f"{remote}:80"], True)
    assert tracer.trace("10.244.5.5", "10.97.0.3", 80) == (["192.168.7.7:80"], False)


def test_headless_port_and_duplicates():
    headless = sp("default", "db", port_name="", cluster_ip=None)
    web = sp("default", "web", port_name="", cluster_ip="10.96.0.20")
    dup = [Endpoint("10.244.0.5", 80, ready=False, serving=True, terminating=True), Endpoint("10.244.0.5", 80)]
    ruleset = render({headless: [Endpoint("10.244.0.9", 5432)], web: dup}, NODE)
    assert "default/db" not in ruleset.text
    assert Tracer(ruleset.text).trace("10.244.1.1", "10.96.0.20", 80) == (["10.244.0.5:80"], False)


def test_masquerade_bit_is_configurable():
    text = render({}, NodeInfo("n", "10.244.0.0/16", masquerade_bit=15)).text
    assert "-A KUBE-MARK-MASQ -j MARK --or-mark 0x00008000" in text
