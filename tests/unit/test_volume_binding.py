"""Claims bound to the node of their first pod (WaitForFirstConsumer, as a
local-path provisioner): the scheduler's volume predicates and messages, the
StatefulSet controller's claims, PersistentVolumeClaim validation and columns."""
import pytest

from agent.api import printers
from agent.apiserver.defaults import default
from agent.apiserver.validation import format_invalid, validate
from agent.controllers import volumebinding as vb
from agent.controllers.scheduler import pick_node
from agent.controllers.statefulset import new_claims

READY = [{"type": "Ready", "status": "True"}]


def node(name, unschedulable=False):
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {"unschedulable": unschedulable}, "status": {"conditions": READY}}


def claim(name, on="", deleting=False):
    md = {"name": name, "namespace": "default"}
    if on:
        md["annotations"] = {vb.SELECTED_NODE: on}
    if deleting:
        md["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": md, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}}}


def pod(*claims):
    return {"metadata": {"name": "p", "namespace": "default"},
            "spec": {"volumes": [{"name": "cm", "configMap": {"name": "x"}}] +
                     [{"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}} for i, c in enumerate(claims)]}}


NODES = [node("node-1"), node("node-2"), node("node-3")]


def test_claim_names_once_each_in_order():
    assert vb.claim_names(pod("b", "a", "b")) == ["b", "a"]
    assert vb.claim_names({"spec": {}}) == []


def test_unbound_claim_fits_every_node_and_the_least_loaded_wins():
    claims = {"data": claim("data")}
    assert pick_node(pod("data"), NODES, {"node-1": 2, "node-2": 1, "node-3": 1}, claims) == ("node-2", "")
    assert vb.to_bind([claims["data"]]) == [claims["data"]]


def test_bound_claim_pins_the_pod_to_its_node():
    claims = {"data": claim("data", on="node-3")}
    assert pick_node(pod("data"), NODES, {"node-3": 5}, claims) == ("node-3", "")
    assert vb.fits([claims["data"]], "node-3") and not vb.fits([claims["data"]], "node-1")
    assert vb.to_bind([claims["data"]]) == []


def test_claims_bound_to_different_nodes_fit_nowhere():
    claims = {"a": claim("a", on="node-1"), "b": claim("b", on="node-2")}
    assert pick_node(pod("a", "b"), NODES, {}, claims) == (
        None, "0/3 nodes are available: 3 node(s) had volume node affinity conflict.")


def test_cordoned_claim_node_leaves_the_pod_pending_with_kube_scheduler_reasons():
    nodes = [node("node-1"), node("node-2", unschedulable=True), node("node-3")]
    assert pick_node(pod("data"), nodes, {}, {"data": claim("data", on="node-2")}) == (
        None, "0/3 nodes are available: 1 node(s) were unschedulable, "
              "2 node(s) had volume node affinity conflict.")


def test_missing_or_deleted_claim_fits_no_node():
    assert pick_node(pod("data"), NODES, {}, {}) == (
        None, '0/3 nodes are available: persistentvolumeclaim "data" not found.')
    assert pick_node(pod("data"), NODES, {}, {"data": claim("data", deleting=True)}) == (
        None, '0/3 nodes are available: persistentvolumeclaim "data" is being deleted.')
    assert vb.prefilter(pod("a", "b"), {"a": claim("a")}) == ([], 'persistentvolumeclaim "b" not found')


def test_pod_without_claims_is_unaffected():
    assert pick_node({"spec": {}}, NODES, {"node-1": 1}, None) == ("node-2", "")


def test_with_selected_node_annotates_once_and_refuses_another_node():
    c = claim("data")
    c["metadata"]["annotations"] = {"keep": "me"}
    out = vb.with_selected_node(c, "node-2")
    assert out["metadata"]["annotations"] == {"keep": "me", vb.SELECTED_NODE: "node-2"}
    assert vb.with_selected_node(out, "node-2") is None
    with pytest.raises(ValueError, match='persistentvolumeclaim "data" is bound to node "node-2"'):
        vb.with_selected_node(out, "node-1")


def sts(policy=None):
    spec = {"selector": {"matchLabels": {"app": "db"}},
            "volumeClaimTemplates": [
                {"metadata": {"name": "data", "labels": {"tier": "x"}},
                 "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                 "status": {"phase": "Pending"}},
                {"metadata": {}}]}
    if policy:
        spec["persistentVolumeClaimRetentionPolicy"] = policy
    return {"metadata": {"name": "db", "namespace": "prod", "uid": "u1"}, "spec": spec}


def test_statefulset_claims_from_templates():
    [c] = new_claims(sts(), 2)
    assert c["metadata"] == {"name": "data-db-2", "namespace": "prod", "labels": {"tier": "x", "app": "db"}}
    assert c["spec"]["resources"] == {"requests": {"storage": "1Gi"}} and "status" not in c
    [owned] = new_claims(sts({"whenDeleted": "Delete", "whenScaled": "Retain"}), 0)
    assert owned["metadata"]["ownerReferences"][0]["uid"] == "u1"


def pvc(**spec):
    obj = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "default"},
           "spec": spec}
    default("PersistentVolumeClaim", obj)
    return obj


def test_pvc_defaults_and_validation_messages():
    ok = pvc(accessModes=["ReadWriteOnce"], resources={"requests": {"storage": "1Gi"}})
    assert ok["spec"]["volumeMode"] == "Filesystem" and ok["status"] == {"phase": "Pending"}
    assert validate("PersistentVolumeClaim", ok) == []
    assert format_invalid("PersistentVolumeClaim", "data", validate("PersistentVolumeClaim", pvc())) == (
        'PersistentVolumeClaim "data" is invalid: [spec.accessModes: Required value: at least 1 access mode is '
        'required, spec.resources[storage]: Required value]')
    bad = pvc(accessModes=["ReadWriteOncePod", "Sometimes"], resources={"requests": {"storage": "0"}},
              volumeMode="Tape")
    msgs = [str(c) for c in validate("PersistentVolumeClaim", bad)]
    assert msgs == [
        'spec.accessModes: Unsupported value: "Sometimes": supported values: "ReadOnlyMany", "ReadWriteMany", '
        '"ReadWriteOnce", "ReadWriteOncePod"',
        "spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes",
        'spec.resources[storage]: Invalid value: "0": must be greater than zero',
        'spec.volumeMode: Unsupported value: "Tape": supported values: "Block", "Filesystem"']


def test_pvc_spec_is_immutable_but_annotations_are_not():
    old = pvc(accessModes=["ReadWriteOnce"], resources={"requests": {"storage": "1Gi"}})
    grown = pvc(accessModes=["ReadWriteOnce"], resources={"requests": {"storage": "2Gi"}})
    assert [str(c) for c in validate("PersistentVolumeClaim", grown, old)] == [
        "spec: Forbidden: spec is immutable after creation except resources.requests and "
        "volumeAttributesClassName for bound claims"]
    annotated = vb.with_selected_node(pvc(accessModes=["ReadWriteOnce"], resources={"requests": {"storage": "1Gi"}}),
                                      "node-1")
    assert validate("PersistentVolumeClaim", annotated, old) == []
    bound = {**old, "status": {"phase": "Bound"}}
    assert validate("PersistentVolumeClaim", grown, bound) == []


def test_pvc_columns():
    c = pvc(accessModes=["ReadWriteOnce"], resources={"requests": {"storage": "1Gi"}})
    assert printers.row("PersistentVolumeClaim", c, wide=True)[:7] == [
        "data", "Pending", "", "", "", "", "<unset>"]
    c["spec"].update(volumeName="pvc-1", storageClassName="local-path")
    c["status"] = {"phase": "Bound", "accessModes": ["ReadWriteMany", "ReadWriteOnce"], "capacity": {"storage": "1Gi"}}
    assert printers.row("PersistentVolumeClaim", c, wide=True)[:6] + printers.row(
        "PersistentVolumeClaim", c, wide=True)[-1:] == ["data", "Bound", "pvc-1", "1Gi", "RWO,RWX", "local-path",
                                                        "Filesystem"]
