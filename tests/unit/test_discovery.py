"""Discovery documents: what kubectl reads to map `get svc`, `get all`,
`scale deploy` and `exec` onto URLs."""
from agent.apiserver import discovery as D


def by_name(doc):
    return {r["name"]: r for r in doc["resources"]}


def test_core_v1_resources():
    res = by_name(D.api_resource_list("v1"))
    assert res["services"]["shortNames"] == ["svc"] and res["services"]["categories"] == ["all"]
    assert res["pods"]["shortNames"] == ["po"] and res["pods"]["namespaced"] is True
    assert res["nodes"]["namespaced"] is False and res["nodes"]["shortNames"] == ["no"]
    assert res["namespaces"]["shortNames"] == ["ns"] and "categories" not in res["namespaces"]
    assert res["endpoints"]["shortNames"] == ["ep"] and res["events"]["shortNames"] == ["ev"]
    assert res["services"]["singularName"] == "service" and res["services"]["kind"] == "Service"
    assert set(res["pods"]["verbs"]) >= {"get", "list", "watch", "create", "update", "patch", "delete"}


def test_subresources():
    res = by_name(D.api_resource_list("v1"))
    assert res["pods/log"]["verbs"] == ["get"] and res["pods/log"]["kind"] == "Pod"
    assert res["pods/exec"]["kind"] == "PodExecOptions" and "create" in res["pods/exec"]["verbs"]
    assert res["pods/attach"]["kind"] == "PodAttachOptions"
    assert res["pods/binding"]["kind"] == "Binding" and res["pods/binding"]["verbs"] == ["create"]
    assert res["pods/status"]["kind"] == "Pod" and res["services/status"]["verbs"] == ["get", "patch", "update"]
    assert "nodes/status" in res
    apps = by_name(D.api_resource_list("apps/v1"))
    scale = apps["deployments/scale"]
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    assert "replicasets/scale" in apps and "replicasets/status" in apps
    assert apps["deployments"]["shortNames"] == ["deploy"] and apps["replicasets"]["shortNames"] == ["rs"]
    assert apps["deployments"]["categories"] == ["all"]


def test_groups_and_versions():
    assert D.api_versions()["versions"] == ["v1"]
    groups = {g["name"]: g for g in D.api_group_list()["groups"]}
    assert [g["name"] for g in D.api_group_list()["groups"]] == [     # kube-apiserver's order
        "apps", "authentication.k8s.io", "authorization.k8s.io", "batch", "certificates.k8s.io", "networking.k8s.io",
        "rbac.authorization.k8s.io", "apiextensions.k8s.io", "discovery.k8s.io"]
    rbac = by_name(D.api_resource_list("rbac.authorization.k8s.io/v1"))
    assert (rbac["clusterroles"]["namespaced"], rbac["roles"]["namespaced"]) == (False, True)
    assert by_name(D.api_resource_list("authorization.k8s.io/v1"))["selfsubjectaccessreviews"]["verbs"] == ["create"]
    assert groups["apps"]["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}
    assert by_name(D.api_resource_list("discovery.k8s.io/v1"))["endpointslices"]["kind"] == "EndpointSlice"
    assert by_name(D.api_resource_list("batch/v1"))["cronjobs"]["shortNames"] == ["cj"]
    assert D.api_resource_list("policy/v1") is None
    assert D.api_group("apps")["kind"] == "APIGroup" and D.api_group("policy") is None


def test_document_routing():
    assert D.document("/api/v1", None)[0]["groupVersion"] == "v1"
    assert D.document("/apis/apps/v1/", None)[0]["groupVersion"] == "apps/v1"
    assert D.document("/apis/apps", None)[0]["name"] == "apps"
    assert D.document("/apis/batch/v1", None)[0]["groupVersion"] == "batch/v1"
    assert D.document("/apis/policy/v1", None) is None
    assert D.document("/api/v1/namespaces", None) is None
    assert D.document("/apis", "application/json")[0]["kind"] == "APIGroupList"


KUBECTL_132_ACCEPT = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                      "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")


def test_aggregated_discovery():
    doc, ctype = D.document("/apis", KUBECTL_132_ACCEPT)
    assert ctype == D.AGGREGATED_V2 and doc["apiVersion"] == "apidiscovery.k8s.io/v2"
    apps = next(i for i in doc["items"] if i["metadata"]["name"] == "apps")
    deploy = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    assert deploy["scope"] == "Namespaced" and deploy["shortNames"] == ["deploy"] and deploy["categories"] == ["all"]
    subs = {s["subresource"]: s for s in deploy["subresources"]}
    assert subs["scale"]["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    core, ctype = D.document("/api", KUBECTL_132_ACCEPT)
    nodes = next(r for r in core["items"][0]["versions"][0]["resources"] if r["resource"] == "nodes")
    assert nodes["scope"] == "Cluster"
    assert D.wants_aggregated("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList") \
        == D.AGGREGATED_V2BETA1
    assert D.wants_aggregated("application/json, */*") is None and D.wants_aggregated(None) is None


def test_version():
    v = D.version_info()
    assert v["gitVersion"].startswith("v1.32.") and v["platform"] == "linux/amd64"
    assert (v["major"], v["minor"]) == ("1", "32")
