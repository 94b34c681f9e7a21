"""Ports of test/e2e/network/dns.go ([sig-network] DNS): its eight
[Conformance] specs, "should resolve DNS of partial qualified names for the
cluster" and the two search-path specs, with upstream's objects, probe commands, images and timeouts
(dns_common.py), through real kubectl.

The probe pods need of the kubelet an emptyDir shared by their containers
and `$$` escapes in commands; "configurable pod DNS nameservers" needs
`/agnhost` inside the agnhost container. Each spec skips, naming what is
missing, where the cluster's kubelet does not give it (framework.kubelet_gaps).
"""
from __future__ import annotations

import json

import pytest

from tests.conformance.dns_common import (
    create_dns_pod,
    create_probe_command,
    create_service_spec,
    create_targeted_probe_command,
    probers,
    skip_unless_probe_pods_run,
    validate_dns_results,
    validate_targeted_probe_output,
)
from tests.conformance.framework import (
    POD_START_TIMEOUT,
    POLL,
    agnhost_pod,
    kubelet_gaps,
    pod_ready,
    poll,
)

pytestmark = pytest.mark.integration

BASE_NAME = "dns"
DNS_TEST_POD_HOSTNAME = "dns-querier-1"
DNS_TEST_SERVICE_NAME = "dns-test-service"


def domain(f) -> str:
    return f.cluster.cfg.cluster_domain


def run_probes(f, names: list[str], host_entries: list[str], ptr_ip: str = "", labels: dict | None = None,
               hostname: str = DNS_TEST_POD_HOSTNAME, subdomain: str = DNS_TEST_SERVICE_NAME,
               dns_config: dict | None = None) -> None:
    """createProbeCommand for agnhost and jessie, createDNSPod, validateDNSResults
    (with dnsPolicy ClusterFirst and `dns_config`, when given)."""
    files: list[str] = []

    def make(prefix: str) -> str:
        cmd, names_ = create_probe_command(names, host_entries, ptr_ip, prefix)
        files.extend(names_)
        return cmd
    pod = create_dns_pod(f.ns, probers(make), DNS_TEST_POD_HOSTNAME, DNS_TEST_SERVICE_NAME)
    if labels:
        pod["metadata"]["labels"] = labels
    pod["spec"]["hostname"], pod["spec"]["subdomain"] = hostname, subdomain
    if dns_config is not None:
        pod["spec"]["dnsPolicy"], pod["spec"]["dnsConfig"] = "ClusterFirst", dns_config
    validate_dns_results(f, pod, files)


def create_headless_and_regular(f, selector: dict) -> dict:
    """The headless dns-test-service and the regular test-service-2; returns the latter."""
    f.create(create_service_spec(DNS_TEST_SERVICE_NAME, "", True, selector))
    return f.create(create_service_spec("test-service-2", "", False, selector))


def test_should_provide_dns_for_the_cluster(framework):
    """[sig-network] DNS should provide DNS for the cluster [Conformance]"""
    f = framework
    skip_unless_probe_pods_run(f)
    run_probes(f, [f"kubernetes.default.svc.{domain(f)}"], [])


def test_should_resolve_dns_of_partial_qualified_names_for_the_cluster(framework):
    """[sig-network] DNS should resolve DNS of partial qualified names for the
    cluster [LinuxOnly] (not [Conformance])"""
    f = framework
    skip_unless_probe_pods_run(f)
    host_fqdn = f"{DNS_TEST_POD_HOSTNAME}.{DNS_TEST_SERVICE_NAME}.{f.ns}.svc.{domain(f)}"
    run_probes(f, ["kubernetes.default", "kubernetes.default.svc"], [host_fqdn, DNS_TEST_POD_HOSTNAME])


def test_should_provide_etc_hosts_entries_for_the_cluster(framework):
    """[sig-network] DNS should provide /etc/hosts entries for the cluster [Conformance]"""
    f = framework
    skip_unless_probe_pods_run(f)
    host_fqdn = f"{DNS_TEST_POD_HOSTNAME}.{DNS_TEST_SERVICE_NAME}.{f.ns}.svc.{domain(f)}"
    run_probes(f, [], [host_fqdn, DNS_TEST_POD_HOSTNAME])


