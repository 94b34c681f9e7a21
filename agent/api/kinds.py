"""The kinds the API serves: names, short names, groups and URL paths.

One table, read by the API server (routing), the client (building paths) and
the CLI (`get svc`, `get po`, `get endpointslices`). Names follow kubectl.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    kind: str            # "Service"
    resource: str        # "services" (plural, as in URLs)
    singular: str        # "service"
    group: str           # "" for core
    version: str         # "v1"
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] | None = None   # None: every verb (kinds that are only created say which)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        parts = [self.group_prefix]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(self.resource)
        if name:
            parts.append(name)
            if sub:
                parts.append(sub)
        return "/".join(parts)


KINDS: tuple[Kind, ...] = (
    Kind("Namespace", "namespaces", "namespace", "", "v1", False, ("ns",)),
    Kind("Node", "nodes", "node", "", "v1", False, ("no",)),
    Kind("Pod", "pods", "pod", "", "v1", True, ("po",)),
    Kind("Service", "services", "service", "", "v1", True, ("svc",)),
    Kind("Endpoints", "endpoints", "endpoints", "", "v1", True, ("ep",)),
    Kind("Event", "events", "event", "", "v1", True, ("ev",)),
    Kind("EndpointSlice", "endpointslices", "endpointslice", "discovery.k8s.io", "v1", True, ()),
    Kind("Deployment", "deployments", "deployment", "apps", "v1", True, ("deploy",)),
    Kind("ReplicaSet", "replicasets", "replicaset", "apps", "v1", True, ("rs",)),
    Kind("StatefulSet", "statefulsets", "statefulset", "apps", "v1", True, ("sts",)),
    Kind("DaemonSet", "daemonsets", "daemonset", "apps", "v1", True, ("ds",)),
    Kind("ControllerRevision", "controllerrevisions", "controllerrevision", "apps", "v1", True, ()),
    Kind("Job", "jobs", "job", "batch", "v1", True, ()),
    Kind("CronJob", "cronjobs", "cronjob", "batch", "v1", True, ("cj",)),
    Kind("ReplicationController", "replicationcontrollers", "replicationcontroller", "", "v1", True, ("rc",)),
    Kind("ConfigMap", "configmaps", "configmap", "", "v1", True, ("cm",)),
    Kind("PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim", "", "v1", True, ("pvc",)),
    Kind("Secret", "secrets", "secret", "", "v1", True, ()),
    Kind("ServiceAccount", "serviceaccounts", "serviceaccount", "", "v1", True, ("sa",)),
    Kind("SelfSubjectReview", "selfsubjectreviews", "selfsubjectreview", "authentication.k8s.io", "v1", False, (),
         ("create",)),
    Kind("CertificateSigningRequest", "certificatesigningrequests", "certificatesigningrequest",
         "certificates.k8s.io", "v1", False, ("csr",)),
    Kind("Role", "roles", "role", "rbac.authorization.k8s.io", "v1", True),
    Kind("ClusterRole", "clusterroles", "clusterrole", "rbac.authorization.k8s.io", "v1", False),
    Kind("RoleBinding", "rolebindings", "rolebinding", "rbac.authorization.k8s.io", "v1", True),
    Kind("ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", "rbac.authorization.k8s.io", "v1", False),
    Kind("SelfSubjectAccessReview", "selfsubjectaccessreviews", "selfsubjectaccessreview", "authorization.k8s.io",
         "v1", False, (), ("create",)),
    Kind("SelfSubjectRulesReview", "selfsubjectrulesreviews", "selfsubjectrulesreview", "authorization.k8s.io",
         "v1", False, (), ("create",)),
    Kind("SubjectAccessReview", "subjectaccessreviews", "subjectaccessreview", "authorization.k8s.io", "v1", False,
         (), ("create",)),
    Kind("LocalSubjectAccessReview", "localsubjectaccessreviews", "localsubjectaccessreview",
         "authorization.k8s.io", "v1", True, (), ("create",)),
    Kind("Ingress", "ingresses", "ingress", "networking.k8s.io", "v1", True, ("ing",)),
    Kind("IngressClass", "ingressclasses", "ingressclass", "networking.k8s.io", "v1", False, ()),
    Kind("CustomResourceDefinition", "customresourcedefinitions", "customresourcedefinition",
         "apiextensions.k8s.io", "v1", False, ("crd", "crds")),
)

BY_RESOURCE = {k.resource: k for k in KINDS}
BY_KIND = {k.kind: k for k in KINDS}


class UnknownKind(LookupError):
    pass


def lookup(name: str) -> Kind:
    """Find a kind the way kubectl does: plural, singular, short name or Kind,
    case-insensitively, optionally qualified by group (`deployments.apps`)."""
    wanted, _, group = name.lower().partition(".")
    for k in KINDS:
        names = {k.resource, k.singular, k.kind.lower(), *k.short_names}
        if wanted in names and (not group or group == k.group):
            return k
    raise UnknownKind(
        f'the server doesn\'t have a resource type "{name}" '
        f"(known: {', '.join(k.resource for k in KINDS)})")


def by_api_version(api_version: str, kind: str) -> Kind:
    """The kind a manifest names, or UnknownKind saying what is served."""
    k = BY_KIND.get(kind)
    if k is None:
        raise UnknownKind(
            f'no matches for kind "{kind}" in version "{api_version}" '
            f"(served kinds: {', '.join(sorted(BY_KIND))})")
    if k.api_version != api_version:
        raise UnknownKind(
            f'no matches for kind "{kind}" in version "{api_version}": '
            f"use apiVersion: {k.api_version}")
    return k
