"""Defaulting: the fields kube-apiserver's defaulters fill in when a client
leaves them out (a Service's type, protocols and targetPorts, a pod's
restartPolicy and probe timings, a Deployment's strategy, a
ReplicationController's selector from its template, an Endpoints port's
protocol, a slice's ready condition...), so stored objects read as a real
cluster's do.

`default(kind, obj)` changes `obj` in place; the registry calls it before
validation on create and on every spec update. Pure: no store, no I/O.
"""
from __future__ import annotations


def default(kind: str, obj: dict) -> None:
    fn = _DEFAULTERS.get(kind)
    if fn:
        fn(obj)


def _default_service(svc: dict) -> None:
    spec = svc.setdefault("spec", {})
    stype = spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":        # SetDefaults_Service: no config without affinity
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        spec.setdefault("sessionAffinityConfig", {}).setdefault("clientIP", {}).setdefault("timeoutSeconds", 10800)
    if stype == "ExternalName":
        return
    for p in spec.get("ports", []) or []:
        p.setdefault("protocol", "TCP")
        if "targetPort" not in p and isinstance(p.get("port"), int):
            p["targetPort"] = p["port"]
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    if stype in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if stype == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    svc.setdefault("status", {"loadBalancer": {}})


def _default_pod_spec(spec: dict) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    for v in spec.get("volumes") or []:
        if isinstance(v, dict):
            _default_volume(v)
    for c in spec.get("containers", []) or []:
        image = c.get("image", "")
        tag = image.rsplit("/", 1)[-1]
        c.setdefault("imagePullPolicy", "Always" if ":" not in tag or tag.endswith(":latest") else "IfNotPresent")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        for p in c.get("ports", []) or []:
            p.setdefault("protocol", "TCP")
        for e in c.get("env", []) or []:
            source = (e.get("valueFrom") or {}) if isinstance(e, dict) else {}
            ref = source.get("fieldRef")
            if isinstance(ref, dict) and not ref.get("apiVersion"):     # SetDefaults_ObjectFieldSelector
                ref["apiVersion"] = "v1"
            if isinstance(source.get("resourceFieldRef"), dict):       # a zero Quantity is written "0"
                source["resourceFieldRef"].setdefault("divisor", "0")
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            pr = c.get(probe)
            if isinstance(pr, dict):
                pr.setdefault("timeoutSeconds", 1)
                pr.setdefault("periodSeconds", 10)
                pr.setdefault("successThreshold", 1)
                pr.setdefault("failureThreshold", 3)


VOLUME_SOURCES = ("hostPath", "emptyDir", "secret", "configMap", "downwardAPI", "projected",
                  "persistentVolumeClaim", "nfs", "iscsi", "csi", "ephemeral", "image", "gitRepo")


def _default_volume(v: dict) -> None:
    """SetDefaults_Volume and the per-source defaulters: no source is an
    emptyDir; file volumes get defaultMode 0644 (420); a hostPath type "";
    a token 3600 s; a fieldRef apiVersion v1."""
    if not any(v.get(k) is not None for k in VOLUME_SOURCES):
        v["emptyDir"] = {}
    for key in ("secret", "configMap", "downwardAPI", "projected"):
        if isinstance(v.get(key), dict):
            v[key].setdefault("defaultMode", 0o644)
    if isinstance(v.get("hostPath"), dict):
        v["hostPath"].setdefault("type", "")
    items = list((v.get("downwardAPI") or {}).get("items") or []) if isinstance(v.get("downwardAPI"), dict) else []
    for src in (v.get("projected") or {}).get("sources") or [] if isinstance(v.get("projected"), dict) else []:
        if isinstance(src, dict) and isinstance(src.get("serviceAccountToken"), dict):
            src["serviceAccountToken"].setdefault("expirationSeconds", 3600)
        if isinstance(src, dict) and isinstance(src.get("downwardAPI"), dict):
            items += src["downwardAPI"].get("items") or []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("fieldRef"), dict):
            item["fieldRef"].setdefault("apiVersion", "v1")


