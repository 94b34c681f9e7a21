"""Deployment and ReplicaSet validation (apps/validation): selector against
template labels, replicas, strategy and its percent-or-int fields; and the
ReplicationController's (core/validation), whose selector is a plain map."""
from __future__ import annotations

import re

from agent.api.selectors import from_label_selector
from agent.api.syntax import label_value_errors, qualified_name_errors, regex_error
from agent.apiserver.validation.common import (
    check_nonneg,
    validate_annotations,
    validate_labels,
)
from agent.apiserver.validation.errors import (
    Errs,
    GoRepr,
    child_path,
    go_intstr,
    go_label_selector,
)
from agent.apiserver.validation.pods import check_pod_spec


def _label_selector(errs: Errs, sel: dict, path: str) -> None:
    """ValidateLabelSelector (strict label values)."""
    validate_labels(errs, sel.get("matchLabels"), child_path(path, "matchLabels"))
    for i, expr in enumerate(errs.typed(sel, "matchExpressions", child_path(path, "matchExpressions"), "array", [])):
        ep = f"{child_path(path, 'matchExpressions')}[{i}]"
        if not isinstance(expr, dict):
            errs.typed({"e": expr}, "e", ep, "object")
            continue
        op, values = expr.get("operator"), errs.typed(expr, "values", child_path(ep, "values"), "array", [])
        if op in ("In", "NotIn"):
            if not values:
                errs.required(child_path(ep, "values"), "must be specified when `operator` is 'In' or 'NotIn'")
        elif op in ("Exists", "DoesNotExist"):
            if values:
                errs.forbidden(child_path(ep, "values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
        else:
            errs.invalid(child_path(ep, "operator"), op if op is not None else "", "not a valid selector operator")
        for msg in qualified_name_errors(str(expr.get("key", ""))):
            errs.invalid(child_path(ep, "key"), str(expr.get("key", "")), msg)
        for j, v in enumerate(values):
            if errs.typed(values, j, f"{child_path(ep, 'values')}[{j}]", "string") is not None:
                for msg in label_value_errors(v):
                    errs.invalid(f"{child_path(ep, 'values')}[{j}]", v, msg)


def check_workload(errs: Errs, obj: dict, old: dict | None, **_) -> None:
    spec = errs.typed(obj, "spec", "spec", "object", {})
    check_nonneg(errs, spec, "replicas", "spec.replicas")
    check_nonneg(errs, spec, "minReadySeconds", "spec.minReadySeconds")
    sel = selector_and_template(errs, spec, "deployment")
    if sel is False:
        return
    if obj.get("kind", "Deployment") == "Deployment":
        _strategy(errs, errs.typed(spec, "strategy", "spec.strategy", "object", {}))
    if old is not None:
        old_sel = (old.get("spec") or {}).get("selector")
        if old_sel is not None and sel is not None and old_sel != sel:
            errs.invalid("spec.selector", go_label_selector(sel), "field is immutable")


def selector_and_template(errs: Errs, spec: dict, noun: str, *, path: str = "spec", restart_always: bool = True):
    """The selector (required, non-empty, matching the template's labels)
    and the pod template of an apps/v1 or batch/v1 workload; the selector,
    or False when the template is missing."""
    sel = errs.typed(spec, "selector", f"{path}.selector", "object")
    n_before = len(errs)
    if sel is None:
        errs.required(f"{path}.selector")
    else:
        _label_selector(errs, sel, f"{path}.selector")
        if not sel.get("matchLabels") and not sel.get("matchExpressions"):
            errs.invalid(f"{path}.selector", go_label_selector(sel), f"empty selector is invalid for {noun}")
    template = errs.typed(spec, "template", f"{path}.template", "object")
    if template is None:
        errs.required(f"{path}.template")
        return False
    tmd = errs.typed(template, "metadata", f"{path}.template.metadata", "object", {})
    labels = tmd.get("labels") or {}
    if sel is not None and len(errs) == n_before:
        selector = from_label_selector(sel)
        if not selector.empty and isinstance(labels, dict) and not selector.matches(labels):
            errs.invalid(f"{path}.template.metadata.labels", labels, "`selector` does not match template `labels`")
    validate_labels(errs, tmd.get("labels"), f"{path}.template.metadata.labels")
    validate_annotations(errs, tmd.get("annotations"), f"{path}.template.metadata.annotations")
    check_pod_spec(errs, template.get("spec"), f"{path}.template.spec", template=restart_always)
    return sel


def percent_or_int(errs: Errs, v, path: str) -> int:
    if isinstance(v, str):
        if not re.fullmatch("[0-9]+%", v):
            errs.invalid(path, v, regex_error("a valid percent string must be a numeric string followed "
                                              "by an ending '%'", "[0-9]+%", "1%", "93%"))
            return -1
        if int(v[:-1]) > 100 and path.endswith("maxUnavailable"):
            errs.invalid(path, v, "must not be greater than 100%")
        return int(v[:-1])
    if isinstance(v, int) and not isinstance(v, bool):
        if v < 0:
            errs.invalid(path, v, "must be greater than or equal to 0")
        return v
    return -1


def _strategy(errs: Errs, strategy: dict) -> None:
    stype = strategy.get("type", "RollingUpdate")
    ru = strategy.get("rollingUpdate")
    if stype == "Recreate":
        if ru is not None:
            errs.forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")
    elif stype == "RollingUpdate":
        ru = ru or {}
        mu, ms = ru.get("maxUnavailable", "25%"), ru.get("maxSurge", "25%")
        a = percent_or_int(errs, mu, "spec.strategy.rollingUpdate.maxUnavailable")
        b = percent_or_int(errs, ms, "spec.strategy.rollingUpdate.maxSurge")
        if a == 0 and b == 0:
            errs.invalid("spec.strategy.rollingUpdate.maxUnavailable", go_intstr(mu), "may not be 0 when `maxSurge` is 0")
    else:
        errs.not_supported("spec.strategy.type", stype, ["Recreate", "RollingUpdate"])


def check_replication_controller(errs: Errs, rc: dict, old: dict | None, **_) -> None:
    """ValidateReplicationControllerSpec and ValidatePodTemplateSpecForRC, in
    kube's order. The selector may change on update (unlike apps/v1's)."""
    spec = errs.typed(rc, "spec", "spec", "object", {})
    check_nonneg(errs, spec, "minReadySeconds", "spec.minReadySeconds")
    sel = errs.typed(spec, "selector", "spec.selector", "object", {})
    for k in sorted(sel, key=str):
        errs.typed(sel, k, f"spec.selector.{k}", "string")
    if not sel:
        errs.required("spec.selector")
    check_nonneg(errs, spec, "replicas", "spec.replicas")
    template = errs.typed(spec, "template", "spec.template", "object")
    if template is None:
        errs.required("spec.template")
        return
    tmd = errs.typed(template, "metadata", "spec.template.metadata", "object", {})
    labels = tmd.get("labels")
    if sel and isinstance(labels, dict | None) and any((labels or {}).get(k) != v for k, v in sel.items()):
        shown = labels if labels is not None else GoRepr("map[string]string(nil)")
        errs.invalid("spec.template.metadata.labels", shown, "`selector` does not match template `labels`")
    validate_labels(errs, labels, "spec.template.metadata.labels")
    validate_annotations(errs, tmd.get("annotations"), "spec.template.metadata.annotations")
    tspec = template.get("spec")
    check_pod_spec(errs, tspec, "spec.template.spec", template=True)
    deadline = tspec.get("activeDeadlineSeconds") if isinstance(tspec, dict) else None
    if deadline is not None:
        errs.invalid("spec.template.spec.activeDeadlineSeconds", deadline, "must not be specified")