def test_should_provide_dns_for_services(framework):
    """[sig-network] DNS should provide DNS for services [Conformance]"""
    f = framework
    skip_unless_probe_pods_run(f)
    selector = {"dns-test": "true"}
    regular = create_headless_and_regular(f, selector)
    d = domain(f)
    names = [f"{DNS_TEST_SERVICE_NAME}.{f.ns}.svc.{d}",
             f"_http._tcp.{DNS_TEST_SERVICE_NAME}.{f.ns}.svc.{d}",
             f"_http._tcp.{regular['metadata']['name']}.{f.ns}.svc.{d}"]
    run_probes(f, names, [], regular["spec"]["clusterIP"], labels=selector)


def test_should_resolve_dns_of_partial_qualified_names_for_services(framework):
    """[sig-network] DNS should resolve DNS of partial qualified names for
    services [LinuxOnly] [Conformance]"""
    f = framework
    skip_unless_probe_pods_run(f)
    selector = {"dns-test": "true"}
    regular = create_headless_and_regular(f, selector)
    h, ns = DNS_TEST_SERVICE_NAME, f.ns
    names = [h, f"{h}.{ns}", f"{h}.{ns}.svc", f"_http._tcp.{h}.{ns}.svc",
             f"_http._tcp.{regular['metadata']['name']}.{ns}.svc"]
    run_probes(f, names, [], regular["spec"]["clusterIP"], labels=selector)


def test_should_provide_dns_for_pods_for_hostname(framework):
    """[sig-network] DNS should provide DNS for pods for Hostname [Conformance]"""
    f = framework
    skip_unless_probe_pods_run(f)
    selector = {"dns-test-hostname-attribute": "true"}
    service_name, pod_hostname = "dns-test-service-2", "dns-querier-2"
    f.create(create_service_spec(service_name, "", True, selector))
    host_fqdn = f"{pod_hostname}.{service_name}.{f.ns}.svc.{domain(f)}"
    run_probes(f, [], [host_fqdn, pod_hostname], labels=selector, hostname=pod_hostname, subdomain=service_name)


def test_should_provide_dns_for_pods_for_subdomain(framework):
    """[sig-network] DNS should provide DNS for pods for Subdomain [Conformance]"""
    f = framework
    skip_unless_probe_pods_run(f)
    selector = {"dns-test-hostname-attribute": "true"}
    service_name, pod_hostname = "dns-test-service-2", "dns-querier-2"
    f.create(create_service_spec(service_name, "", True, selector))
    host_fqdn = f"{pod_hostname}.{service_name}.{f.ns}.svc.{domain(f)}"
    subdomain = f"{service_name}.{f.ns}.svc.{domain(f)}"
    run_probes(f, [host_fqdn, subdomain], [], labels=selector, hostname=pod_hostname, subdomain=service_name)


def test_should_provide_dns_for_externalname_services(framework):
    """[sig-network] DNS should provide DNS for ExternalName services [Conformance]"""
    f = framework
    skip_unless_probe_pods_run(f)
    service_name = "dns-test-service-3"
    f.create(create_service_spec(service_name, "foo.example.com", False, None))
    host_fqdn = f"{service_name}.{f.ns}.svc.{domain(f)}"

    def probe(record: str, value: str) -> None:
        files: list[str] = []

        def make(prefix: str) -> str:
            cmd, file = create_targeted_probe_command(host_fqdn, record, prefix)
            files.append(file)
            return cmd
        pod = create_dns_pod(f.ns, probers(make), DNS_TEST_POD_HOSTNAME, DNS_TEST_SERVICE_NAME)
        validate_targeted_probe_output(f, pod, files, value)

    # By("creating a pod to probe DNS")
    probe("CNAME", "foo.example.com.")
    # By("changing the externalName to bar.example.com")
    update_service(f, service_name, lambda s: s["spec"].update(externalName="bar.example.com"))
    # By("creating a second pod to probe DNS")
    probe("CNAME", "bar.example.com.")
    # By("changing the service to type=ClusterIP")
    update_service(f, service_name, lambda s: s["spec"].update(
        type="ClusterIP", ports=[{"port": 80, "name": "http", "protocol": "TCP"}]))
    # By("creating a third pod to probe DNS")
    probe("A", f.get("service", service_name)["spec"]["clusterIP"])


