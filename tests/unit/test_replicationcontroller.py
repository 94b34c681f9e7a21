"""ReplicationControllers: kube-apiserver's defaulting and validation (tables),
the Scale view, Table columns and discovery; the replica manager's pure
status; then the controller against a real store and registry (pods with
ownerReferences, status, Events, adoption and release, the ReplicaFailure
condition) and the garbage collector taking its pods."""
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from agent.api import printers
from agent.api.kinds import BY_RESOURCE, lookup
from agent.apiserver import discovery, openapi, tables, validation, writes
from agent.apiserver.defaults import default
from agent.apiserver.registry import APIError, Registry
from agent.apiserver.store import Store
from agent.controllers import bootstrap
from agent.controllers.gc import GarbageCollector
from agent.controllers.replicaset import pod_from_template, replica_status
from agent.controllers.replicationcontroller import ReplicationManager

RCS, PODS = BY_RESOURCE["replicationcontrollers"], BY_RESOURCE["pods"]
CONTAINERS = [{"name": "web", "image": "nginx"}]


def rc(spec: dict, **md) -> dict:
    return {"apiVersion": "v1", "kind": "ReplicationController",
            "metadata": {"name": "web", "namespace": "default", **md}, "spec": spec}


def template(labels=None, **spec) -> dict:
    md = {"labels": labels} if labels is not None else {}
    return {"metadata": md, "spec": {"containers": CONTAINERS, **spec}}


# ---- defaulting ------------------------------------------------------------------------

def test_selector_labels_and_replicas_default_from_the_template():
    obj = rc({"template": template({"app": "web"})})
    default("ReplicationController", obj)
    assert obj["spec"]["selector"] == {"app": "web"} and obj["metadata"]["labels"] == {"app": "web"}
    assert obj["spec"]["replicas"] == 1
    assert obj["spec"]["template"]["spec"]["restartPolicy"] == "Always"


def test_given_selector_labels_and_replicas_are_kept():
    obj = rc({"replicas": 0, "selector": {"app": "web"}, "template": template({"app": "web", "tier": "a"})},
             labels={"mine": "x"})
    default("ReplicationController", obj)
    assert obj["spec"]["selector"] == {"app": "web"} and obj["metadata"]["labels"] == {"mine": "x"}
    assert obj["spec"]["replicas"] == 0


# ---- validation --------------------------------------------------------------------------

