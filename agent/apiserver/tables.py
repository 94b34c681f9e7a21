"""Server-side printing: meta.k8s.io Table responses for `kubectl get`.

kubectl asks for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` (then
v1beta1, then plain JSON) and prints whatever columns the server sends,
upper-casing their names and hiding priority-1 columns unless `-o wide`.
So the columns and cells here decide what `kubectl get` shows. They are
kube-apiserver's (pkg/printers/internalversion/printers.go); the cells come
from `agent.api.printers.row(..., wide=True)` — the server always renders the
wide row, as kube's TableConvertor does — so `nsplane get` and `kubectl get`
print the same thing.

Owns: column definitions per kind, Accept/`includeObject` negotiation, and
building a Table for a list, a single object or one watch event.
"""
from __future__ import annotations

from datetime import datetime

from agent.api import printers
from agent.apiserver import workloadtables

_NAME_DOC = ("Name must be unique within a namespace. Is required when creating resources, although some "
             "resources may allow a client to request the generation of an appropriate name automatically. "
             "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
             "updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
_AGE_DOC = ("CreationTimestamp is a timestamp representing the server time when this object was created. "
            "It is not guaranteed to be set in happens-before order across separate operations. Clients may "
            "not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. "
            "Read-only. Null for lists. More info: "
            "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata")
AGE_DOC = _AGE_DOC          # ObjectMeta.creationTimestamp's description, for other documents
_CONTAINERS = "Names of each container in the template."
_IMAGES = "Images referenced by each container in the template."
_RC_DOC = "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller"

# (name, type, priority, description); "Name" gets format "name".
_C = tuple[str, str, int, str]
COLUMNS: dict[str, tuple[_C, ...]] = {
    "Pod": (("Name", "string", 0, _NAME_DOC),
            ("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
            ("Status", "string", 0, "The aggregate status of the containers in this pod."),
            ("Restarts", "string", 0, ("The number of times the containers in this pod have been restarted "
                                      "and when the last container in this pod has restarted.")),
            ("Age", "string", 0, _AGE_DOC),
            ("IP", "string", 1, "podIP address allocated to the pod. Routable at least within the cluster."),
            ("Node", "string", 1, "NodeName indicates in which node this pod is scheduled."),
            ("Nominated Node", "string", 1, ("nominatedNodeName is set only when this pod preempts other pods "
                                            "on the node.")),
            ("Readiness Gates", "string", 1, ("If specified, all readiness gates will be evaluated for pod "
                                             "readiness."))),
    "Service": (("Name", "string", 0, _NAME_DOC),
                ("Type", "string", 0, "type determines how the Service is exposed."),
                ("Cluster-IP", "string", 0, "clusterIP is the IP address of the service."),
                ("External-IP", "string", 0, ("externalIPs is a list of IP addresses for which nodes in the "
                                             "cluster will also accept traffic for this service.")),
                ("Port(s)", "string", 0, "The list of ports that are exposed by this service."),
                ("Age", "string", 0, _AGE_DOC),
                ("Selector", "string", 1, ("Route service traffic to pods with label keys and values matching "
                                          "this selector."))),
    "Endpoints": (("Name", "string", 0, _NAME_DOC),
                  ("Endpoints", "string", 0, "The set of all endpoints is the union of all subsets."),
                  ("Age", "string", 0, _AGE_DOC)),
    "EndpointSlice": (("Name", "string", 0, _NAME_DOC),
                      ("AddressType", "string", 0, ("addressType specifies the type of address carried by "
                                                   "this EndpointSlice.")),
                      ("Ports", "string", 0, ("ports specifies the list of network ports exposed by each "
                                             "endpoint in this slice.")),
                      ("Endpoints", "string", 0, "endpoints is a list of unique endpoints in this slice."),
                      ("Age", "string", 0, _AGE_DOC)),
    "Deployment": (("Name", "string", 0, _NAME_DOC),
                   ("Ready", "string", 0, "Number of the pod with ready state"),
                   ("Up-to-date", "string", 0, ("Total number of non-terminated pods targeted by this "
                                               "deployment that have the desired template spec.")),
                   ("Available", "string", 0, ("Total number of available pods (ready for at least "
                                              "minReadySeconds) targeted by this deployment.")),
                   ("Age", "string", 0, _AGE_DOC),
                   ("Containers", "string", 1, _CONTAINERS),
                   ("Images", "string", 1, _IMAGES),
                   ("Selector", "string", 1, "Label selector for pods.")),
    "ReplicaSet": (("Name", "string", 0, _NAME_DOC),
                   ("Desired", "integer", 0, "Replicas is the number of desired replicas."),
                   ("Current", "integer", 0, "Replicas is the most recently observed number of replicas."),
                   ("Ready", "integer", 0, "The number of ready replicas for this replica set."),
                   ("Age", "string", 0, _AGE_DOC),
                   ("Containers", "string", 1, _CONTAINERS),
                   ("Images", "string", 1, _IMAGES),
                   ("Selector", "string", 1, ("Selector is a label query over pods that should match the "
                                             "replica count."))),
    "ReplicationController": (
        ("Name", "string", 0, _NAME_DOC),
        ("Desired", "integer", 0, ("Replicas is the number of desired replicas. This is a pointer to distinguish "
                                   "between explicit zero and unspecified. Defaults to 1. More info: " + _RC_DOC)),
        ("Current", "integer", 0, "Replicas is the most recently observed number of replicas. More info: " + _RC_DOC),
        ("Ready", "integer", 0, "The number of ready replicas for this replication controller."),
        ("Age", "string", 0, _AGE_DOC),
        ("Containers", "string", 1, _CONTAINERS),
        ("Images", "string", 1, _IMAGES),
        ("Selector", "string", 1, ("Selector is a label query over pods that should match the Replicas count. If "
                                   "Selector is empty, it is defaulted to the labels present on the Pod template. "
                                   "Label keys and values that must match in order to be controlled by this "
                                   "replication controller, if empty defaulted to labels on Pod template. More "
                                   "info: https://kubernetes.io/docs/concepts/overview/working-with-objects/"
                                   "labels/#label-selectors"))),
    "Namespace": (("Name", "string", 0, _NAME_DOC),
                  ("Status", "string", 0, "The status of the namespace"),
                  ("Age", "string", 0, _AGE_DOC)),
    "Node": (("Name", "string", 0, _NAME_DOC),
             ("Status", "string", 0, "The status of the node"),
             ("Roles", "string", 0, "The roles of the node"),
             ("Age", "string", 0, _AGE_DOC),
             ("Version", "string", 0, "Kubelet Version reported by the node."),
             ("Internal-IP", "string", 1, "List of addresses reachable to the node."),
             ("External-IP", "string", 1, "List of addresses reachable to the node."),
             ("OS-Image", "string", 1, "OS Image reported by the node from /etc/os-release."),
             ("Kernel-Version", "string", 1, "Kernel Version reported by the node from 'uname -r'."),
             ("Container-Runtime", "string", 1, ("ContainerRuntime Version reported by the node through "
                                                "runtime remote API."))),
    "Event": (("Last Seen", "string", 0, ("The time at which the most recent occurrence of this event was "
                                         "recorded.")),
              ("Type", "string", 0, ("Type of this event (Normal, Warning), new types could be added in the "
                                    "future")),
              ("Reason", "string", 0, ("This should be a short, machine understandable string that gives the "
                                      "reason for the transition into the object's current status.")),
              ("Object", "string", 0, "The object that this event is about."),
              ("Subobject", "string", 1, ("If referring to a piece of an object instead of an entire object, "
                                         "this string should contain a valid JSON/Go field access statement.")),
              ("Source", "string", 1, "The component reporting this event."),
              ("Message", "string", 0, "A human-readable description of the status of this operation."),
              ("First Seen", "string", 1, "The time at which the event was first recorded."),
              ("Count", "string", 1, "The number of times this event has occurred."),
              ("Name", "string", 1, _NAME_DOC)),
    "CertificateSigningRequest": (
        ("Name", "string", 0, _NAME_DOC),
        ("Age", "string", 0, _AGE_DOC),
        ("SignerName", "string", 0, "signerName indicates the requested signer, and is a qualified name."),
        ("Requestor", "string", 0, "request contains an x509 certificate signing request encoded in a "
                                   "\"CERTIFICATE REQUEST\" PEM block."),
        ("RequestedDuration", "string", 0, "expirationSeconds is the requested duration of validity of the "
                                           "issued certificate."),
        ("Condition", "string", 0, "conditions applied to the request. Known conditions are \"Approved\", "
                                   "\"Denied\", and \"Failed\".")),
}

# ---- ConfigMap, Secret, ServiceAccount: kube types these columns "string" but
# sends the counts as integers (printConfigMap, printSecret, printServiceAccount)
COLUMNS.update({
    "ConfigMap": (("Name", "string", 0, _NAME_DOC),
                  ("Data", "string", 0, ("Data contains the configuration data. Each key must consist of "
                                        "alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte "
                                        "sequences must use the BinaryData field. The keys stored in Data must not "
                                        "overlap with the keys in the BinaryData field, this is enforced during "
                                        "validation process.")),
                  ("Age", "string", 0, _AGE_DOC)),
    "Secret": (("Name", "string", 0, _NAME_DOC),
               ("Type", "string", 0, ("Used to facilitate programmatic handling of secret data. More info: "
                                     "https://kubernetes.io/docs/concepts/configuration/secret/#secret-types")),
               ("Data", "string", 0, ("Data contains the secret data. Each key must consist of alphanumeric "
                                     "characters, '-', '_' or '.'. The serialized form of the secret data is a "
                                     "base64 encoded string, representing the arbitrary (possibly non-string) data "
                                     "value here. Described in https://tools.ietf.org/html/rfc4648#section-4")),
               ("Age", "string", 0, _AGE_DOC)),
    "ServiceAccount": (("Name", "string", 0, _NAME_DOC),
                       ("Secrets", "string", 0, ("Secrets is a list of the secrets in the same namespace that pods "
                                                "running using this ServiceAccount are allowed to use. Pods are only "
                                                "limited to this list if this service account has a "
                                                "\"kubernetes.io/enforce-mountable-secrets\" annotation set to "
                                                "\"true\". The \"kubernetes.io/enforce-mountable-secrets\" "
                                                "annotation is deprecated since v1.32. Prefer separate namespaces to "
                                                "isolate access to mounted secrets. This field should not be used to "
                                                "find auto-generated service account token secrets for use outside "
                                                "of pods. Instead, tokens can be requested directly using the "
                                                "TokenRequest API, or service account token secrets can be manually "
                                                "created. More info: "
                                                "https://kubernetes.io/docs/concepts/configuration/secret")),
                       ("Age", "string", 0, _AGE_DOC)),
})
_ROLE = (("Name", "string", 0, _NAME_DOC), ("Created At", "date", 0, _AGE_DOC))


def _binding_columns(kind: str) -> tuple[_C, ...]:
    return (("Name", "string", 0, _NAME_DOC),
            ("Role", "string", 0, "RoleRef can reference a Role in the current namespace or a ClusterRole in the "
                                  "global namespace. If the RoleRef cannot be resolved, the Authorizer must return "
                                  "an error. This field is immutable."),
            ("Age", "string", 0, _AGE_DOC),
            ("Users", "string", 1, f"Users in the {kind}"),
            ("Groups", "string", 1, f"Groups in the {kind}"),
            ("ServiceAccounts", "string", 1, f"ServiceAccounts in the {kind}"))


COLUMNS.update({"Role": _ROLE, "ClusterRole": _ROLE, "RoleBinding": _binding_columns("roleBinding"),
                "ClusterRoleBinding": _binding_columns("clusterRoleBinding")})
INTEGER_CELLS = {("ConfigMap", 1), ("Secret", 2), ("ServiceAccount", 1)}
COLUMNS.update(workloadtables.COLUMNS)     # StatefulSet, ControllerRevision, DaemonSet, Job, CronJob

TABLE_VERSIONS = ("v1", "v1beta1")
INCLUDE_OBJECT = ("None", "Metadata", "Object")


def wants_table(accept: str | None) -> str | None:
    """'v1' or 'v1beta1' if the Accept header's first acceptable type is a
    meta.k8s.io Table, else None (plain JSON)."""
    for part in (accept or "").split(","):
        fields = [f.strip() for f in part.split(";")]
        params = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        if fields[0] not in ("application/json", "*/*", "application/*"):
            continue
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            if params.get("v") in TABLE_VERSIONS:
                return params["v"]
            continue
        if "as" not in params:
            return None
    return None


def column_definitions(kind: str) -> list[dict]:
    out = []
    for name, typ, priority, doc in COLUMNS[kind]:
        col = {"name": name, "type": typ, "format": "name" if name == "Name" else "",
               "description": doc, "priority": priority}
        out.append(col)
    return out


def _cells(kind: str, obj: dict, now: datetime | None) -> list:
    cells: list = printers.row(kind, obj, wide=True, now=now)
    for i, (_, typ, _, _) in enumerate(COLUMNS[kind]):
        if (typ == "integer" or (kind, i) in INTEGER_CELLS) and isinstance(cells[i], str) \
                and cells[i].lstrip("-").isdigit():
            cells[i] = int(cells[i])
    return cells


def _row_conditions(kind: str, obj: dict) -> list[dict]:
    """kube marks finished pods so clients may dim or hide them."""
    if kind != "Pod":
        return []
    phase = (obj.get("status") or {}).get("phase")
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded",
                 "message": "The pod has completed successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed",
                 "message": "The pod failed."}]
    return []