def _service_account(spec: dict, admit: bool) -> None:
    """spec.serviceAccountName, and the deprecated spec.serviceAccount that
    kube's v1 conversion keeps equal to it; `admit`: a pod, which kube's
    ServiceAccount admission gives the `default` ServiceAccount."""
    name = spec.get("serviceAccountName") or spec.get("serviceAccount") or ("default" if admit else "")
    if name:
        spec["serviceAccountName"] = spec["serviceAccount"] = name


def _default_pod(pod: dict) -> None:
    _default_pod_spec(pod.setdefault("spec", {}))
    _service_account(pod["spec"], admit=True)
    st = pod.setdefault("status", {})
    st.setdefault("phase", "Pending")


def _default_workload(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    tmpl = spec.setdefault("template", {})
    _default_pod_spec(tmpl.setdefault("spec", {}))
    _service_account(tmpl["spec"], admit=False)
    if obj.get("kind") == "Deployment":
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strat = spec.setdefault("strategy", {})
        strat.setdefault("type", "RollingUpdate")
        if strat["type"] == "RollingUpdate":
            ru = strat.setdefault("rollingUpdate", {})
            ru.setdefault("maxSurge", "25%")
            ru.setdefault("maxUnavailable", "25%")
    obj.setdefault("status", {})


def _default_replication_controller(rc: dict) -> None:
    """SetDefaults_ReplicationController: an absent or empty selector, and
    absent or empty labels, become the template's labels; replicas 1."""
    spec = rc.setdefault("spec", {})
    tmpl = spec.get("template")
    labels = (tmpl.get("metadata") or {}).get("labels") if isinstance(tmpl, dict) else None
    if isinstance(labels, dict):
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        md = rc.setdefault("metadata", {})
        if not md.get("labels"):
            md["labels"] = dict(labels)
    spec.setdefault("replicas", 1)
    if isinstance(tmpl, dict) and isinstance(tmpl.get("spec", {}), dict):
        _default_pod_spec(tmpl.setdefault("spec", {}))


def _default_endpoints(ep: dict) -> None:
    for subset in ep.get("subsets") or []:
        for p in (subset.get("ports") or []) if isinstance(subset, dict) else []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")


def _default_namespace(ns: dict) -> None:
    finalizers = ns.setdefault("spec", {}).setdefault("finalizers", [])
    if "kubernetes" not in finalizers:
        finalizers.append("kubernetes")
    status = ns.get("status")
    if not isinstance(status, dict) or not status.get("phase"):
        ns["status"] = {"phase": "Active"}
    ns["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = ns["metadata"].get("name", "")


def _default_slice(sl: dict) -> None:
    for ep in sl.get("endpoints", []) or []:
        ep.setdefault("conditions", {}).setdefault("ready", True)
    for p in sl.get("ports", []) or []:
        p.setdefault("protocol", "TCP")
        p.setdefault("name", "")


def _default_secret(secret: dict) -> None:
    if not secret.get("type"):
        secret["type"] = "Opaque"


def _default_binding(binding: dict) -> None:
    """SetDefaults_Subject and the roleRef's group (rbac/v1 defaults)."""
    ref = binding.get("roleRef")
    if isinstance(ref, dict) and not ref.get("apiGroup"):
        ref["apiGroup"] = "rbac.authorization.k8s.io"
    for s in binding.get("subjects") or []:
        if isinstance(s, dict) and s.get("kind") in ("User", "Group") and not s.get("apiGroup"):
            s["apiGroup"] = "rbac.authorization.k8s.io"


def _default_template(spec: dict) -> None:
    tmpl = spec.setdefault("template", {})
    if isinstance(tmpl, dict) and isinstance(tmpl.setdefault("spec", {}), dict):
        _default_pod_spec(tmpl["spec"])
        _service_account(tmpl["spec"], admit=False)


def _default_statefulset(sts: dict) -> None:
    """SetDefaults_StatefulSet (apps/v1)."""
    spec = sts.setdefault("spec", {})
    _default_template(spec)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strat = spec.setdefault("updateStrategy", {})
    strat.setdefault("type", "RollingUpdate")
    if strat["type"] == "RollingUpdate":
        strat.setdefault("rollingUpdate", {}).setdefault("partition", 0)
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    policy = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
    policy.setdefault("whenDeleted", "Retain")
    policy.setdefault("whenScaled", "Retain")
    for claim in spec.get("volumeClaimTemplates") or []:
        if isinstance(claim, dict) and isinstance(claim.get("spec"), dict):
            claim["spec"].setdefault("volumeMode", "Filesystem")
            claim.setdefault("status", {"phase": "Pending"})


def _default_daemonset(ds: dict) -> None:
    """SetDefaults_DaemonSet (apps/v1)."""
    spec = ds.setdefault("spec", {})
    _default_template(spec)
    strat = spec.setdefault("updateStrategy", {})
    strat.setdefault("type", "RollingUpdate")
    if strat["type"] == "RollingUpdate":
        ru = strat.setdefault("rollingUpdate", {})
        ru.setdefault("maxUnavailable", 1)
        ru.setdefault("maxSurge", 0)
    spec.setdefault("revisionHistoryLimit", 10)


def default_job_spec(spec: dict) -> None:
    """SetDefaults_Job's spec part (also a CronJob's jobTemplate)."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    _default_template(spec)


def _default_job(job: dict) -> None:
    """SetDefaults_Job, and the Job strategy's generated selector: pods are
    selected by the Job's uid unless spec.manualSelector is true."""
    spec = job.setdefault("spec", {})
    default_job_spec(spec)
    md, uid = job.setdefault("metadata", {}), job.get("metadata", {}).get("uid")
    if spec.get("manualSelector") or not uid or not isinstance(spec.get("template"), dict):
        return
    tmd = spec["template"].setdefault("metadata", {})
    labels = tmd.setdefault("labels", {}) if isinstance(tmd, dict) else None
    if not isinstance(labels, dict) or spec.get("selector"):
        return
    labels.update({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": md.get("name", ""),
                   "controller-uid": uid, "job-name": md.get("name", "")})
    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}


def _default_cronjob(cj: dict) -> None:
    """SetDefaults_CronJob (batch/v1)."""
    spec = cj.setdefault("spec", {})
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    jt = spec.setdefault("jobTemplate", {})
    if isinstance(jt, dict) and isinstance(jt.setdefault("spec", {}), dict):
        _default_template(jt["spec"])


def _default_pvc(pvc: dict) -> None:
    """SetDefaults_PersistentVolumeClaim[Spec]: volumeMode Filesystem, phase Pending."""
    if isinstance(pvc.get("spec"), dict):
        pvc["spec"].setdefault("volumeMode", "Filesystem")
    if isinstance(pvc.setdefault("status", {}), dict):
        pvc["status"].setdefault("phase", "Pending")


def _default_ingress_class(ic: dict) -> None:
    """SetDefaults_IngressClass: parameters' scope is Cluster unless set."""
    params = (ic.get("spec") or {}).get("parameters") if isinstance(ic.get("spec"), dict) else None
    if isinstance(params, dict):
        params.setdefault("scope", "Cluster")


_DEFAULTERS = {
    "PersistentVolumeClaim": _default_pvc,
    "IngressClass": _default_ingress_class,
    "RoleBinding": _default_binding,
    "ClusterRoleBinding": _default_binding,
    "StatefulSet": _default_statefulset,
    "DaemonSet": _default_daemonset,
    "Job": _default_job,
    "CronJob": _default_cronjob,
    "Service": _default_service,
    "Pod": _default_pod,
    "Deployment": _default_workload,
    "ReplicaSet": _default_workload,
    "ReplicationController": _default_replication_controller,
    "Endpoints": _default_endpoints,
    "Namespace": _default_namespace,
    "EndpointSlice": _default_slice,
    "Secret": _default_secret,
}
