"""The StatefulSet controller's pure core: which pod it creates, deletes or
waits for (OrderedReady and Parallel, scale down, RollingUpdate with a
partition, OnDelete), its status, and the ControllerRevision history."""
from agent.controllers.revisions import history_to_delete, revision_data, revision_hash
from agent.controllers.statefulset import Step, new_pod, ordinal_of, plan, statefulset_status


def sts(replicas=3, policy="OrderedReady", strategy=None, **spec):
    return {"metadata": {"name": "db", "namespace": "default", "uid": "u1", "generation": 2},
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "spec": {"replicas": replicas, "podManagementPolicy": policy, "serviceName": "db",
                     "updateStrategy": strategy or {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                     "selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c"}]}},
                     **spec}}


def pod(i, rev="r1", ready=True, phase="Running", deleting=False):
    md = {"name": f"db-{i}", "labels": {"controller-revision-hash": rev}}
    if deleting:
        md["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": md, "status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}


def test_ordinals():
    assert ordinal_of("db", "db-12") == 12
    assert ordinal_of("db", "db-012") == -1 and ordinal_of("db", "dbx-1") == -1 and ordinal_of("db", "db-a") == -1


def test_ordered_ready_creates_one_at_a_time_and_waits_for_readiness():
    assert plan(sts(), [], "r1") == [Step("create", 0, "update")]
    assert plan(sts(), [pod(0, ready=False)], "r1") == []
    assert plan(sts(), [pod(0)], "r1") == [Step("create", 1, "update")]
    assert plan(sts(), [pod(0), pod(1), pod(2)], "r1") == []


def test_parallel_creates_every_missing_pod_at_once():
    assert plan(sts(policy="Parallel"), [pod(1, ready=False)], "r1") == \
        [Step("create", 0, "update"), Step("create", 2, "update")]


def test_scale_down_deletes_highest_ordinal_first_and_waits_for_termination():
    pods = [pod(0), pod(1), pod(2), pod(3)]
    assert plan(sts(replicas=1), pods, "r1") == [Step("delete", name="db-3")]
    assert plan(sts(replicas=1), pods[:3] + [pod(3, deleting=True)], "r1") == []
    assert plan(sts(replicas=1, policy="Parallel"), pods, "r1") == \
        [Step("delete", name="db-3"), Step("delete", name="db-2"), Step("delete", name="db-1")]


def test_scale_down_waits_while_another_pod_is_unhealthy():
    assert plan(sts(replicas=1), [pod(0), pod(1, ready=False), pod(2)], "r1") == []


def test_failed_pod_is_deleted_to_be_recreated():
    assert plan(sts(), [pod(0, phase="Failed", ready=False)], "r1") == [Step("delete", name="db-0")]


def test_rolling_update_replaces_highest_ordinal_first_down_to_partition():
    pods = [pod(0), pod(1), pod(2)]
    assert plan(sts(), pods, "r2") == [Step("delete", name="db-2")]
    assert plan(sts(), [pod(0), pod(1), pod(2, rev="r2", ready=False)], "r2") == []
    assert plan(sts(), [pod(0), pod(1), pod(2, rev="r2")], "r2") == [Step("delete", name="db-1")]
    partitioned = sts(strategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    assert plan(partitioned, [pod(0), pod(1), pod(2, rev="r2")], "r2") == []
    # below the partition a missing pod comes back at the current revision
    assert plan(partitioned, [pod(1), pod(2, rev="r2")], "r2") == [Step("create", 0, "current")]


def test_on_delete_never_replaces_pods_itself():
    assert plan(sts(strategy={"type": "OnDelete"}), [pod(0), pod(1), pod(2)], "r2") == []
    assert plan(sts(strategy={"type": "OnDelete"}), [pod(1), pod(2)], "r2") == [Step("create", 0, "update")]


def test_status_completes_the_rolling_update():
    s = statefulset_status(sts(), [pod(0, "r2"), pod(1, "r2"), pod(2, "r2")], "r1", "r2")
    assert s == {"observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "availableReplicas": 3,
                 "currentReplicas": 3, "updatedReplicas": 3, "currentRevision": "r2", "updateRevision": "r2",
                 "collisionCount": 0}
    s = statefulset_status(sts(), [pod(0, "r1"), pod(1, "r1"), pod(2, "r2", ready=False)], "r1", "r2")
    assert (s["currentReplicas"], s["updatedReplicas"], s["currentRevision"], s["readyReplicas"]) == (2, 1, "r1", 2)


def test_new_pod_identity():
    s = sts()
    rev = {"metadata": {"name": "db-abc"}, "data": revision_data(s)}
    p = new_pod(s, rev, 4)
    assert p["metadata"]["name"] == "db-4" and "generateName" not in p["metadata"]
    assert p["metadata"]["labels"] == {"app": "db", "controller-revision-hash": "db-abc",
                                       "statefulset.kubernetes.io/pod-name": "db-4", "apps.kubernetes.io/pod-index": "4"}
    assert (p["spec"]["hostname"], p["spec"]["subdomain"]) == ("db-4", "db")
    assert p["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
    claimed = sts(volumeClaimTemplates=[{"metadata": {"name": "data"}, "spec": {}}])
    assert new_pod(claimed, {"metadata": {"name": "db-abc"}, "data": revision_data(claimed)}, 0)["spec"]["volumes"] \
        == [{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}]


def test_revision_data_hash_and_history():
    s = sts()
    data = revision_data(s)
    assert data["spec"]["template"]["$patch"] == "replace"
    assert revision_hash(data) == revision_hash(revision_data(sts())) != revision_hash(data, 1)
    revs = [{"metadata": {"name": f"db-{i}"}, "revision": i} for i in range(1, 6)]
    assert [r["revision"] for r in history_to_delete(revs, {"db-5"}, 2)] == [1, 2]
    assert history_to_delete(revs, set(), 10) == []


def test_validation_of_updates_and_claim_mounts():
    from agent.apiserver import defaults, validation
    old = sts(volumeClaimTemplates=[{"metadata": {"name": "data"}, "spec": {}}])
    old["spec"]["template"]["spec"]["containers"][0].update(image="nginx", volumeMounts=[
        {"name": "data", "mountPath": "/data"}])
    defaults.default("StatefulSet", old)
    assert validation.validate("StatefulSet", old) == []
    new = {**old, "spec": {**old["spec"], "serviceName": "other"}}
    assert validation.format_invalid("StatefulSet", "db", validation.validate("StatefulSet", new, old)) == (
        'StatefulSet.apps "db" is invalid: spec: Forbidden: updates to statefulset spec for fields other than '
        "'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', "
        "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")
    assert validation.validate("StatefulSet", {**old, "spec": {**old["spec"], "replicas": 5}}, old) == []
