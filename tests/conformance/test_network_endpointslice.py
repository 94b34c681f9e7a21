"""Ports of test/e2e/network/endpointslice.go ([sig-network] EndpointSlice):
its four [Conformance] specs and the two specs that serve a Service from
hand-made EndpointSlices, with upstream's objects, checks and polls
(expectEndpointsAndSlices, hasMatchingEndpointSlices, endpointSlicesEqual),
through real kubectl."""
from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from tests.conformance.framework import (
    POLL,
    PollError,
    agnhost_pod,
    create_sync,
    exec_hostname_test,
    poll,
)

pytestmark = pytest.mark.integration

BASE_NAME = "endpointslice"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"            # discoveryv1.LabelServiceName
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"  # discoveryv1.LabelManagedBy
FOREVER_TEST_TIMEOUT = 30.0                                  # wait.ForeverTestTimeout
NGINX = "registry.k8s.io/e2e-test-images/nginx:1.14-4"      # imageutils.Nginx


def service(name: str, ports: list[dict], selector: dict | None = None, publish_not_ready: bool = False) -> dict:
    spec: dict = {"ports": ports}
    if selector is not None:
        spec["selector"] = selector
    if publish_not_ready:
        spec["publishNotReadyAddresses"] = True
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def endpoints_or_none(f, name: str) -> dict | None:
    r = f.kubectl("get", "endpoints", name, "-o", "json", check=False)
    if r.returncode == 0:
        return json.loads(r.stdout)
    if "NotFound" in r.stderr or "not found" in r.stderr:
        return None
    raise PollError(f"Error fetching Endpoints for {f.ns}/{name} Service: {r.stderr.strip()}")


def test_should_have_endpoints_and_endpointslices_pointing_to_api_server(framework):
    """[sig-network] EndpointSlice should have Endpoints and EndpointSlices
    pointing to API Server [Conformance]"""
    f = framework
    namespace, name = "default", "kubernetes"
    # verify "kubernetes.default" service exist
    f.cluster.kubectl("-n", namespace, "get", "service", name)
    # verify Endpoints for the API servers exist
    endpoints = json.loads(f.cluster.kubectl("-n", namespace, "get", "endpoints", name, "-o", "json").stdout)
    subsets = endpoints.get("subsets") or []
    assert subsets, f"Expected at least 1 subset in endpoints, got {len(subsets)}: {subsets}"
    # verify EndpointSlices for the API servers exist
    slices = json.loads(f.cluster.kubectl("-n", namespace, "get", "endpointslices", "-l",
                                          f"{SERVICE_NAME_LABEL}={name}", "-o", "json").stdout)["items"]
    assert slices, f"Expected at least 1 EndpointSlice, got {len(slices)}"
    assert endpoint_slices_equal(endpoints, slices), \
        f"Expected EndpointSlice to have same addresses and port as Endpoints, got {endpoints}: {slices}"


def test_should_create_and_delete_endpoints_and_endpointslices_for_a_service_with_a_selector_specified(framework):
    """[sig-network] EndpointSlice should create and delete Endpoints and
    EndpointSlices for a Service with a selector specified [Conformance]"""
    f = framework
    svc = f.create(service("example-empty-selector", [{"name": "example", "port": 80, "protocol": "TCP"}],
                           {"does-not-match-anything": "endpoints-and-endpoint-slices-should-still-be-created"}))
    name = svc["metadata"]["name"]
    selector = f"{SERVICE_NAME_LABEL}={name}"

    # Expect Endpoints resource to be created.
    poll(2, FOREVER_TEST_TIMEOUT, lambda: endpoints_or_none(f, name) is not None,
         what=f"Endpoints for Service {f.ns}/{name}")

    # Expect EndpointSlice resource to be created.
    found: list[dict] = []

    def slice_created() -> bool:
        found[:] = f.list("endpointslices", selector)[:1]
        return bool(found)
    poll(2, FOREVER_TEST_TIMEOUT, slice_created, what=f"an EndpointSlice for Service {f.ns}/{name}")
    endpoint_slice = found[0]

    # Ensure EndpointSlice has expected values.
    labels = endpoint_slice["metadata"].get("labels") or {}
    assert MANAGED_BY_LABEL in labels, f"Expected EndpointSlice to have {MANAGED_BY_LABEL} label, got {labels}"
    assert labels[MANAGED_BY_LABEL] == "endpointslice-controller.k8s.io", \
        f"Expected EndpointSlice to have {MANAGED_BY_LABEL} label with endpointslice-controller.k8s.io value, " \
        f"got {labels[MANAGED_BY_LABEL]}"
    eps = endpoint_slice.get("endpoints") or []
    assert not eps, f"Expected EndpointSlice to have 0 endpoints, got {len(eps)}: {eps}"

    f.kubectl("delete", "service", name)

    # Expect Endpoints resource to be deleted when Service is.
    poll(2, FOREVER_TEST_TIMEOUT, lambda: endpoints_or_none(f, name) is None,
         what=f"Endpoints resource deleted after Service {f.ns}/{name} was deleted")
    # Expect EndpointSlice resource to be deleted when Service is. Wait for up
    # to 90 seconds since garbage collector only polls every 30 seconds.
    poll(2, 90, lambda: not f.list("endpointslices", selector),
         what=f"EndpointSlice resource deleted after Service {f.ns}/{name} was deleted")


