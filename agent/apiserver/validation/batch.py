"""Job and CronJob validation (batch/validation ValidateJob,
ValidateCronJob), with kube's messages: counts, completion mode, the
restart policy a Job's pods may have, the generated selector, which fields
an update may change, the cron schedule and time zone, the concurrency
policy and the CronJob name's length."""
from __future__ import annotations

from agent.api import cron
from agent.apiserver.validation.common import check_nonneg
from agent.apiserver.validation.errors import Errs, go_label_selector
from agent.apiserver.validation.pods import check_pod_spec
from agent.apiserver.validation.workloads import selector_and_template

COMPLETION_MODES = ["NonIndexed", "Indexed"]
JOB_RESTART = ["OnFailure", "Never"]
CONCURRENCY = ["Allow", "Forbid", "Replace"]
CRONJOB_NAME_MAX = 52


def _job_spec(errs: Errs, spec: dict, path: str, *, needs_selector: bool) -> None:
    for f in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished"):
        check_nonneg(errs, spec, f, f"{path}.{f}")
    mode = errs.typed(spec, "completionMode", f"{path}.completionMode", "string", "NonIndexed")
    if mode not in COMPLETION_MODES:
        errs.not_supported(f"{path}.completionMode", mode, COMPLETION_MODES)
    elif mode == "Indexed" and spec.get("completions") is None:
        errs.required(f"{path}.completions", "when completion mode is Indexed")
    if needs_selector:
        selector_and_template(errs, spec, "job", path=path, restart_always=False)
    else:
        template = errs.typed(spec, "template", f"{path}.template", "object")
        if template is None:
            errs.required(f"{path}.template")
        else:
            check_pod_spec(errs, template.get("spec"), f"{path}.template.spec")
    tspec = ((spec.get("template") or {}).get("spec") or {}) if isinstance(spec.get("template"), dict) else {}
    policy = tspec.get("restartPolicy", "Always") if isinstance(tspec, dict) else "Always"
    if policy not in JOB_RESTART:
        errs.not_supported(f"{path}.template.spec.restartPolicy", policy, JOB_RESTART)


def check_job(errs: Errs, job: dict, old: dict | None, **_) -> None:
    spec = errs.typed(job, "spec", "spec", "object", {})
    _job_spec(errs, spec, "spec", needs_selector=True)
    if old is None:
        return
    old_spec = old.get("spec") or {}
    if spec.get("selector") != old_spec.get("selector") and spec.get("selector") is not None:
        errs.invalid("spec.selector", go_label_selector(spec["selector"]), "field is immutable")
    if spec.get("template") != old_spec.get("template") and not old_spec.get("suspend"):
        errs.invalid("spec.template", spec.get("template"), "field is immutable")
    if spec.get("completionMode") != old_spec.get("completionMode"):
        errs.invalid("spec.completionMode", spec.get("completionMode"), "field is immutable")


def check_cronjob(errs: Errs, cj: dict, old: dict | None, **_) -> None:
    name = (cj.get("metadata") or {}).get("name") or ""
    if len(name) > CRONJOB_NAME_MAX:
        errs.invalid("metadata.name", name, f"must be no more than {CRONJOB_NAME_MAX} characters")
    spec = errs.typed(cj, "spec", "spec", "object", {})
    schedule = errs.typed(spec, "schedule", "spec.schedule", "string")
    if not schedule:
        errs.required("spec.schedule")
    elif "TZ" in schedule:
        errs.invalid("spec.schedule", schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
    else:
        try:
            cron.parse(schedule)
        except ValueError as e:
            errs.invalid("spec.schedule", schedule, str(e))
    tz = errs.typed(spec, "timeZone", "spec.timeZone", "string")
    if tz is not None:
        try:
            cron.zone(tz)
        except ValueError as e:
            errs.invalid("spec.timeZone", tz, str(e))
    policy = errs.typed(spec, "concurrencyPolicy", "spec.concurrencyPolicy", "string", "Allow")
    if policy not in CONCURRENCY:
        errs.not_supported("spec.concurrencyPolicy", policy, CONCURRENCY)
    for f in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        check_nonneg(errs, spec, f, f"spec.{f}")
    jt = errs.typed(spec, "jobTemplate", "spec.jobTemplate", "object")
    if jt is None:
        errs.required("spec.jobTemplate")
        return
    _job_spec(errs, errs.typed(jt, "spec", "spec.jobTemplate.spec", "object", {}), "spec.jobTemplate.spec",
              needs_selector=False)
