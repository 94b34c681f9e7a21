"""The Corefile parser and the plugins' pure parts, against CoreDNS's wording and behaviour."""
import pytest

from agent.controllers.bootstrap import COREFILE
from dns.corefile import CorefileError, load
from dns.corefile.zones import reverse_zones, server_key
from dns.hosts import parse_hosts
from dns.querylog import reply_class
from dns.rewrite import apply, rewrite_name
from dns.corefile.plugins_more import RewriteRule

KUBEADM = COREFILE.format(domain="cluster.local", upstream="10.0.0.2")


def test_kubeadm_corefile_loads_in_plugin_cfg_order():
    (s,) = load(KUBEADM, "/etc/coredns/Corefile").servers
    assert s.zones == (".",) and s.port == 53
    assert s.plugins == ("reload", "ready", "health", "prometheus", "errors", "loadbalance", "cache",
                         "kubernetes", "loop", "forward")
    assert s.kubernetes.domain == ("cluster", "local") and s.kubernetes.pods == "insecure"
    assert s.kubernetes.fallthrough == (("in-addr", "arpa"), ("ip6", "arpa")) and s.kubernetes.ttl == 30
    assert s.forward[0].to == (("10.0.0.2", 53),) and s.forward[0].max_concurrent == 1000
    assert s.cache.success[1] == 30 and s.cache.disable_success == ("cluster.local.",)
    assert s.health.lameduck == 5.0 and s.prometheus.port == 9153


@pytest.mark.parametrize("text,error", [
    (".:53 {\n  foo\n}", "/etc/coredns/Corefile:2 - Error during parsing: Unknown directive 'foo'"),
    (".:53 {\n forward . foo\n}", 'plugin/forward: not an IP address or file: "foo"'),
    (".:53 {\n kubernetes {\n pods bogus\n }\n}",
     "plugin/kubernetes: wrong value for pods: bogus,  must be one of: disabled, verified, insecure"),
    (".:53 {\n kubernetes {\n ttl 5000\n }\n}",
     "plugin/kubernetes: /etc/coredns/Corefile:3 - Error during parsing: ttl must be in range [0, 3600]: 5000"),
    (".:53 {\n forward . 1.1.1.1 {\n policy x\n }\n}",
     "plugin/forward: /etc/coredns/Corefile:3 - Error during parsing: unknown policy 'x'"),
    (".:53 {\n errors\n", "/etc/coredns/Corefile:2 - Error during parsing: Unexpected EOF"),
    (".:53 {\n kubernetes {\n pods\n }\n}", "plugin/kubernetes: /etc/coredns/Corefile:3 - Error during parsing: "
                                          "Wrong argument count or unexpected line ending after 'pods'"),
    (".:53 {\n kubernetes\n kubernetes\n}", "plugin/kubernetes: this plugin can only be used once per Server Block"),
    (".:53 {\n kubernetes cluster.local 10.0.0.300/24\n}",
     "plugin/kubernetes: '10.0.0.300/24' is not a CIDR: write a network such as 10.96.0.0/12"),
    (".:53 {\n kubernetes cluster.local example.org\n}", "plugin/kubernetes: nsplane serves one cluster zone"),
    (".:53 {\n kubernetes {\n ttl 30s\n }\n}", 'plugin/kubernetes: strconv.Atoi: parsing "30s": invalid syntax'),
    ("a.org {\n whoami\n}\na.org {\n whoami\n}", "plugin/whoami: not supported"),
    (".:53 {\n forward . 1.1.1.1\n}\n.:53 {\n forward . 1.1.1.1\n}", "cannot serve dns://.:53 - it is already defined"),
])
def test_errors_read_as_coredns_writes_them(text, error):
    with pytest.raises(CorefileError) as e:
        load(text, "/etc/coredns/Corefile", env={})
    assert str(e.value).startswith(error)


@pytest.mark.parametrize("cidr,zones", [
    # coredns/ci ptr_test.go: `kubernetes cluster.local 10.96.0.0/24 172.17.0.0/24 1234:abcd::0/64`
    ("10.96.0.0/24", ["0.96.10.in-addr.arpa."]),
    ("172.17.0.0/24", ["0.17.172.in-addr.arpa."]),
    ("1234:abcd::0/64", ["0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa."]),   # 64 bits = 16 nibbles
    # plugin/pkg/cidr: split on label boundaries
    ("10.0.0.0/23", ["0.0.10.in-addr.arpa.", "1.0.10.in-addr.arpa."]),
    ("10.96.0.0/16", ["96.10.in-addr.arpa."]),
    ("10.0.0.7/24", ["0.0.10.in-addr.arpa."]),
    ("fd00::/7", ["c.f.ip6.arpa.", "d.f.ip6.arpa."]),
    ("10.0.0.0/8", ["10.in-addr.arpa."]),
])
def test_reverse_zones_of_cidrs(cidr, zones):
    assert reverse_zones(cidr) == zones


def test_kubernetes_block_options_become_config():
    (s,) = load(""".:53 {
    kubernetes cluster.local 10.0.0.0/24 {
        pods verified
        namespaces default
        endpoint_pod_names
        ignore empty_service
        fallthrough in-addr.arpa
        ttl 5
    }
}""", env={}).servers
    cfg = s.kubernetes
    assert cfg.zones == (("cluster", "local"), ("0", "0", "10", "in-addr", "arpa"))
    assert (cfg.pods, cfg.namespaces, cfg.endpoint_pod_names, cfg.ignore_empty_service, cfg.ttl) == (
        "verified", frozenset({"default"}), True, True, 5)
    assert cfg.fallthrough == (("in-addr", "arpa"),) and not cfg.noendpoints


def test_keys_snippets_env_and_reverse_cidrs():
    text = """(common) {
        errors
    }
    example.org:1053 dns://10.0.0.0/15:1053 {
        import common
        forward . {$UP}:5353 10.0.0.54 {
           policy sequential
           except internal.example.org
        }
    }"""
    (s,) = load(text, env={"UP": "10.0.0.53"}).servers
    assert s.zones == ("example.org.", "0.10.in-addr.arpa.", "1.10.in-addr.arpa.") and s.port == 1053
    assert s.plugins == ("errors", "forward")
    f = s.forward[0]
    assert f.to == (("10.0.0.53", 5353), ("10.0.0.54", 53)) and f.policy == "sequential"
    assert f.ignored == ("internal.example.org.",)
    assert server_key(".:53") == ("dns", ["."], 53)


def test_hosts_rewrite_and_log_pure_parts():
    fwd, rev = parse_hosts("10.1.2.3 db.legacy.internal db # comment\nfd00::1 six.test\n")
    assert fwd["db.legacy.internal."] == ["10.1.2.3"] and rev["3.2.1.10.in-addr.arpa."] == ["db.legacy.internal.", "db."]
    suffix = RewriteRule(True, "suffix", ".svc.clusterset.local", ".svc.cluster.local", answer_auto=True)
    assert rewrite_name(suffix, "web.ns.svc.clusterset.local.") == "web.ns.svc.cluster.local."
    regex = RewriteRule(True, "regex", r"(.*)\.foo\.test\.$", "{1}.default.svc.cluster.local")
    assert rewrite_name(regex, "web.foo.test.") == "web.default.svc.cluster.local."
    name, hit = apply((suffix, regex), "web.ns.svc.clusterset.local.")
    assert name == "web.ns.svc.cluster.local." and len(hit) == 1      # stop after the first match
    assert reply_class(bytes.fromhex("000081830001000000000000")) == "denial"
