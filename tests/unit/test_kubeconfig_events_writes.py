"""Kubeconfig merging (never clobbering other contexts), the event
correlator, token authentication, and the write extras (dry run, scale,
delete propagation) on an in-memory store."""
import base64
import os

import pytest

from agent.api import events, pki
from agent.api.events import Correlator
from agent.api.kinds import BY_KIND
from agent.apiserver import writes
from agent.apiserver.registry import APIError, Registry
from agent.apiserver.store import Store
from agent.cli import kubeconfig
from agent.controllers.base import record_event

# ---- kubeconfig ----------------------------------------------------------------

OTHER = {"apiVersion": "v1", "kind": "Config", "current-context": "kind-kind",
         "clusters": [{"name": "kind-kind", "cluster": {"server": "https://127.0.0.1:40000"}}],
         "users": [{"name": "kind-kind", "user": {"token": "t"}}],
         "contexts": [{"name": "kind-kind", "context": {"cluster": "kind-kind", "user": "kind-kind"}}]}


def test_build_embeds_the_ca_and_token():
    cfg = kubeconfig.build("nsplane", "https://127.0.0.1:6443", b"PEM", "tok")
    assert cfg["clusters"][0]["cluster"]["certificate-authority-data"] == base64.b64encode(b"PEM").decode()
    assert cfg["users"][0]["user"] == {"token": "tok"}
    assert cfg["current-context"] == "nsplane"


def test_merge_keeps_other_entries_and_replaces_ours():
    new = kubeconfig.build("nsplane", "https://127.0.0.1:6443", b"PEM", "tok")
    merged = kubeconfig.merge(OTHER, new)
    assert [c["name"] for c in merged["contexts"]] == ["kind-kind", "nsplane"]
    assert merged["current-context"] == "nsplane"           # as kind does
    again = kubeconfig.merge(merged, kubeconfig.build("nsplane", "https://127.0.0.1:7443", b"PEM", "t2"))
    assert [c["name"] for c in again["clusters"]] == ["kind-kind", "nsplane"]
    assert again["clusters"][1]["cluster"]["server"] == "https://127.0.0.1:7443"
    kept = kubeconfig.merge(OTHER, new, switch_context=False)
    assert kept["current-context"] == "kind-kind"
    assert OTHER["current-context"] == "kind-kind" and len(OTHER["contexts"]) == 1


def test_remove_takes_out_only_ours():
    merged = kubeconfig.merge(OTHER, kubeconfig.build("nsplane", "https://x", b"P", "t"))
    out = kubeconfig.remove(merged, "nsplane")
    assert out["contexts"] == OTHER["contexts"] and out["current-context"] == ""
    assert kubeconfig.remove(OTHER, "nsplane") == OTHER


