"""Port of test/e2e/apps/statefulset.go ([sig-apps] StatefulSet, Basic
StatefulSet functionality): "should have a working scale subresource"
[Conformance], with the spec's headless Service `test`, its StatefulSet
(e2estatefulset.NewStatefulSet: httpd with the /index.html readiness
probe, labels foo=bar, baz=blah) and its checks on GET, PUT and PATCH of
statefulsets/<name>/scale, through real kubectl."""
import json

import pytest

from tests.conformance.framework import poll

pytestmark = pytest.mark.integration

BASE_NAME = "statefulset"
LABELS = {"foo": "bar", "baz": "blah"}
IMAGE = "registry.k8s.io/e2e-test-images/httpd:2.4.38-4"
STATEFUL_SET_TIMEOUT = 10 * 60


def new_stateful_set(name: str, service: str, replicas: int) -> dict:
    """e2estatefulset.NewStatefulSet with setHTTPProbe."""
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": LABELS}, "replicas": replicas, "serviceName": service,
                     "podManagementPolicy": "OrderedReady",
                     "updateStrategy": {"type": "RollingUpdate"},
                     "template": {"metadata": {"labels": LABELS}, "spec": {"containers": [
                         {"name": "webserver", "image": IMAGE,
                          "readinessProbe": {"httpGet": {"path": "/index.html", "port": 80},
                                             "periodSeconds": 1, "successThreshold": 1, "failureThreshold": 1}}]}}}}


def running_and_ready(f, n: int) -> bool:
    pods = f.list("pods", ",".join(f"{k}={v}" for k, v in LABELS.items()))
    return len(pods) == n and all(p["status"].get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or []) for p in pods)


def test_should_have_a_working_scale_subresource(framework):
    """[sig-apps] StatefulSet Basic StatefulSet functionality [StatefulSetBasic]
    should have a working scale subresource [Conformance]"""
    f, name = framework, "ss"
    f.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "test", "labels": LABELS},
              "spec": {"clusterIP": "None", "selector": LABELS, "ports": [{"name": "http", "port": 80}]}})
    f.create(new_stateful_set(name, "test", 1))
    poll(2, STATEFUL_SET_TIMEOUT, lambda: running_and_ready(f, 1), what="1 running and ready pod")
    poll(2, STATEFUL_SET_TIMEOUT, lambda: f.get("statefulset", name)["status"].get("observedGeneration", 0)
         >= f.get("statefulset", name)["metadata"]["generation"], what="the status to be observed")
    base = f"/apis/apps/v1/namespaces/{f.ns}/statefulsets/{name}/scale"
    scale = f.raw(base)
    assert scale["spec"]["replicas"] == 1 and scale["status"]["replicas"] == 1
    # updating a scale subresource (unconditionally)
    scale["metadata"].pop("resourceVersion", None)
    scale["spec"]["replicas"] = 2
    result = json.loads(f.cluster.kubectl("replace", "--raw", base, "-f", "-", input=json.dumps(scale)).stdout)
    assert result["spec"]["replicas"] == 2
    assert f.get("statefulset", name)["spec"]["replicas"] == 2
    # Patch a scale subresource
    f.kubectl("patch", "statefulset", name, "--subresource=scale", "--type=merge", "-p", '{"spec":{"replicas":4}}')
    assert f.get("statefulset", name)["spec"]["replicas"] == 4
    f.kubectl("delete", "statefulset", name, "--wait=false")
