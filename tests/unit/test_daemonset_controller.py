"""The DaemonSet controller's pure core and the node affinity / taint rules
it shares with the scheduler: which nodes should run a daemon pod, pods to
create and delete, rolling updates by maxUnavailable and maxSurge, status."""
from datetime import datetime, timezone

from agent.api.nodeaffinity import affinity_matches, untolerated_taint
from agent.controllers.daemonset import daemon_plan, daemon_pod_spec, new_daemon_pod, node_of, should_run
from agent.controllers.scheduler import pick_node

NOW = datetime(2026, 3, 4, 10, 0, tzinfo=timezone.utc)
READY = [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-03-04T09:00:00Z"}]


def node(name, labels=None, taints=None, unschedulable=False):
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": taints or [], "unschedulable": unschedulable},
            "status": {"conditions": READY}}


def ds(strategy=None, **tspec):
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "default", "uid": "d1", "generation": 1},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "updateStrategy": strategy or {"type": "RollingUpdate",
                                                    "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                     "template": {"metadata": {"labels": {"app": "agent"}},
                                  "spec": {"containers": [{"name": "c"}], **tspec}}}}


def pod(name, on, rev="h1", ready=True, phase="Running", created="2026-03-04T09:00:00Z"):
    return {"metadata": {"name": name, "labels": {"controller-revision-hash": rev}, "creationTimestamp": created},
            "spec": {"nodeName": on},
            "status": {"phase": phase, "conditions": READY if ready else []}}


def test_one_pod_per_node_following_nodes():
    nodes = [node("node-1"), node("node-2")]
    plan = daemon_plan(ds(), nodes, [pod("a", "node-1")], "h1", NOW)
    assert plan.create == ["node-2"] and plan.delete == []
    assert plan.status == {"currentNumberScheduled": 1, "numberMisscheduled": 0, "desiredNumberScheduled": 2,
                           "numberReady": 1, "observedGeneration": 1, "updatedNumberScheduled": 1,
                           "numberAvailable": 1, "numberUnavailable": 1}
    # node-2 removed: its pod goes
    plan = daemon_plan(ds(), [node("node-1")], [pod("a", "node-1"), pod("b", "node-2")], "h1", NOW)
    assert plan.create == [] and plan.delete == ["b"]


def test_node_selector_taints_and_cordon():
    nodes = [node("node-1", {"disk": "ssd"}), node("node-2"),
             node("node-3", {"disk": "ssd"}, taints=[{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]),
             node("node-4", {"disk": "ssd"}, unschedulable=True)]
    d = ds(nodeSelector={"disk": "ssd"})
    assert [n["metadata"]["name"] for n in nodes if should_run(d, n)] == ["node-1", "node-4"]
    tolerant = ds(nodeSelector={"disk": "ssd"}, tolerations=[{"key": "dedicated", "operator": "Exists"}])
    assert [n["metadata"]["name"] for n in nodes if should_run(tolerant, n)] == ["node-1", "node-3", "node-4"]


def test_daemon_pod_is_pinned_by_affinity_and_tolerates_kube_taints():
    p = new_daemon_pod(ds(), "node-2", "h1")
    assert p["metadata"]["generateName"] == "agent-" and node_of(p) == "node-2"
    assert p["metadata"]["labels"] == {"app": "agent", "controller-revision-hash": "h1", "pod-template-generation": "1"}
    keys = {t["key"] for t in p["spec"]["tolerations"]}
    assert "node.kubernetes.io/unschedulable" in keys and "node.kubernetes.io/not-ready" in keys
    nodes = [node("node-1"), node("node-2", unschedulable=True)]
    assert pick_node(p, nodes, {})[0] == "node-2"        # the scheduler honours the pin, and the cordon toleration
    assert pick_node({"spec": {}}, nodes, {})[0] == "node-1"
    assert "network-unavailable" in str(daemon_pod_spec({"hostNetwork": True}, None)["tolerations"])


def test_scheduler_node_affinity_and_reasons():
    nodes = [node("node-1", {"zone": "a"}), node("node-2", {"zone": "b"})]
    spec = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]}}}}
    assert affinity_matches(spec, nodes[1]) and not affinity_matches(spec, nodes[0])
    assert pick_node({"spec": spec}, nodes, {})[0] == "node-2"
    tainted = node("node-3", taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}])
    assert untolerated_taint({}, tainted)["key"] == "gpu"
    assert pick_node({"spec": {}}, [tainted], {}) == (
        None, "0/1 nodes are available: 1 node(s) had untolerated taint {gpu: yes}.")


def test_rolling_update_max_unavailable():
    nodes = [node(f"node-{i}") for i in (1, 2, 3)]
    pods = [pod("a", "node-1"), pod("b", "node-2"), pod("c", "node-3")]
    plan = daemon_plan(ds(), nodes, pods, "h2", NOW)
    assert plan.delete == ["a"] and plan.create == []
    # a replaced but not yet ready: no budget left
    pods = [pod("a2", "node-1", "h2", ready=False), pod("b", "node-2"), pod("c", "node-3")]
    assert daemon_plan(ds(), nodes, pods, "h2", NOW).delete == []
    pods[0] = pod("a2", "node-1", "h2")
    assert daemon_plan(ds(), nodes, pods, "h2", NOW).delete == ["b"]


def test_rolling_update_max_surge_and_on_delete():
    nodes = [node("node-1"), node("node-2")]
    surge = ds({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}})
    pods = [pod("a", "node-1"), pod("b", "node-2")]
    plan = daemon_plan(surge, nodes, pods, "h2", NOW)
    assert plan.create == ["node-1"] and plan.delete == []
    pods.append(pod("a2", "node-1", "h2", ready=False, created="2026-03-04T09:30:00Z"))
    plan = daemon_plan(surge, nodes, pods, "h2", NOW)
    assert plan.create == [] and plan.delete == []
    pods[-1] = pod("a2", "node-1", "h2", created="2026-03-04T09:30:00Z")
    plan = daemon_plan(surge, nodes, pods, "h2", NOW)
    assert plan.delete == ["a"]
    assert daemon_plan(ds({"type": "OnDelete"}), nodes, [pod("a", "node-1"), pod("b", "node-2")], "h2", NOW).delete == []


def test_failed_pod_replaced():
    plan = daemon_plan(ds(), [node("node-1")], [pod("a", "node-1", phase="Failed", ready=False)], "h1", NOW)
    assert plan.delete == ["a"] and plan.create == ["node-1"]
