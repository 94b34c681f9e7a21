"""Ports of test/e2e/network/endpoints.go (v1.35: [sig-network] Endpoints and
[sig-network] EndpointsController): the Endpoint lifecycle with its watches,
and the Endpoints controller's two specs, with upstream's objects, checks
and timeouts, through real kubectl."""
from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from tests.conformance.framework import POLL, poll
from tests.conformance.test_network_endpointslice import (
    FOREVER_TEST_TIMEOUT,
    NGINX,
    endpoints_or_none,
    ensure_pod_target_ref,
    has_matching_endpoints,
    service,
)

pytestmark = pytest.mark.integration

BASE_NAME = "endpoints"


def test_should_test_the_lifecycle_of_an_endpoint(framework):
    """[sig-network] Endpoints should test the lifecycle of an Endpoint [Conformance]"""
    f = framework
    ns, name = f.ns, "testservice"
    label = "test-endpoint-static=true"
    test_endpoints = {"apiVersion": "v1", "kind": "Endpoints",
                      "metadata": {"name": name, "labels": {"test-endpoint-static": "true"}},
                      "subsets": [{"addresses": [{"ip": "10.0.0.24"}],
                                   "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}]}
    path = f"/api/v1/namespaces/{ns}/endpoints"

    def until(rv: str, etype: str) -> None:
        """watchtools.Until(30 s, rv, watch of this namespace's labelled Endpoints, <etype> with the label)."""
        w = f.watch(path, resourceVersion=rv, labelSelector=label)
        try:
            w.until(30, lambda ev: ev["type"] == etype
                    and (ev["object"]["metadata"].get("labels") or {}).get("test-endpoint-static") == "true")
        except AssertionError as e:
            raise AssertionError(f"failed to see {etype} event: {e}") from None
        finally:
            w.stop()

    endpoints_list = f.raw(f"/api/v1/endpoints?{urlencode({'labelSelector': label})}")

    # By("creating an Endpoint")
    created = f.create(test_endpoints)
    assert created["metadata"].get("resourceVersion", "").isdigit(), \
        f"invalid resourceVersion {created['metadata'].get('resourceVersion')!r}"
    # By("waiting for available Endpoint")
    until(endpoints_list["metadata"]["resourceVersion"], "ADDED")

    # By("listing all Endpoints")
    endpoints_list = f.raw(f"/api/v1/endpoints?{urlencode({'labelSelector': label})}")
    found = next((e for e in endpoints_list["items"]
                  if e["metadata"]["name"] == name and e["metadata"]["namespace"] == ns), None)
    assert found is not None, "unable to find Endpoint Service in list of Endpoints"

    # By("updating the Endpoint")
    found["metadata"]["labels"]["test-service"] = "updated"
    f.update({"apiVersion": "v1", "kind": "Endpoints", **found})
    until(endpoints_list["metadata"]["resourceVersion"], "MODIFIED")

    # By("fetching the Endpoint")
    endpoints = f.get("endpoints", name)
    assert found["metadata"]["labels"].get("test-service") == "updated", \
        f"failed to update Endpoint {name} in namespace {ns} label not updated"

    # By("patching the Endpoint")
    patch = {"metadata": {"labels": {"test-service": "patched"}},
             "subsets": [{"addresses": [{"ip": "10.0.0.25"}], "ports": [{"name": "http-test", "port": 8080}]}]}
    patched = json.loads(f.kubectl("patch", "endpoints", name, "--type=strategic", "-o", "json",
                                   "-p", json.dumps(patch)).stdout)
    assert int(created["metadata"]["resourceVersion"]) < int(patched["metadata"]["resourceVersion"]), \
        "patched object should have a larger resource version"
    until(endpoints["metadata"]["resourceVersion"], "MODIFIED")

    # By("fetching the Endpoint")
    endpoints = f.get("endpoints", name)
    assert endpoints["metadata"]["labels"].get("test-service") == "patched", "failed to patch Endpoint with Label"
    subset = endpoints["subsets"][0]
    assert subset["addresses"][0]["ip"] == "10.0.0.25", "failed to patch Endpoint"
    assert subset["ports"][0]["name"] == "http-test", "failed to patch Endpoint"
    assert subset["ports"][0]["port"] == 8080, "failed to patch Endpoint"

    # By("deleting the Endpoint by Collection")
    f.kubectl("delete", "endpoints", "-l", label)
    # By("waiting for Endpoint deletion")
    until(endpoints["metadata"]["resourceVersion"], "DELETED")

    # By("fetching the Endpoint")
    assert f.kubectl("get", "endpoints", name, check=False).returncode != 0, "should not be able to fetch Endpoint"


def test_should_create_and_delete_endpoints_for_a_service_with_a_selector_that_matches_no_pods(framework):
    """[sig-network] EndpointsController should create and delete Endpoints
    for a Service with a selector that matches no pods [Conformance]"""
    f = framework
    svc = f.create(service("example-empty-selector", [{"name": "example", "port": 80, "protocol": "TCP"}],
                           {"does-not-match-anything": "endpoints-and-endpoint-slices-should-still-be-created"}))
    name = svc["metadata"]["name"]
    # Expect Endpoints resource to be created.
    poll(2, FOREVER_TEST_TIMEOUT, lambda: endpoints_or_none(f, name) is not None,
         what=f"Endpoints for Service {f.ns}/{name}")
    f.kubectl("delete", "service", name)
    # Expect Endpoints resource to be deleted when Service is.
    poll(2, FOREVER_TEST_TIMEOUT, lambda: endpoints_or_none(f, name) is None,
         what=f"Endpoints resource deleted after Service {f.ns}/{name} was deleted")


def test_should_create_endpoints_for_pods_matching_a_service(framework):
    """[sig-network] EndpointsController should create Endpoints for Pods
    matching a Service [Conformance]"""
    f = framework
    on = "on"
    pod1 = f.create({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "pod1", "labels": {"pod1": on, "shared12": on}},
                     "spec": {"containers": [{"name": "container1", "image": NGINX,
                                              "ports": [{"name": "example-name", "containerPort": 3000}]}]}})
    pod2 = f.create({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "pod2", "labels": {"pod2": on, "shared12": on}},
                     "spec": {"containers": [{"name": "container1", "image": NGINX,
                                              "ports": [{"name": "example-name", "containerPort": 3001},
                                                        {"name": "other-port", "containerPort": 3002}]}]}})
    svc1 = f.create(service("example-int-port", [{"name": "example", "port": 80, "targetPort": 3000,
                                                  "protocol": "TCP"}], {"pod1": on}, publish_not_ready=True))
    svc2 = f.create(service("example-named-port", [{"name": "http", "port": 80, "targetPort": "example-name",
                                                    "protocol": "TCP"}], {"shared12": on}, publish_not_ready=True))
    pods: dict[str, dict] = {}

    def have_ips() -> bool:
        for p in (pod1, pod2):
            pods[p["metadata"]["name"]] = f.get("pod", p["metadata"]["name"])
        return all((p.get("status") or {}).get("podIPs") for p in pods.values())
    poll(2, 180, have_ips, what="Pods to have IPs assigned")

    # By("referencing a single matching pod")
    expect_endpoints(f, svc1, [pods["pod1"]], 1, False)
    # By("referencing matching pods with named port")
    expect_endpoints(f, svc2, [pods["pod1"], pods["pod2"]], 2, True)


def expect_endpoints(f, svc: dict, pods: list[dict], num_subsets: int, named_port: bool) -> None:
    """expectEndpoints: poll (2 s, 2 min) for matching Endpoints, then check
    every address, port and targetRef."""
    name = svc["metadata"]["name"]
    endpoints: dict = {}

    def match() -> bool:
        found, ok = has_matching_endpoints(f, name, len(pods), num_subsets)
        if ok:
            endpoints.update(found)
        return ok
    poll(POLL, 120, match, what=f"Endpoints of {f.ns}/{name} to match expectations")

    pods_by_ip = {}
    for pod in pods:
        pods_by_ip[pod["status"]["podIP"]] = pod
        assert len(pod["spec"]["containers"]) == 1, \
            f"Expected pod to have 1 container, got {len(pod['spec']['containers'])}"
    assert endpoints["metadata"]["name"] == name, \
        f"Expected Endpoints name to be {name}, got {endpoints['metadata']['name']}"
    svc_ports = svc["spec"]["ports"]
    total = 0
    for subset in endpoints.get("subsets") or []:
        addresses = (subset.get("addresses") or []) + (subset.get("notReadyAddresses") or [])
        total += len(addresses)
        ports = subset.get("ports") or []
        assert len(ports) == len(svc_ports), f"Expected subset to have {len(svc_ports)} ports, got {len(ports)}"
        if not named_port:
            for i, port in enumerate(ports):
                assert port.get("name", "") == svc_ports[i]["name"], \
                    f"Expected port name to be {svc_ports[i]['name']}, got {port.get('name', '')}"
                assert port.get("protocol") == svc_ports[i]["protocol"], \
                    f"Expected protocol to be {svc_ports[i]['protocol']}, got {port.get('protocol')}"
                assert port["port"] == svc_ports[i]["targetPort"], \
                    f"Expected port to be {svc_ports[i]['targetPort']}, got {port['port']}"
        for address in addresses:
            pod = pods_by_ip.get(address["ip"])
            assert pod is not None, f"Unexpected address with IP: {address['ip']}"
            ensure_pod_target_ref(pod, address.get("targetRef"))
            if named_port:
                for cp in pod["spec"]["containers"][0].get("ports") or []:
                    if cp.get("name") == str(svc_ports[0]["targetPort"]):
                        assert ports[0]["port"] == cp["containerPort"], \
                            f"Expected subset port to be {cp['containerPort']}, got {ports[0]['port']}"
                        assert ports[0].get("name", "") == svc_ports[0]["name"], \
                            f"Expected subset port name to be {svc_ports[0]['name']}, got {ports[0].get('name')}"
    assert len(pods) == total, f"Expected {len(pods)} addresses, got {total}"