def test_should_create_endpoints_and_endpointslices_for_pods_matching_a_service(framework):
    """[sig-network] EndpointSlice should create Endpoints and EndpointSlices
    for Pods matching a Service [Conformance]"""
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
    svc3 = f.create(service("example-no-match", [{"name": "example-no-match", "port": 80, "targetPort": 8080,
                                                  "protocol": "TCP"}], {"pod3": on}, publish_not_ready=True))

    pods: dict[str, dict] = {}

    def have_ips() -> bool:
        for p in (pod1, pod2):
            pods[p["metadata"]["name"]] = f.get("pod", p["metadata"]["name"])
        return all((p.get("status") or {}).get("podIPs") for p in pods.values())
    poll(2, 180, have_ips, what="Pods to have IPs assigned")
    pod1, pod2 = pods["pod1"], pods["pod2"]

    # By("referencing a single matching pod")
    expect_endpoints_and_slices(f, svc1, [pod1], 1, 1, False)
    # By("referencing matching pods with named port")
    expect_endpoints_and_slices(f, svc2, [pod1, pod2], 2, 2, True)
    # By("creating empty Endpoints and EndpointSlices for no matching Pods")
    expect_endpoints_and_slices(f, svc3, [], 0, 1, False)
    # By("recreating EndpointSlices after they've been deleted")
    delete_endpoint_slices(f, svc2)
    expect_endpoints_and_slices(f, svc2, [pod1, pod2], 2, 2, True)


