"""Ports of test/e2e/network/service.go's [Conformance] specs ([sig-network]
Services) that put single agnhost `netexec` pods behind a Service
(createPodOrFail) and follow its Endpoints and EndpointSlices as pods come
and go (validateEndpointsPortsOrFail), checking reachability with `nc`
from an agnhost exec pod. Same objects, checks and timeouts as upstream."""
import time

import pytest

from tests.conformance.framework import create_exec_pod
from tests.conformance.service_jig import (
    TestJig,
    create_pod_or_fail,
    delete_pod_or_fail,
    endpoint_reachability,
    validate_endpoints_ports_or_fail,
)

pytestmark = pytest.mark.integration

BASE_NAME = "services"


def test_should_serve_a_basic_endpoint_from_pods(framework):
    """[sig-network] Services should serve a basic endpoint from pods [Conformance]"""
    f, service_name = framework, "endpoint-test2"
    jig = TestJig(f, service_name)
    # By("creating service " + serviceName + " in namespace " + ns)
    svc = jig.create_tcp_service()
    names: set[str] = set()
    try:
        validate_endpoints_ports_or_fail(f, service_name, {})

        create_pod_or_fail(f, "pod1", jig.labels, [{"containerPort": 80}], "netexec", "--http-port", "80")
        names.add("pod1")
        validate_endpoints_ports_or_fail(f, service_name, {"pod1": [80]})

        # By("Checking if the Service forwards traffic to pod1")
        exec_pod = create_exec_pod(f, "execpod")
        jig.check_service_reachability(svc, exec_pod)

        create_pod_or_fail(f, "pod2", jig.labels, [{"containerPort": 80}], "netexec", "--http-port", "80")
        names.add("pod2")
        validate_endpoints_ports_or_fail(f, service_name, {"pod1": [80], "pod2": [80]})

        # By("Checking if the Service forwards traffic to pod1 and pod2")
        jig.check_service_reachability(svc, exec_pod)

        delete_pod_or_fail(f, "pod1")
        names.discard("pod1")
        validate_endpoints_ports_or_fail(f, service_name, {"pod2": [80]})

        # By("Checking if the Service forwards traffic to pod2")
        jig.check_service_reachability(svc, exec_pod)

        delete_pod_or_fail(f, "pod2")
        names.discard("pod2")
        validate_endpoints_ports_or_fail(f, service_name, {})
    finally:
        for name in names:
            f.kubectl("delete", "pod", name, "--wait=false")
        f.kubectl("delete", "service", service_name)


def test_should_serve_multiport_endpoints_from_pods(framework):
    """[sig-network] Services should serve multiport endpoints from pods [Conformance]"""
    f, service_name = framework, "multi-endpoint-test"
    jig = TestJig(f, service_name)
    svc1port, svc2port = "svc1", "svc2"

    # By("creating service " + serviceName + " in namespace " + ns)
    def two_ports(s):
        s["spec"]["ports"] = [{"name": "portname1", "port": 80, "targetPort": svc1port},
                              {"name": "portname2", "port": 81, "targetPort": svc2port}]
    svc = jig.create_tcp_service(two_ports)
    names: set[str] = set()
    try:
        port1, port2 = 100, 101
        validate_endpoints_ports_or_fail(f, service_name, {})

        create_pod_or_fail(f, "pod1", jig.labels, [{"name": svc1port, "containerPort": port1}],
                           "netexec", "--http-port", str(port1))
        names.add("pod1")
        validate_endpoints_ports_or_fail(f, service_name, {"pod1": [port1]})

        create_pod_or_fail(f, "pod2", jig.labels, [{"name": svc2port, "containerPort": port2}],
                           "netexec", "--http-port", str(port2))
        names.add("pod2")
        validate_endpoints_ports_or_fail(f, service_name, {"pod1": [port1], "pod2": [port2]})

        # By("Checking if the Service forwards traffic to pods")
        exec_pod = create_exec_pod(f, "execpod")
        jig.check_service_reachability(svc, exec_pod)

        delete_pod_or_fail(f, "pod1")
        names.discard("pod1")
        validate_endpoints_ports_or_fail(f, service_name, {"pod2": [port2]})

        delete_pod_or_fail(f, "pod2")
        names.discard("pod2")
        validate_endpoints_ports_or_fail(f, service_name, {})
    finally:
        for name in names:
            f.kubectl("delete", "pod", name, "--wait=false")
        f.kubectl("delete", "service", service_name)


