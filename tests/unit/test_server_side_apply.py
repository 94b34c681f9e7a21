"""Server-side apply and managedFields: FieldsV1 encoding, Update
bookkeeping, apply merges, conflicts and force (pure), then over HTTP on
loopback: apply-patch+yaml creating and updating a Deployment, kube's 409,
and the 406/415 Statuses for media types the server cannot serve."""
import json

import pytest

from agent.apiserver.ssa import managed
from agent.apiserver.ssa.fieldset import from_fields_v1, path_string, to_fields_v1
from agent.apiserver.ssa.schema import Shape
from tests.unit.apiserver_http import call as call_with_headers
from tests.unit.apiserver_http import serving

DEP = Shape("Deployment")


def deployment(replicas=2, image="nginx:1.27", ports=({"containerPort": 80},)):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "nginx", "image": image,
                                                           "ports": [dict(p) for p in ports]}]}}}}


def fields(obj, manager):
    return next(e["fieldsV1"] for e in obj["metadata"]["managedFields"] if e["manager"] == manager)


def test_fields_v1_round_trip():
    paths = {("f:spec", "f:replicas"), ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"a"}'),
             ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"a"}', "f:image")}
    enc = to_fields_v1(paths)
    assert enc == {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
        'k:{"name":"a"}': {".": {}, "f:image": {}}}}}}}
    assert from_fields_v1(enc) == paths
    assert path_string(("f:spec", "f:containers", 'k:{"name":"a"}', "f:image")) == '.spec.containers[name="a"].image'


def test_apply_records_what_kube_records():
    out = managed.apply(None, deployment(), "kubectl", "", DEP, "T1", False, True)
    assert out["metadata"]["managedFields"] == [{
        "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": "T1", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}},
                     "f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {
                         "f:metadata": {"f:labels": {"f:app": {}}},
                         "f:spec": {"f:containers": {'k:{"name":"nginx"}': {
                             ".": {}, "f:image": {}, "f:name": {},
                             "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {
                                 ".": {}, "f:containerPort": {}}}}}}}}}}]


def test_conflict_force_and_sharing():
    live = managed.apply(None, deployment(), "a", "", DEP, "T1", False, True)
    with pytest.raises(managed.ApplyConflict) as e:
        managed.apply(live, deployment(replicas=3), "b", "", DEP, "T2", False, True)
    assert str(e.value) == 'Apply failed with 1 conflict: conflict with "a": .spec.replicas'
    with pytest.raises(managed.ApplyConflict) as e:
        managed.apply(live, deployment(replicas=3, image="x"), "b", "", DEP, "T2", False, True)
    assert str(e.value) == ('Apply failed with 2 conflicts: conflicts with "a":\n- .spec.replicas\n'
                            '- .spec.template.spec.containers[name="nginx"].image')
    shared = managed.apply(live, deployment(), "b", "", DEP, "T2", False, True)     # same values: co-owned
    assert "f:replicas" in fields(shared, "a")["f:spec"] and "f:replicas" in fields(shared, "b")["f:spec"]
    forced = managed.apply(live, deployment(replicas=3), "b", "", DEP, "T2", True, True)
    assert forced["spec"]["replicas"] == 3
    assert "f:replicas" not in fields(forced, "a")["f:spec"] and "f:replicas" in fields(forced, "b")["f:spec"]


def test_apply_removes_what_the_manager_no_longer_applies():
    live = managed.apply(None, deployment(ports=({"containerPort": 80}, {"containerPort": 81})), "a", "", DEP,
                         "T1", False, True)
    out = managed.apply(live, deployment(), "a", "", DEP, "T2", False, True)
    assert out["spec"]["template"]["spec"]["containers"][0]["ports"] == [{"containerPort": 80}]
    cfg = deployment()
    del cfg["spec"]["replicas"]
    assert "replicas" not in managed.apply(live, cfg, "a", "", DEP, "T2", False, True)["spec"]


