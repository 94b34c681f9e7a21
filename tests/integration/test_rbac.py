"""RBAC with real kubectl on a throwaway 2-node cluster: the default roles
and bindings kube-apiserver bootstraps (`kubectl get clusterroles`), `kubectl
create role|rolebinding|clusterrole|clusterrolebinding`, `kubectl auth
can-i` (yes/no, `--as`, `--list`) for the admin and for ServiceAccounts, a
ServiceAccount token bound to `view` (lists pods, may not delete them: kube's
403, from kubectl and from curl in a pod), impersonation refused to whoever
may not impersonate, escalation refused, and a node agent's own identity
(system:node:<name>) refused the Secrets of pods on another node."""
import json
import shutil

import pytest
import yaml

from tests.integration.cluster import ThrowawayCluster
from tests.integration.manifests import documents, pod

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed on this machine")]

VIEWER = "system:serviceaccount:default:viewer"


def _pod_using_secret(name: str, node: str, secret: str) -> str:
    p = yaml.safe_load(pod(name, command=["sleep", "3600"], node_name=node))
    p["spec"]["imagePullSecrets"] = [{"name": secret}]
    return yaml.safe_dump(p)


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("rbac")), nodes=2, dns=False) as tc:
        tc.apply(documents(pod("client", command=["sleep", "3600"], node_name="node-1"),
                           _pod_using_secret("on-one", "node-1", "one"), _pod_using_secret("on-two", "node-2", "two")))
        for s in ("one", "two"):
            tc.kubectl("create", "secret", "generic", s, "--from-literal=k=v")
        tc.kubectl("create", "serviceaccount", "viewer")
        tc.kubectl("create", "rolebinding", "viewers", "--clusterrole=view", "--serviceaccount=default:viewer")
        tc.wait(lambda: tc.get("pod", "client")["status"].get("phase") == "Running", 60, "client running")
        yield tc


def refused(c, *args):
    r = c.kubectl(*args, check=False)
    assert r.returncode != 0, r.stdout
    return r.stderr.strip()


