"""The ported DNS specs' probe commands and pod, checked against the text
upstream's dns_common.go builds (createProbeCommand,
createTargetedProbeCommand, createDNSPod), without a cluster."""
from tests.conformance.dns_common import (
    JESSIE_DNSUTILS,
    DNSQuerier,
    create_dns_pod,
    create_probe_command,
    create_service_spec,
    create_targeted_probe_command,
    reverse_addr,
)
from tests.conformance.framework import AGNHOST


def test_probe_command_is_upstreams():
    cmd, files = create_probe_command(["kubernetes.default", "_http._tcp.web.ns.svc"], ["dns-querier-1"],
                                      "10.96.0.12", "jessie")
    assert cmd == (
        "for i in `seq 1 600`; do "
        'check="$$(dig +notcp +noall +answer +search kubernetes.default A)" && test -n "$$check" '
        "&& echo OK > /results/jessie_udp@kubernetes.default;"
        'check="$$(dig +tcp +noall +answer +search kubernetes.default A)" && test -n "$$check" '
        "&& echo OK > /results/jessie_tcp@kubernetes.default;"
        'check="$$(dig +notcp +noall +answer +search _http._tcp.web.ns.svc SRV)" && test -n "$$check" '
        "&& echo OK > /results/jessie_udp@_http._tcp.web.ns.svc;"
        'check="$$(dig +tcp +noall +answer +search _http._tcp.web.ns.svc SRV)" && test -n "$$check" '
        "&& echo OK > /results/jessie_tcp@_http._tcp.web.ns.svc;"
        'test -n "$$(getent hosts dns-querier-1)" && echo OK > /results/jessie_hosts@dns-querier-1;'
        'check="$$(dig +notcp +noall +answer +search 12.0.96.10.in-addr.arpa. PTR)" && test -n "$$check" '
        "&& echo OK > /results/10.96.0.12_udp@PTR;"
        'check="$$(dig +tcp +noall +answer +search 12.0.96.10.in-addr.arpa. PTR)" && test -n "$$check" '
        "&& echo OK > /results/10.96.0.12_tcp@PTR;"
        "sleep 1; done")
    assert files == ["jessie_udp@kubernetes.default", "jessie_tcp@kubernetes.default",
                     "jessie_udp@_http._tcp.web.ns.svc", "jessie_tcp@_http._tcp.web.ns.svc",
                     "jessie_hosts@dns-querier-1", "10.96.0.12_udp@PTR", "10.96.0.12_tcp@PTR"]


def test_targeted_probe_command_is_upstreams():
    cmd, file = create_targeted_probe_command("svc.ns.svc.cluster.local", "CNAME", "agnhost")
    assert file == "agnhost_udp@svc.ns.svc.cluster.local"
    assert cmd == ("for i in `seq 1 30`; do dig +short svc.ns.svc.cluster.local CNAME > "
                   "/results/agnhost_udp@svc.ns.svc.cluster.local; sleep 1; done")


def test_reverse_addr_is_fully_qualified():
    assert reverse_addr("10.96.0.1") == "1.0.96.10.in-addr.arpa."
    assert reverse_addr("fd00::1").endswith(".ip6.arpa.")


def test_dns_pod_is_upstreams():
    pod = create_dns_pod("ns1", [DNSQuerier("agnhost", AGNHOST, "A"), DNSQuerier("jessie", JESSIE_DNSUTILS, "J")],
                         "dns-querier-1", "dns-test-service")
    spec = pod["spec"]
    assert pod["metadata"]["name"].startswith("dns-test-")
    assert (spec["hostname"], spec["subdomain"]) == ("dns-querier-1", "dns-test-service")
    assert spec["volumes"] == [{"name": "results", "emptyDir": {}}]
    web, agn, jessie = spec["containers"]
    mounts = [{"name": "results", "mountPath": "/results"}]
    assert (web["name"], web["image"], web["args"], web["volumeMounts"]) == ("webserver", AGNHOST,
                                                                           ["test-webserver"], mounts)
    assert (agn["name"], agn["image"], agn["command"], agn["volumeMounts"]) == ("agnhost-querier", AGNHOST,
                                                                              ["sh", "-c", "A"], mounts)
    assert "args" not in agn
    assert (jessie["name"], jessie["image"], jessie["command"]) == ("jessie-querier", JESSIE_DNSUTILS,
                                                                   ["sh", "-c", "J"])
    assert spec["terminationGracePeriodSeconds"] == 0


def test_service_specs_are_upstreams():
    assert create_service_spec("h", "", True, {"a": "b"})["spec"] == {
        "selector": {"a": "b"}, "ports": [{"port": 80, "name": "http", "protocol": "TCP"}], "clusterIP": "None"}
    assert create_service_spec("e", "foo.example.com", False, None)["spec"] == {
        "type": "ExternalName", "externalName": "foo.example.com"}
