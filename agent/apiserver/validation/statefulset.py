"""StatefulSet and DaemonSet validation (apps/validation
ValidateStatefulSet / ValidateDaemonSet), with kube's messages: pod
management policy, update strategies (partition, maxUnavailable/maxSurge),
the selector against the template, serviceName, volume claim templates, and
which spec fields an update may change."""
from __future__ import annotations

from agent.apiserver.validation.common import check_nonneg, dns1123_label_errors
from agent.apiserver.validation.errors import Errs, go_intstr, go_label_selector
from agent.apiserver.validation.workloads import percent_or_int, selector_and_template

POD_MANAGEMENT = ["OrderedReady", "Parallel"]
STS_STRATEGIES = ["RollingUpdate", "OnDelete"]
# The StatefulSet spec fields an update may change (ValidateStatefulSetUpdate).
STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy",
               "minReadySeconds", "revisionHistoryLimit")
STS_FORBIDDEN = ("updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
                 "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and "
                 "'minReadySeconds' are forbidden")


def check_statefulset(errs: Errs, sts: dict, old: dict | None, **_) -> None:
    spec = errs.typed(sts, "spec", "spec", "object", {})
    policy = errs.typed(spec, "podManagementPolicy", "spec.podManagementPolicy", "string", "OrderedReady")
    if policy not in POD_MANAGEMENT:
        errs.not_supported("spec.podManagementPolicy", policy, POD_MANAGEMENT)
    strategy = errs.typed(spec, "updateStrategy", "spec.updateStrategy", "object", {})
    stype = strategy.get("type", "RollingUpdate")
    ru = errs.typed(strategy, "rollingUpdate", "spec.updateStrategy.rollingUpdate", "object")
    if stype == "OnDelete":
        if ru is not None:
            errs.invalid("spec.updateStrategy.rollingUpdate", ru,
                         "only allowed for updateStrategy 'RollingUpdate'")
    elif stype == "RollingUpdate":
        if ru is not None:
            check_nonneg(errs, ru, "partition", "spec.updateStrategy.rollingUpdate.partition")
            if "maxUnavailable" in ru and ru["maxUnavailable"] is not None:
                if percent_or_int(errs, ru["maxUnavailable"], "spec.updateStrategy.rollingUpdate.maxUnavailable") == 0:
                    errs.invalid("spec.updateStrategy.rollingUpdate.maxUnavailable",
                                 go_intstr(ru["maxUnavailable"]), "must be greater than 0")
    else:
        errs.not_supported("spec.updateStrategy.type", stype, STS_STRATEGIES)
    check_nonneg(errs, spec, "replicas", "spec.replicas")
    check_nonneg(errs, spec, "minReadySeconds", "spec.minReadySeconds")
    ordinals = errs.typed(spec, "ordinals", "spec.ordinals", "object")
    if ordinals:
        check_nonneg(errs, ordinals, "start", "spec.ordinals.start")
    service = errs.typed(spec, "serviceName", "spec.serviceName", "string")
    for msg in dns1123_label_errors(service) if service else []:
        errs.invalid("spec.serviceName", service, msg)
    for i, claim in enumerate(errs.typed(spec, "volumeClaimTemplates", "spec.volumeClaimTemplates", "array", [])):
        path = f"spec.volumeClaimTemplates[{i}]"
        name = ((claim or {}).get("metadata") or {}).get("name") if isinstance(claim, dict) else None
        if not name:
            errs.required(f"{path}.metadata.name", "name or generateName is required")
        elif dns1123_label_errors(name):
            errs.invalid(f"{path}.metadata.name", name, dns1123_label_errors(name)[0])
    selector_and_template(errs, _with_claim_volumes(spec), "statefulset")
    if old is not None:
        old_spec = old.get("spec") or {}
        changed = [k for k in set(spec) | set(old_spec) if k not in STS_MUTABLE and spec.get(k) != old_spec.get(k)]
        if changed:
            errs.forbidden("spec", STS_FORBIDDEN)


def _with_claim_volumes(spec: dict) -> dict:
    """The spec whose template also has a volume per claim template (as the
    controller gives its pods), so that volumeMounts naming a claim are valid."""
    claims = [c["metadata"]["name"] for c in spec.get("volumeClaimTemplates") or []
              if isinstance(c, dict) and isinstance(c.get("metadata"), dict) and c["metadata"].get("name")]
    tmpl = spec.get("template")
    if not claims or not isinstance(tmpl, dict) or not isinstance(tmpl.get("spec"), dict):
        return spec
    vols = tmpl["spec"].get("volumes") if isinstance(tmpl["spec"].get("volumes"), list) else []
    have = {v.get("name") for v in vols if isinstance(v, dict)}
    extra = [{"name": n, "persistentVolumeClaim": {"claimName": n}} for n in claims if n not in have]
    return {**spec, "template": {**tmpl, "spec": {**tmpl["spec"], "volumes": vols + extra}}}


DS_STRATEGIES = ["OnDelete", "RollingUpdate"]


def check_daemonset(errs: Errs, ds: dict, old: dict | None, **_) -> None:
    spec = errs.typed(ds, "spec", "spec", "object", {})
    sel = selector_and_template(errs, spec, "daemonset")
    check_nonneg(errs, spec, "minReadySeconds", "spec.minReadySeconds")
    check_nonneg(errs, spec, "revisionHistoryLimit", "spec.revisionHistoryLimit")
    strategy = errs.typed(spec, "updateStrategy", "spec.updateStrategy", "object", {})
    stype = strategy.get("type", "RollingUpdate")
    if stype == "RollingUpdate":
        ru = errs.typed(strategy, "rollingUpdate", "spec.updateStrategy.rollingUpdate", "object", {})
        mu, ms = ru.get("maxUnavailable", 1), ru.get("maxSurge", 0)
        a = percent_or_int(errs, mu, "spec.updateStrategy.rollingUpdate.maxUnavailable")
        b = percent_or_int(errs, ms, "spec.updateStrategy.rollingUpdate.maxSurge")
        if a > 0 and b > 0:
            errs.invalid("spec.updateStrategy.rollingUpdate.maxSurge", go_intstr(ms),
                         "may not be set when maxUnavailable is non-zero")
        elif a == 0 and b == 0:
            errs.required("spec.updateStrategy.rollingUpdate.maxUnavailable", "cannot be 0 when maxSurge is 0")
    elif stype != "OnDelete":
        errs.not_supported("spec.updateStrategy.type", stype, DS_STRATEGIES)
    if old is not None and sel not in (None, False):
        old_sel = (old.get("spec") or {}).get("selector")
        if old_sel is not None and old_sel != sel:
            errs.invalid("spec.selector", go_label_selector(sel), "field is immutable")