def test_should_support_creating_endpointslice_api_operations(framework):
    """[sig-network] EndpointSlice should support creating EndpointSlice API
    operations [Conformance]"""
    f = framework
    ns, eps_version = f.ns, "v1"
    unique = f.ns                                   # f.UniqueName is the namespace's name
    label = f"special-label={unique}"
    template = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"generateName": "e2e-example-ing", "labels": {"special-label": unique}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["1.2.3.4", "5.6.7.8"]}, {"addresses": ["2.2.3.4", "6.6.7.8"]}]}

    # By("getting /apis")
    groups = f.raw("/apis")["groups"]
    assert any(g["name"] == "discovery.k8s.io" and any(v["version"] == eps_version for v in g["versions"])
               for g in groups), f"expected discovery API group/version, got {groups}"
    # By("getting /apis/discovery.k8s.io")
    group = f.raw("/apis/discovery.k8s.io")
    assert any(v["version"] == eps_version for v in group["versions"]), \
        f"expected discovery API version, got {group['versions']}"
    # By("getting /apis/discovery.k8s.iov1")
    resources = f.raw("/apis/discovery.k8s.io/v1")["resources"]
    assert any(r["name"] == "endpointslices" for r in resources), f"expected endpointslices, got {resources}"

    # By("creating")
    f.create(template)
    f.create(template)
    created = f.create(template)
    name = created["metadata"]["name"]

    # By("getting")
    queried = f.get("endpointslice", name)
    assert queried["metadata"]["uid"] == created["metadata"]["uid"]

    # By("listing"): the API's own list (kubectl's -o json list has no resourceVersion)
    base = f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
    eps_list = f.raw(f"{base}?{urlencode({'labelSelector': label})}")
    assert len(eps_list["items"]) == 3, "filtered list should have 3 items"

    # By("watching")
    rv = eps_list["metadata"]["resourceVersion"]
    eps_watch = f.watch(base, resourceVersion=rv, labelSelector=label)
    try:
        # By("cluster-wide listing")
        cluster_list = json.loads(f.cluster.kubectl("get", "endpointslices", "-A", "-l", label,
                                                    "-o", "json").stdout)
        assert len(cluster_list["items"]) == 3, "filtered list should have 3 items"
        # By("cluster-wide watching")
        f.watch("/apis/discovery.k8s.io/v1/endpointslices", resourceVersion=rv, labelSelector=label).stop()

        # By("patching")
        patched = json.loads(f.kubectl("patch", "endpointslice", name, "--type=merge", "-o", "json", "-p",
                                       '{"metadata":{"annotations":{"patched":"true"}}}').stdout)
        assert (patched["metadata"].get("annotations") or {}).get("patched") == "true", \
            "patched object should have the applied annotation"

        # By("updating"), retry.RetryOnConflict(retry.DefaultRetry, ...)
        updated = None
        for _ in range(5):
            to_update = f.get("endpointslice", name)
            to_update["metadata"]["annotations"]["updated"] = "true"
            r = f.kubectl("replace", "-f", "-", "-o", "json", input=json.dumps(to_update), check=False)
            if r.returncode == 0:
                updated = json.loads(r.stdout)
                break
            assert "Conflict" in r.stderr or "has been modified" in r.stderr, r.stderr
        assert updated is not None, "too many conflicts updating the EndpointSlice"
        assert updated["metadata"]["annotations"].get("updated") == "true", \
            "updated object should have the applied annotation"

        # waiting for watch events with expected annotations
        while True:
            evt = eps_watch.next(FOREVER_TEST_TIMEOUT)
            assert evt is not None, "timed out waiting for watch event"
            assert evt["type"] == "MODIFIED", evt["type"]
            assert evt["object"].get("kind") == "EndpointSlice", f"expected EndpointSlice, got {evt['object']}"
            if (evt["object"]["metadata"].get("annotations") or {}).get("patched") == "true":
                break
    finally:
        eps_watch.stop()

    # By("deleting")
    f.kubectl("delete", "endpointslice", name)
    r = f.kubectl("get", "endpointslice", name, check=False)
    assert r.returncode != 0 and "NotFound" in r.stderr, f"expected 404, got {r.stdout}{r.stderr}"
    items = f.list("endpointslices", label)
    assert len(items) == 2, "filtered list should have 2 items"
    assert all(e["metadata"]["name"] != name for e in items), "listing after deleting createdEPS"

    # By("deleting a collection")
    f.kubectl("delete", "endpointslices", "-l", label)
    assert f.list("endpointslices", label) == [], "filtered list should have 0 items"


def test_should_support_a_service_with_multiple_ports_specified_in_multiple_endpointslices(framework):
    """[sig-network] EndpointSlice should support a Service with multiple
    ports specified in multiple EndpointSlices (not [Conformance])"""
    f = framework
    svc = f.create(service("example-custom-endpoints", [{"name": "port80", "port": 80, "protocol": "TCP"},
                                                        {"name": "port81", "port": 81, "protocol": "TCP"}]))
    server = agnhost_pod("pod-handle-http-request")
    server["spec"]["containers"] = [netexec_container(8090), netexec_container(9090)]
    pod = create_sync(f, server)
    pod_ip = (pod.get("status") or {}).get("podIP")
    assert pod_ip, f"PodIP not assigned for pod {pod['metadata']['name']}"

    # By("creating") two custom slices, one port each
    for svc_port, target in (("port80", 8090), ("port81", 9090)):
        f.create(custom_slice(f, svc, [pod_ip], svc_port, target))

    # By("Creating a pause pods that will try to connect to the webserver")
    pause_pod = create_sync(f, agnhost_pod("pause-pod-0"))
    exec_hostname_test(f, pause_pod, f"{svc['spec']['clusterIP']}:80", server["metadata"]["name"])
    exec_hostname_test(f, pause_pod, f"{svc['spec']['clusterIP']}:81", server["metadata"]["name"])


def test_should_support_a_service_with_multiple_endpoint_ips_specified_in_multiple_endpointslices(framework):
    """[sig-network] EndpointSlice should support a Service with multiple
    endpoint IPs specified in multiple EndpointSlices (not [Conformance])"""
    f = framework
    svc = f.create(service("example-custom-endpoints", [{"name": "port80", "port": 80, "protocol": "TCP"},
                                                        {"name": "port81", "port": 81, "protocol": "TCP"}]))
    servers = []
    for name in ("pod1-handle-http-request", "pod2-handle-http-request"):
        server = agnhost_pod(name)
        server["spec"]["containers"] = [netexec_container(8090)]
        pod = create_sync(f, server)
        assert (pod.get("status") or {}).get("podIP"), f"PodIP not assigned for pod {name}"
        servers.append(pod)

    # By("creating") one slice per pod, both on 8090, for the two Service ports
    f.create(custom_slice(f, svc, [servers[0]["status"]["podIP"]], "port80", 8090))
    f.create(custom_slice(f, svc, [servers[1]["status"]["podIP"]], "port81", 8090))

    # By("Creating a pause pods that will try to connect to the webserver")
    pause_pod = create_sync(f, agnhost_pod("pause-pod-0"))
    exec_hostname_test(f, pause_pod, f"{svc['spec']['clusterIP']}:80", servers[0]["metadata"]["name"])
    exec_hostname_test(f, pause_pod, f"{svc['spec']['clusterIP']}:81", servers[1]["metadata"]["name"])


