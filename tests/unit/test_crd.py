"""CustomResourceDefinitions: structural schemas (defaults, pruning,
validation messages), the CRD's own validation, and custom resources served
over real HTTP on loopback (no root)."""
import pytest

from agent.apiserver.crd import schema as structural
from agent.apiserver.crd.definition import default_crd, sorted_versions, validate_crd
from tests.unit.apiserver_http import call, serving

SCHEMA = {"type": "object", "properties": {
    "spec": {"type": "object", "required": ["color"], "properties": {
        "color": {"type": "string", "enum": ["red", "blue"]},
        "size": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
        "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5, "minLength": 2},
        "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
        "port": {"x-kubernetes-int-or-string": True},
        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    }},
    "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}


def msgs(value):
    return [str(c) for c in structural.validate(value, SCHEMA)]


def test_schema_messages_are_kubes():
    assert msgs({"spec": {"color": "red"}}) == []
    assert msgs({"spec": {}}) == ["spec.color: Required value"]
    assert msgs({"spec": {"color": "green"}}) == \
        ['spec.color: Unsupported value: "green": supported values: "red", "blue"']
    assert msgs({"spec": {"color": "red", "size": 200}}) == \
        ["spec.size: Invalid value: 200: spec.size in body should be less than or equal to 100"]
    assert msgs({"spec": {"color": "red", "size": "big"}}) == \
        ['spec.size: Invalid value: "string": spec.size in body must be of type integer: "string"']
    assert msgs({"spec": {"color": "red", "name": "ABC"}}) == \
        ["spec.name: Invalid value: \"ABC\": spec.name in body should match '^[a-z]+$'"]
    assert msgs({"spec": {"color": "red", "name": "abcdefg"}}) == \
        ["spec.name: Too long: may not be more than 5 bytes"]
    assert msgs({"spec": {"color": "red", "tags": ["a", "b", "c"]}}) == \
        ["spec.tags: Too many: 3: must have at most 2 items"]
    assert msgs({"spec": {"color": "red", "port": 80}}) == msgs({"spec": {"color": "red", "port": "http"}}) == []
    assert msgs({"spec": {"color": "red", "port": True}}) == \
        ['spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean"']


def test_defaults_and_pruning():
    obj = {"apiVersion": "x/v1", "kind": "W", "metadata": {"name": "a", "labels": {"k": "v"}},
           "spec": {"color": "red", "bogus": 1, "extra": {"anything": [1]}, "labels": {"a": "b"}}, "top": 1}
    structural.apply_defaults(obj, SCHEMA)
    dropped = structural.prune(obj, SCHEMA)
    assert dropped == ["spec.bogus", "top"]
    assert obj["spec"] == {"color": "red", "size": 10, "extra": {"anything": [1]}, "labels": {"a": "b"}}
    assert obj["metadata"] == {"name": "a", "labels": {"k": "v"}}      # ObjectMeta is never pruned


def test_cel_rules_are_found():
    s = {"type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-validations": [
        {"rule": "self.a > 0"}], "properties": {"l": {"type": "array", "items": {
            "type": "object", "x-kubernetes-validations": [{"rule": "true"}]}}}}}}
    assert structural.cel_rules(s) == ["spec", "spec.l[*]"]


def crd(**over):
    c = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
         "metadata": {"name": "widgets.example.com"},
         "spec": {"group": "example.com", "scope": "Namespaced",
                  "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wg"]},
                  "versions": [{"name": "v1", "served": True, "storage": True,
                                "schema": {"openAPIV3Schema": SCHEMA}}]}}
    c["spec"].update(over)
    default_crd(c)
    return c


