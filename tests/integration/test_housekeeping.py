"""Housekeeping on a real cluster: Events expire after the cluster's
event TTL (`nsplane up --event-ttl`, here a few seconds), and a deleted
pod's directory under the node's state dir (its containers' logs) goes
with the pod: on a graceful delete, on a forced one, and when the pod was
deleted while its node agent was down."""
import os
import signal

import pytest

from tests.integration.cluster import ThrowawayCluster

pytestmark = pytest.mark.integration

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: graceful}
spec:
  containers: [{name: c, image: nginx}]
---
apiVersion: v1
kind: Pod
metadata: {name: forced}
spec:
  containers: [{name: c, image: nginx}]
---
apiVersion: v1
kind: Pod
metadata: {name: whiledown}
spec:
  containers: [{name: c, image: nginx}]
"""


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    tc = ThrowawayCluster(str(tmp_path_factory.mktemp("cluster")), nodes=1, dns=False)
    tc.cfg.event_ttl = 6.0
    with tc:
        yield tc


def pod_dirs(c) -> list[str]:
    d = os.path.join(c.cfg.dir, "nodes", c.cfg.node_name(1), "pods")
    return sorted(n.split("_")[1] for n in os.listdir(d)) if os.path.isdir(d) else []


def test_deleted_pods_leave_no_directory(c):
    c.apply(PODS)
    c.wait(lambda: pod_dirs(c) == ["forced", "graceful", "whiledown"], 60, "the pods' directories")
    c.wait(lambda: all(p["status"].get("phase") == "Running" for p in c.get("pods")["items"]), 60, "pods running")
    c.kubectl("logs", "graceful")                                # its log file exists while the pod does
    c.kubectl("delete", "pod", "graceful", "--wait=true")
    c.kubectl("delete", "pod", "forced", "--grace-period=0", "--force")
    c.wait(lambda: pod_dirs(c) == ["whiledown"], 30, "graceful's and forced's directories removed")
    pidfile = os.path.join(c.cfg.rundir, f"{c.cfg.node_name(1)}.pid")
    os.kill(int(open(pidfile).read().split()[0]), signal.SIGKILL)    # the node agent we started
    c.kubectl("delete", "pod", "whiledown", "--grace-period=0", "--force")
    c.nsplane("up", timeout=120)                                 # the agent comes back and cleans up
    c.wait(lambda: pod_dirs(c) == [], 60, "whiledown's directory removed by the restarted agent")


def test_events_expire_after_the_event_ttl(c):
    c.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: noisy}\nspec:\n  containers: [{name: c, image: nginx}]\n")
    c.wait(lambda: any(e["involvedObject"]["name"] == "noisy" for e in c.get("events")["items"]), 30,
           "events about the pod")
    c.wait(lambda: not any(e["involvedObject"]["name"] == "noisy" for e in c.get("events")["items"]), 60,
           "the pod's events expired")
    c.kubectl("delete", "pod", "noisy", "--wait=false")