# ---- helpers (endpointslice.go) -------------------------------------------------------------

def netexec_container(port: int) -> dict:
    """e2epod.NewAgnhostContainer("container-handle-<port>-request", nil, ports, netexec ...)."""
    return {**agnhost_pod()["spec"]["containers"][0], "name": f"container-handle-{port}-request",
            "ports": [{"containerPort": port, "protocol": "TCP"}],
            "args": ["netexec", "--http-port", str(port), "--udp-port", "-1"]}


def custom_slice(f, svc: dict, addresses: list[str], port_name: str, port: int) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"generateName": "e2e-custom-slice",
                         "labels": {SERVICE_NAME_LABEL: svc["metadata"]["name"],
                                    MANAGED_BY_LABEL: "e2e-test" + f.ns}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": addresses, "conditions": {"ready": True}}],
            "ports": [{"name": port_name, "port": port, "protocol": "TCP"}]}


def delete_endpoint_slices(f, svc: dict) -> None:
    for es in f.list("endpointslices", f"{SERVICE_NAME_LABEL}={svc['metadata']['name']}"):
        f.kubectl("delete", "endpointslice", es["metadata"]["name"])


def has_matching_endpoint_slices(f, svc_name: str, num_endpoints: int, num_slices: int) -> tuple[list, bool]:
    items = f.list("endpointslices", f"{SERVICE_NAME_LABEL}={svc_name}")
    if not items:
        return [], False
    # The controller may create more slices than necessary: only fewer fail.
    if len(items) < num_slices:
        return items, False
    if sum(len(es.get("endpoints") or []) for es in items) < num_endpoints:
        return items, False
    return items, True


def has_matching_endpoints(f, svc_name: str, num_ips: int, num_subsets: int) -> tuple[dict | None, bool]:
    endpoints = endpoints_or_none(f, svc_name)
    if endpoints is None:
        return None, False
    subsets = endpoints.get("subsets") or []
    if len(subsets) != num_subsets:
        return None, False
    ips = sum(len(s.get("addresses") or []) + len(s.get("notReadyAddresses") or []) for s in subsets)
    if ips != num_ips:
        return None, False
    return endpoints, True


def ensure_pod_target_ref(pod: dict, ref: dict | None) -> None:
    assert ref is not None, "Expected TargetRef to not be nil"
    assert ref.get("kind") == "Pod", f"Expected TargetRef.Kind to be Pod, got {ref.get('kind')}"
    md = pod["metadata"]
    assert ref.get("namespace") == md["namespace"], \
        f"Expected TargetRef.Namespace to be {md['namespace']}, got {ref.get('namespace')}"
    assert ref.get("name") == md["name"], f"Expected TargetRef.Name to be {md['name']}, got {ref.get('name')}"
    assert ref.get("uid") == md["uid"], f"Expected TargetRef.UID to be {md['uid']}, got {ref.get('uid')}"


def _check_named_port(pod: dict, svc: dict, port: dict, what: str) -> None:
    """The first port (of a subset or slice) against the pod's container port
    the Service's named targetPort refers to."""
    svc_port = svc["spec"]["ports"][0]
    for cp in pod["spec"]["containers"][0].get("ports") or []:
        if cp.get("name") == str(svc_port["targetPort"]):
            assert port["port"] == cp["containerPort"], \
                f"Expected {what} port to be {cp['containerPort']}, got {port['port']}"
            assert port.get("name", "") == svc_port["name"], \
                f"Expected {what} port name to be {svc_port['name']}, got {port.get('name', '')}"


def _check_ports_match_service(ports: list[dict], svc: dict) -> None:
    for i, port in enumerate(ports):
        svc_port = svc["spec"]["ports"][i]
        assert port.get("name", "") == svc_port["name"], \
            f"Expected port name to be {svc_port['name']}, got {port.get('name', '')}"
        assert port.get("protocol") == svc_port["protocol"], \
            f"Expected protocol to be {svc_port['protocol']}, got {port.get('protocol')}"
        assert port.get("port") == svc_port["targetPort"], \
            f"Expected port to be {svc_port['targetPort']}, got {port.get('port')}"


