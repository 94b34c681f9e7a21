"""Ports of test/e2e/network/service.go's [Conformance] specs ([sig-network]
Services) that stand on ReplicationControllers: the jig's
CreateServicePods and StartServeHostnameService run RCs of agnhost
`serve-hostname` (port 9376) and check the Service with `nc` and `curl`
from an agnhost exec pod. Same objects, checks and timeouts as upstream."""
import time

import pytest

from tests.conformance.framework import create_exec_pod, run_host_cmd
from tests.conformance.service_jig import (
    CLUSTER_DNS_DOMAIN,
    DEFAULT_SERVE_HOSTNAME_SERVICE_PORT,
    TestJig,
    check_affinity,
    get_serve_hostname_service,
    serve_hostname_missing,
    start_serve_hostname_service,
    stop_serve_hostname_service,
)

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(serve_hostname_missing() is not None, reason=str(serve_hostname_missing()))]

BASE_NAME = "services"


def test_should_be_able_to_change_the_type_from_externalname_to_clusterip(framework):
    """[sig-network] Services should be able to change the type from
    ExternalName to ClusterIP [Conformance]"""
    f, service_name = framework, "externalname-service"
    jig = TestJig(f, service_name)
    # By("creating a service externalname-service with the type=ExternalName")
    jig.create_external_name_service()
    try:
        # By("changing the ExternalName service to type=ClusterIP")
        def to_cluster_ip(s):
            s["spec"]["type"] = "ClusterIP"
            s["spec"].pop("externalName", None)
            s["spec"]["ports"] = [{"port": 80, "name": "http", "protocol": "TCP", "targetPort": 9376}]
        cluster_ip_service = jig.update_service(to_cluster_ip)
        jig.create_service_pods(2)
        exec_pod = create_exec_pod(f, "execpod")
        jig.check_service_reachability(cluster_ip_service, exec_pod)
    finally:
        f.kubectl("delete", "service", service_name)     # "Cleaning up the ExternalName to ClusterIP test service"


def test_should_be_able_to_create_a_functioning_nodeport_service(framework):
    """[sig-network] Services should be able to create a functioning NodePort
    service [Conformance]"""
    f = framework
    jig = TestJig(f, "nodeport-test")

    def node_port(svc):
        svc["spec"]["type"] = "NodePort"
        svc["spec"]["ports"] = [{"port": 80, "name": "http", "protocol": "TCP", "targetPort": 9376}]
    node_port_service = jig.create_tcp_service(node_port)
    jig.create_service_pods(2)
    exec_pod = create_exec_pod(f, "execpod")
    jig.check_service_reachability(node_port_service, exec_pod)


def test_should_be_able_to_change_the_type_from_externalname_to_nodeport(framework):
    """[sig-network] Services should be able to change the type from
    ExternalName to NodePort [Conformance]"""
    f, service_name = framework, "externalname-service"
    jig = TestJig(f, service_name)
    # By("creating a service externalname-service with the type=ExternalName")
    jig.create_external_name_service()
    try:
        # By("changing the ExternalName service to type=NodePort")
        def to_node_port(s):
            s["spec"]["type"] = "NodePort"
            s["spec"].pop("externalName", None)
            s["spec"]["ports"] = [{"port": 80, "name": "http", "protocol": "TCP", "targetPort": 9376}]
        node_port_service = jig.update_service(to_node_port)
        jig.create_service_pods(2)
        exec_pod = create_exec_pod(f, "execpod")
        jig.check_service_reachability(node_port_service, exec_pod)
    finally:
        f.kubectl("delete", "service", service_name)     # "Cleaning up the ExternalName to NodePort test service"


def create_and_get_external_service_fqdn(f, service_name: str) -> str:
    """createAndGetExternalServiceFQDN: a serve-hostname Service with 2 pods; its FQDN."""
    start_serve_hostname_service(f, get_serve_hostname_service(service_name), 2)
    return f"{service_name}.{f.ns}.svc.{CLUSTER_DNS_DOMAIN}"


def _change_to_external_name(f, jig: TestJig, from_what: str) -> None:
    """The rest of the ClusterIP/NodePort to ExternalName specs: an active
    serve-hostname Service whose FQDN becomes the externalName."""
    # By("Creating active service to test reachability when its FQDN is referred as externalName for another service")
    external_service_name = "externalsvc"
    try:
        external_service_fqdn = create_and_get_external_service_fqdn(f, external_service_name)

        # By("changing the <from_what> service to type=ExternalName")
        def to_external_name(s):
            s["spec"]["type"] = "ExternalName"
            s["spec"]["externalName"] = external_service_fqdn
        external_name_service = jig.update_service(to_external_name)
        assert not external_name_service["spec"].get("clusterIP"), "Spec.ClusterIP was not cleared"
        exec_pod = create_exec_pod(f, "execpod")
        jig.check_service_reachability(external_name_service, exec_pod)
    finally:
        stop_serve_hostname_service(f, external_service_name)
        f.kubectl("delete", "service", jig.name)     # "Cleaning up the <from_what> to ExternalName test service"


