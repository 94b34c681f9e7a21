"""The EndpointSlice controller's objects against upstream's
(staging/src/k8s.io/endpointslice: reconciler.go, utils.go,
trigger_time_tracker.go; pkg/controller/endpoint): the placeholder slice of a
Service that selects nothing, labels and annotations, a named port a pod
lacks, the Endpoints' headless label, and the trigger-time annotation."""
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from agent.api.kinds import BY_RESOURCE
from agent.apiserver.registry import Registry
from agent.apiserver.store import Store
from agent.controllers import bootstrap
from agent.controllers.endpointslice import (
    EndpointSliceController,
    TriggerTimeTracker,
    desired_endpoints,
    desired_slices,
    slice_labels,
    slice_ports,
)

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def svc(labels=None, cluster_ip="10.96.0.20", ports=({"name": "http", "port": 80, "targetPort": "http"},)):
    md = {"name": "web", "namespace": "default", "uid": "svc-uid", "creationTimestamp": stamp(T0)}
    if labels is not None:
        md["labels"] = labels
    return {"apiVersion": "v1", "kind": "Service", "metadata": md,
            "spec": {"selector": {"app": "web"}, "clusterIP": cluster_ip, "ports": [dict(p) for p in ports]}}


def pod(name, ip, named_port=True, ready=True, since=T0):
    ports = [{"name": "http", "containerPort": 8080, "protocol": "TCP"}] if named_port else []
    return {"metadata": {"name": name, "namespace": "default", "uid": f"{name}-uid", "labels": {"app": "web"}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "ports": ports}]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                       "lastTransitionTime": stamp(since)}]}}


def test_a_pod_without_the_named_port_is_left_out_of_that_port():
    groups = desired_slices(svc(), [pod("a", "10.244.0.5"), pod("b", "10.244.0.6", named_port=False)])
    got = {e["addresses"][0]: slice_ports(ports) for ports, eps in groups for e in eps}
    assert got == {"10.244.0.5": [{"name": "http", "port": 8080, "protocol": "TCP"}], "10.244.0.6": None}
    ep = desired_endpoints(svc(), [pod("a", "10.244.0.5"), pod("b", "10.244.0.6", named_port=False)])
    assert [[a["ip"] for a in s["addresses"]] for s in ep["subsets"]] == [["10.244.0.5"]]


def test_app_protocol_is_carried_to_slices_and_endpoints():
    s = svc(ports=({"name": "http", "port": 80, "targetPort": 8080, "appProtocol": "http"},))
    ((ports, _),) = desired_slices(s, [pod("a", "10.244.0.5")])
    assert slice_ports(ports) == [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}]
    assert desired_endpoints(s, [pod("a", "10.244.0.5")])["subsets"][0]["ports"] == [
        {"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}]


@pytest.mark.parametrize("labels, cluster_ip, want", [
    (None, "10.96.0.20", {}),
    ({"app": "web", "kubernetes.io/service-name": "evil", "endpointslice.kubernetes.io/managed-by": "me",
      "service.kubernetes.io/headless": "x"}, "10.96.0.20", {"app": "web"}),
    ({"app": "web"}, "None", {"app": "web", "service.kubernetes.io/headless": ""}),
])
def test_slice_labels(labels, cluster_ip, want):
    assert slice_labels(svc(labels, cluster_ip)) == {
        **want, "kubernetes.io/service-name": "web",
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}


def test_endpoints_labels_are_the_services_plus_headless():
    assert desired_endpoints(svc({"a": "b"}), [])["metadata"]["labels"] == {"a": "b"}
    assert desired_endpoints(svc({"a": "b"}, "None"), [])["metadata"]["labels"] == \
        {"a": "b", "service.kubernetes.io/headless": ""}


def test_headless_service_without_ports_lists_its_addresses():
    ep = desired_endpoints(svc(cluster_ip="None", ports=()), [pod("a", "10.244.0.5")])
    assert [(s["addresses"][0]["ip"], "ports" in s) for s in ep["subsets"]] == [("10.244.0.5", False)]


def test_trigger_time_tracker():
    t = TriggerTimeTracker()
    s = svc()
    assert t.compute(s, [pod("a", "10.244.0.5", since=T0 + timedelta(seconds=9))]) == stamp(T0)   # new Service
    assert t.compute(s, [pod("a", "10.244.0.5", since=T0 + timedelta(seconds=9))]) is None        # nothing new
    later = [pod("a", "10.244.0.5", since=T0 + timedelta(seconds=20)),
             pod("b", "10.244.0.6", since=T0 + timedelta(seconds=15))]
    assert t.compute(s, later) == stamp(T0 + timedelta(seconds=15))                                  # earliest change
    t.forget(("default", "web"))
    assert t.compute(s, later) == stamp(T0)


# ---- the controller on a real store -------------------------------------------------------------

@pytest.fixture
def cluster(tmp_path):
    store = Store(str(tmp_path / "store.db"))
    registry = Registry(store)
    bootstrap.bootstrap(registry, "172.28.0.1", 6443)
    stop = threading.Event()
    EndpointSliceController(store, registry).start(stop)
    yield store, registry
    stop.set()
    store.close()


def until(fn, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def slices_of(store, name):
    return [s for s in store.list("endpointslices", "default")[0]
            if (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name") == name]


def test_placeholder_slice_is_upstreams(cluster):
    store, registry = cluster
    made = registry.create(BY_RESOURCE["services"], "default", {
        "metadata": {"name": "nobody", "labels": {"team": "a"}},
        "spec": {"selector": {"app": "nobody"}, "ports": [{"name": "http", "port": 80}]}})
    (sl,) = until(lambda: slices_of(store, "nobody"))
    assert (sl["addressType"], sl["endpoints"], sl["ports"]) == ("IPv4", None, None)
    md = sl["metadata"]
    assert md["labels"] == {"team": "a", "kubernetes.io/service-name": "nobody",
                            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    assert md["generateName"] == "nobody-" and md["name"].startswith("nobody-") and len(md["name"]) == 12
    assert md["ownerReferences"] == [{"apiVersion": "v1", "kind": "Service", "name": "nobody",
                                      "uid": made["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
    assert md["annotations"] == {"endpoints.kubernetes.io/last-change-trigger-time":
                                 made["metadata"]["creationTimestamp"]}
    ep = until(lambda: store.get("endpoints", "default", "nobody"))
    assert "subsets" not in ep and ep["metadata"]["labels"] == {"team": "a"}
    assert ep["metadata"]["annotations"] == md["annotations"]


def test_headless_service_slices_say_headless(cluster):
    store, registry = cluster
    registry.create(BY_RESOURCE["services"], "default", {
        "metadata": {"name": "hl"}, "spec": {"clusterIP": "None", "selector": {"app": "x"}, "ports": [{"port": 80}]}})
    (sl,) = until(lambda: slices_of(store, "hl"))
    assert sl["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
