"""Ports of test/e2e/apimachinery/apply.go ([sig-api-machinery]
ServerSideApply, not [Conformance] upstream): apply creating objects with
the managedFields kube records, subresources, removal of fields a manager
stops applying (and keeping those another manager shares), force, custom
resources (list-maps, sets, atomic lists, several versions), and an update
taking a field over — upstream's objects and checks, through real kubectl
(`kubectl apply --server-side` sends the same application/apply-patch+yaml
request as the e2e REST client)."""
from __future__ import annotations

import json

import pytest

from tests.conformance.framework import poll

pytestmark = pytest.mark.integration

BASE_NAME = "apply"
NGINX = "registry.k8s.io/e2e-test-images/nginx:1.15-4"      # imageutils.NginxNew


def ssa(f, body: str | dict, manager: str, *extra: str, check: bool = True):
    """One apply request as `manager` (the e2e test's Patch(types.ApplyPatchType))."""
    text = body if isinstance(body, str) else json.dumps(body)
    return f.kubectl("apply", "--server-side", f"--field-manager={manager}", "-o", "json", *extra, "-f", "-",
                     input=text, check=check)


def deployment(name: str, replicas: int | None = 3, ports: bool = False, hostname: str | None = None) -> dict:
    container = {"name": "nginx", "image": NGINX}
    if ports:
        container["ports"] = [{"containerPort": 80, "protocol": "TCP"}]
    spec = {"selector": {"matchLabels": {"app": "nginx"}},
            "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": {"containers": [container]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    if hostname:
        spec["template"]["spec"]["hostname"] = hostname
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": "nginx"}},
            "spec": spec}


def fields_of(obj: dict, manager: str) -> dict:
    return next(e["fieldsV1"] for e in obj["metadata"]["managedFields"] if e["manager"] == manager)


def test_should_create_an_applied_object_if_it_does_not_already_exist(framework):
    """[sig-api-machinery] ServerSideApply should create an applied object if it does not already exist"""
    f = framework
    cases = [
        ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "test-pod"},
          "spec": {"containers": [{"name": "test-container", "image": "test-image"}]}},
         {"f:spec": {"f:containers": {'k:{"name":"test-container"}': {".": {}, "f:image": {}, "f:name": {}}}}}),
        ({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "test-svc"},
          "spec": {"ports": [{"port": 8080, "protocol": "UDP"}]}},
         {"f:spec": {"f:ports": {'k:{"port":8080,"protocol":"UDP"}': {".": {}, "f:port": {}, "f:protocol": {}}}}}),
    ]
    for body, managed in cases:
        ssa(f, body, "apply_test")
        f.get(body["kind"].lower(), body["metadata"]["name"])
        obj = json.loads(ssa(f, body, "apply_test_2", "--show-managed-fields").stdout)
        for manager in ("apply_test", "apply_test_2"):
            assert fields_of(obj, manager) == managed, (manager, obj["metadata"]["managedFields"])


def test_should_work_for_subresources(framework):
    """[sig-api-machinery] ServerSideApply should work for subresources"""
    f = framework
    ssa(f, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "test-pod"},
            "spec": {"containers": [{"name": "nginx", "image": NGINX}]}}, "apply_test")
    f.get("pod", "test-pod")
    status = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "test-pod"},
              "status": {"conditions": [{"type": "MyStatus", "status": "True"}]}}
    ssa(f, status, "apply_test2")
    conds = f.get("pod", "test-pod").get("status", {}).get("conditions") or []
    assert all(c["type"] != "MyStatus" for c in conds), \
        "Apply should not update subresources unless the endpoint is specifically specified"
    ssa(f, status, "apply_test2", "--subresource=status")
    conds = f.get("pod", "test-pod")["status"]["conditions"]
    assert any(c["type"] == "MyStatus" for c in conds), "Expected pod to have applied status"


def test_should_remove_a_field_if_it_is_owned_but_removed_in_the_apply_request(framework):
    """[sig-api-machinery] ServerSideApply should remove a field if it is owned but removed in the apply request"""
    f = framework
    ssa(f, deployment("deployment", ports=True), "apply_test")
    ssa(f, deployment("deployment"), "apply_test")
    dep = f.get("deployment", "deployment")
    assert not dep["spec"]["template"]["spec"]["containers"][0].get("ports"), dep


def test_should_not_remove_a_field_if_an_owner_unsets_it_but_other_managers_still_own_it(framework):
    """[sig-api-machinery] ServerSideApply should not remove a field if an owner unsets the field but other
    managers still have ownership of the field"""
    f = framework
    for manager in ("shared_owner_1", "shared_owner_2"):
        ssa(f, deployment("deployment-shared-unset", hostname="test-hostname"), manager)
    dep = json.loads(ssa(f, deployment("deployment-shared-unset", replicas=None), "shared_owner_1").stdout)
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["template"]["spec"]["hostname"] == "test-hostname"


def test_should_ignore_conflict_errors_if_force_apply_is_used(framework):
    """[sig-api-machinery] ServerSideApply should ignore conflict errors if force apply is used"""
    f = framework
    ssa(f, deployment("deployment"), "apply_test")
    f.kubectl("patch", "deployment", "deployment", "--type=merge", "-p", '{"spec":{"replicas": 5}}')
    r = ssa(f, deployment("deployment"), "apply_test", check=False)
    assert r.returncode != 0 and "Apply failed with 1 conflict" in r.stderr, r.stderr
    ssa(f, deployment("deployment"), "apply_test", "--force-conflicts")


