"""Ports of test/e2e/network/endpointslicemirroring.go's [Conformance]
specs ([sig-network] EndpointSliceMirroring): same objects, same checks,
same polls (every 2 s for 12 s), through real kubectl."""
import pytest

from tests.conformance.framework import PollError, poll

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