def test_should_be_able_to_change_the_type_from_clusterip_to_externalname(framework):
    """[sig-network] Services should be able to change the type from
    ClusterIP to ExternalName [Conformance]"""
    f = framework
    jig = TestJig(f, "clusterip-service")
    # By("creating a service clusterip-service with the type=ClusterIP")
    jig.create_tcp_service()
    _change_to_external_name(f, jig, "ClusterIP")


def test_should_be_able_to_change_the_type_from_nodeport_to_externalname(framework):
    """[sig-network] Services should be able to change the type from
    NodePort to ExternalName [Conformance]"""
    f = framework
    jig = TestJig(f, "nodeport-service")
    # By("creating a service nodeport-service with the type=NodePort")
    jig.create_tcp_service(lambda s: s["spec"].update(type="NodePort"))
    _change_to_external_name(f, jig, "NodePort")


def exec_affinity_test_for_non_lb_service(f, svc: dict, is_transition_test: bool = False) -> None:
    """execAffinityTestForNonLBServiceWithOptionalTransition: 3 serve-hostname
    pods behind `svc` with ClientIP affinity; from an exec pod, the Service
    (its ClusterIP, or the first node's InternalIP and the NodePort) must be
    sticky, or, in the transition test, not sticky once affinity is None and
    sticky again once it is ClientIP."""
    num_pods, service_port, service_name = 3, DEFAULT_SERVE_HOSTNAME_SERVICE_PORT, svc["metadata"]["name"]
    # By("creating service in namespace " + ns)
    service_type = svc["spec"].get("type", "ClusterIP")
    svc["spec"]["sessionAffinity"] = "ClientIP"
    start_serve_hostname_service(f, svc, num_pods)
    try:
        jig = TestJig(f, service_name)
        svc = f.get("service", service_name)
        if service_type == "NodePort":
            # e2enode.FirstAddressByTypeAndFamily(nodes, InternalIP, family of the ClusterIP)
            family6 = ":" in svc["spec"]["clusterIP"]
            svc_ip = next((a["address"] for n in f.list("nodes") for a in n["status"].get("addresses") or []
                           if a.get("type") == "InternalIP" and (":" in a["address"]) == family6), "")
            assert svc_ip, "failed to get Node internal IP for family: " + ("IPv6" if family6 else "IPv4")
            service_port = svc["spec"]["ports"][0]["nodePort"]
        else:
            svc_ip = svc["spec"]["clusterIP"]
        exec_pod = create_exec_pod(f, "execpod-affinity")
        try:
            jig.check_service_reachability(svc, exec_pod)
            if not is_transition_test:
                check_affinity(f, exec_pod, svc_ip, service_port, True)
            else:
                jig.update_service(lambda s: s["spec"].update(sessionAffinity="None"))
                check_affinity(f, exec_pod, svc_ip, service_port, False)
                jig.update_service(lambda s: s["spec"].update(sessionAffinity="ClientIP"))
                check_affinity(f, exec_pod, svc_ip, service_port, True)
        finally:
            f.kubectl("delete", "pod", exec_pod["metadata"]["name"], "--wait=false")
    finally:
        stop_serve_hostname_service(f, service_name)


SESSION_AFFINITY_TIMEOUT = 125        # SessionAffinityTimeout (seconds)


def exec_affinity_test_for_session_affinity_timeout(f, svc: dict) -> None:
    """execAffinityTestForSessionAffinityTimeout: ClientIP affinity with a
    125 s timeout; sticky at first, then (up to 10 curls, 130 s apart) a
    second pod must answer once the timeout has passed."""
    num_pods, service_port, service_name = 3, DEFAULT_SERVE_HOSTNAME_SERVICE_PORT, svc["metadata"]["name"]
    svc["spec"]["sessionAffinity"] = "ClientIP"
    svc["spec"]["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": SESSION_AFFINITY_TIMEOUT}}
    start_serve_hostname_service(f, svc, num_pods)
    try:
        jig = TestJig(f, service_name)
        svc = f.get("service", service_name)
        svc_ip = svc["spec"]["clusterIP"]
        exec_pod = create_exec_pod(f, "execpod-affinity")
        try:
            jig.check_service_reachability(svc, exec_pod)
            # the service should be sticky until the timeout expires
            check_affinity(f, exec_pod, svc_ip, service_port, True)
            # but it should return different hostnames after the timeout expires
            hosts: set[str] = set()
            cmd = f"curl -q -s --connect-timeout 2 http://{svc_ip}:{service_port}/"
            for _ in range(10):
                hostname, err = run_host_cmd(f, exec_pod["metadata"]["name"], cmd)
                if err is None:
                    hosts.add(hostname)
                    if len(hosts) > 1:
                        return
                    time.sleep(SESSION_AFFINITY_TIMEOUT + 5)
            raise AssertionError("Session is sticky after reaching the timeout")
        finally:
            f.kubectl("delete", "pod", exec_pod["metadata"]["name"], "--wait=false")
    finally:
        stop_serve_hostname_service(f, service_name)


