"""kube-apiserver's validation for the kinds we serve, with kube's messages.

`validate(kind, obj, old)` returns a list of `Cause(field, reason, message)` —
the same triples kube puts in a 422 Status's `details.causes` — and
`format_invalid(kind, name, causes)` builds the Status message exactly as
apierrors.NewInvalid does:

    Service "web" is invalid: spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive

Rules are ports of k8s.io/kubernetes/pkg/apis/{core,apps,discovery}/validation
(and the Service REST strategy's clusterIP / nodePort checks), in kube's order.
Fields that kube's defaulters fill in (type, protocol, sessionAffinity,
targetPort, restartPolicy, replicas...) are treated as their defaults when
absent, so this can run before or after defaulting. A value of the wrong JSON
type (e.g. `app: 1` in a selector) is a `FieldValueTypeInvalid` cause worded
like kube's schema validation ("... in body must be of type string").

One module per kind family (service, pods, workloads incl. the
ReplicationController, endpoints, config), checks
shared by all kinds in common, error rendering in errors. Pure: dicts in,
causes out. Allocation conflicts (clusterIP / nodePort already allocated,
clusterIP outside the service CIDR) belong to the allocator.
"""
from __future__ import annotations

from agent.api import kinds
from agent.apiserver.validation.batch import check_cronjob, check_job
from agent.apiserver.validation.certificates import check_csr
from agent.apiserver.validation.common import (
    check_namespace,
    validate_meta,
    validate_meta_update,
)
from agent.apiserver.validation.config import check_config_map, check_secret, check_service_account
from agent.apiserver.validation.endpoints import check_endpoint_slice, check_endpoints
from agent.apiserver.validation.errors import Cause, Errs, go_value, type_name
from agent.apiserver.validation.ingress import check_ingress, check_ingress_class
from agent.apiserver.validation.pods import check_pod, validate_binding
from agent.apiserver.validation.pvc import check_pvc
from agent.apiserver.validation.rbac import CHECKS as RBAC_CHECKS
from agent.apiserver.validation.service import check_service
from agent.apiserver.validation.statefulset import check_daemonset, check_statefulset
from agent.apiserver.validation.workloads import check_replication_controller, check_workload

__all__ = ["CHECKS", "Cause", "format_invalid", "go_value", "invalid_status", "qualified_kind", "validate",
           "validate_binding"]


# ---- entry points ----------------------------------------------------------------

def validate(kind: str, obj: dict, old: dict | None = None, *,
             node_port_range: tuple[int, int] = (30000, 32767)) -> list[Cause]:
    """All causes that make `obj` invalid (create when `old` is None, else update)."""
    errs = Errs()
    if not isinstance(obj, dict):
        errs.add("TypeInvalid", "", type_name(obj), f"body must be of type object: {go_value(type_name(obj))}")
        return list(errs)
    k = kinds.BY_KIND.get(kind)
    md = obj.get("metadata")
    if old is not None and isinstance(md, dict):
        validate_meta_update(errs, md, old.get("metadata") or {})
    validate_meta(errs, kind, md, k.namespaced if k else True)
    checker = CHECKS.get(kind)
    if checker:
        checker(errs, obj, old, node_port_range=node_port_range)
    return list(errs)


def qualified_kind(kind: str) -> str:
    k = kinds.BY_KIND.get(kind)
    return f"{kind}.{k.group}" if k and k.group else kind


def format_invalid(kind: str, name: str, causes: list[Cause]) -> str:
    """apierrors.NewInvalid's message: `Kind[.group] "name" is invalid: ...`."""
    msgs = list(dict.fromkeys(str(c) for c in causes))
    head = f'{qualified_kind(kind)} {go_value(name)} is invalid'
    if not msgs:
        return head
    return f"{head}: {msgs[0] if len(msgs) == 1 else '[' + ', '.join(msgs) + ']'}"


def invalid_status(kind: str, name: str, causes: list[Cause]) -> dict:
    """The 422 Status object kube-apiserver answers with."""
    k = kinds.BY_KIND.get(kind)
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format_invalid(kind, name, causes), "reason": "Invalid", "code": 422,
            "details": {"name": name, "group": k.group if k else "", "kind": kind,
                        "causes": [{"reason": c.reason, "message": c.message, "field": c.field}
                                   for c in causes]}}


CHECKS = {
    "Service": check_service,
    "Pod": check_pod,
    "Deployment": check_workload,
    "ReplicaSet": check_workload,
    "ReplicationController": check_replication_controller,
    "StatefulSet": check_statefulset,
    "DaemonSet": check_daemonset,
    "Job": check_job,
    "CronJob": check_cronjob,
    "EndpointSlice": check_endpoint_slice,
    "Endpoints": check_endpoints,
    "Namespace": check_namespace,
    "CertificateSigningRequest": check_csr,
    "ConfigMap": check_config_map,
    "Secret": check_secret,
    "ServiceAccount": check_service_account,
    "Ingress": check_ingress,
    "IngressClass": check_ingress_class,
    "PersistentVolumeClaim": check_pvc,
    **RBAC_CHECKS,
}
