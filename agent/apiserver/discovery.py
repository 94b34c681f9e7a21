"""API discovery, as kube-apiserver serves it to kubectl.

Owns the documents behind /version, /api, /apis, /api/v1 and
/apis/<group>/<version>: which resources each group-version serves, with the
verbs, kind, scope, short names, categories and subresources kubectl reads to
turn `get svc`, `get all`, `scale deploy` or `exec` into a URL. Also the
aggregated form (apidiscovery.k8s.io/v2 APIGroupDiscoveryList), which kubectl
1.26+ asks for first and which saves it one request per group-version.

Everything here is a pure function of the kind table in `agent.api.kinds` plus
the per-resource facts below (which are kube-apiserver's for these resources).
"""
from __future__ import annotations

from dataclasses import dataclass

from agent.api.kinds import KINDS, Kind

GIT_VERSION = "v1.32.0-nsplane"
AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"

# kube's verbs for every kind; namespaces have no deletecollection (as in kube).
VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


def verbs(k: Kind) -> list[str]:
    if k.verbs is not None:                    # selfsubjectreviews: create only
        return list(k.verbs)
    return [v for v in VERBS if not (v == "deletecollection" and k.resource == "namespaces")]
# Kinds kubectl's `get all` includes (the "all" category), as kube declares it.
ALL_CATEGORY = {"pods", "services", "deployments", "replicasets", "replicationcontrollers",
                "statefulsets", "daemonsets", "jobs", "cronjobs"}


@dataclass(frozen=True)
class Subresource:
    name: str                    # "status", "scale", "log", "exec", "binding", "proxy", "approval"
    kind: str                    # response kind: the parent's kind, Scale, Pod, PodExecOptions...
    verbs: tuple[str, ...]
    group: str = ""              # the kind's group when it differs from the parent's (Scale)
    version: str = ""


_STATUS = Subresource("status", "", ("get", "patch", "update"))
_SCALE = Subresource("scale", "Scale", ("get", "patch", "update"), "autoscaling", "v1")
_PROXY_VERBS = ("create", "delete", "get", "patch", "update")   # a connect subresource: every HTTP method
SUBRESOURCES: dict[str, tuple[Subresource, ...]] = {
    "namespaces": (_STATUS,),
    "nodes": (Subresource("proxy", "NodeProxyOptions", _PROXY_VERBS), _STATUS),
    "pods": (Subresource("attach", "PodAttachOptions", ("create", "get")),
             Subresource("binding", "Binding", ("create",)),
             Subresource("exec", "PodExecOptions", ("create", "get")),
             Subresource("log", "Pod", ("get",)),
             Subresource("portforward", "PodPortForwardOptions", ("create", "get")),
             Subresource("proxy", "PodProxyOptions", _PROXY_VERBS),
             _STATUS),
    "services": (Subresource("proxy", "ServiceProxyOptions", _PROXY_VERBS), _STATUS),
    "serviceaccounts": (Subresource("token", "TokenRequest", ("create",), "authentication.k8s.io", "v1"),),
    "deployments": (_SCALE, _STATUS),
    "replicasets": (_SCALE, _STATUS),
    "statefulsets": (_SCALE, _STATUS),
    "daemonsets": (_STATUS,),
    "jobs": (_STATUS,),
    "cronjobs": (_STATUS,),
    "replicationcontrollers": (_SCALE, _STATUS),
    "certificatesigningrequests": (Subresource("approval", "", ("get", "patch", "update")), _STATUS),
    "customresourcedefinitions": (_STATUS,),
}
# Categories other than "all" (kubectl get api-extensions).
CATEGORIES = {"customresourcedefinitions": ["api-extensions"]}
# Subresources whose path goes on past the subresource (…/pods/web/proxy/any/path).
PATH_SUBRESOURCES = ("proxy",)


def version_info() -> dict:
    """/version: what `kubectl version` prints as the server's version."""
    return {"major": "1", "minor": "32", "gitVersion": GIT_VERSION, "gitCommit": "",
            "gitTreeState": "clean", "buildDate": "1970-01-01T00:00:00Z", "goVersion": "python",
            "compiler": "nsplane", "platform": "linux/amd64"}


def groups() -> list[str]:
    """The named groups we serve, in kube-apiserver's order of preference
    (apps before discovery.k8s.io, as kube lists them)."""
    order = ["apps", "events.k8s.io", "authentication.k8s.io", "authorization.k8s.io", "batch",
             "certificates.k8s.io", "networking.k8s.io", "rbac.authorization.k8s.io", "apiextensions.k8s.io", "discovery.k8s.io"]
    found = {k.group for k in KINDS if k.group}
    return sorted(found, key=lambda g: (order.index(g) if g in order else len(order), g))


def group_versions(group: str) -> list[str]:
    return sorted({k.version for k in KINDS if k.group == group}, reverse=True)


def api_versions() -> dict:
    """/api: the legacy (core) group's versions."""
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}