INVALID = [
    ("selector does not match",
     rc({"selector": {"app": "other"}, "template": template({"app": "web"})}),
     ['spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
      '`selector` does not match template `labels`']),
    ("template without labels",
     rc({"selector": {"app": "web"}, "template": template()}),
     ["spec.template.metadata.labels: Invalid value: map[string]string(nil): "
      "`selector` does not match template `labels`"]),
    ("no selector, no template",
     rc({}),
     ["spec.selector: Required value", "spec.template: Required value"]),
    ("negative replicas and minReadySeconds",
     rc({"replicas": -1, "minReadySeconds": -2, "template": template({"app": "web"})}),
     ["spec.minReadySeconds: Invalid value: -2: must be greater than or equal to 0",
      "spec.replicas: Invalid value: -1: must be greater than or equal to 0"]),
    ("restartPolicy must be Always",
     rc({"template": template({"app": "web"}, restartPolicy="OnFailure")}),
     ['spec.template.spec.restartPolicy: Unsupported value: "OnFailure": supported values: "Always"']),
    ("activeDeadlineSeconds is refused",
     rc({"template": template({"app": "web"}, activeDeadlineSeconds=5)}),
     ["spec.template.spec.activeDeadlineSeconds: Invalid value: 5: must not be specified"]),
    ("no containers",
     rc({"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}}}),
     ["spec.template.spec.containers: Required value"]),
]


@pytest.mark.parametrize("what, obj, want", INVALID, ids=[c[0] for c in INVALID])
def test_invalid(what, obj, want):
    default("ReplicationController", obj)
    assert [str(c) for c in validation.validate("ReplicationController", obj)] == want


def test_valid_and_selector_may_change_on_update():
    old = rc({"template": template({"app": "web", "v": "1"})})
    default("ReplicationController", old)
    assert validation.validate("ReplicationController", old) == []
    new = rc({"selector": {"v": "1"}, "template": template({"app": "web", "v": "1"})})
    default("ReplicationController", new)
    assert validation.validate("ReplicationController", new, old) == []


def test_invalid_message_is_kubes():
    obj = rc({"selector": {"app": "x"}, "template": template({"app": "web"})})
    default("ReplicationController", obj)
    assert validation.format_invalid("ReplicationController", "web", validation.validate(
        "ReplicationController", obj)).startswith('ReplicationController "web" is invalid: spec.template.metadata')


# ---- scale, tables, discovery, OpenAPI --------------------------------------------------------

def test_scale_of_an_rc_prints_its_map_selector():
    obj = rc({"replicas": 3, "selector": {"b": "2", "a": "1"}}, uid="u", resourceVersion="7")
    obj["status"] = {"replicas": 2}
    assert writes.scale_of(obj) == {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": "web", "namespace": "default", "uid": "u", "resourceVersion": "7"},
        "spec": {"replicas": 3}, "status": {"replicas": 2, "selector": "a=1,b=2"}}
    assert writes.with_scale(obj, {"spec": {"replicas": 5}})["spec"]["replicas"] == 5


def test_table_row_and_columns():
    obj = rc({"replicas": 3, "selector": {"app": "web"}, "template": template({"app": "web"})},
             creationTimestamp="2024-01-01T00:00:00Z")
    obj["status"] = {"replicas": 2, "readyReplicas": 1}
    now = datetime(2024, 1, 1, 0, 5, tzinfo=timezone.utc)
    table = tables.table("ReplicationController", [obj], now=now)
    assert [c["name"] for c in table["columnDefinitions"]] == \
        ["Name", "Desired", "Current", "Ready", "Age", "Containers", "Images", "Selector"]
    assert [c["priority"] for c in table["columnDefinitions"]] == [0, 0, 0, 0, 0, 1, 1, 1]
    assert table["rows"][0]["cells"] == ["web", 3, 2, 1, "5m", "web", "nginx", "app=web"]
    assert printers.table("ReplicationController", [obj], now=now).splitlines() == [
        "NAME   DESIRED   CURRENT   READY   AGE", "web    3         2         1       5m"]


def test_kind_short_name_and_discovery():
    assert lookup("rc").kind == "ReplicationController" and lookup("replicationcontroller").resource == \
        "replicationcontrollers"
    res = {r["name"]: r for r in discovery.api_resource_list("v1")["resources"]}
    r = res["replicationcontrollers"]
    assert (r["kind"], r["shortNames"], r["categories"], r["namespaced"]) == \
        ("ReplicationController", ["rc"], ["all"], True)
    assert res["replicationcontrollers/scale"]["group"] == "autoscaling" and \
        res["replicationcontrollers/scale"]["kind"] == "Scale"
    assert res["replicationcontrollers/status"]["kind"] == "ReplicationController"


def test_openapi_lists_it_and_accepts_a_manifest():
    doc = openapi.v3_document("v1")
    schema = doc["components"]["schemas"]["io.k8s.api.core.v1.ReplicationController"]
    assert schema["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "ReplicationController",
                                                          "version": "v1"}]
    assert "/api/v1/namespaces/{namespace}/replicationcontrollers/{name}" in doc["paths"]
    manifest = rc({"replicas": 2, "selector": {"app": "web"}, "minReadySeconds": 1,
                   "template": template({"app": "web"})})
    assert openapi.unknown_fields("ReplicationController", manifest) == []
    assert openapi.unknown_fields("ReplicationController", rc({"replica": 2})) == ["spec.replica"]


# ---- replica_status (calculateStatus) --------------------------------------------------------

NOW = datetime(2024, 1, 1, 12, 0, tzinfo=timezone.utc)


def pod(name, labels=None, ready=False, since=NOW - timedelta(seconds=30)):
    conds = [{"type": "Ready", "status": "True" if ready else "False",
              "lastTransitionTime": since.strftime("%Y-%m-%dT%H:%M:%SZ")}]
    return {"metadata": {"name": name, "labels": labels if labels is not None else {"app": "web", "v": "1"}},
            "spec": {}, "status": {"phase": "Running", "conditions": conds}}


def owner(min_ready=0, conditions=None):
    obj = rc({"replicas": 3, "minReadySeconds": min_ready, "selector": {"app": "web"},
              "template": template({"app": "web", "v": "1"})}, generation=4)
    obj["status"] = {"conditions": conditions} if conditions else {}
    return obj


def test_status_counts():
    pods = [pod("a", ready=True), pod("b", ready=True, since=NOW - timedelta(seconds=5)),
            pod("c", labels={"app": "web"})]
    assert replica_status(owner(), pods, None, NOW) == {
        "replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
        "observedGeneration": 4}
    assert replica_status(owner(min_ready=10), pods, None, NOW)["availableReplicas"] == 1


def test_status_of_no_pods_keeps_replicas_zero():
    assert replica_status(owner(), [], None, NOW) == {"replicas": 0, "observedGeneration": 4}


def test_replica_failure_condition_added_kept_and_removed():
    st = replica_status(owner(), [], ("FailedCreate", 'pods "web-x" is forbidden'), NOW)
    (cond,) = st["conditions"]
    assert {k: cond[k] for k in ("type", "status", "reason", "message")} == \
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": 'pods "web-x" is forbidden'}
    again = replica_status(owner(conditions=[cond]), [], ("FailedCreate", "another error"), NOW)
    assert again["conditions"] == [cond]                      # kept as it was, as kube does
    assert "conditions" not in replica_status(owner(conditions=[cond]), [], None, NOW)


# ---- the controller on a real store --------------------------------------------------------------

@pytest.fixture
def cluster(tmp_path):
    store = Store(str(tmp_path / "store.db"))
    registry = Registry(store)
    bootstrap.bootstrap(registry, "172.28.0.1", 6443)
    stop = threading.Event()
    for c in (ReplicationManager, GarbageCollector):
        c(store, registry).start(stop)
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


def pods_of(store, selector=("app", "web")):
    return [p for p in store.list("pods", "default")[0]
            if (p["metadata"].get("labels") or {}).get(selector[0]) == selector[1]
            and not p["metadata"].get("deletionTimestamp")]


def test_creates_owned_pods_reports_status_and_events(cluster):
    store, registry = cluster
    made = registry.create(RCS, "default", rc({"replicas": 2, "template": template({"app": "web"})}))
    assert made["status"] == {"replicas": 0} and made["metadata"]["generation"] == 1
    pods = until(lambda: (p := pods_of(store)) and len(p) == 2 and p)
    for p in pods:
        assert p["metadata"]["ownerReferences"] == [{
            "apiVersion": "v1", "kind": "ReplicationController", "name": "web", "uid": made["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}]
        assert p["metadata"]["generateName"] == "web-"
    until(lambda: store.get("replicationcontrollers", "default", "web")["status"].get("replicas") == 2)
    events = store.list("events", "default")[0]
    assert sorted((e["reason"], e["source"]["component"]) for e in events) == \
        [("SuccessfulCreate", "replication-controller")] * 2
    registry.guaranteed_update(RCS, "default", "web", lambda o: {**o, "spec": {**o["spec"], "replicas": 1}})
    until(lambda: len(pods_of(store)) == 1)
    until(lambda: (s := store.get("replicationcontrollers", "default", "web")["status"])["replicas"] == 1
          and s["observedGeneration"] == 2)
    assert any(e["reason"] == "SuccessfulDelete" for e in store.list("events", "default")[0])


def test_adopts_orphans_and_releases_pods_it_no_longer_selects(cluster):
    store, registry = cluster
    orphan = {"metadata": {"name": "orphan", "labels": {"app": "web"}}, "spec": {"containers": CONTAINERS}}
    registry.create(PODS, "default", orphan)
    made = registry.create(RCS, "default", rc({"replicas": 1, "template": template({"app": "web"})}))
    until(lambda: (store.get("pods", "default", "orphan")["metadata"].get("ownerReferences") or [{}])[0]
          .get("uid") == made["metadata"]["uid"])
    time.sleep(0.3)
    assert [p["metadata"]["name"] for p in pods_of(store)] == ["orphan"]      # adopted: none created
    registry.guaranteed_update(PODS, "default", "orphan",
                               lambda p: {**p, "metadata": {**p["metadata"], "labels": {"app": "gone"}}})
    until(lambda: not store.get("pods", "default", "orphan")["metadata"].get("ownerReferences"))
    until(lambda: len(pods_of(store)) == 1 and pods_of(store)[0]["metadata"]["name"] != "orphan")


class QuotaRegistry(Registry):
    """A registry whose pod creates fail, as over a ResourceQuota."""

    def create(self, kind, namespace, obj):
        if kind.kind == "Pod":
            raise APIError(403, "Forbidden", f'pods "{obj["metadata"]["name"]}" is forbidden: exceeded quota')
        return super().create(kind, namespace, obj)


def test_failed_creates_set_replica_failure_and_warn(tmp_path):
    store = Store(str(tmp_path / "store.db"))
    registry = QuotaRegistry(store)
    bootstrap.bootstrap(registry, "172.28.0.1", 6443)
    stop = threading.Event()
    ReplicationManager(store, registry).start(stop)
    try:
        registry.create(RCS, "default", rc({"replicas": 1, "template": template({"app": "web"})}))
        conds = until(lambda: store.get("replicationcontrollers", "default", "web")["status"].get("conditions"))
        assert [(c["type"], c["status"], c["reason"]) for c in conds] == [("ReplicaFailure", "True", "FailedCreate")]
        assert conds[0]["message"].endswith("is forbidden: exceeded quota")
        warn = [e for e in store.list("events", "default")[0] if e["reason"] == "FailedCreate"]
        assert warn[0]["type"] == "Warning" and warn[0]["message"].startswith('Error creating: pods "web-')
    finally:
        stop.set()
        store.close()


def test_generated_pod_names_truncate_long_owner_names():
    long = rc({"template": template({"app": "web"})}, name="r" * 70, uid="u")
    made = pod_from_template(long)
    assert made["metadata"]["generateName"] == "r" * 70 + "-"
    assert made["metadata"]["name"].startswith("r" * 58) and len(made["metadata"]["name"]) == 63


def test_deleted_rc_pods_are_garbage_collected(cluster):
    store, registry = cluster
    registry.create(RCS, "default", rc({"replicas": 2, "template": template({"app": "web"})}))
    until(lambda: len(pods_of(store)) == 2)
    registry.delete(RCS, "default", "web")
    until(lambda: not pods_of(store))


def test_scale_subresource_path(cluster):
    store, registry = cluster
    registry.create(RCS, "default", rc({"replicas": 1, "template": template({"app": "web"})}))
    writes.require_scalable(RCS)
    cur = registry.get(RCS, "default", "web")
    registry.update(RCS, "default", "web", writes.with_scale(cur, {"spec": {"replicas": 3}}))
    until(lambda: len(pods_of(store)) == 3)
    with pytest.raises(APIError):
        writes.require_scalable(BY_RESOURCE["services"])
