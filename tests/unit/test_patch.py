"""PATCH bodies: strategic merge by merge key and directives, RFC 7386 and
RFC 6902, checked against what kube-apiserver does with kubectl's patches."""
import json

import pytest

from agent.apiserver import patch
from agent.apiserver.patch import PatchError, json_patch, merge_patch, strategic_merge

DEPLOY = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}, "finalizers": ["a"]},
    "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
             "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
             "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                 "containers": [
                     {"name": "web", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                      "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                     {"name": "side", "image": "busybox"}],
                 "volumes": [{"name": "data", "emptyDir": {}}],
                 "tolerations": [{"key": "x", "operator": "Exists"}]}}},
}
SVC = {"kind": "Service", "metadata": {"name": "web"},
       "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"},
                                                      {"port": 443, "targetPort": 8443, "protocol": "TCP"}]}}


def containers(obj):
    return obj["spec"]["template"]["spec"]["containers"]


# ---- strategic merge ---------------------------------------------------------

def test_set_image_merges_container_by_name():
    out = strategic_merge(DEPLOY, {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "nginx:1.27"}]}}}}, "Deployment")
    assert [c["name"] for c in containers(out)] == ["web", "side"]
    assert containers(out)[0]["image"] == "nginx:1.27"
    assert containers(out)[0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]   # untouched
    assert containers(DEPLOY)[0]["image"] == "nginx"     # input not mutated


def test_new_merge_key_appends_and_env_merges_by_name():
    out = strategic_merge(DEPLOY, {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}]},
        {"name": "log", "image": "busybox"}]}}}}, "Deployment")
    assert [c["name"] for c in containers(out)] == ["web", "side", "log"]
    assert containers(out)[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "20"},
                                         {"name": "C", "value": "3"}]


def test_list_without_merge_key_is_replaced():
    out = strategic_merge(DEPLOY, {"spec": {"template": {"spec": {"tolerations": [{"key": "y"}]}}}}, "Deployment")
    assert out["spec"]["template"]["spec"]["tolerations"] == [{"key": "y"}]


def test_null_deletes_a_field_and_maps_merge():
    out = strategic_merge(SVC, {"spec": {"selector": {"app": "webb", "tier": None}}, "metadata": {"labels": None}},
                          "Service")
    assert out["spec"]["selector"] == {"app": "webb"}
    out = strategic_merge(SVC, {"spec": {"selector": {"app": None}}}, "Service")
    assert out["spec"]["selector"] == {}


def test_service_ports_merge_by_port_and_delete_directive():
    # what `kubectl apply` sends after port 80 -> 8080 in the manifest
    p = {"spec": {"$setElementOrder/ports": [{"port": 8080}, {"port": 443}],
                  "ports": [{"port": 8080, "targetPort": 80}, {"$patch": "delete", "port": 80}]}}
    out = strategic_merge(SVC, p, "Service")
    assert [x["port"] for x in out["spec"]["ports"]] == [8080, 443]
    assert out["spec"]["ports"][1]["targetPort"] == 8443


def test_set_element_order_keeps_server_only_items_after():
    p = {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "web"}]}}}}
    out = strategic_merge(DEPLOY, p, "Deployment")
    assert [c["name"] for c in containers(out)] == ["side", "web"]
    p = {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "side"}]}}}}
    assert [c["name"] for c in containers(strategic_merge(DEPLOY, p, "Deployment"))] == ["side", "web"]


def test_patch_replace_on_map_and_list():
    out = strategic_merge(SVC, {"spec": {"selector": {"$patch": "replace", "run": "x"}}}, "Service")
    assert out["spec"]["selector"] == {"run": "x"}
    out = strategic_merge(SVC, {"spec": {"ports": [{"$patch": "replace"}, {"port": 9, "targetPort": 9}]}},
                          "Service")
    assert out["spec"]["ports"] == [{"port": 9, "targetPort": 9}]


def test_patch_delete_on_map():
    out = strategic_merge(DEPLOY, {"spec": {"strategy": {"$patch": "delete"}}}, "Deployment")
    assert "strategy" not in out["spec"]


