"""Ports of test/e2e/network/endpointslicemirroring.go ([sig-network]
EndpointSliceMirroring): its [Conformance] spec and the file's second spec,
with the same objects, checks and polls (every 2 s for 12 s), through real
kubectl."""
import pytest

from tests.conformance.framework import (
    PollError,
    agnhost_pod,
    create_sync,
    exec_hostname_test,
    poll,
)

pytestmark = pytest.mark.integration

BASE_NAME = "endpointslicemirroring"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"        # discoveryv1.LabelServiceName


def test_should_mirror_a_custom_endpoints_resource_through_create_update_and_delete(framework):
    """[sig-network] EndpointSliceMirroring should mirror a custom Endpoints
    resource through create update and delete [Conformance]"""
    f = framework
    svc = f.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "example-custom-endpoints"},
                    "spec": {"ports": [{"name": "example", "port": 80, "protocol": "TCP"}]}})
    endpoints = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": svc["metadata"]["name"]},
                 "subsets": [{"ports": [{"port": 80}], "addresses": [{"ip": "10.1.2.3"}]}]}
    selector = f"{SERVICE_NAME_LABEL}={svc['metadata']['name']}"

    # By("mirroring a new custom Endpoint")
    f.create(endpoints)

    def created() -> bool:
        es_list = f.list("endpointslices", selector)
        if not es_list:
            return False            # Waiting for at least 1 EndpointSlice to exist
        # Due to informer caching, it's possible for the controller to create a second
        # EndpointSlice if it does not see the first one; all of them must be valid.
        for ep_slice in es_list:
            ports = ep_slice.get("ports") or []
            if len(ports) != 1:
                raise PollError(f"Expected EndpointSlice to have 1 Port, got {len(ports)}")
            if ports[0].get("port") != 80:
                raise PollError(f"Expected port to be 80, got {ports[0].get('port')}")
            eps = ep_slice.get("endpoints") or []
            if len(eps) != 1:
                raise PollError(f"Expected EndpointSlice to have 1 endpoints, got {len(eps)}")
            addresses = eps[0].get("addresses") or []
            if len(addresses) != 1:
                raise PollError(f"Expected EndpointSlice endpoint to have 1 address, got {len(addresses)}")
            if addresses[0] != "10.1.2.3":
                raise PollError(f"Expected EndpointSlice to have 10.1.2.3 as address, got {addresses[0]}")
        return True
    poll(2, 12, created, what=f"a matching EndpointSlice for {f.ns}/{svc['metadata']['name']}")

    # By("mirroring an update to a custom Endpoint")
    endpoints["subsets"][0]["addresses"] = [{"ip": "10.2.3.4"}]
    f.update(endpoints)

    def updated() -> bool:
        es_list = f.list("endpointslices", selector)
        if len(es_list) != 1:
            return False            # Waiting for 1 EndpointSlice to exist
        ep_slice = es_list[0]
        ports = ep_slice.get("ports") or []
        if len(ports) != 1 or ports[0].get("port") != 80:
            return False
        eps = ep_slice.get("endpoints") or []
        if len(eps) != 1:
            return False
        addresses = eps[0].get("addresses") or []
        return len(addresses) == 1 and addresses[0] == "10.2.3.4"
    poll(2, 12, updated, what=f"a matching EndpointSlice for {f.ns}/{svc['metadata']['name']}")

    # By("mirroring deletion of a custom Endpoint")
    f.delete("endpoints", endpoints["metadata"]["name"])
    poll(2, 12, lambda: len(f.list("endpointslices", selector)) == 0,
         what=f"0 EndpointSlices for {f.ns}/{svc['metadata']['name']}")


def test_should_mirror_a_custom_endpoint_with_multiple_subsets_and_same_ip_address(framework):
    """[sig-network] EndpointSliceMirroring should mirror a custom Endpoint
    with multiple subsets and same IP address (not [Conformance]; the same
    file's second spec: the repacked subsets give one slice with both ports)."""
    f = framework
    svc = f.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "example-custom-endpoints"},
                    "spec": {"ports": [{"name": "port80", "port": 80, "protocol": "TCP"},
                                       {"name": "port81", "port": 81, "protocol": "TCP"}]}})
    # Add a backend pod to the service: two netexec containers, on 8090 and 9090.
    server = agnhost_pod("pod-handle-http-request")
    server["spec"]["containers"] = [
        {**agnhost_pod()["spec"]["containers"][0], "name": f"container-handle-{p}-request",
         "ports": [{"containerPort": p, "protocol": "TCP"}],
         "args": ["netexec", "--http-port", str(p), "--udp-port", "-1"]} for p in (8090, 9090)]
    pod = create_sync(f, server)
    pod_ip = (pod.get("status") or {}).get("podIP")
    assert pod_ip, f"PodIP not assigned for pod {pod['metadata']['name']}"
    endpoints = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": svc["metadata"]["name"]},
                 "subsets": [{"ports": [{"name": "port80", "port": 8090}], "addresses": [{"ip": pod_ip}]},
                             {"ports": [{"name": "port81", "port": 9090}], "addresses": [{"ip": pod_ip}]}]}
    selector = f"{SERVICE_NAME_LABEL}={svc['metadata']['name']}"

    # By("mirroring a new custom Endpoint")
    f.create(endpoints)
    poll(2, 12, lambda: len(f.list("endpointslices", selector)) > 0,
         what=f"a matching EndpointSlice for {f.ns}/{svc['metadata']['name']}")

    # By("Creating a pause pods that will try to connect to the webservers")
    pause_pod = create_sync(f, agnhost_pod("pause-pod-0"))
    cluster_ip = svc["spec"]["clusterIP"]
    exec_hostname_test(f, pause_pod, f"{cluster_ip}:80", pod["metadata"]["name"])
    exec_hostname_test(f, pause_pod, f"{cluster_ip}:81", pod["metadata"]["name"])

    # By("mirroring deletion of a custom Endpoint")
    f.delete("endpoints", endpoints["metadata"]["name"])
    poll(2, 12, lambda: len(f.list("endpointslices", selector)) == 0,
         what=f"0 EndpointSlices for {f.ns}/{svc['metadata']['name']}")

