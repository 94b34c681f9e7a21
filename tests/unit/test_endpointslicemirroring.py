"""The EndpointSliceMirroring controller's rules as pure functions (tables of
Endpoints -> slices, after upstream's reconciler_test.go and utils_test.go),
then the controller against a real store and registry: what it mirrors,
what it skips, and when the slices go."""
import threading
import time

import pytest

from agent.api.kinds import BY_RESOURCE
from agent.apiserver.registry import Registry
from agent.apiserver.store import Store
from agent.controllers import bootstrap
from agent.controllers.endpointslicemirroring import (
    CONTROLLER,
    EndpointSliceMirroringController,
    desired_slices,
    parse_ip,
    plan,
    repack_subsets,
    should_mirror,
)

MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
SERVICE_NAME = "kubernetes.io/service-name"


def endpoints(subsets, labels=None, annotations=None) -> dict:
    md = {"name": "svc", "namespace": "ns", "uid": "uid-1"}
    if labels is not None:
        md["labels"] = labels
    if annotations is not None:
        md["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": md, "subsets": subsets}


def port(p=80, name="", proto="TCP", **extra):
    return {"name": name, "port": p, "protocol": proto, **extra} if name else {"port": p, "protocol": proto, **extra}


def summary(p) -> list:
    """(addressType, ports, [(address, ready)]) of every slice to create or update."""
    return sorted((b["addressType"], [(x["name"], x["port"]) for x in b["ports"] or []],
                   sorted((e["addresses"][0], e["conditions"]["ready"]) for e in b["endpoints"]))
                  for b in p.create + p.update)


# ---- desired state ---------------------------------------------------------------------

CASES = [
    ("one ready address",
     [{"addresses": [{"ip": "10.1.2.3"}], "ports": [port(80)]}],
     [("IPv4", [("", 80)], [("10.1.2.3", True)])]),
    ("notReadyAddresses are ready=false",
     [{"addresses": [{"ip": "10.0.0.1"}], "notReadyAddresses": [{"ip": "10.0.0.2"}], "ports": [port(80)]}],
     [("IPv4", [("", 80)], [("10.0.0.1", True), ("10.0.0.2", False)])]),
    ("two subsets with different ports: two slices",
     [{"addresses": [{"ip": "10.0.0.1"}], "ports": [port(80, "a")]},
      {"addresses": [{"ip": "10.0.0.2"}], "ports": [port(81, "b")]}],
     [("IPv4", [("a", 80)], [("10.0.0.1", True)]), ("IPv4", [("b", 81)], [("10.0.0.2", True)])]),
    ("one IP in two subsets with one port each is repacked into one slice of two ports",
     [{"addresses": [{"ip": "10.0.0.1"}], "ports": [port(8090, "port80")]},
      {"addresses": [{"ip": "10.0.0.1"}], "ports": [port(9090, "port81")]}],
     [("IPv4", [("port80", 8090), ("port81", 9090)], [("10.0.0.1", True)])]),
    ("an address both ready and not ready for a port is not ready",
     [{"addresses": [{"ip": "10.0.0.1"}], "ports": [port(80)]},
      {"notReadyAddresses": [{"ip": "10.0.0.1"}], "ports": [port(80)]}],
     [("IPv4", [("", 80)], [("10.0.0.1", False)])]),
    ("IPv4 and IPv6 addresses: one slice per family",
     [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}], "ports": [port(80)]}],
     [("IPv4", [("", 80)], [("10.0.0.1", True)]), ("IPv6", [("", 80)], [("fd00::1", True)])]),
    ("a subset without ports gives a slice without ports",
     [{"addresses": [{"ip": "10.0.0.1"}]}],
     [("IPv4", [], [("10.0.0.1", True)])]),
    ("irregular IPs are restringified",
     [{"addresses": [{"ip": "010.000.000.001"}, {"ip": "::ffff:10.0.0.2"}], "ports": [port(80)]}],
     [("IPv4", [("", 80)], [("10.0.0.1", True), ("10.0.0.2", True)])]),
    ("no subsets: nothing",
     [], []),
]


@pytest.mark.parametrize("what, subsets, want", CASES, ids=[c[0] for c in CASES])
def test_mirrored_slices(what, subsets, want):
    p, _ = plan(endpoints(subsets), [])
    assert summary(p) == want and not p.delete


