"""PolicyRule matching and covering against Kubernetes' RBAC semantics
(the cases of plugin/pkg/auth/authorizer/rbac rbac_test.go / subject_locator
and pkg/registry/rbac/validation policy_comparator_test.go)."""
import pytest

from agent.apiserver.rbac.rules import Attributes, compact, compact_string, covers, rule_allows


def rule(verbs, groups=None, resources=None, names=None, urls=None):
    r = {"verbs": verbs}
    for key, v in (("apiGroups", groups), ("resources", resources), ("resourceNames", names),
                   ("nonResourceURLs", urls)):
        if v is not None:
            r[key] = v
    return r


def res(verb, resource, group="", sub="", name="", ns="default"):
    return Attributes(verb, "", True, group, ns, resource, sub, name)


def url(verb, path):
    return Attributes(verb, path)


@pytest.mark.parametrize("r,a,want", [
    # verbs
    (rule(["get"], [""], ["pods"]), res("get", "pods"), True),
    (rule(["get"], [""], ["pods"]), res("list", "pods"), False),
    (rule(["*"], [""], ["pods"]), res("deletecollection", "pods"), True),
    (rule(["get", "list"], [""], ["pods"]), res("list", "pods"), True),
    # API groups: "" is the core group, not a wildcard
    (rule(["get"], [""], ["deployments"]), res("get", "deployments", "apps"), False),
    (rule(["get"], ["apps"], ["deployments"]), res("get", "deployments", "apps"), True),
    (rule(["get"], ["*"], ["deployments"]), res("get", "deployments", "apps"), True),
    (rule(["get"], ["apps"], ["pods"]), res("get", "pods"), False),
    # resources and subresources
    (rule(["get"], [""], ["*"]), res("get", "pods", sub="log"), True),
    (rule(["get"], [""], ["pods"]), res("get", "pods", sub="log", name="p"), False),
    (rule(["get"], [""], ["pods/log"]), res("get", "pods", sub="log", name="p"), True),
    (rule(["get"], [""], ["pods/log"]), res("get", "pods", name="p"), False),
    (rule(["update"], ["apps"], ["*/scale"]), res("update", "deployments", "apps", "scale", "d"), True),
    (rule(["update"], ["apps"], ["*/scale"]), res("update", "deployments", "apps", name="d"), False),
    (rule(["get"], [""], ["pods/*"]), res("get", "pods", sub="log", name="p"), False),   # no such wildcard in kube
    (rule(["create"], [""], ["pods/exec"]), res("create", "pods", sub="exec", name="p"), True),
    # resourceNames
    (rule(["get"], [""], ["configmaps"], ["a"]), res("get", "configmaps", name="a"), True),
    (rule(["get"], [""], ["configmaps"], ["a"]), res("get", "configmaps", name="b"), False),
    (rule(["list"], [""], ["configmaps"], ["a"]), res("list", "configmaps"), False),
    (rule(["create"], [""], ["configmaps"], ["a"]), res("create", "configmaps"), False),
    # non-resource URLs
    (rule(["get"], urls=["/healthz"]), url("get", "/healthz"), True),
    (rule(["get"], urls=["/healthz"]), url("get", "/healthz/ping"), False),
    (rule(["get"], urls=["/apis/*"]), url("get", "/apis/apps/v1"), True),
    (rule(["get"], urls=["/apis/*"]), url("get", "/apis"), False),
    (rule(["get"], urls=["*"]), url("get", "/anything"), True),
    (rule(["get"], urls=["/healthz"]), url("post", "/healthz"), False),
    # a resource rule never matches a path and the reverse
    (rule(["*"], ["*"], ["*"]), url("get", "/healthz"), False),
    (rule(["*"], urls=["*"]), res("get", "pods"), False),
])
def test_rule_allows(r, a, want):
    assert rule_allows(r, a) is want


@pytest.mark.parametrize("owner,servant,missing", [
    ([rule(["get"], [""], ["pods"])], [rule(["get"], [""], ["pods"])], []),
    ([rule(["*"], ["*"], ["*"])], [rule(["get", "delete"], ["apps"], ["deployments/scale"])], []),
    ([rule(["get"], [""], ["pods"])], [rule(["get", "delete"], [""], ["pods"])],
     [rule(["delete"], [""], ["pods"])]),
    # several owner rules together cover one servant rule
    ([rule(["get"], [""], ["pods"]), rule(["list"], [""], ["pods"])], [rule(["get", "list"], [""], ["pods"])], []),
    # */scale covers deployments/scale, not deployments
    ([rule(["get"], ["apps"], ["*/scale"])], [rule(["get"], ["apps"], ["deployments/scale"])], []),
    ([rule(["get"], ["apps"], ["*/scale"])], [rule(["get"], ["apps"], ["deployments"])],
     [rule(["get"], ["apps"], ["deployments"])]),
    # resourceNames: an unnamed owner rule covers a named one, not the reverse
    ([rule(["get"], [""], ["secrets"])], [rule(["get"], [""], ["secrets"], ["s"])], []),
    ([rule(["get"], [""], ["secrets"], ["s"])], [rule(["get"], [""], ["secrets"])],
     [rule(["get"], [""], ["secrets"])]),
    ([rule(["get"], [""], ["secrets"], ["s"])], [rule(["get"], [""], ["secrets"], ["s", "t"])],
     [rule(["get"], [""], ["secrets"], ["t"])]),
    # non-resource URLs, with a trailing wildcard
    ([rule(["get"], urls=["/apis/*"])], [rule(["get"], urls=["/apis/apps"])], []),
    ([rule(["get"], urls=["/healthz"])], [rule(["get"], urls=["/metrics"])], [rule(["get"], urls=["/metrics"])]),
    ([rule(["*"], urls=["*"])], [rule(["get", "post"], urls=["/any/path"])], []),
])
def test_covers(owner, servant, missing):
    assert covers(owner, servant) == missing


def test_missing_rules_are_compacted_and_written_as_kube_writes_them():
    missing = covers([rule(["get"], [""], ["pods"])], [rule(["get", "delete", "patch"], ["", "apps"], ["pods"])])
    assert [compact_string(r) for r in compact(missing)] == [
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete" "patch"]}',
        '{APIGroups:["apps"], Resources:["pods"], Verbs:["get" "delete" "patch"]}']
    assert compact_string(rule(["get"], urls=["/healthz"])) == '{NonResourceURLs:["/healthz"], Verbs:["get"]}'
    assert compact_string(rule(["get"], [""], ["secrets"], ["s"])) == \
        '{APIGroups:[""], Resources:["secrets"], ResourceNames:["s"], Verbs:["get"]}'