def test_the_bootstrap_policy_is_there(c):
    roles = c.kubectl("get", "clusterroles").stdout.splitlines()
    assert roles[0].split() == ["NAME", "CREATED", "AT"]
    names = {line.split()[0] for line in roles[1:]}
    assert {"cluster-admin", "admin", "edit", "view", "system:basic-user", "system:discovery",
            "system:public-info-viewer", "system:node", "system:node-proxier", "system:kube-dns"} <= names
    crb = c.kubectl("get", "clusterrolebinding", "cluster-admin", "-o", "wide").stdout.splitlines()
    assert crb[0].split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert crb[1].split()[:2] == ["cluster-admin", "ClusterRole/cluster-admin"] and "system:masters" in crb[1]
    view = json.loads(c.kubectl("get", "clusterrole", "view", "-o", "json").stdout)
    assert view["aggregationRule"]["clusterRoleSelectors"] == [
        {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}]
    assert any("pods" in r["resources"] for r in view["rules"])       # filled by the aggregation controller
    assert view["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] == "true"


def test_can_i_as_the_admin(c):
    assert c.kubectl("auth", "can-i", "*", "*").stdout == "yes\n"
    listing = c.kubectl("auth", "can-i", "--list").stdout.splitlines()
    assert listing[0].split() == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    assert listing[1].split() == ["*.*", "[]", "[]", "[*]"]


def test_a_service_account_with_a_role(c):
    c.kubectl("create", "serviceaccount", "bot")
    c.kubectl("create", "role", "pod-reader", "--verb=get,list,watch", "--resource=pods")
    c.kubectl("create", "rolebinding", "bot-reads", "--role=pod-reader", "--serviceaccount=default:bot")
    bot = "--as=system:serviceaccount:default:bot"
    assert c.kubectl("auth", "can-i", "list", "pods", bot).stdout == "yes\n"
    r = c.kubectl("auth", "can-i", "delete", "pods", bot, check=False)
    assert (r.returncode, r.stdout) == (1, "no\n")
    assert c.kubectl("auth", "can-i", "list", "pods", "-n", "kube-system", bot, check=False).stdout == "no\n"
    listing = c.kubectl("auth", "can-i", "--list", bot).stdout.splitlines()
    assert ["pods", "[]", "[]", "[get", "list", "watch]"] in [line.split() for line in listing]
    assert not any(line.split()[0] == "*.*" for line in listing[1:])
    table = c.kubectl("get", "roles,rolebindings", "-o", "wide").stdout
    assert "role.rbac.authorization.k8s.io/pod-reader" in table
    assert "rolebinding.rbac.authorization.k8s.io/bot-reads   Role/pod-reader" in table and "default/bot" in table
    described = c.kubectl("describe", "rolebinding", "bot-reads").stdout
    assert "ServiceAccount  bot   default" in described


def test_a_token_bound_to_view_lists_pods_and_may_not_delete_them(c):
    token = c.kubectl("create", "token", "viewer").stdout.strip()
    assert "client" in c.kubectl("--token", token, "get", "pods").stdout
    assert refused(c, "--token", token, "delete", "pod", "client") == (
        f'Error from server (Forbidden): pods "client" is forbidden: User "{VIEWER}" cannot delete resource "pods" '
        'in API group "" in the namespace "default"')
    assert refused(c, "--token", token, "get", "secrets") == (
        f'Error from server (Forbidden): secrets is forbidden: User "{VIEWER}" cannot list resource "secrets" in '
        'API group "" in the namespace "default"')
    assert refused(c, "--token", token, "get", "pods", "--as=alice") == (
        f'Error from server (Forbidden): users "alice" is forbidden: User "{VIEWER}" cannot impersonate resource '
        '"users" in API group "" at the cluster scope')
    # the same token from inside a pod, to the kubernetes Service
    api = "https://10.96.0.1/api/v1/namespaces/default/pods"
    auth = ["-H", f"Authorization: Bearer {token}"]
    r = c.exec("client", "curl", "-sk", "--max-time", "5", "-w", " %{http_code}", *auth, api)
    assert r.stdout.endswith(" 200") and '"client"' in r.stdout, r.stderr
    r = c.exec("client", "curl", "-sk", "--max-time", "5", "-X", "DELETE", *auth, f"{api}/client")
    status = json.loads(r.stdout)
    assert (status["code"], status["reason"], status["message"]) == (403, "Forbidden", (
        f'pods "client" is forbidden: User "{VIEWER}" cannot delete resource "pods" in API group "" in the '
        'namespace "default"'))


def test_escalation_is_refused(c):
    c.kubectl("create", "serviceaccount", "lead")
    c.kubectl("create", "rolebinding", "lead-admin", "--clusterrole=admin", "--serviceaccount=default:lead")
    lead = "--as=system:serviceaccount:default:lead"
    c.kubectl("create", "role", "reader", "--verb=get", "--resource=pods", lead)
    err = refused(c, "create", "role", "nodes", "--verb=get", "--resource=nodes", lead)
    assert err == ('Error from server (Forbidden): roles.rbac.authorization.k8s.io "nodes" is forbidden: user '
                   '"system:serviceaccount:default:lead" (groups=["system:serviceaccounts" '
                   '"system:serviceaccounts:default" "system:authenticated"]) is attempting to grant RBAC '
                   'permissions not currently held:\n{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}')
    err = refused(c, "create", "rolebinding", "grab", "--clusterrole=cluster-admin", "--user=lead", lead)
    assert "is attempting to grant RBAC permissions not currently held" in err
    c.kubectl("create", "rolebinding", "give-edit", "--clusterrole=edit", "--user=bob", lead)


def test_a_node_reads_only_the_secrets_of_its_pods(c):
    with open(c.cfg.token_file("node-node-1")) as f:
        node1 = f.read().strip()
    who = c.kubectl("--token", node1, "auth", "whoami").stdout
    assert "system:node:node-1" in who and "system:nodes" in who
    assert c.kubectl("--token", node1, "get", "secret", "one", "-o", "name").stdout == "secret/one\n"
    assert refused(c, "--token", node1, "get", "secret", "two") == (
        'Error from server (Forbidden): secrets "two" is forbidden: User "system:node:node-1" cannot get resource '
        '"secrets" in API group "" in the namespace "default": no relationship found between node \'node-1\' and '
        'this object')
    assert "cannot list resource \"secrets\"" in refused(c, "--token", node1, "get", "secrets")
    assert "cannot patch resource \"nodes\"" in refused(c, "--token", node1, "label", "node", "node-2", "x=y")
    assert c.kubectl("--token", node1, "get", "pods", "-A", "-o", "name").returncode == 0


def test_kubectl_create_clusterrole_with_an_aggregation_rule(c):
    c.kubectl("create", "clusterrole", "monitoring", "--aggregation-rule=example.com/aggregate-to-monitoring=true")
    c.kubectl("create", "clusterrole", "monitoring-pods", "--verb=get,list", "--resource=pods")
    c.kubectl("label", "clusterrole", "monitoring-pods", "example.com/aggregate-to-monitoring=true")
    c.wait(lambda: json.loads(c.kubectl("get", "clusterrole", "monitoring", "-o", "json").stdout).get("rules") == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}], 20, "rules aggregated")
    c.kubectl("create", "clusterrolebinding", "mon", "--clusterrole=monitoring", "--user=mona")
    assert c.kubectl("auth", "can-i", "list", "pods", "-A", "--as=mona").stdout == "yes\n"
    assert c.kubectl("auth", "can-i", "delete", "pods", "--as=mona", check=False).stdout == "no\n"