def _group_entry(group: str) -> dict:
    versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in group_versions(group)]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def api_group_list() -> dict:
    """/apis: every named group and its versions."""
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group_entry(g) for g in groups()]}


def api_group(group: str) -> dict | None:
    """/apis/<group>, or None when we do not serve it."""
    if group not in groups():
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group)}


def kinds_of(group_version: str) -> list[Kind]:
    return [k for k in KINDS if k.api_version == group_version]


def _resource(k: Kind) -> dict:
    r = {"name": k.resource, "singularName": k.singular, "namespaced": k.namespaced, "kind": k.kind,
         "verbs": verbs(k)}
    if k.short_names:
        r["shortNames"] = list(k.short_names)
    if k.resource in ALL_CATEGORY:
        r["categories"] = ["all"]
    if k.resource in CATEGORIES:
        r["categories"] = CATEGORIES[k.resource]
    return r


def _subresource(k: Kind, s: Subresource) -> dict:
    r = {"name": f"{k.resource}/{s.name}", "singularName": "", "namespaced": k.namespaced,
         "kind": s.kind or k.kind, "verbs": list(s.verbs)}
    if s.group:
        r["group"], r["version"] = s.group, s.version
    return r


def api_resource_list(group_version: str) -> dict | None:
    """/api/v1 or /apis/<group>/<version>: the resources and subresources
    served there (sorted by name, as kube-apiserver lists them), or None."""
    ks = kinds_of(group_version)
    if not ks:
        return None
    res = []
    for k in ks:
        res.append(_resource(k))
        res.extend(_subresource(k, s) for s in SUBRESOURCES.get(k.resource, ()))
    res.sort(key=lambda r: r["name"])
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": res}


# ---- aggregated discovery (apidiscovery.k8s.io/v2) -----------------------------

def wants_aggregated(accept: str | None) -> str | None:
    """The aggregated discovery media type the client accepts first, if any
    (kubectl 1.26+ lists v2, then v2beta1, then plain JSON)."""
    for part in (accept or "").split(","):
        params = {p.strip() for p in part.split(";")[1:]}
        if "as=APIGroupDiscoveryList" in params and "g=apidiscovery.k8s.io" in params:
            if "v=v2" in params:
                return AGGREGATED_V2
            if "v=v2beta1" in params:
                return AGGREGATED_V2BETA1
        elif part.split(";")[0].strip() in ("application/json", "*/*"):
            return None
    return None


def _agg_resource(k: Kind) -> dict:
    r = {"resource": k.resource, "responseKind": {"group": "", "version": "", "kind": k.kind},
         "scope": "Namespaced" if k.namespaced else "Cluster", "singularResource": k.singular,
         "verbs": verbs(k)}
    if k.short_names:
        r["shortNames"] = list(k.short_names)
    if k.resource in ALL_CATEGORY:
        r["categories"] = ["all"]
    if k.resource in CATEGORIES:
        r["categories"] = CATEGORIES[k.resource]
    subs = [{"subresource": s.name,
             "responseKind": {"group": s.group, "version": s.version, "kind": s.kind or k.kind},
             "verbs": list(s.verbs)} for s in SUBRESOURCES.get(k.resource, ())]
    if subs:
        r["subresources"] = subs
    return r


def _agg_group(group: str) -> dict:
    versions = []
    for v in group_versions(group):
        gv = f"{group}/{v}" if group else v
        resources = sorted((_agg_resource(k) for k in kinds_of(gv)), key=lambda r: r["resource"])
        versions.append({"version": v, "resources": resources, "freshness": "Current"})
    return {"metadata": {"name": group, "creationTimestamp": None}, "versions": versions}


def aggregated(path: str, media_type: str) -> dict:
    """/api or /apis as an APIGroupDiscoveryList in `media_type`'s version."""
    version = "v2beta1" if media_type == AGGREGATED_V2BETA1 else "v2"
    items = [_agg_group("")] if path == "/api" else [_agg_group(g) for g in groups()]
    return {"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{version}",
            "metadata": {}, "items": items}


def document(path: str, accept: str | None = None) -> tuple[dict, str] | None:
    """The discovery document at `path` and its content type, or None if
    `path` is not a discovery path we serve."""
    p = path.rstrip("/") or "/"
    if p in ("/api", "/apis"):
        media = wants_aggregated(accept)
        if media:
            return aggregated(p, media), media
        return (api_versions() if p == "/api" else api_group_list()), "application/json"
    parts = [x for x in p.split("/") if x]
    if parts == ["api", "v1"]:
        doc = api_resource_list("v1")
    elif len(parts) == 2 and parts[0] == "apis":
        doc = api_group(parts[1])
    elif len(parts) == 3 and parts[0] == "apis":
        doc = api_resource_list(f"{parts[1]}/{parts[2]}")
    else:
        return None
    return (doc, "application/json") if doc else None