def test_update_takes_changed_fields_from_others():
    live = managed.apply(None, deployment(), "kubectl", "", DEP, "T1", False, True)
    new = json.loads(json.dumps(live))
    new["spec"]["replicas"] = 5
    new["metadata"]["annotations"] = {"note": "x"}
    mf = managed.track_update(live, new, "kubectl-edit", "", DEP, "T2", True)
    assert [(e["manager"], e["operation"]) for e in mf] == [("kubectl", "Apply"), ("kubectl-edit", "Update")]
    assert mf[1]["fieldsV1"] == {"f:metadata": {"f:annotations": {".": {}, "f:note": {}}}, "f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in mf[0]["fieldsV1"]["f:spec"]


def test_client_side_apply_hands_over():
    csa = deployment()
    csa["metadata"]["annotations"] = {managed.LAST_APPLIED: json.dumps(deployment())}
    mf = managed.track_update(None, csa, managed.CLIENT_SIDE_APPLY, "", DEP, "T1", True)
    csa["metadata"]["managedFields"] = mf
    out = managed.apply(csa, deployment(replicas=4), "kubectl", "", DEP, "T2", False, True)
    assert out["spec"]["replicas"] == 4
    assert json.loads(out["metadata"]["annotations"][managed.LAST_APPLIED])["spec"]["replicas"] == 4


# ---- over HTTP ---------------------------------------------------------------------------

@pytest.fixture
def base(tmp_path):
    with serving(tmp_path) as url:
        yield url


def call(*args, **kw):
    code, body, _ = call_with_headers(*args, **kw)
    return code, body


def test_apply_over_http(base):
    path = "/apis/apps/v1/namespaces/default/deployments/web"
    code, out = call(base, "PATCH", path, deployment(), "application/apply-patch+yaml")
    assert (code, out["message"]) == (400, "PATCH apply requests must set the fieldManager query parameter "
                                           "(fieldManager is required for apply requests)")
    code, out = call(base, "PATCH", path + "?fieldManager=a", deployment(), "application/apply-patch+yaml")
    assert code == 201 and out["spec"]["strategy"]["type"] == "RollingUpdate"      # defaulted as on create
    assert [e["manager"] for e in out["metadata"]["managedFields"]] == ["a"]
    again = call(base, "PATCH", path + "?fieldManager=a", deployment(), "application/apply-patch+yaml")[1]
    assert again["metadata"]["resourceVersion"] == out["metadata"]["resourceVersion"]     # a no-op apply
    code, out = call(base, "PATCH", path + "?fieldManager=b", deployment(replicas=3), "application/apply-patch+yaml")
    assert code == 409 and out["reason"] == "Conflict"
    assert out["message"] == 'Apply failed with 1 conflict: conflict with "a": .spec.replicas'
    assert out["details"]["causes"] == [{"reason": "FieldManagerConflict", "message": 'conflict with "a"',
                                         "field": ".spec.replicas"}]
    code, out = call(base, "PATCH", path + "?fieldManager=b&force=true&dryRun=All", deployment(replicas=3),
                     "application/apply-patch+yaml")
    assert code == 200 and out["spec"]["replicas"] == 3
    assert call(base, "GET", path)[1]["spec"]["replicas"] == 2           # the dry run changed nothing
    code, out = call(base, "PATCH", path + "?fieldManager=b&force=true", deployment(replicas=3),
                     "application/apply-patch+yaml")
    assert code == 200 and out["spec"]["replicas"] == 3
    code, out = call(base, "PATCH", path, {"spec": {"paused": True}}, "application/merge-patch+json")
    assert [(e["manager"], e["operation"]) for e in out["metadata"]["managedFields"]] == [
        ("a", "Apply"), ("b", "Apply"), ("kubectl", "Update")]


def test_unservable_media_types_get_a_status(base):
    code, out = call(base, "GET", "/api/v1/namespaces", accept="text/html")
    assert (code, out["reason"]) == (406, "NotAcceptable")
    code, out = call(base, "POST", "/api/v1/namespaces", b"x", ctype="text/plain")
    assert (code, out["reason"]) == (415, "UnsupportedMediaType")
    code, out = call(base, "PATCH", "/api/v1/namespaces/default", b"x", ctype="application/cbor")
    assert (code, out["kind"]) == (415, "Status")