def test_retain_keys_drops_the_other_union_member():
    # kubectl apply switching strategy to Recreate sends $retainKeys
    p = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}}}
    out = strategic_merge(DEPLOY, p, "Deployment")
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    p = {"spec": {"template": {"spec": {"volumes": [
        {"name": "data", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/x"}}]}}}}
    vols = strategic_merge(DEPLOY, p, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert vols == [{"name": "data", "hostPath": {"path": "/x"}}]


def test_primitive_merge_list_and_delete_from_primitive_list():
    out = strategic_merge(DEPLOY, {"metadata": {"finalizers": ["b", "a"]}}, "Deployment")
    assert out["metadata"]["finalizers"] == ["a", "b"]
    out = strategic_merge(DEPLOY, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}, "Deployment")
    assert out["metadata"]["finalizers"] == []


def test_rollout_restart_patch_adds_template_annotation():
    p = {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}}}}}
    out = strategic_merge(DEPLOY, p, "Deployment")
    assert out["spec"]["template"]["metadata"] == {
        "labels": {"app": "web"}, "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}}


def test_missing_merge_key_is_an_error():
    with pytest.raises(PatchError, match="does not contain declared merge key: name"):
        strategic_merge(DEPLOY, {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}, "Deployment")


def test_conditions_merge_by_type():
    pod = {"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}]}}
    out = strategic_merge(pod, {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, "Pod")
    assert out["status"]["conditions"] == [{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}]


# ---- merge patch -------------------------------------------------------------

def test_merge_patch_replaces_lists_and_deletes_nulls():
    out = merge_patch(SVC, {"spec": {"ports": [{"port": 1}], "selector": None}})
    assert out["spec"] == {"ports": [{"port": 1}]}
    assert SVC["spec"]["selector"] == {"app": "web"}


# ---- JSON patch --------------------------------------------------------------

def test_json_patch_ops():
    doc = {"a": {"b": [1, 2, 3]}, "c": "x", "d/e": 1, "f~g": 2}
    ops = [{"op": "add", "path": "/a/b/1", "value": 9},
           {"op": "add", "path": "/a/b/-", "value": 4},
           {"op": "remove", "path": "/a/b/0"},
           {"op": "replace", "path": "/c", "value": "y"},
           {"op": "copy", "from": "/c", "path": "/h"},
           {"op": "move", "from": "/d~1e", "path": "/i"},
           {"op": "test", "path": "/f~0g", "value": 2}]
    assert json_patch(doc, ops) == {"a": {"b": [9, 2, 3, 4]}, "c": "y", "h": "y", "i": 1, "f~g": 2}


@pytest.mark.parametrize("ops, msg", [
    ([{"op": "test", "path": "/c", "value": "nope"}], "test failed"),
    ([{"op": "remove", "path": "/zz"}], "missing path"),
    ([{"op": "replace", "path": "/zz", "value": 1}], "missing path"),
    ([{"op": "move", "from": "/zz", "path": "/y"}], "missing path"),
    ([{"op": "copy", "from": "/a/b/7", "path": "/y"}], "index out of bounds"),
    ([{"op": "move", "from": "/a", "path": "/a/b/0"}], "own child"),
    ([{"op": "add", "path": "/a/b/5", "value": 1}], "index out of bounds"),
    ([{"op": "frobnicate", "path": "/c"}], "Unexpected kind"),
])
def test_json_patch_errors_leave_the_document_alone(ops, msg):
    doc = {"a": {"b": [1]}, "c": "x"}
    with pytest.raises(PatchError, match=msg):
        json_patch(doc, [{"op": "replace", "path": "/c", "value": "changed"}, *ops])
    assert doc == {"a": {"b": [1]}, "c": "x"}


# ---- dispatch by content type -------------------------------------------------

def test_apply_dispatches_on_content_type():
    body = json.dumps({"spec": {"ports": [{"port": 80, "targetPort": 81}]}}).encode()
    smp = patch.apply("application/strategic-merge-patch+json", SVC, body, "Service")
    assert len(smp["spec"]["ports"]) == 2 and smp["spec"]["ports"][0]["targetPort"] == 81
    merged = patch.apply("application/merge-patch+json; charset=utf-8", SVC, body, "Service")
    assert merged["spec"]["ports"] == [{"port": 80, "targetPort": 81}]
    jp = patch.apply("application/json-patch+json", SVC,
                     b'[{"op":"replace","path":"/spec/selector/app","value":"x"}]', "Service")
    assert jp["spec"]["selector"] == {"app": "x"}


def test_apply_rejects_server_side_apply_and_unknown_types():
    with pytest.raises(PatchError) as e:
        patch.apply("application/apply-patch+yaml", SVC, b"{}", "Service")
    assert e.value.code == 415 and "server-side apply" in str(e.value)
    with pytest.raises(PatchError) as e:
        patch.apply("text/plain", SVC, b"{}", "Service")
    assert e.value.code == 415
    with pytest.raises(PatchError) as e:
        patch.apply("application/merge-patch+json", SVC, b"{not json", "Service")
    assert e.value.code == 400
