"""The request path's authorization over a store holding kube's bootstrap
policy: request attributes, RBAC bindings and their scopes, the Node
authorizer, escalation and bind checks, impersonation, the access reviews,
ClusterRole aggregation and the start-up reconciliation."""
import pytest

from agent.api.kinds import BY_KIND
from agent.apiserver import authz
from agent.apiserver.authn.user import LOCAL_ADMIN, UserInfo
from agent.apiserver.rbac import reconcile, reviews
from agent.apiserver.registry import APIError, Registry
from agent.apiserver.store import Store
from agent.controllers.clusterroleaggregation import aggregated_rules

SA = UserInfo("system:serviceaccount:default:default", "u",
              ("system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"))
ALICE = UserInfo("alice", "", ("devs", "system:authenticated"))
NODE1 = UserInfo("system:node:node-1", "", ("system:nodes", "system:authenticated"))
ADMIN = UserInfo("kubernetes-admin", "", ("system:masters", "system:authenticated"))


def _aggregate(reg, store):
    """What the aggregation controller converges to (view -> edit -> admin: three rounds)."""
    for _ in range(3):
        roles, _ = store.list("clusterroles")
        for r in roles:
            if r.get("aggregationRule"):
                reg.guaranteed_update(BY_KIND["ClusterRole"], None, r["metadata"]["name"],
                                      lambda cur: {**cur, "rules": aggregated_rules(cur, roles)})


@pytest.fixture
def world():
    store = Store(":memory:")
    reg = Registry(store)
    for ns in ("default", "other", "kube-system"):
        reg.create(BY_KIND["Namespace"], None, {"metadata": {"name": ns}})
    reconcile.ensure_bootstrap_policy(reg)
    _aggregate(reg, store)
    return reg, authz.Authorizer(store)


def create(reg, kind, ns, obj):
    return reg.create(BY_KIND[kind], ns, obj)


def binding(kind, name, role_kind, role, *subjects):
    return {"metadata": {"name": name}, "roleRef": {"kind": role_kind, "name": role}, "subjects": list(subjects)}


def allowed(az, user, method, path, query=None):
    return az.decide(user, authz.attributes(method, path, query or {}))[0]


def forbidden(az, user, method, path, query=None):
    with pytest.raises(APIError) as e:
        az.check(user, {}, method, path, query or {})
    assert (e.value.code, e.value.reason) == (403, "Forbidden")
    return e.value.message


# ---- request attributes ----------------------------------------------------------------------

@pytest.mark.parametrize("method,path,query,verb,resource,name", [
    ("GET", "/api/v1/namespaces/default/pods", {}, "list", "pods", ""),
    ("GET", "/api/v1/namespaces/default/pods", {"watch": "true"}, "watch", "pods", ""),
    ("GET", "/api/v1/watch/namespaces/default/pods", {}, "watch", "pods", ""),
    ("GET", "/api/v1/namespaces/default/pods", {"fieldSelector": "metadata.name=p"}, "list", "pods", "p"),
    ("GET", "/api/v1/namespaces/default/pods/p", {}, "get", "pods", "p"),
    ("GET", "/api/v1/namespaces/default/pods/p/exec", {}, "create", "pods/exec", "p"),
    ("GET", "/api/v1/namespaces/default/pods/p/attach", {}, "create", "pods/attach", "p"),
    ("GET", "/api/v1/namespaces/default/pods/p/log", {}, "get", "pods/log", "p"),
    ("HEAD", "/api/v1/namespaces/default/pods/p/proxy/", {}, "get", "pods/proxy", "p"),
    ("POST", "/api/v1/namespaces/default/pods/p/proxy/echo", {}, "create", "pods/proxy", "p"),
    ("OPTIONS", "/api/v1/namespaces/default/services/web/proxy/", {}, "options", "services/proxy", "web"),
    ("POST", "/api/v1/namespaces/default/configmaps", {}, "create", "configmaps", ""),
    ("PUT", "/api/v1/namespaces/default/configmaps/c", {}, "update", "configmaps", "c"),
    ("PATCH", "/apis/apps/v1/namespaces/default/deployments/d/scale", {}, "patch", "deployments/scale", "d"),
    ("DELETE", "/api/v1/namespaces/default/pods", {}, "deletecollection", "pods", ""),
    ("DELETE", "/api/v1/namespaces/x", {}, "delete", "namespaces", "x"),
    ("PUT", "/api/v1/namespaces/x/finalize", {}, "update", "namespaces/finalize", "x"),
])
def test_request_attributes(method, path, query, verb, resource, name):
    a = authz.attributes(method, path, query)
    assert (a.verb, f"{a.resource}/{a.subresource}" if a.subresource else a.resource, a.name) == (verb, resource, name)