def test_path_follows_kubeconfig_env(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert kubeconfig.path({"KUBECONFIG": f"{a}{os.pathsep}{b}"}) == a
    assert kubeconfig.path({}).endswith(os.path.join(".kube", "config"))


def test_write_and_read_file_creates_it_private(tmp_path):
    p = str(tmp_path / "dir" / "config")
    assert kubeconfig.read_file(p) == {}
    kubeconfig.write_file(p, OTHER)
    assert kubeconfig.read_file(p) == OTHER
    assert os.stat(p).st_mode & 0o777 == 0o600


# ---- tokens ----------------------------------------------------------------------

def test_tokens_are_kept_and_authenticate(tmp_path):
    p = pki.Paths(str(tmp_path))
    first = pki.ensure_tokens(p)
    assert pki.ensure_tokens(p) == first                    # stable across `up`s
    auth = pki.Authenticator(p.tokens)
    assert auth.user(f"Bearer {first['admin']}") == "kubernetes-admin"
    assert auth.user("Bearer wrong") is None
    assert auth.user(None) is None
    assert auth.user(f"Basic {first['admin']}") is None


def test_server_sans_have_kubeadms_names():
    sans = pki.server_sans(["172.28.0.1"], "10.96.0.1", "cluster.local")
    assert "DNS:kubernetes.default.svc.cluster.local" in sans
    assert {"IP:127.0.0.1", "IP:172.28.0.1", "IP:10.96.0.1"} <= set(sans)


# ---- event correlation -----------------------------------------------------------

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default", "uid": "u1"}}


def ev(reason="BackOff", message="Back-off restarting failed container"):
    return events.event_object(POD, reason, message, "Warning", "kubelet", now="2025-01-01T00:00:00Z")


def test_identical_events_bump_count_of_the_first():
    c = Correlator()
    action, first = c.observe(ev(), 0.0)
    assert action == "create"
    action, again = c.observe(dict(ev(), lastTimestamp="2025-01-01T00:00:05Z"), 5.0)
    assert action == "update" and again["count"] == 2
    assert again["metadata"]["name"] == first["metadata"]["name"]
    assert again["lastTimestamp"] == "2025-01-01T00:00:05Z"
    assert c.observe(ev(reason="Unhealthy"), 6.0)[0] == "create"


def test_many_similar_events_are_combined():
    c = Correlator()
    for i in range(events.SIMILAR_LIMIT):
        assert c.observe(ev(message=f"probe failed {i}"), float(i))[0] == "create"
    action, combined = c.observe(ev(message="probe failed 99"), 20.0)
    assert action == "create" and combined["message"].startswith("(combined from similar events): ")
    action, again = c.observe(ev(message="probe failed 100"), 21.0)
    assert action == "update" and again["count"] == 2


def test_record_through_registry_dedups_by_count():
    store = Store(":memory:")
    reg = Registry(store)
    reg.create(BY_KIND["Namespace"], None, {"metadata": {"name": "default"}})
    record_event(reg, POD, "Scheduled", "Successfully assigned default/p to node-1", component="default-scheduler")
    record_event(reg, POD, "Scheduled", "Successfully assigned default/p to node-1", component="default-scheduler")
    items = store.list("events", "default")[0]
    assert len(items) == 1 and items[0]["count"] == 2
    assert items[0]["involvedObject"]["uid"] == "u1"


# ---- writes: dry run, scale, propagation --------------------------------------------

@pytest.fixture
def reg():
    store = Store(":memory:")
    r = Registry(store)
    r.create(BY_KIND["Namespace"], None, {"metadata": {"name": "default"}})
    return r


SVC = {"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}


def test_dry_run_create_validates_defaults_and_stores_nothing(reg):
    dry = writes.dry_run_registry(reg)
    out = dry.create(BY_KIND["Service"], "default", SVC)
    assert out["spec"]["clusterIP"] and out["spec"]["ports"][0]["targetPort"] == 80
    assert "resourceVersion" not in out["metadata"]
    assert reg.store.list("services", "default")[0] == []
    with pytest.raises(APIError) as e:
        dry.create(BY_KIND["Service"], "default", {"metadata": {"name": "Bad_Name"}, "spec": {"ports": [{"port": 80}]}})
    assert e.value.code == 422
    reg.create(BY_KIND["Service"], "default", SVC)
    with pytest.raises(APIError) as e:
        dry.create(BY_KIND["Service"], "default", SVC)
    assert e.value.code == 409


def test_dry_run_value_must_be_all():
    assert writes.check_dry_run("All") and not writes.check_dry_run(None)
    with pytest.raises(APIError):
        writes.check_dry_run("Some")


DEPLOY = {"metadata": {"name": "web"}, "spec": {
    "replicas": 2, "selector": {"matchLabels": {"app": "web"}},
    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "w", "image": "nginx"}]}}}}


def test_scale_view_and_update(reg):
    d = reg.create(BY_KIND["Deployment"], "default", DEPLOY)
    sc = writes.scale_of(d)
    assert sc["apiVersion"] == "autoscaling/v1" and sc["spec"] == {"replicas": 2}
    assert sc["status"]["selector"] == "app=web"
    new = writes.with_scale(d, {"spec": {"replicas": 5}})
    assert reg.update(BY_KIND["Deployment"], "default", "web", new)["spec"]["replicas"] == 5
    with pytest.raises(APIError):
        writes.with_scale(d, {"spec": {"replicas": -1}})


def _owned_rs(reg, owner):
    rs = dict(DEPLOY, metadata={"name": "web-1", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": owner["metadata"]["uid"],
         "controller": True}]})
    return reg.create(BY_KIND["ReplicaSet"], "default", rs)


def test_orphan_keeps_dependents_without_the_reference(reg):
    d = reg.create(BY_KIND["Deployment"], "default", DEPLOY)
    _owned_rs(reg, d)
    writes.delete(reg, BY_KIND["Deployment"], "default", "web", None, None, None, "Orphan")
    rs = reg.store.get("replicasets", "default", "web-1")
    assert "ownerReferences" not in rs["metadata"]


def test_foreground_deletes_dependents_first(reg):
    d = reg.create(BY_KIND["Deployment"], "default", DEPLOY)
    _owned_rs(reg, d)
    writes.delete(reg, BY_KIND["Deployment"], "default", "web", None, None, None, "Foreground")
    assert reg.store.list("replicasets", "default")[0] == []
    assert reg.store.list("deployments", "default")[0] == []


def test_propagation_policy_parsing_and_rv_precondition(reg):
    assert writes.propagation({}, {}) == "Background"
    assert writes.propagation({}, {"orphanDependents": True}) == "Orphan"
    with pytest.raises(APIError):
        writes.propagation({"propagationPolicy": "Sideways"}, {})
    reg.create(BY_KIND["Deployment"], "default", DEPLOY)
    with pytest.raises(APIError) as e:
        writes.delete(reg, BY_KIND["Deployment"], "default", "web", None, None, "1", "Background")
    assert e.value.code == 409