def _embedded(obj: dict, include: str, version: str) -> dict | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{version}",
            "metadata": obj.get("metadata") or {}}


def row(kind: str, obj: dict, include: str = "Metadata", version: str = "v1",
        now: datetime | None = None) -> dict:
    r = {"cells": _cells(kind, obj, now)}
    conds = _row_conditions(kind, obj)
    if conds:
        r["conditions"] = conds
    embedded = _embedded(obj, include, version)
    if embedded is not None:
        r["object"] = embedded
    return r


def table(kind: str, objs: list[dict], *, version: str = "v1", include: str = "Metadata",
          resource_version: str = "", continue_token: str = "", remaining: int | None = None,
          no_headers: bool = False, now: datetime | None = None) -> dict:
    """A meta.k8s.io Table of `objs` (a list, or one object as a one-row table)."""
    if include not in INCLUDE_OBJECT:
        raise ValueError(f'includeObject must be one of {", ".join(INCLUDE_OBJECT)}, not "{include}"')
    md = list_metadata(resource_version, continue_token, remaining)
    return {"kind": "Table", "apiVersion": f"meta.k8s.io/{version}", "metadata": md,
            "columnDefinitions": [] if no_headers else column_definitions(kind),
            "rows": [row(kind, o, include, version, now) for o in objs]}


def list_metadata(resource_version: str = "", continue_token: str = "", remaining: int | None = None) -> dict:
    """A list's (or Table's) ListMeta, with only the fields that are set."""
    md: dict = {}
    if resource_version:
        md["resourceVersion"] = resource_version
    if continue_token:
        md["continue"] = continue_token
    if remaining is not None:
        md["remainingItemCount"] = remaining
    return md


def supported(kind: str) -> bool:
    return kind in COLUMNS