def _eventually_unreachable(f, cluster_ip: str, protocol: str, exec_pod: dict) -> None:
    """gomega.Eventually(testEndpointReachability(..., 6s)).WithTimeout(30s)
    .WithPolling(5s).ShouldNot(BeNil()): within 30 s, one 6 s reachability
    check must fail."""
    deadline = time.monotonic() + 30
    while True:
        if endpoint_reachability(f, cluster_ip, 80, protocol, exec_pod, 6) is not None:
            return
        if time.monotonic() + 5 > deadline:
            raise AssertionError(f"Service {cluster_ip}:80/{protocol} still forwards traffic after 30s")
        time.sleep(5)


def test_should_serve_endpoints_on_same_port_and_different_protocols(framework):
    """[sig-network] Services should serve endpoints on same port and different
    protocols [Conformance]"""
    f, service_name = framework, "multiprotocol-test"
    test_labels = {"app": "multiport"}
    container_port = 80
    svc_tcp_port = {"name": "tcp-port", "port": 80, "targetPort": container_port, "protocol": "TCP"}
    svc_udp_port = {"name": "udp-port", "port": 80, "targetPort": container_port, "protocol": "UDP"}

    # By("creating service " + serviceName + " in namespace " + ns)
    service = f.create({"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": service_name, "labels": dict(test_labels)},
                        "spec": {"type": "ClusterIP", "selector": dict(test_labels),
                                 "ports": [dict(svc_tcp_port), dict(svc_udp_port)]}})
    cluster_ip = service["spec"]["clusterIP"]

    container_ports = [{"name": "tcp-port", "containerPort": container_port, "protocol": "TCP"},
                       {"name": "udp-port", "containerPort": container_port, "protocol": "UDP"}]
    # By("creating pod " + podname1 + " in namespace " + ns)
    create_pod_or_fail(f, "pod1", test_labels, container_ports,
                       "netexec", "--http-port", str(container_port), "--udp-port", str(container_port))
    validate_endpoints_ports_or_fail(f, service_name, {"pod1": [(80, "TCP"), (80, "UDP")]}, with_protocol=True)

    # By("Checking if the Service forwards traffic to the TCP and UDP port")
    exec_pod = create_exec_pod(f, "execpod")
    err = endpoint_reachability(f, cluster_ip, 80, "TCP", exec_pod, 30)
    assert err is None, f"Failed to connect to Service TCP port: {err}"
    err = endpoint_reachability(f, cluster_ip, 80, "UDP", exec_pod, 30)
    assert err is None, f"Failed to connect to Service UDP port: {err}"

    # By("Checking if the Service forwards traffic to TCP only")
    service = f.get("service", service_name)
    service["spec"]["ports"] = [dict(svc_tcp_port)]
    f.update(service)
    err = endpoint_reachability(f, cluster_ip, 80, "TCP", exec_pod, 30)
    assert err is None, f"Failed to connect to Service TCP port: {err}"
    _eventually_unreachable(f, cluster_ip, "UDP", exec_pod)

    # By("Checking if the Service forwards traffic to UDP only")
    service = f.get("service", service_name)
    service["spec"]["ports"] = [dict(svc_udp_port)]
    f.update(service)
    err = endpoint_reachability(f, cluster_ip, 80, "UDP", exec_pod, 30)
    assert err is None, f"Failed to connect to Service UDP port: {err}"
    _eventually_unreachable(f, cluster_ip, "TCP", exec_pod)
