"""Ports of test/e2e/network/service.go's [Conformance] specs ([sig-network]
Services) that exercise the API alone: the kubernetes Service, listing
across namespaces, the ServiceStatus lifecycle (with watchtools.Until over
real watches) and DeleteCollection. "should test the lifecycle of an
Endpoint" (service.go up to v1.34) is ported where v1.35 keeps it:
test_network_endpoints.py. Same objects,
checks and timeouts as upstream, through real kubectl (raw paths where
client-go calls an API kubectl has no verb for)."""
import json
import random

import pytest

from tests.conformance.framework import watch_until

pytestmark = pytest.mark.integration

BASE_NAME = "services"
SVC_READY_TIMEOUT = 60.0          # svcReadyTimeout


def _rand(n: int = 5) -> str:
    """utilrand.String(n)."""
    return "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(n))


def _selector(label: str) -> str:
    return label.replace("=", "%3D")


def test_should_provide_secure_master_service(framework):
    """[sig-network] Services should provide secure master service [Conformance]"""
    r = framework.cluster.kubectl("-n", "default", "get", "service", "kubernetes", "-o", "json", check=False)
    assert r.returncode == 0, f"failed to fetch the service object for the service named kubernetes: {r.stderr}"


def test_should_find_a_service_from_listing_all_namespaces(framework):
    """[sig-network] Services should find a service from listing all
    namespaces [Conformance]"""
    # By("fetching services")
    svcs = framework.raw("/api/v1/services")
    found = any(s["metadata"]["name"] == "kubernetes" and s["metadata"].get("namespace") == "default"
                for s in svcs["items"])
    assert found, "could not find service 'kubernetes' in service list in all namespaces"


def test_should_complete_a_service_status_lifecycle(framework):
    """[sig-network] Services should complete a service status lifecycle [Conformance]"""
    f = framework
    ns = f.ns
    test_svc_name = "test-service-" + _rand()
    labels_flat = "test-service-static=true"
    watch_path = f"/api/v1/namespaces/{ns}/services?labelSelector={_selector(labels_flat)}"

    svc_list = f.raw(f"/api/v1/services?labelSelector={_selector(labels_flat)}")
    rv = svc_list["metadata"]["resourceVersion"]

    def ours(svc: dict) -> bool:
        return svc["metadata"]["name"] == test_svc_name and svc["metadata"].get("namespace") == ns

    # By("creating a Service")
    f.create({"apiVersion": "v1", "kind": "Service",
              "metadata": {"name": test_svc_name, "labels": {"test-service-static": "true"}},
              "spec": {"type": "LoadBalancer",
                       "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 80}],
                       "loadBalancerClass": "example.com/internal-vip"}})

    # By("watching for the Service to be added")
    watch_until(f, watch_path, rv, lambda e: ours(e["object"]) and
                (e["object"]["metadata"].get("labels") or {}).get("test-service-static") == "true",
                SVC_READY_TIMEOUT, f"Service {test_svc_name} in namespace {ns}")

    # By("Getting /status")
    svc_status = f.raw(f"/api/v1/namespaces/{ns}/services/{test_svc_name}/status")
    assert svc_status["kind"] == "Service", f"Failed to fetch ServiceStatus of Service {test_svc_name}: {svc_status}"

    # By("patching the ServiceStatus")
    lb_status = {"ingress": [{"ip": "203.0.113.1"}]}
    f.kubectl("patch", "service", test_svc_name, "--subresource=status", "--type=merge", "-p",
              json.dumps({"metadata": {"annotations": {"patchedstatus": "true"}},
                          "status": {"loadBalancer": lb_status}}))

    # By("watching for the Service to be patched")
    watch_until(f, watch_path, rv, lambda e: ours(e["object"]) and
                (e["object"]["metadata"].get("annotations") or {}).get("patchedstatus") == "true",
                SVC_READY_TIMEOUT, f"Service {test_svc_name} with annotation patchedstatus")

    # By("updating the ServiceStatus")   retry.RetryOnConflict(retry.DefaultRetry, ...)
    for attempt in range(5):
        status_to_update = f.get("service", test_svc_name)
        status_to_update.setdefault("status", {}).setdefault("conditions", []).append(
            {"type": "StatusUpdate", "status": "True", "reason": "E2E", "message": "Set from e2e test",
             "lastTransitionTime": None})          # metav1.Condition's zero Time, as client-go sends it
        r = f.kubectl("replace", "--subresource=status", "-f", "-", "-o", "json",
                      input=json.dumps(status_to_update), check=False)
        if r.returncode == 0 or "Conflict" not in r.stderr and "has been modified" not in r.stderr:
            break
    assert r.returncode == 0, f"Failed to UpdateStatus. {r.stderr}"

    # By("watching for the Service to be updated")
    def updated(e) -> bool:
        svc = e["object"]
        if not (ours(svc) and (svc["metadata"].get("annotations") or {}).get("patchedstatus") == "true"):
            return False
        for cond in (svc.get("status") or {}).get("conditions") or []:
            # upstream returns on the first condition, whether it matches or not
            return cond.get("type") == "StatusUpdate" and cond.get("reason") == "E2E" and \
                cond.get("message") == "Set from e2e test"
        return False
    watch_until(f, watch_path, rv, updated, SVC_READY_TIMEOUT, f"Service {test_svc_name} with condition StatusUpdate")

    # By("patching the service")
    f.kubectl("patch", "service", test_svc_name, "--type=strategic", "-p",
              json.dumps({"metadata": {"labels": {"test-service": "patched"}}}))

    # By("watching for the Service to be patched")
    watch_until(f, watch_path, rv, lambda e: ours(e["object"]) and
                (e["object"]["metadata"].get("labels") or {}).get("test-service") == "patched",
                SVC_READY_TIMEOUT, f"Service {test_svc_name} with label test-service=patched")

    # By("deleting the service")
    f.kubectl("delete", "service", test_svc_name)

    # By("watching for the Service to be deleted")
    watch_until(f, watch_path, rv, lambda e: e["type"] == "DELETED" and ours(e["object"]) and
                (e["object"]["metadata"].get("labels") or {}).get("test-service-static") == "true",
                SVC_READY_TIMEOUT, f"Service {test_svc_name} to be deleted")


def test_should_delete_a_collection_of_services(framework):
    """[sig-network] Services should delete a collection of services [Conformance]"""
    f = framework
    ns = f.ns
    delete_label = "e2e-test-service=delete"

    # By("creating a collection of services")
    for prefix, label, port in (("e2e-svc-a-", "delete", 8001), ("e2e-svc-b-", "delete", 8002),
                                ("e2e-svc-c-", "keep", 8003)):
        f.create({"apiVersion": "v1", "kind": "Service",
                  "metadata": {"name": prefix + _rand(), "labels": {"e2e-test-service": label}},
                  "spec": {"type": "ClusterIP",
                           "ports": [{"name": "http", "protocol": "TCP", "port": port, "targetPort": port}]}})

    svc_list = f.raw(f"/api/v1/namespaces/{ns}/services")
    assert len(svc_list["items"]) == 3, "Required count of services out of sync"

    # By("deleting service collection")
    f.cluster.kubectl("delete", "--raw", f"/api/v1/namespaces/{ns}/services?labelSelector={_selector(delete_label)}")

    svc_list = f.raw(f"/api/v1/namespaces/{ns}/services")
    assert len(svc_list["items"]) == 1, "Required count of services out of sync"