def test_slice_object_labels_annotations_owner_and_fields():
    ep = endpoints([{"addresses": [{"ip": "10.0.0.1", "hostname": "h", "nodeName": "node-1",
                                    "targetRef": {"kind": "Pod", "namespace": "ns", "name": "p", "uid": "u"}}],
                     "ports": [port(80, "http", appProtocol="http")]}],
                   labels={"team": "a", MANAGED_BY: "someone-else"},
                   annotations={"keep": "me", "endpoints.kubernetes.io/last-change-trigger-time": "x",
                                "kubectl.kubernetes.io/last-applied-configuration": "{}"})
    p, _ = plan(ep, [])
    (sl,) = p.create
    assert sl["metadata"] == {
        "namespace": "ns", "generateName": "svc-",
        "labels": {"team": "a", SERVICE_NAME: "svc", MANAGED_BY: CONTROLLER},
        "annotations": {"keep": "me"},
        "ownerReferences": [{"apiVersion": "v1", "kind": "Endpoints", "name": "svc", "uid": "uid-1",
                             "controller": True, "blockOwnerDeletion": True}]}
    assert sl["ports"] == [{"name": "http", "port": 80, "protocol": "TCP", "appProtocol": "http"}]
    assert sl["endpoints"] == [{"addresses": ["10.0.0.1"], "conditions": {"ready": True}, "hostname": "h",
                                "targetRef": {"kind": "Pod", "namespace": "ns", "name": "p", "uid": "u"},
                                "nodeName": "node-1"}]


def test_at_most_max_addresses_per_subset_ready_first():
    subsets = [{"addresses": [{"ip": f"10.0.0.{i}"} for i in range(1, 4)],
                "notReadyAddresses": [{"ip": "10.0.1.1"}], "ports": [port(80)]}]
    p, desired = plan(endpoints(subsets), [], max_per_subset=3)
    assert summary(p) == [("IPv4", [("", 80)], [(f"10.0.0.{i}", True) for i in range(1, 4)])]
    assert (desired.skipped, desired.invalid) == (1, 0)


def test_invalid_ips_are_counted_and_skipped():
    desired = desired_slices(endpoints([{"addresses": [{"ip": "not-an-ip"}, {"ip": "10.0.0.1"}],
                                         "ports": [port(80)]}]))
    assert (desired.invalid, desired.skipped) == (1, 1)


@pytest.mark.parametrize("text, want", [("10.0.0.1", "10.0.0.1"), ("010.0.0.1", "10.0.0.1"),
                                        ("fd00::1", "fd00::1"), ("::ffff:1.2.3.4", "1.2.3.4"),
                                        ("1.2.3", None), ("", None), ("300.0.0.1", None)])
def test_parse_ip_sloppy(text, want):
    ip = parse_ip(text)
    assert (str(ip) if ip else None) == want


def test_repack_merges_ports_of_the_same_addresses():
    out = repack_subsets([{"addresses": [{"ip": "10.0.0.2"}, {"ip": "10.0.0.1"}], "ports": [port(80, "a")]},
                          {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [port(81, "b")]}])
    assert out == [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                    "ports": [port(80, "a"), port(81, "b")]}]


@pytest.mark.parametrize("labels, annotations, want", [
    (None, None, True),
    ({"endpointslice.kubernetes.io/skip-mirror": "true"}, None, False),
    ({"endpointslice.kubernetes.io/skip-mirror": "false"}, None, True),
    (None, {"control-plane.alpha.kubernetes.io/leader": "{}"}, False),
])
def test_should_mirror(labels, annotations, want):
    assert should_mirror(endpoints([], labels, annotations)) is want


# ---- against existing slices ---------------------------------------------------------------

SUBSETS = [{"addresses": [{"ip": "10.1.2.3"}], "ports": [port(80, "example")]}]


def existing(name, subsets=SUBSETS, labels=None, annotations=None, address_type=None) -> dict:
    """A slice as the controller would have written it, named `name`."""
    body = plan(endpoints(subsets, labels, annotations), [])[0].create[0]
    body["metadata"].pop("generateName")
    body["metadata"]["name"] = name
    if address_type:
        body["addressType"] = address_type
    return body


def test_unchanged_slice_is_left_alone():
    p, _ = plan(endpoints(SUBSETS), [existing("svc-abcde")])
    assert (p.create, p.update, p.delete) == ([], [], [])


def test_changed_address_updates_the_same_slice():
    changed = [{"addresses": [{"ip": "10.2.3.4"}], "ports": [port(80, "example")]}]
    p, _ = plan(endpoints(changed), [existing("svc-abcde")])
    assert [b["metadata"]["name"] for b in p.update] == ["svc-abcde"] and not p.create and not p.delete
    assert summary(p) == [("IPv4", [("example", 80)], [("10.2.3.4", True)])]


@pytest.mark.parametrize("labels, annotations", [({"new": "label"}, None), (None, {"new": "annotation"})])
def test_label_or_annotation_change_updates(labels, annotations):
    p, _ = plan(endpoints(SUBSETS, labels, annotations), [existing("svc-abcde")])
    assert [b["metadata"]["name"] for b in p.update] == ["svc-abcde"]
    assert p.update[0]["metadata"]["labels"].get("new") == (labels or {}).get("new")