NOXU_SCHEMA = {"openAPIV3Schema": {"type": "object", "properties": {"spec": {
    "type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {
        "cronSpec": {"type": "string", "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$"},
        "ports": {"type": "array", "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
                  "x-kubernetes-list-type": "map",
                  "items": {"type": "object", "required": ["containerPort", "protocol"], "properties": {
                      "containerPort": {"format": "int32", "type": "integer"}, "hostIP": {"type": "string"},
                      "hostPort": {"format": "int32", "type": "integer"}, "name": {"type": "string"},
                      "protocol": {"type": "string"}}}}}}}}}


def noxu_crd(f, schema: dict) -> dict:
    """fixtures.NewRandomNameMultipleVersionCustomResourceDefinition(ClusterScoped), with `schema`."""
    from tests.conformance.test_apimachinery_crd import create_crd, random_crd
    crd = random_crd("Cluster")
    crd["spec"]["versions"] = [{"name": "v1beta1", "served": True, "storage": True, "schema": schema},
                               {"name": "v1", "served": True, "storage": False, "schema": schema}]
    return create_crd(f, crd)


def cr(crd: dict, version: int, body: str) -> str:
    return f"apiVersion: {crd['spec']['group']}/{crd['spec']['versions'][version]['name']}\n" \
           f"kind: {crd['spec']['names']['kind']}\nmetadata:\n  name: mytest\n" + body


def test_should_work_for_crds(framework):
    """[sig-api-machinery] ServerSideApply should work for CRDs"""
    f = framework
    crd = noxu_crd(f, NOXU_SCHEMA)
    res = f"{crd['spec']['names']['plural']}.{crd['spec']['group']}"
    try:
        spec = 'spec:\n  cronSpec: "* * * * */5"\n  replicas: 1\n  ports:\n  - name: x\n    containerPort: 80\n' \
               "    protocol: TCP\n"
        body = cr(crd, 0, "  finalizers:\n  - test-finalizer\n" + spec)
        out = json.loads(ssa(f, body, "apply_test").stdout)
        assert out["metadata"]["finalizers"] == ["test-finalizer"]
        assert out["spec"]["replicas"] == 1 and len(out["spec"]["ports"]) == 1
        out = json.loads(ssa(f, cr(crd, 1, spec), "apply_test").stdout)      # another version
        assert out["spec"]["replicas"] == 1 and len(out["spec"]["ports"]) == 1
        try:
            f.kubectl("patch", res, "mytest", "--type=merge", "-p",
                      '{"metadata":{"finalizers":["test-finalizer","another-one"]}}')
            out = json.loads(ssa(f, body, "apply_test").stdout)    # finalizers are a set: no conflict
            assert sorted(out["metadata"]["finalizers"]) == ["another-one", "test-finalizer"]
            f.kubectl("patch", res, "mytest", "--type=merge", "-p", '{"spec":{"replicas": 5}}')
            r = ssa(f, body, "apply_test", check=False)
            assert r.returncode != 0 and "Apply failed with 1 conflict" in r.stderr, r.stderr
            out = json.loads(ssa(f, body, "apply_test", "--force-conflicts").stdout)
            assert out["spec"]["replicas"] == 1
            item_y = "spec:\n  ports:\n  - name: \"y\"\n    containerPort: {}\n    protocol: TCP\n"
            r = ssa(f, cr(crd, 0, item_y.format(80)), "apply_test_2", check=False)
            assert r.returncode != 0 and "Apply failed with 1 conflict" in r.stderr, r.stderr
            out = json.loads(ssa(f, cr(crd, 0, item_y.format(8080)), "apply_test_2").stdout)
            assert len(out["spec"]["ports"]) == 2
            missing = f.kubectl("replace", "-f", "-", check=False, input=cr(crd, 0, spec).replace(
                "name: mytest", "name: should-not-exist"))
            assert "NotFound" in missing.stderr or "not found" in missing.stderr, missing.stderr
        finally:
            f.kubectl("patch", res, "mytest", "--type=merge", "-p", '{"metadata":{"finalizers":[]}}')
    finally:
        f.cluster.kubectl("delete", "crd", crd["metadata"]["name"])
    atomic = noxu_crd(f, {"openAPIV3Schema": {"type": "object", "properties": {"spec": {
        "type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {
            "atomicList": {"type": "array", "x-kubernetes-list-type": "atomic", "items": {"type": "string"}}}}}}})
    try:
        out = json.loads(ssa(f, cr(atomic, 0, 'spec:\n  atomicList:\n  - "item1"\n'), "apply_test").stdout)
        assert out["spec"]["atomicList"] == ["item1"]
        out = json.loads(ssa(f, cr(atomic, 0, 'spec:\n  atomicList:\n  - "item2"\n'), "apply_test_2",
                             "--force-conflicts").stdout)
        assert out["spec"]["atomicList"] == ["item2"]
    finally:
        f.cluster.kubectl("delete", "crd", atomic["metadata"]["name"])


def test_should_give_up_ownership_of_a_field_if_forced_applied_by_a_controller(framework):
    """[sig-api-machinery] ServerSideApply should give up ownership of a field if forced applied by a controller"""
    f = framework
    name = "deployment-shared-map-item-removal"
    ssa(f, deployment(name), "test_applier")

    def update() -> bool:                    # e2edeployment.UpdateDeploymentWithRetries
        dep = f.get("deployment", name)
        dep["spec"]["replicas"] = 4
        return f.kubectl("replace", "-f", "-", input=json.dumps(dep), check=False).returncode == 0
    poll(0.5, 30, update, what="the Deployment update")
    dep = json.loads(ssa(f, deployment(name, replicas=None), "test_applier").stdout)
    assert dep["spec"]["replicas"] == 4
