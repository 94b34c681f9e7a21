"""Ports of test/e2e/network/service.go's [Conformance] specs ([sig-network]
Services) that stand on ReplicationControllers: the jig's
CreateServicePods and StartServeHostnameService run RCs of agnhost
`serve-hostname` (port 9376) and check the Service with `nc` and `curl`
from an agnhost exec pod. Same objects, checks and timeouts as upstream."""
import pytest

from tests.conformance.framework import create_exec_pod
from tests.conformance.service_jig import (
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


def test_should_have_session_affinity_work_for_service_with_type_clusterip(framework):
    """[sig-network] Services should have session affinity work for service
    with type clusterIP [LinuxOnly] [Conformance]"""
    f = framework
    svc = get_serve_hostname_service("affinity-clusterip")
    svc["spec"]["type"] = "ClusterIP"
    # execAffinityTestForNonLBService
    num_pods, service_port, service_name = 3, DEFAULT_SERVE_HOSTNAME_SERVICE_PORT, svc["metadata"]["name"]
    svc["spec"]["sessionAffinity"] = "ClientIP"
    start_serve_hostname_service(f, svc, num_pods)
    try:
        jig = TestJig(f, service_name)
        svc = f.get("service", service_name)
        svc_ip = svc["spec"]["clusterIP"]
        exec_pod = create_exec_pod(f, "execpod-affinity")
        try:
            jig.check_service_reachability(svc, exec_pod)
            check_affinity(f, exec_pod, svc_ip, service_port, True)
        finally:
            f.kubectl("delete", "pod", exec_pod["metadata"]["name"], "--wait=false")
    finally:
        stop_serve_hostname_service(f, service_name)