@pytest.mark.slow
def test_should_have_session_affinity_timeout_work_for_service_with_type_clusterip(framework):
    """[sig-network] Services should have session affinity timeout work for
    service with type clusterIP [LinuxOnly]

    (Not [Conformance] upstream; it waits 130 s at least once.)"""
    svc = get_serve_hostname_service("affinity-clusterip-timeout")
    svc["spec"]["type"] = "ClusterIP"
    exec_affinity_test_for_session_affinity_timeout(framework, svc)


def test_should_have_session_affinity_work_for_service_with_type_clusterip(framework):
    """[sig-network] Services should have session affinity work for service
    with type clusterIP [LinuxOnly] [Conformance]"""
    svc = get_serve_hostname_service("affinity-clusterip")
    svc["spec"]["type"] = "ClusterIP"
    exec_affinity_test_for_non_lb_service(framework, svc)


def test_should_be_able_to_switch_session_affinity_for_service_with_type_clusterip(framework):
    """[sig-network] Services should be able to switch session affinity for
    service with type clusterIP [LinuxOnly] [Conformance]"""
    svc = get_serve_hostname_service("affinity-clusterip-transition")
    svc["spec"]["type"] = "ClusterIP"
    exec_affinity_test_for_non_lb_service(framework, svc, is_transition_test=True)


def test_should_have_session_affinity_work_for_nodeport_service(framework):
    """[sig-network] Services should have session affinity work for NodePort
    service [LinuxOnly] [Conformance]"""
    svc = get_serve_hostname_service("affinity-nodeport")
    svc["spec"]["type"] = "NodePort"
    exec_affinity_test_for_non_lb_service(framework, svc)


def test_should_be_able_to_switch_session_affinity_for_nodeport_service(framework):
    """[sig-network] Services should be able to switch session affinity for
    NodePort service [LinuxOnly] [Conformance]"""
    svc = get_serve_hostname_service("affinity-nodeport-transition")
    svc["spec"]["type"] = "NodePort"
    exec_affinity_test_for_non_lb_service(framework, svc, is_transition_test=True)


def test_should_be_able_to_update_service_type_to_nodeport_listening_on_same_port_number_but_different_protocols(
        framework):
    """[sig-network] Services should be able to update service type to NodePort
    listening on same port number but different protocols

    (Not [Conformance] upstream; ported with the specs around it.)"""
    f, service_name = framework, "nodeport-update-service"
    jig = TestJig(f, service_name)
    # By("creating a TCP service nodeport-update-service with type=ClusterIP")
    jig.create_tcp_service()
    try:
        # By("changing the TCP service to type=NodePort")
        def to_node_port(s):
            s["spec"]["type"] = "NodePort"
            s["spec"]["ports"] = [{"name": "tcp-port", "port": 80, "protocol": "TCP", "targetPort": 9376}]
        node_port_service = jig.update_service(to_node_port)
        jig.create_service_pods(2)
        exec_pod = create_exec_pod(f, "execpod")
        jig.check_service_reachability(node_port_service, exec_pod)

        # By("Updating NodePort service to listen TCP and UDP based requests over same Port")
        def tcp_and_udp(s):
            s["spec"]["type"] = "NodePort"
            s["spec"]["ports"] = [{"name": "tcp-port", "port": 80, "protocol": "TCP", "targetPort": 9376},
                                  {"name": "udp-port", "port": 80, "protocol": "UDP", "targetPort": 9376}]
        node_port_service = jig.update_service(tcp_and_udp)
        jig.check_service_reachability(node_port_service, exec_pod)
        ports = node_port_service["spec"]["ports"]
        assert len(ports) == 2, f"updated service should have two Ports but found {len(ports)} Ports"
        for port in ports:
            assert port.get("nodePort"), f"NodePort service failed to allocate NodePort for Port {port['name']}"
    finally:
        f.kubectl("delete", "service", service_name)     # "Cleaning up the updating NodePorts test service"
