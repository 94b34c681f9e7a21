"""Ports of test/e2e/apps/daemon_set.go ([sig-apps] Daemon set): "should run
and stop simple daemon" and "should retry creating failed daemon pods"
[Conformance], with the spec's DaemonSet (httpd on port 9376, the
`daemonset-name` label), its checks (a running, available daemon pod on
every schedulable node; desired = current = ready) and its teardown (the
DaemonSet deleted, its pods gone), through real kubectl."""
import json

import pytest

from tests.conformance.framework import poll

pytestmark = pytest.mark.integration

BASE_NAME = "daemonsets"
DS_RETRY_PERIOD = 1
DS_RETRY_TIMEOUT = 5 * 60
IMAGE = "registry.k8s.io/e2e-test-images/httpd:2.4.38-4"


def new_daemon_set(name: str, label: dict) -> dict:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": label},
                     "template": {"metadata": {"labels": label}, "spec": {"containers": [
                         {"name": "app", "image": IMAGE, "ports": [{"containerPort": 9376}]}]}}}}


def schedulable_nodes(f) -> list[str]:
    return sorted(n["metadata"]["name"] for n in json.loads(f.cluster.kubectl("get", "nodes", "-o", "json").stdout)
                  ["items"] if not n["spec"].get("unschedulable") and not any(
                      t.get("effect") in ("NoSchedule", "NoExecute") for t in n["spec"].get("taints") or []))


def running_on_all_nodes(f, selector: str) -> bool:
    """checkRunningOnAllNodes: an available daemon pod on every schedulable node."""
    on = {p["spec"].get("nodeName") for p in f.list("pods", selector)
          if not p["metadata"].get("deletionTimestamp") and p["status"].get("phase") == "Running"
          and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])}
    return all(n in on for n in schedulable_nodes(f))


def check_daemon_status(f, name: str) -> None:
    st = f.get("daemonset", name)["status"]
    desired = st["desiredNumberScheduled"]
    assert desired == st["currentNumberScheduled"] == st["numberReady"], st


def create_and_check(f, name: str, selector: str) -> None:
    """Creating the DaemonSet; checking that a daemon pod launches on every node."""
    f.create(new_daemon_set(name, {"daemonset-name": name}))
    poll(DS_RETRY_PERIOD, DS_RETRY_TIMEOUT, lambda: running_on_all_nodes(f, selector),
         what="daemon pods running on all nodes")
    check_daemon_status(f, name)


def replaced(f, pod: dict, selector: str) -> bool:
    return pod["metadata"]["uid"] not in {p["metadata"]["uid"] for p in f.list("pods", selector)} \
        and running_on_all_nodes(f, selector)


def teardown(f, name: str, selector: str) -> None:
    f.kubectl("delete", "daemonset", name, "--wait=false")
    poll(DS_RETRY_PERIOD, DS_RETRY_TIMEOUT, lambda: not f.list("pods", selector), what="daemon pods to be gone")


def test_should_run_and_stop_simple_daemon(framework):
    """[sig-apps] Daemon set [Serial] should run and stop simple daemon [Conformance]"""
    f, name = framework, "daemon-set"
    selector = f"daemonset-name={name}"
    create_and_check(f, name, selector)
    # Stop a daemon pod, check that the daemon pod is revived.
    pod = f.list("pods", selector)[0]
    f.delete("pod", pod["metadata"]["name"])
    poll(DS_RETRY_PERIOD, DS_RETRY_TIMEOUT, lambda: replaced(f, pod, selector), what="the daemon pod revived")
    teardown(f, name, selector)


def test_should_retry_creating_failed_daemon_pods(framework):
    """[sig-apps] Daemon set [Serial] should retry creating failed daemon pods [Conformance]"""
    f, name = framework, "daemon-set"
    selector = f"daemonset-name={name}"
    create_and_check(f, name, selector)
    # Set a daemon pod's phase to 'Failed', check that the daemon pod is revived.
    pod = f.list("pods", selector)[0]
    pod["status"]["phase"] = "Failed"
    f.kubectl("replace", "--subresource=status", "-f", "-", input=json.dumps(pod))
    poll(DS_RETRY_PERIOD, DS_RETRY_TIMEOUT, lambda: replaced(f, pod, selector),
         what="the failed daemon pod replaced")
    # Wait for the failed daemon pod to be completely deleted.
    poll(DS_RETRY_PERIOD, DS_RETRY_TIMEOUT, lambda: f.kubectl("get", "pod", pod["metadata"]["name"],
                                                             check=False).returncode != 0,
         what="the failed daemon pod deleted")
    teardown(f, name, selector)
