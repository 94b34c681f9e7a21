"""NSPLANE_DNS_KUBERNETES_OPTIONS (agent/coredns/options.py) and CIDR reverse zones (dns.names)."""

import pytest

from agent.coredns.options import OptionsError, options_from_json
from dns.names import labels_of, reverse_zones_of
from dns.records import Config


@pytest.mark.parametrize("cidr,zones", [
    # coredns/ci ptr_test.go: `kubernetes cluster.local 10.96.0.0/24 172.17.0.0/24 1234:abcd::0/64`
    ("10.96.0.0/24", ["0.96.10.in-addr.arpa"]),
    ("172.17.0.0/24", ["0.17.172.in-addr.arpa"]),
    ("1234:abcd::0/64", ["0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa"]),   # 64 bits = 16 nibbles
    # plugin/pkg/cidr: split on label boundaries
    ("10.0.0.0/23", ["0.0.10.in-addr.arpa", "1.0.10.in-addr.arpa"]),
    ("10.96.0.0/16", ["96.10.in-addr.arpa"]),
    ("10.0.0.7/24", ["0.0.10.in-addr.arpa"]),
    ("fd00::/7", ["c.f.ip6.arpa", "d.f.ip6.arpa"]),
])
def test_reverse_zones_of_cidrs(cidr, zones):
    assert reverse_zones_of(cidr) == tuple(labels_of(z) for z in zones)


def test_hook_fills_config():
    opts = options_from_json('{"zones": ["cluster.local", "10.0.0.0/24"], "pods": "verified", '
                             '"namespaces": ["default"], "endpoint_pod_names": true, "noendpoints": false, '
                             '"ignore_empty_service": true, "fallthrough": ["in-addr.arpa"], "ttl": 5}')
    cfg = Config(**opts)
    assert cfg.zones == (("cluster", "local"), ("0", "0", "10", "in-addr", "arpa"))
    assert (cfg.pods, cfg.namespaces, cfg.endpoint_pod_names, cfg.ignore_empty_service, cfg.ttl) == (
        "verified", frozenset({"default"}), True, True, 5)
    assert cfg.fallthrough == (("in-addr", "arpa"),)
    assert Config(**options_from_json('{"fallthrough": null}')).fallthrough is None
    assert Config(**options_from_json('{"fallthrough": []}')).falls_through(("any", "name"))
    # keys left out keep kubeadm's values
    assert Config(**options_from_json('{"pods": "disabled"}')).reverse_zones == Config().reverse_zones


@pytest.mark.parametrize("text,words", [
    ("pods verified", "not JSON"),
    ("[]", "must be a JSON object"),
    ('{"pod": "verified"}', "unknown property 'pod'"),
    ('{"zones": ["cluster.local", "example.org"]}', "exactly one non-reverse zone"),
    ('{"zones": ["cluster.local", "10.0.0.300/24"]}', "is not a CIDR"),
    ('{"noendpoints": "yes"}', "noendpoints must be true or false"),
    ('{"ttl": "30"}', "ttl must be a whole number"),
    ('{"namespaces": []}', "namespaces must be a non-empty list"),
])
def test_hook_refuses_bad_values_naming_the_key(text, words):
    with pytest.raises(OptionsError, match=words):
        options_from_json(text)


def test_out_of_range_values_are_refused_by_config():
    with pytest.raises(ValueError, match=r"ttl must be in range \[0, 3600\]: 3601"):
        Config(**options_from_json('{"ttl": 3601}'))


def test_coredns_pod_stops_with_the_message_on_a_bad_value(monkeypatch, caplog):
    from agent.coredns.main import main

    monkeypatch.setenv("NSPLANE_DNS_KUBERNETES_OPTIONS", '{"pods": "sometimes"}')
    assert main([]) == 1
    assert "wrong value for pods: sometimes,  must be one of: disabled, verified, insecure" in caplog.text
