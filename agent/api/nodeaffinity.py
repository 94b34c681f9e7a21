"""Which nodes a pod may run on, as kube-scheduler's NodeAffinity and
TaintToleration plugins decide it (and the DaemonSet controller, which asks
the same question before making a pod for a node): spec.nodeSelector, the
required node affinity (nodeSelectorTerms ORed; in each, matchExpressions
over the node's labels and matchFields over metadata.name ANDed; operators
In, NotIn, Exists, DoesNotExist, Gt, Lt), and NoSchedule / NoExecute taints
against the pod's tolerations. Pure."""
from __future__ import annotations


def _requirement(req: dict, value: str | None) -> bool:
    op, values = req.get("operator"), req.get("values") or []
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and len(values) == 1:
        try:
            a, b = int(value), int(values[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def term_matches(term: dict, node: dict) -> bool:
    """One NodeSelectorTerm: every expression and field requirement holds
    (an empty term matches nothing, as in kube)."""
    exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not fields:
        return False
    labels = node["metadata"].get("labels") or {}
    node_fields = {"metadata.name": node["metadata"]["name"]}
    return all(_requirement(r, labels.get(r.get("key"))) for r in exprs) and \
        all(_requirement(r, node_fields.get(r.get("key"))) for r in fields)


def required_terms(pod_spec: dict) -> list[dict] | None:
    req = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution"))
    return None if req is None else (req.get("nodeSelectorTerms") or [])


def affinity_matches(pod_spec: dict, node: dict) -> bool:
    """nodeSelector and the required node affinity."""
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return False
    terms = required_terms(pod_spec)
    return terms is None or any(term_matches(t, node) for t in terms)


def tolerates(tolerations: list[dict], taint: dict) -> bool:
    for t in tolerations or []:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        if t.get("key") and t.get("key") != taint.get("key"):
            continue
        if not t.get("key") and t.get("operator") != "Exists":
            continue
        if t.get("operator", "Equal") == "Exists" or t.get("value", "") == taint.get("value", ""):
            return True
    return False


def untolerated_taint(pod_spec: dict, node: dict, effects=("NoSchedule", "NoExecute")) -> dict | None:
    """The first taint of the node (including spec.unschedulable, as the
    node.kubernetes.io/unschedulable:NoSchedule taint) the pod does not tolerate."""
    taints = list((node.get("spec") or {}).get("taints") or [])
    if (node.get("spec") or {}).get("unschedulable"):
        taints.append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
    for taint in taints:
        if taint.get("effect") in effects and not tolerates(pod_spec.get("tolerations") or [], taint):
            return taint
    return None