def test_trigger_time_and_last_applied_annotations_do_not_count():
    ann = {"endpoints.kubernetes.io/last-change-trigger-time": "t",
           "kubectl.kubernetes.io/last-applied-configuration": "{}"}
    p, _ = plan(endpoints(SUBSETS, annotations=ann), [existing("svc-abcde")])
    assert (p.create, p.update, p.delete) == ([], [], [])


def test_new_ports_recycle_the_old_slice():
    changed = [{"addresses": [{"ip": "10.1.2.3"}], "ports": [port(8080, "example")]}]
    p, _ = plan(endpoints(changed), [existing("svc-abcde")])
    assert not p.create and not p.delete and [b["metadata"]["name"] for b in p.update] == ["svc-abcde"]
    assert "generateName" not in p.update[0]["metadata"]


def test_duplicates_and_stale_slices_are_deleted():
    other_ports = existing("svc-zzzzz", [{"addresses": [{"ip": "10.1.2.3"}], "ports": [port(1, "x")]}],
                           address_type="IPv6")
    p, _ = plan(endpoints(SUBSETS), [existing("svc-aaaaa"), existing("svc-bbbbb"), other_ports])
    assert not p.create and not p.update and sorted(p.delete) == ["svc-bbbbb", "svc-zzzzz"]


def test_endpoints_without_addresses_delete_everything():
    p, _ = plan(endpoints([]), [existing("svc-aaaaa")])
    assert (p.create, p.update, p.delete) == ([], [], ["svc-aaaaa"])


# ---- the controller on a real store ------------------------------------------------------------

@pytest.fixture
def cluster(tmp_path):
    store = Store(str(tmp_path / "store.db"))
    registry = Registry(store)
    bootstrap.bootstrap(registry, "172.28.0.1", 6443)
    stop = threading.Event()
    EndpointSliceMirroringController(store, registry).start(stop)
    yield store, registry
    stop.set()
    store.close()


def mirrored(store, name: str) -> list[dict]:
    return [s for s in store.list("endpointslices", "default")[0]
            if (s["metadata"].get("labels") or {}).get(SERVICE_NAME) == name
            and s["metadata"]["labels"].get(MANAGED_BY) == CONTROLLER]


def until(fn, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def create(registry, resource, obj):
    return registry.create(BY_RESOURCE[resource], "default", obj)


SVC = {"metadata": {"name": "custom"}, "spec": {"ports": [{"name": "example", "port": 80}]}}
EP = {"metadata": {"name": "custom"}, "subsets": [{"addresses": [{"ip": "10.1.2.3"}], "ports": [{"port": 80}]}]}


def test_controller_mirrors_and_deletes_with_the_endpoints(cluster):
    store, registry = cluster
    create(registry, "services", SVC)
    create(registry, "endpoints", EP)
    (sl,) = until(lambda: mirrored(store, "custom"))
    assert sl["ports"] == [{"name": "", "port": 80, "protocol": "TCP"}]     # the Endpoints port defaulted to TCP
    registry.delete(BY_RESOURCE["endpoints"], "default", "custom")
    until(lambda: not mirrored(store, "custom"))


def test_controller_deletes_when_the_service_goes_or_gains_a_selector(cluster):
    store, registry = cluster
    create(registry, "services", SVC)
    create(registry, "endpoints", EP)
    until(lambda: mirrored(store, "custom"))
    registry.guaranteed_update(BY_RESOURCE["services"], "default", "custom",
                               lambda s: {**s, "spec": {**s["spec"], "selector": {"app": "x"}}})
    until(lambda: not mirrored(store, "custom"))
    registry.guaranteed_update(BY_RESOURCE["services"], "default", "custom",
                               lambda s: {**s, "spec": {k: v for k, v in s["spec"].items() if k != "selector"}})
    until(lambda: mirrored(store, "custom"))
    registry.delete(BY_RESOURCE["services"], "default", "custom")
    until(lambda: not mirrored(store, "custom"))


def test_controller_skips_endpoints_without_service_or_marked_skip_mirror(cluster):
    store, registry = cluster
    create(registry, "endpoints", EP)                                 # no Service yet
    create(registry, "services", {**SVC, "metadata": {"name": "skip"}})
    create(registry, "endpoints", {**EP, "metadata": {"name": "skip", "labels": {
        "endpointslice.kubernetes.io/skip-mirror": "true"}}})
    time.sleep(0.5)
    assert not mirrored(store, "custom") and not mirrored(store, "skip") and not mirrored(store, "kubernetes")
    create(registry, "services", SVC)                                 # the Service arrives: mirrored
    until(lambda: mirrored(store, "custom"))