def test_should_support_configurable_pod_dns_nameservers(framework):
    """[sig-network] DNS should support configurable pod DNS nameservers [Conformance]"""
    f = framework
    gaps = [g for g in kubelet_gaps(f) if "/agnhost" in g]
    if gaps:
        pytest.skip("needs " + "; ".join(gaps))
    # By("Creating a pod with dnsPolicy=None and customized dnsConfig...")
    test_server_ip, test_search_path = "1.1.1.1", "resolv.conf.local"
    pod = agnhost_pod("test-dns-nameservers")
    pod["spec"]["dnsPolicy"] = "None"
    pod["spec"]["dnsConfig"] = {"nameservers": [test_server_ip], "searches": [test_search_path]}
    name = f.create(pod)["metadata"]["name"]
    try:
        poll(POLL, POD_START_TIMEOUT, lambda: pod_ready(f.get("pod", name)),
             what=f"pod {f.ns}/{name} to be running")
        container = pod["spec"]["containers"][0]["name"]

        def run_command(arg: str) -> str:
            r = f.kubectl("exec", name, "-c", container, "--", "/agnhost", arg, check=False)
            assert r.returncode == 0, f"failed to run command '/agnhost {arg}' on pod, stdout: {r.stdout}, " \
                                      f"stderr: {r.stderr}, err: exit {r.returncode}"
            return r.stdout
        # By("Verifying customized DNS suffix list is configured on pod...")
        stdout = run_command("dns-suffix")
        assert test_search_path in stdout, "customized DNS suffix list not found configured in pod, " \
                                           f"expected to contain: {test_search_path}, got: {stdout}"
        # By("Verifying customized DNS server is configured on pod...")
        stdout = run_command("dns-server-list")
        assert test_server_ip in stdout, "customized DNS server not found in configured in pod, " \
                                         f"expected to contain: {test_server_ip}, got: {stdout}"
    finally:
        f.kubectl("delete", "pod", name, "--grace-period=0", "--wait=false", check=False)


def test_should_work_with_the_pod_containing_more_than_6_dns_search_paths_and_longer_than_256_search_list_characters(
        framework):
    """[sig-network] DNS should work with the pod containing more than 6 DNS
    search paths and longer than 256 search list characters (not [Conformance])"""
    f = framework
    skip_unless_probe_pods_run(f)
    host_fqdn = f"{DNS_TEST_POD_HOSTNAME}.{DNS_TEST_SERVICE_NAME}.{f.ns}.svc.{domain(f)}"
    searches = [f"{i:038d}.k8s.io" for i in range(1, 7)]        # 260 characters
    run_probes(f, ["kubernetes.default", "kubernetes.default.svc"], [host_fqdn, DNS_TEST_POD_HOSTNAME],
               dns_config={"searches": searches, "options": [{"name": "ndots", "value": "5"}]})


def test_should_work_with_a_search_path_containing_an_underscore_and_a_search_path_with_a_single_dot(framework):
    """[sig-network] DNS should work with a search path containing an
    underscore and a search path with a single dot (not [Conformance])"""
    f = framework
    skip_unless_probe_pods_run(f)
    host_fqdn = f"{DNS_TEST_POD_HOSTNAME}.{DNS_TEST_SERVICE_NAME}.{f.ns}.svc.{domain(f)}"
    run_probes(f, ["kubernetes.default", "kubernetes.default.svc"], [host_fqdn, DNS_TEST_POD_HOSTNAME],
               dns_config={"searches": [".", "_sip._tcp.abc_d.example.com"]})


def update_service(f, name: str, update) -> dict:
    """e2eservice.UpdateService: get, change, Update, retried on conflicts."""
    for _ in range(3):
        svc = f.get("service", name)
        update(svc)
        r = f.kubectl("replace", "-f", "-", "-o", "json", input=json.dumps(svc), check=False)
        if r.returncode == 0:
            return json.loads(r.stdout)
        assert "Conflict" in r.stderr or "has been modified" in r.stderr, \
            f'failed to update Service "{name}": {r.stderr.strip()}'
    raise AssertionError(f'too many retries updating Service "{name}"')
