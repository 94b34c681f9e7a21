"""Field selectors (`--field-selector` / `?fieldSelector=`): the fields each
kind supports in kube-apiserver, the term syntax with its escapes, and the
predicate they make."""
from __future__ import annotations

from typing import Callable

_COMMON_FIELDS = ("metadata.name", "metadata.namespace")
_KIND_FIELDS = {
    "Pod": ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
            "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"),
    "Namespace": ("status.phase",),
    "Node": ("spec.unschedulable",),
    "Event": ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
              "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
              "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"),
    "ReplicaSet": ("status.replicas",),
    "Secret": ("type",),
}
_ALL_FIELDS = {f for fs in _KIND_FIELDS.values() for f in fs} | set(_COMMON_FIELDS)


def _split_terms(text: str) -> list[str]:
    terms, cur, i = [], "", 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur += text[i:i + 2]
            i += 2
            continue
        if ch == ",":
            terms.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    terms.append(cur)
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    i = 0
    while i < len(term):
        if term[i] == "\\":
            i += 2
            continue
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
        i += 1
    return None


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\":
            nxt = value[i + 1:i + 2]
            if nxt not in ("\\", ",", "="):
                raise ValueError(f"invalid field selector: invalid escape sequence: \\{nxt}")
            out.append(nxt)
            i += 2
            continue
        if ch in ",=":
            raise ValueError(f"invalid field selector: unescaped character {ch!r}")
        out.append(ch)
        i += 1
    return "".join(out)


def field_value(obj: dict, path: str) -> str:
    """The string a field selector compares against (missing -> "")."""
    node = obj
    for part in path.split("."):
        if not isinstance(node, dict):
            return ""
        node = node.get(part)
    if isinstance(node, bool):
        return "true" if node else "false"
    if node is None:
        return ""
    if path == "source" and isinstance(node, dict):
        return node.get("component", "")
    return str(node)


def parse_fields(text: str, kind: str | None = None) -> Callable[[dict], bool]:
    """A predicate for `?fieldSelector=`; unknown fields raise kube's
    "field label not supported: X" (checked against `kind` when given)."""
    terms = []
    for part in sorted(_split_terms(text)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise ValueError(f"invalid selector: '{text}'; can't understand '{part}'")
        lhs, op, rhs = split
        allowed = _ALL_FIELDS if kind is None else set(_COMMON_FIELDS) | set(_KIND_FIELDS.get(kind, ()))
        if lhs not in allowed:
            raise ValueError(f"field label not supported: {lhs}")
        terms.append((lhs, op == "!=", _unescape(rhs)))

    def predicate(obj: dict) -> bool:
        return all((field_value(obj, f) != v) if neg else (field_value(obj, f) == v) for f, neg, v in terms)
    return predicate