def expect_endpoints_and_slices(f, svc: dict, pods: list[dict], num_subsets: int, num_slices: int,
                                named_port: bool) -> None:
    """expectEndpointsAndSlices: poll (2 s, 2 min) for matching slices, then
    for matching Endpoints, then check every address, port and targetRef."""
    name = svc["metadata"]["name"]
    slices: list[dict] = []
    endpoints: dict = {}

    def slices_match() -> bool:
        found, ok = has_matching_endpoint_slices(f, name, len(pods), num_slices)
        if ok:
            slices[:] = found
        return ok

    def endpoints_match() -> bool:
        found, ok = has_matching_endpoints(f, name, len(pods), num_subsets)
        if ok:
            endpoints.update(found)
        return ok
    poll(POLL, 120, slices_match, what=f"EndpointSlices of {f.ns}/{name} to match expectations")
    poll(POLL, 120, endpoints_match, what=f"Endpoints of {f.ns}/{name} to match expectations")

    pods_by_ip = {}
    for pod in pods:
        pods_by_ip[pod["status"]["podIP"]] = pod
        assert len(pod["spec"]["containers"]) == 1, \
            f"Expected pod to have 1 container, got {len(pod['spec']['containers'])}"
    assert endpoints["metadata"]["name"] == name, \
        f"Expected Endpoints name to be {name}, got {endpoints['metadata']['name']}"

    total = 0
    for subset in endpoints.get("subsets") or []:
        addresses = (subset.get("addresses") or []) + (subset.get("notReadyAddresses") or [])
        total += len(addresses)
        ports = subset.get("ports") or []
        assert len(ports) == len(svc["spec"]["ports"]), \
            f"Expected subset to have {len(svc['spec']['ports'])} ports, got {len(ports)}"
        if not named_port:
            _check_ports_match_service(ports, svc)
        for address in addresses:
            pod = pods_by_ip.get(address["ip"])
            assert pod is not None, f"Unexpected address with IP: {address['ip']}"
            ensure_pod_target_ref(pod, address.get("targetRef"))
            if named_port:
                _check_named_port(pod, svc, ports[0], "subset")
    assert len(pods) == total, f"Expected {len(pods)} addresses, got {total}"

    if not pods:
        assert len(slices) == 1, f"Expected 1 EndpointSlice, got {len(slices)}"
    es_addresses = set()
    for es in slices:
        eps, ports = es.get("endpoints") or [], es.get("ports") or []
        es_addresses.update(ep["addresses"][0] for ep in eps)
        if not pods:
            assert not ports, f"Expected EndpointSlice to have 0 ports, got {len(ports)}"
        else:
            assert len(ports) == len(svc["spec"]["ports"]), \
                f"Expected EndpointSlice to have {len(svc['spec']['ports'])} ports, got {len(ports)}"
        if not named_port:
            _check_ports_match_service(ports, svc)
        for ep in eps:
            assert ep.get("addresses"), "Expected EndpointSlice endpoint to have at least 1 address"
            pod = pods_by_ip.get(ep["addresses"][0])
            assert pod is not None, f"Unexpected address with IP: {ep['addresses'][0]}"
            ensure_pod_target_ref(pod, ep.get("targetRef"))
            if named_port:
                _check_named_port(pod, svc, ports[0], "EndpointSlice")
    assert len(pods) == len(es_addresses), f"Expected {len(pods)} addresses, got {len(es_addresses)}"


def endpoint_slices_equal(endpoints: dict, slices: list[dict]) -> bool:
    """endpointSlicesEqual: the same addresses (ready or not) and ports, over
    the slices of the cluster's family (IPv4 here)."""
    ep_addresses, ep_ports = set(), set()
    for subset in endpoints.get("subsets") or []:
        for addr in (subset.get("addresses") or []) + (subset.get("notReadyAddresses") or []):
            ep_addresses.add(addr["ip"])
        ep_ports.update(p["port"] for p in subset.get("ports") or [])
    slice_addresses, slice_ports = set(), set()
    for es in slices:
        if es.get("addressType") != "IPv4":
            continue
        for ep in es.get("endpoints") or []:
            slice_addresses.update(ep.get("addresses") or [])
        slice_ports.update(p["port"] for p in es.get("ports") or [] if p.get("port") is not None)
    return slice_addresses == ep_addresses and slice_ports == ep_ports