def test_crd_validation():
    assert validate_crd(crd(), None, []) == []
    assert [str(c) for c in validate_crd(crd(group="example"), None, [])][0] == \
        'spec.group: Invalid value: "example": should be a domain with at least one dot'
    bad = crd(versions=[{"name": "v1", "served": True, "storage": False,
                         "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {}}}}}])
    assert [str(c) for c in validate_crd(bad, None, [])] == [
        'spec.versions: Invalid value: []string{"v1"}: must have exactly one version marked as storage version',
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: "
        "must not be empty for specified object fields"]
    named = crd()
    named["metadata"]["name"] = "gadgets.example.com"
    assert 'must be spec.names.plural+"."+spec.group' in str(validate_crd(named, None, [])[0])
    assert "built-in resource" in str(validate_crd(crd(names={"plural": "services", "kind": "S",
                                                                "listKind": "SList"}), None, [])[-1])


def test_version_priority():
    assert sorted_versions(["v1alpha1", "v1", "v2beta1", "v1beta1", "v2", "foo"]) == \
        ["v2", "v1", "v2beta1", "v1beta1", "v1alpha1", "foo"]


# ---- served over HTTP -------------------------------------------------------------------

@pytest.fixture
def api(tmp_path):
    with serving(tmp_path) as base:
        yield base


def test_custom_resources_served(api):
    base = api
    two = crd(versions=[{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": SCHEMA},
                         "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.size",
                                                                  "statusReplicasPath": ".status.replicas"}},
                         "additionalPrinterColumns": [{"name": "Color", "type": "string",
                                                       "jsonPath": ".spec.color"}]},
                        {"name": "v1beta1", "served": True, "storage": False,
                         "schema": {"openAPIV3Schema": SCHEMA}}])
    code, out, _ = call(base, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", two)
    assert code == 201, out
    assert [c["type"] for c in out["status"]["conditions"]] == ["NamesAccepted", "Established"]
    assert out["status"]["storedVersions"] == ["v1"] and out["metadata"]["generation"] == 1
    col = "/apis/example.com/v1/namespaces/default/widgets"
    code, out, _ = call(base, "POST", col, {"apiVersion": "example.com/v1", "kind": "Widget",
                                           "metadata": {"name": "bad"}, "spec": {"color": "green"}})
    assert (code, out["message"]) == (422, 'Widget.example.com "bad" is invalid: spec.color: Unsupported value: '
                                            '"green": supported values: "red", "blue"')
    code, out, _ = call(base, "POST", col + "?fieldValidation=Strict",
                       {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
                        "spec": {"color": "red", "nope": 1}})
    assert (code, out["message"]) == (400, 'Widget in version "v1" cannot be handled as a Widget: strict decoding '
                                           'error: unknown field "spec.nope"')
    code, out, _ = call(base, "POST", col, {"apiVersion": "example.com/v1", "kind": "Widget",
                                           "metadata": {"name": "w"}, "spec": {"color": "red"},
                                           "status": {"replicas": 4}})
    assert code == 201 and out["spec"]["size"] == 10 and out["metadata"]["generation"] == 1
    assert "status" not in out        # written through /status only
    code, out, _ = call(base, "PUT", col + "/w/status", {**out, "status": {"replicas": 4}})
    assert code == 200 and out["status"] == {"replicas": 4}
    code, bad, _ = call(base, "PUT", col + "/w/status", {**out, "status": {"replicas": "many"}})
    assert (code, bad["details"]["causes"][0]["field"]) == (422, "status.replicas")
    code, out, _ = call(base, "GET", "/apis/example.com/v1beta1/namespaces/default/widgets/w")
    assert out["apiVersion"] == "example.com/v1beta1"
    code, out, _ = call(base, "GET", col + "/w/scale")
    assert out["spec"]["replicas"] == 10 and out["status"]["replicas"] == 4
    code, out, _ = call(base, "PATCH", col + "/w", {"spec": {"size": 3}}, "application/strategic-merge-patch+json")
    assert code == 415
    code, out, _ = call(base, "PATCH", col + "/w", {"spec": {"size": 3}, "status": {"replicas": 9}},
                       "application/merge-patch+json")
    assert out["spec"]["size"] == 3 and out["status"]["replicas"] == 4 and out["metadata"]["generation"] == 2
    code, out, _ = call(base, "GET", col, accept="application/json;as=Table;v=v1;g=meta.k8s.io")
    assert [c["name"] for c in out["columnDefinitions"]] == ["Name", "Color"]
    assert out["rows"][0]["cells"] == ["w", "red"]
    code, out, _ = call(base, "GET", "/apis/example.com/v1")
    assert sorted(r["name"] for r in out["resources"]) == ["widgets", "widgets/scale", "widgets/status"]
    code, out, _ = call(base, "GET", "/apis")
    assert {"name": "example.com", "versions": [{"groupVersion": "example.com/v1", "version": "v1"},
                                                {"groupVersion": "example.com/v1beta1", "version": "v1beta1"}],
            "preferredVersion": {"groupVersion": "example.com/v1", "version": "v1"}} in out["groups"]
    code, out, _ = call(base, "GET", "/openapi/v3/apis/example.com/v1")
    patch_op = out["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" not in patch_op["requestBody"]["content"]
    assert any(p["name"] == "fieldValidation" for p in patch_op["parameters"])
    code, out, _ = call(base, "GET", "/openapi/v2")
    widget = out["definitions"]["com.example.v1.Widget"]
    assert widget["x-kubernetes-group-version-kind"] == [{"group": "example.com", "kind": "Widget", "version": "v1"}]
    assert widget["properties"]["spec"]["properties"]["color"]["enum"] == ["red", "blue"]
    assert "/apis/example.com/v1beta1/namespaces/{namespace}/widgets/{name}" in out["paths"]
    code, out, _ = call(base, "DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
    assert code == 200
    code, out, _ = call(base, "GET", col + "/w")
    assert code == 404


def test_objects_owned_by_custom_resources_are_collected_with_them(tmp_path):
    from agent.api.kinds import BY_RESOURCE
    from agent.apiserver.crd.definition import served
    from agent.apiserver.registry import Registry
    from agent.apiserver.store import Store
    from agent.controllers import bootstrap
    from agent.controllers.gc import GarbageCollector
    store = Store(str(tmp_path / "store.db"))
    registry = Registry(store)
    bootstrap.bootstrap(registry, "172.28.0.1", 6443)
    registry.create(BY_RESOURCE["customresourcedefinitions"], None, crd())
    widgets = next(k for k in served(store) if k.resource == "widgets")
    owner = registry.create(widgets, "default", {"metadata": {"name": "w"}, "spec": {"color": "red"}})
    ref = {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w", "uid": owner["metadata"]["uid"]}
    registry.create(BY_RESOURCE["pods"], "default", {"metadata": {"name": "p", "ownerReferences": [ref]},
                                                     "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    gc = GarbageCollector(store, registry)
    gc.sync(("sweep",))
    assert registry.get(BY_RESOURCE["pods"], "default", "p")      # its owner is alive
    registry.delete(widgets, "default", "w")
    gc.sync(("sweep",))
    assert not store.list("pods", "default")[0]
    store.close()
