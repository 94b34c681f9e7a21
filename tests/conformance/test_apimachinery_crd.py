"""Ports of test/e2e/apimachinery/custom_resource_definition.go
([sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin]):
create/delete, list with a label selector and delete-collection, the status
subresource (read, update, JSON patch), discovery, and defaulting on
requests and from storage — with upstream's fixture CRD
(apiextensions' NewRandomNameV1CustomResourceDefinition), checks and
timeouts, through real kubectl."""
from __future__ import annotations

import json
import random
import uuid

import pytest

from tests.conformance.framework import poll

pytestmark = pytest.mark.integration

BASE_NAME = "custom-resource-definition"
FOREVER_TEST_TIMEOUT = 30.0          # wait.ForeverTestTimeout


def random_crd(scope: str = "Cluster") -> dict:
    """fixtures.NewRandomNameV1CustomResourceDefinition: one served storage
    version v1beta1 whose schema allows everything."""
    g = "foo" + "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{g}s.mygroup.example.com"},
            "spec": {"group": "mygroup.example.com", "scope": scope,
                     "names": {"plural": f"{g}s", "singular": g, "kind": g, "listKind": f"{g}List"},
                     "versions": [{"name": "v1beta1", "served": True, "storage": True, "schema": {
                         "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}


def create_crd(f, crd: dict) -> dict:
    """CreateNewV1CustomResourceDefinitionWatchUnsafe: create, then wait until served."""
    out = json.loads(f.cluster.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(crd)).stdout)
    gv = f"/apis/{crd['spec']['group']}/{crd['spec']['versions'][0]['name']}"

    def served() -> bool:
        r = f.cluster.kubectl("get", "--raw", gv, check=False)
        return r.returncode == 0 and any(res["name"] == crd["spec"]["names"]["plural"]
                                         for res in json.loads(r.stdout)["resources"])
    poll(0.5, FOREVER_TEST_TIMEOUT, served, what=f"{crd['metadata']['name']} to be served")
    return out


def delete_crd(f, crd: dict) -> None:
    f.cluster.kubectl("delete", "crd", crd["metadata"]["name"])


def test_creating_deleting_custom_resource_definition_objects_works(framework):
    """[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] Simple
    CustomResourceDefinition creating/deleting custom resource definition objects works [Conformance]"""
    crd = create_crd(framework, random_crd())
    delete_crd(framework, crd)


def test_listing_custom_resource_definition_objects_works(framework):
    """[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] Simple
    CustomResourceDefinition listing custom resource definition objects works [Conformance]"""
    f, test_uuid = framework, str(uuid.uuid4())
    crds = []
    for _ in range(10):
        crd = random_crd()
        crd["metadata"]["labels"] = {"e2e-list-test-uuid": test_uuid}
        crds.append(create_crd(f, crd))
    other = create_crd(f, random_crd())
    try:
        listed = json.loads(f.cluster.kubectl("get", "crd", "-l", f"e2e-list-test-uuid={test_uuid}",
                                              "-o", "json").stdout)["items"]
        assert len(listed) == 10
        by_name = {c["metadata"]["name"]: c for c in crds}
        for actual in listed:
            assert by_name[actual["metadata"]["name"]]["spec"] == actual["spec"]
        f.cluster.kubectl("delete", "crd", "-l", f"e2e-list-test-uuid={test_uuid}")
        f.cluster.kubectl("get", "crd", other["metadata"]["name"])
    finally:
        delete_crd(f, other)


def test_custom_resource_definition_status_subresource_works(framework):
    """[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] Simple
    CustomResourceDefinition getting/updating/patching custom resource definition status sub-resource
    works [Conformance]"""
    f = framework
    crd = create_crd(f, random_crd())
    name = crd["metadata"]["name"]
    try:
        status = json.loads(f.cluster.kubectl(
            "get", "--raw", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}/status").stdout)
        assert status["spec"] == crd["spec"]
        status["status"]["conditions"].append({"message": "updated"})
        updated = json.loads(f.cluster.kubectl("replace", "--subresource=status", "-f", "-", "-o", "json",
                                               input=json.dumps(status)).stdout)
        assert {"message": "updated"} in updated["status"]["conditions"]
        patched = json.loads(f.cluster.kubectl(
            "patch", "crd", name, "--subresource=status", "--type=json", "-o", "json",
            "-p", '[{"op": "add", "path": "/status/conditions", "value": [{"message": "patched"}]}]').stdout)
        assert {"message": "patched"} in patched["status"]["conditions"]
    finally:
        delete_crd(f, crd)


def test_should_include_custom_resource_definition_resources_in_discovery_documents(framework):
    """[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] should include custom
    resource definition resources in discovery documents [Conformance]"""
    f = framework
    group = next(g for g in f.raw("/apis")["groups"] if g["name"] == "apiextensions.k8s.io")
    assert any(v["version"] == "v1" for v in group["versions"])
    group = f.raw("/apis/apiextensions.k8s.io")
    assert group["name"] == "apiextensions.k8s.io" and any(v["version"] == "v1" for v in group["versions"])
    resources = f.raw("/apis/apiextensions.k8s.io/v1")
    assert resources["groupVersion"] == "apiextensions.k8s.io/v1"
    assert any(r["name"] == "customresourcedefinitions" for r in resources["resources"])


def test_custom_resource_defaulting_for_requests_and_from_storage_works(framework):
    """[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] custom resource
    defaulting for requests and from storage works [Conformance]"""
    f = framework
    crd = random_crd()
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"] = {"a": {"type": "string"},
                                                                             "b": {"type": "string"}}
    crd = create_crd(f, crd)
    plural, kind = crd["spec"]["names"]["plural"], crd["spec"]["names"]["kind"]
    base = f"/apis/mygroup.example.com/v1beta1/{plural}"
    try:
        def cr(name: str) -> str:
            return json.dumps({"apiVersion": "mygroup.example.com/v1beta1", "kind": kind, "metadata": {"name": name}})
        name1 = "cr-1" + uuid.uuid4().hex[:5]
        f.cluster.kubectl("create", "-f", "-", input=cr(name1))
        f.cluster.kubectl("patch", "crd", crd["metadata"]["name"], "--type=json", "-p", json.dumps([
            {"op": "add", "path": "/spec/versions/0/schema/openAPIV3Schema/properties/a/default", "value": "A"}]))

        def defaulted_a() -> bool:
            a = f.raw(f"{base}/{name1}").get("a")
            if a is not None and a != "A":
                raise AssertionError(f'expected a:"A", but got a:"{a}"')
            return a == "A"
        poll(0.1, FOREVER_TEST_TIMEOUT, defaulted_a, what="the CR to be defaulted on read")

        name2 = "cr-2" + uuid.uuid4().hex[:5]
        u2 = json.loads(f.cluster.kubectl("create", "-f", "-", "-o", "json", input=cr(name2)).stdout)
        assert u2.get("a") == "A", '"a" is defaulted to "A"'
        f.cluster.kubectl("patch", "crd", crd["metadata"]["name"], "--type=json", "-p", json.dumps([
            {"op": "remove", "path": "/spec/versions/0/schema/openAPIV3Schema/properties/a/default"},
            {"op": "add", "path": "/spec/versions/0/schema/openAPIV3Schema/properties/b/default", "value": "B"}]))

        def defaulted_b() -> bool:
            u = f.raw(f"{base}/{name2}")
            if u.get("b") is None:
                return False
            assert u["b"] == "B" and u.get("a") == "A", f"expected b:B and a:A unchanged, got {u}"
            return True
        poll(0.1, FOREVER_TEST_TIMEOUT, defaulted_b, what="b defaulted on read and a staying the same")
    finally:
        delete_crd(f, crd)


# ---- crd_watch.go ----------------------------------------------------------------------------

WATCH_EVENT_TIMEOUT = 30.0          # expectEvent's wait.ForeverTestTimeout
NO_EVENT_WAIT = 5.0                 # expectNoEvent's watcher timeout


def noxu_crd() -> dict:
    """fixtures.NewNoxuV1CustomResourceDefinition(ClusterScoped)."""
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "noxus.mygroup.example.com"},
            "spec": {"group": "mygroup.example.com", "scope": "Cluster",
                     "names": {"plural": "noxus", "singular": "nonenglishnoxu", "kind": "WishIHadChosenNoxu",
                               "shortNames": ["foo", "bar", "abc", "def"], "listKind": "NoxuItemList",
                               "categories": ["all"]},
                     "versions": [{"name": "v1beta1", "served": True, "storage": True, "schema": {
                         "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}


def noxu_instance(name: str) -> dict:
    """fixtures.NewNoxuInstance("", name)."""
    return {"apiVersion": "mygroup.example.com/v1beta1", "kind": "WishIHadChosenNoxu", "metadata": {"name": name},
            "content": {"key": "value"}, "num": {"num1": 9223372036854775807, "num2": 1000000}}


def test_watch_on_custom_resource_definition_objects(framework):
    """[sig-api-machinery] CustomResourceDefinition Watch [Privileged:ClusterAdmin] CustomResourceDefinition Watch
    watch on custom resource definition objects [Conformance]"""
    f = framework
    crd = create_crd(f, noxu_crd())
    path = "/apis/mygroup.example.com/v1beta1/noxus"
    watches = {n: f.watch(path, fieldSelector=f"metadata.name={n}", timeoutSeconds="600") for n in ("name1", "name2")}

    def expect_event(w, etype: str) -> dict:
        return w.until(WATCH_EVENT_TIMEOUT, lambda e: e["type"] == etype)

    def expect_no_event(w, etype: str) -> None:
        event = w.next(NO_EVENT_WAIT)
        assert event is None or event["type"] != etype, f"unexpected {etype} event: {event}"
    try:
        for this, other in (("name1", "name2"), ("name2", "name1")):
            created = json.loads(f.cluster.kubectl("create", "-f", "-", "-o", "json",
                                                   input=json.dumps(noxu_instance(this))).stdout)
            assert created["metadata"]["uid"]
            assert (created["apiVersion"], created["kind"]) == ("mygroup.example.com/v1beta1", "WishIHadChosenNoxu")
            assert expect_event(watches[this], "ADDED")["object"]["metadata"]["name"] == this
            expect_no_event(watches[other], "ADDED")
        for verb, etype in (("patch", "MODIFIED"), ("delete", "DELETED")):
            for this, other in (("name1", "name2"), ("name2", "name1")):
                if verb == "patch":
                    f.cluster.kubectl("patch", "noxus", this, "--type=json",
                                      "-p", '[{ "op": "add", "path": "/dummy", "value": "test" }]')
                else:
                    f.cluster.kubectl("delete", "noxus", this)
                expect_event(watches[this], etype)
                expect_no_event(watches[other], etype)
    finally:
        for w in watches.values():
            w.stop()
        delete_crd(f, crd)