# ---- RBAC over the bootstrap policy ------------------------------------------------------------

def test_every_authenticated_user_may_discover_and_review_itself_and_nothing_more(world):
    _, az = world
    for method, path in (("GET", "/apis"), ("GET", "/api/v1"), ("GET", "/openapi/v2"), ("GET", "/version"),
                         ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"),
                         ("POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews"),
                         ("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews")):
        assert allowed(az, ALICE, method, path), path
    assert allowed(az, SA, "GET", "/openid/v1/jwks") and not allowed(az, ALICE, "GET", "/openid/v1/jwks")
    assert forbidden(az, SA, "GET", "/api/v1/namespaces/default/pods") == (
        'pods is forbidden: User "system:serviceaccount:default:default" cannot list resource "pods" in API group "" '
        'in the namespace "default"')
    assert forbidden(az, SA, "POST", "/logs") == (
        'forbidden: User "system:serviceaccount:default:default" cannot post path "/logs"')
    assert forbidden(az, ALICE, "DELETE", "/apis/apps/v1/namespaces/kube-system/deployments/coredns") == (
        'deployments.apps "coredns" is forbidden: User "alice" cannot delete resource "deployments" in API group '
        '"apps" in the namespace "kube-system"')
    assert forbidden(az, ALICE, "POST", "/api/v1/namespaces") == (
        'namespaces is forbidden: User "alice" cannot create resource "namespaces" in API group "" at the cluster '
        'scope')


def test_system_masters_and_the_trusted_socket_may_do_anything(world):
    _, az = world
    for user in (ADMIN, LOCAL_ADMIN):
        assert allowed(az, user, "POST", "/api/v1/nodes/node-1/proxy/exec/default/p/c")
        assert allowed(az, user, "DELETE", "/api/v1/namespaces/x")


def test_a_service_account_bound_to_view_reads_but_does_not_write(world):
    reg, az = world
    create(reg, "RoleBinding", "default", binding("RoleBinding", "v", "ClusterRole", "view",
                                                  {"kind": "ServiceAccount", "name": "default",
                                                   "namespace": "default"}))
    assert allowed(az, SA, "GET", "/api/v1/namespaces/default/pods")
    assert allowed(az, SA, "GET", "/api/v1/namespaces/default/pods/p/log")
    assert not allowed(az, SA, "GET", "/api/v1/namespaces/other/pods")        # a RoleBinding is its namespace's
    assert not allowed(az, SA, "GET", "/api/v1/pods")                         # nor cluster-wide
    assert not allowed(az, SA, "GET", "/api/v1/namespaces/default/secrets")   # view does not read Secrets
    assert forbidden(az, SA, "DELETE", "/api/v1/namespaces/default/pods/p") == (
        'pods "p" is forbidden: User "system:serviceaccount:default:default" cannot delete resource "pods" in API '
        'group "" in the namespace "default"')
    assert "pods/exec" in forbidden(az, SA, "GET", "/api/v1/namespaces/default/pods/p/exec", {"command": "sh"})


