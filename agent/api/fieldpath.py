"""The downward API's pod field paths (k8s.io/kubernetes/pkg/fieldpath and
ConvertDownwardAPIFieldLabel): which paths exist, `metadata.labels['k']`
subscripts, the metadata values and the `k="v"` map format. Shared by the
API server's validation and the kubelet (env, downwardAPI volumes)."""
from __future__ import annotations

from agent.api.syntax import go_quote, qualified_name_errors

FIELD_LABELS = ("metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace",
                "metadata.uid", "spec.nodeName", "spec.restartPolicy", "spec.serviceAccountName",
                "spec.schedulerName", "status.phase", "status.hostIP", "status.hostIPs",
                "status.podIP", "status.podIPs")
SUBSCRIPTABLE = ("metadata.annotations", "metadata.labels")


def split_subscript(path: str) -> tuple[str, str, bool]:
    """SplitMaybeSubscriptedPath: `metadata.labels['k']` -> (metadata.labels, k, True)."""
    if not path.endswith("']"):
        return path, "", False
    head, sep, sub = path[:-2].partition("['")
    if not sep or not head:
        return path, "", False
    return head, sub, True


def convert_field_label(api_version: str, path: str) -> str:
    """ConvertDownwardAPIFieldLabel: the internal field path; ValueError with kube's words."""
    if api_version != "v1":
        raise ValueError(f"unsupported pod version: {api_version}")
    head, _, subscripted = split_subscript(path)
    if subscripted:
        if head in SUBSCRIPTABLE:
            return path
        raise ValueError(f"field label does not support subscript: {path}")
    if path == "spec.host":        # old v1 clients
        return "spec.nodeName"
    if path in FIELD_LABELS:
        return path
    raise ValueError(f"field label not supported: {path}")


def subscript_key_errors(head: str, key: str) -> list[str]:
    """Annotation keys are checked lowercased, label keys as they are."""
    return qualified_name_errors(key.lower() if head == "metadata.annotations" else key)


def format_map(m: dict) -> str:
    """FormatMap: `k="v"` lines, keys sorted."""
    return "\n".join(f"{k}={go_quote(str(m[k]))}" for k in sorted(m))


def metadata_value(pod: dict, path: str) -> str:
    """ExtractFieldPathAsString over an object's metadata; ValueError otherwise."""
    md = pod.get("metadata") or {}
    head, sub, subscripted = split_subscript(path)
    if subscripted:
        if head not in SUBSCRIPTABLE:
            raise ValueError(f"fieldPath {go_quote(path)} does not support subscript")
        errs = subscript_key_errors(head, sub)
        if errs:
            raise ValueError(f"invalid key subscript in {path}: {';'.join(errs)}")
        return str((md.get(head.split(".")[1]) or {}).get(sub, ""))
    simple = {"metadata.name": "name", "metadata.namespace": "namespace", "metadata.uid": "uid"}
    if path in simple:
        return str(md.get(simple[path], ""))
    if path in SUBSCRIPTABLE:
        return format_map(md.get(path.split(".")[1]) or {})
    raise ValueError(f"unsupported fieldPath: {path}")