@pytest.mark.parametrize("subject,user,want", [
    ({"kind": "User", "name": "alice"}, ALICE, True),
    ({"kind": "User", "name": "bob"}, ALICE, False),
    ({"kind": "Group", "name": "devs"}, ALICE, True),
    ({"kind": "Group", "name": "system:authenticated"}, SA, True),
    ({"kind": "Group", "name": "system:serviceaccounts:default"}, SA, True),
    ({"kind": "Group", "name": "system:serviceaccounts:other"}, SA, False),
    ({"kind": "ServiceAccount", "name": "default", "namespace": "default"}, SA, True),
    ({"kind": "ServiceAccount", "name": "default", "namespace": "other"}, SA, False),
    ({"kind": "User", "name": "system:serviceaccount:default:default"}, SA, True),
])
def test_subjects(world, subject, user, want):
    reg, az = world
    create(reg, "ClusterRoleBinding", None, binding("ClusterRoleBinding", "b", "ClusterRole", "view", subject))
    assert allowed(az, user, "GET", "/api/v1/namespaces/other/services") is want


def test_roles_resource_names_and_missing_roles(world):
    reg, az = world
    create(reg, "Role", "default", {"metadata": {"name": "one-cm"}, "rules": [
        {"verbs": ["get", "list", "update"], "apiGroups": [""], "resources": ["configmaps"],
         "resourceNames": ["app"]}]})
    create(reg, "RoleBinding", "default", binding("RoleBinding", "rb", "Role", "one-cm",
                                                  {"kind": "User", "name": "alice"}))
    create(reg, "RoleBinding", "default", binding("RoleBinding", "ghost", "Role", "nothing-here",
                                                  {"kind": "User", "name": "alice"}))
    assert allowed(az, ALICE, "GET", "/api/v1/namespaces/default/configmaps/app")
    assert allowed(az, ALICE, "GET", "/api/v1/namespaces/default/configmaps", {"fieldSelector": "metadata.name=app"})
    assert not allowed(az, ALICE, "GET", "/api/v1/namespaces/default/configmaps/other")
    assert not allowed(az, ALICE, "GET", "/api/v1/namespaces/default/configmaps")
    assert not allowed(az, ALICE, "GET", "/api/v1/namespaces/other/configmaps/app")


# ---- the Node authorizer -----------------------------------------------------------------------

def test_a_node_reads_only_the_secrets_of_its_own_pods(world):
    reg, az = world
    for node, secret in (("node-1", "mine"), ("node-2", "theirs")):
        create(reg, "Pod", "default", {"metadata": {"name": f"p-{node}"}, "spec": {
            "nodeName": node, "containers": [{"name": "c", "image": "busybox", "env": [
                {"name": "X", "valueFrom": {"secretKeyRef": {"name": secret, "key": "k"}}}]}]}})
    assert allowed(az, NODE1, "GET", "/api/v1/namespaces/default/secrets/mine")
    assert forbidden(az, NODE1, "GET", "/api/v1/namespaces/default/secrets/theirs") == (
        'secrets "theirs" is forbidden: User "system:node:node-1" cannot get resource "secrets" in API group "" in '
        "the namespace \"default\": no relationship found between node 'node-1' and this object")
    assert not allowed(az, NODE1, "GET", "/api/v1/namespaces/default/secrets")       # no list of every Secret
    assert not allowed(az, NODE1, "DELETE", "/api/v1/namespaces/default/secrets/mine")
    assert allowed(az, NODE1, "PUT", "/api/v1/nodes/node-1/status")
    assert not allowed(az, NODE1, "PUT", "/api/v1/nodes/node-2/status")
    assert allowed(az, NODE1, "PUT", "/api/v1/namespaces/default/pods/p-node-1/status")
    assert not allowed(az, NODE1, "PUT", "/api/v1/namespaces/default/pods/p-node-2/status")
    for path in ("/api/v1/pods", "/api/v1/services", "/apis/discovery.k8s.io/v1/endpointslices", "/api/v1/nodes"):
        assert allowed(az, NODE1, "GET", path, {"watch": "true"}), path
    assert not allowed(az, NODE1, "GET", "/api/v1/nodes/node-2/proxy/pods")


# ---- escalation and bind -----------------------------------------------------------------------

def test_escalation_is_refused_in_kubes_words(world):
    reg, az = world
    create(reg, "RoleBinding", "default", binding("RoleBinding", "e", "ClusterRole", "admin",
                                                  {"kind": "User", "name": "alice"}))
    g = az.guard(reg, ALICE)
    g.create(BY_KIND["Role"], "default", {"metadata": {"name": "ok"}, "rules": [
        {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]})
    with pytest.raises(APIError) as e:
        g.create(BY_KIND["Role"], "default", {"metadata": {"name": "r"}, "rules": [
            {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["nodes"]},
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]})
    assert (e.value.code, e.value.message) == (403, (
        'roles.rbac.authorization.k8s.io "r" is forbidden: user "alice" (groups=["devs" "system:authenticated"]) '
        'is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["nodes"], Verbs:["get" "list"]}'))
    # admin in default: may bind edit there (it holds every rule of edit), not cluster-admin
    g.create(BY_KIND["RoleBinding"], "default", binding("RoleBinding", "b", "ClusterRole", "edit",
                                                        {"kind": "User", "name": "bob"}))
    with pytest.raises(APIError) as e:
        g.create(BY_KIND["RoleBinding"], "default", binding("RoleBinding", "c", "ClusterRole", "cluster-admin",
                                                            {"kind": "User", "name": "bob"}))
    assert e.value.message.startswith('rolebindings.rbac.authorization.k8s.io "c" is forbidden: user "alice"')
    with pytest.raises(APIError) as e:
        g.create(BY_KIND["RoleBinding"], "default", binding("RoleBinding", "d", "Role", "missing",
                                                            {"kind": "User", "name": "bob"}))
    assert e.value.message == ('rolebindings.rbac.authorization.k8s.io "d" is forbidden: '
                               'roles.rbac.authorization.k8s.io "missing" not found')
    # unchanged rules need no check (a label change by someone holding less)
    g.update(BY_KIND["Role"], "default", "ok", {**reg.get(BY_KIND["Role"], "default", "ok"),
                                                 "metadata": {"name": "ok", "labels": {"a": "b"}}})


def test_escalate_and_bind_verbs_allow_what_is_not_held(world):
    reg, az = world
    create(reg, "ClusterRole", None, {"metadata": {"name": "rbac-manager"}, "rules": [
        {"verbs": ["create", "update", "escalate"], "apiGroups": ["rbac.authorization.k8s.io"],
         "resources": ["roles"]},
        {"verbs": ["create", "bind"], "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles",
                                                                                                "rolebindings"],
         "resourceNames": []}]})
    create(reg, "RoleBinding", "default", binding("RoleBinding", "m", "ClusterRole", "rbac-manager",
                                                  {"kind": "User", "name": "alice"}))
    g = az.guard(reg, ALICE)
    g.create(BY_KIND["Role"], "default", {"metadata": {"name": "big"}, "rules": [
        {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]})
    g.create(BY_KIND["RoleBinding"], "default", binding("RoleBinding", "b", "ClusterRole", "cluster-admin",
                                                        {"kind": "User", "name": "bob"}))
    assert az.guard(reg, ADMIN) is reg          # system:masters skip the checks


# ---- impersonation -------------------------------------------------------------------------------

class Headers(dict):
    def get_all(self, name):
        v = self.get(name)
        return None if v is None else (v if isinstance(v, list) else [v])


def test_impersonation_needs_the_impersonate_verb(world):
    reg, az = world
    h = Headers({"Impersonate-User": "bob", "Impersonate-Group": ["devs", "qa"]})
    user = az.check(ADMIN, h, "GET", "/apis", {})
    assert (user.name, user.groups) == ("bob", ("devs", "qa", "system:authenticated"))
    sa = az.check(ADMIN, Headers({"Impersonate-User": "system:serviceaccount:other:robot"}), "GET", "/apis", {})
    assert sa.groups == ("system:serviceaccounts", "system:serviceaccounts:other", "system:authenticated")
    with pytest.raises(APIError) as e:
        az.check(ALICE, Headers({"Impersonate-User": "bob"}), "GET", "/apis", {})
    assert e.value.message == ('users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API '
                               'group "" at the cluster scope')
    create(reg, "RoleBinding", "default", binding("RoleBinding", "e", "ClusterRole", "edit",
                                                  {"kind": "User", "name": "alice"}))   # edit impersonates SAs
    robot = az.check(ALICE, Headers({"Impersonate-User": "system:serviceaccount:default:robot"}), "GET", "/apis", {})
    assert robot.name == "system:serviceaccount:default:robot"
    with pytest.raises(APIError) as e:
        az.check(ALICE, Headers({"Impersonate-Group": "devs"}), "GET", "/apis", {})
    assert e.value.code == 400


# ---- access reviews ------------------------------------------------------------------------------

def test_access_reviews(world):
    reg, az = world
    create(reg, "RoleBinding", "default", binding("RoleBinding", "v", "ClusterRole", "view",
                                                  {"kind": "Group", "name": "devs"}))
    ssar = reviews.review(az, "SelfSubjectAccessReview", None, ALICE, {"spec": {"resourceAttributes": {
        "namespace": "default", "verb": "list", "resource": "pods"}}})
    assert ssar["status"] == {"allowed": True, "reason": 'RBAC: allowed by RoleBinding "v/default" of ClusterRole '
                                                         '"view" to Group "devs"'}
    assert ssar["kind"] == "SelfSubjectAccessReview" and ssar["apiVersion"] == "authorization.k8s.io/v1"
    no = reviews.review(az, "SelfSubjectAccessReview", None, ALICE, {"spec": {"resourceAttributes": {
        "namespace": "default", "verb": "delete", "resource": "pods"}}})
    assert no["status"] == {"allowed": False}
    for groups, want in ((["devs"], False), (["system:authenticated"], True)):   # no group is added to a SAR's
        sar = reviews.review(az, "SubjectAccessReview", None, ADMIN, {"spec": {
            "user": "carol", "groups": groups, "nonResourceAttributes": {"path": "/healthz", "verb": "get"}}})
        assert sar["status"]["allowed"] is want
    with pytest.raises(APIError) as e:
        reviews.review(az, "SubjectAccessReview", None, ADMIN, {"spec": {"resourceAttributes": {"verb": "get"}}})
    assert e.value.code == 422 and "at least one of user or group must be specified" in e.value.message
    with pytest.raises(APIError) as e:
        reviews.review(az, "SelfSubjectAccessReview", None, ALICE, {"spec": {}})
    assert "exactly one of nonResourceAttributes or resourceAttributes must be specified" in e.value.message
    rules = reviews.review(az, "SelfSubjectRulesReview", None, ALICE, {"spec": {"namespace": "default"}})["status"]
    assert {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["namespaces"]} in rules["resourceRules"]
    assert {"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                                                  "/openapi", "/openapi/*", "/readyz", "/version", "/version/"]} \
        in rules["nonResourceRules"]
    other = reviews.review(az, "SelfSubjectRulesReview", None, ALICE, {"spec": {"namespace": "other"}})["status"]
    assert not any("pods" in r.get("resources", []) for r in other["resourceRules"])


# ---- aggregation and reconciliation ----------------------------------------------------------------

def test_view_aggregates_labelled_cluster_roles(world):
    reg, az = world
    create(reg, "ClusterRole", None, {"metadata": {"name": "widgets-view", "labels": {
        "rbac.authorization.k8s.io/aggregate-to-view": "true"}}, "rules": [
        {"verbs": ["get"], "apiGroups": ["example.com"], "resources": ["widgets"]}]})
    create(reg, "ClusterRoleBinding", None, binding("ClusterRoleBinding", "a", "ClusterRole", "admin",
                                                    {"kind": "User", "name": "alice"}))
    path = "/apis/example.com/v1/namespaces/default/widgets/w"
    assert not allowed(az, ALICE, "GET", path)
    _aggregate(reg, reg.store)
    assert allowed(az, ALICE, "GET", path)          # view -> edit -> admin
    view = reg.get(BY_KIND["ClusterRole"], None, "view")
    assert view["rules"][-1] == {"verbs": ["get"], "apiGroups": ["example.com"], "resources": ["widgets"]}


def test_reconciliation_restores_defaults_unless_autoupdate_is_false(world):
    reg, _ = world
    role = reg.get(BY_KIND["ClusterRole"], None, "system:basic-user")
    reg.update(BY_KIND["ClusterRole"], None, "system:basic-user", {**role, "rules": role["rules"][:1] + [
        {"verbs": ["get"], "apiGroups": [""], "resources": ["extra"]}]})
    kept = reg.get(BY_KIND["ClusterRole"], None, "system:kube-dns")
    kept["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] = "false"
    kept["rules"] = []
    reg.update(BY_KIND["ClusterRole"], None, "system:kube-dns", kept)
    reg.delete(BY_KIND["ClusterRoleBinding"], None, "system:discovery")
    reconcile.ensure_bootstrap_policy(reg)
    rules = reg.get(BY_KIND["ClusterRole"], None, "system:basic-user")["rules"]
    assert len(rules) == 3 and {"verbs": ["get"], "apiGroups": [""], "resources": ["extra"]} in rules
    assert reg.get(BY_KIND["ClusterRole"], None, "system:kube-dns")["rules"] == []
    assert reg.get(BY_KIND["ClusterRoleBinding"], None, "system:discovery")["subjects"][0]["name"] == \
        "system:authenticated"


# ---- validation and defaults ---------------------------------------------------------------------

@pytest.mark.parametrize("kind,obj,message", [
    ("Role", {"metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["pods"]}]},
     'Role.rbac.authorization.k8s.io "r" is invalid: rules[0].verbs: Required value: verbs must contain at least '
     'one value'),
    ("Role", {"metadata": {"name": "r"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}]},
     'Role.rbac.authorization.k8s.io "r" is invalid: rules[0].nonResourceURLs: Invalid value: []string{"/x"}: '
     'namespaced rules cannot apply to non-resource URLs'),
    ("ClusterRole", {"metadata": {"name": "c"}, "rules": [{"verbs": ["get"], "resources": ["pods"]}]},
     'ClusterRole.rbac.authorization.k8s.io "c" is invalid: rules[0].apiGroups: Required value: resource rules '
     'must supply at least one api group'),
    ("RoleBinding", {"metadata": {"name": "b"}, "roleRef": {"kind": "Thing", "name": "x"}},
     'RoleBinding.rbac.authorization.k8s.io "b" is invalid: roleRef.kind: Unsupported value: "Thing": supported '
     'values: "Role", "ClusterRole"'),
    ("ClusterRoleBinding", {"metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": "x"}},
     'ClusterRoleBinding.rbac.authorization.k8s.io "b" is invalid: roleRef.kind: Unsupported value: "Role": '
     'supported values: "ClusterRole"'),
    ("RoleBinding", {"metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": "x"},
                     "subjects": [{"kind": "ServiceAccount", "name": "sa"}]},
     'RoleBinding.rbac.authorization.k8s.io "b" is invalid: subjects[0].namespace: Required value'),
])
def test_validation(world, kind, obj, message):
    reg, _ = world
    with pytest.raises(APIError) as e:
        create(reg, kind, "default" if BY_KIND[kind].namespaced else None, obj)
    assert (e.value.code, e.value.message) == (422, message)


def test_binding_defaults_and_immutable_role_ref(world):
    reg, _ = world
    b = create(reg, "RoleBinding", "default", binding("RoleBinding", "b", "ClusterRole", "view",
                                                      {"kind": "User", "name": "alice"}))
    assert b["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
    assert b["subjects"][0]["apiGroup"] == "rbac.authorization.k8s.io"
    b["roleRef"]["name"] = "edit"
    with pytest.raises(APIError) as e:
        reg.update(BY_KIND["RoleBinding"], "default", "b", b)
    assert e.value.message.endswith("cannot change roleRef")
    create(reg, "ClusterRole", None, {"metadata": {"name": "system:my:role"}, "rules": []})   # ':' is allowed
