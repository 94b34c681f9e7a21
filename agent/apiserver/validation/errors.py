"""Field errors as kube prints them: `Cause`, the `Errs` collector, and Go's
%v / %q / %#v renderings of bad values (field.Error.ErrorBody)."""
from __future__ import annotations

from typing import NamedTuple

from agent.api.syntax import go_quote

_OMIT = object()


class Cause(NamedTuple):
    field: str
    reason: str      # FieldValueInvalid, FieldValueRequired, ...
    message: str     # kube's ErrorBody: 'Invalid value: 70000: must be ...'

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


_TYPES = {"Invalid": ("FieldValueInvalid", "Invalid value"),
          "Required": ("FieldValueRequired", "Required value"),
          "Forbidden": ("FieldValueForbidden", "Forbidden"),
          "Duplicate": ("FieldValueDuplicate", "Duplicate value"),
          "NotFound": ("FieldValueNotFound", "Not found"),
          "NotSupported": ("FieldValueNotSupported", "Unsupported value"),
          "TooLong": ("FieldValueTooLong", "Too long"),
          "TooMany": ("FieldValueTooMany", "Too many"),
          "TypeInvalid": ("FieldValueTypeInvalid", "Invalid value")}


class Errs(list):
    """A field.ErrorList: helpers append Causes with kube's wording."""

    def add(self, kind: str, path: str, value=_OMIT, detail: str = "") -> None:
        reason, text = _TYPES[kind]
        body = text if value is _OMIT else f"{text}: {go_value(value)}"
        self.append(Cause(path, reason, body + (f": {detail}" if detail else "")))

    def invalid(self, path, value, detail):
        self.add("Invalid", path, value, detail)

    def required(self, path, detail=""):
        self.add("Required", path, detail=detail)

    def forbidden(self, path, detail):
        self.add("Forbidden", path, detail=detail)

    def duplicate(self, path, value):
        self.add("Duplicate", path, value)

    def not_supported(self, path, value, valid):
        self.add("NotSupported", path, value, "supported values: " + ", ".join(f'"{v}"' for v in valid))

    def typed(self, node, key, path, want, default=None):
        """node[key] if it has JSON type `want` ("string", "integer", "object",
        "array", "boolean"); else record a type error and return `default`."""
        if not isinstance(node, dict) or node.get(key) is None:
            return default
        v = node[key]
        if type_name(v) == want:
            return v
        got = type_name(v)
        self.add("TypeInvalid", path, got, f"{path} in body must be of type {want}: {go_value(got)}")
        return default

    def objects(self, node, key, path):
        """(path, item) for each object of the array node[key]; any other item
        is a type error at its own index."""
        for i, item in enumerate(self.typed(node, key, path, "array", [])):
            if isinstance(item, dict):
                yield f"{path}[{i}]", item
            else:
                self.typed({"i": item}, "i", f"{path}[{i}]", "object")


# ---- Go's %v / %q / %#v, as field.Error.ErrorBody prints bad values ------------

def type_name(v) -> str:
    """The JSON/OpenAPI type name of a decoded value."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _go_elem(v) -> str:
    return go_quote(v) if isinstance(v, str) else go_value(v)


def go_value(v) -> str:
    """How kube prints a bad value: ints/bools plainly, strings %q, maps and
    slices as Go's %#v (map[string]string{"app":"x"}, []string{"a", "b"})."""
    if isinstance(v, GoRepr):
        return v.text
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return go_quote(v)
    if isinstance(v, dict):
        vt = "string" if all(isinstance(x, str) for x in v.values()) else "interface {}"
        body = ", ".join(f"{go_quote(str(k))}:{_go_elem(v[k])}" for k in sorted(v, key=str))
        return f"map[string]{vt}{{{body}}}"
    if isinstance(v, list):
        vt = "string" if all(isinstance(x, str) for x in v) else "interface {}"
        return f"[]{vt}{{" + ", ".join(_go_elem(x) for x in v) + "}"
    return str(v)


class GoRepr:
    """A value whose Go %#v rendering is precomputed (structs)."""

    def __init__(self, text: str):
        self.text = text


def go_intstr(v) -> GoRepr:
    if isinstance(v, str):
        return GoRepr(f'intstr.IntOrString{{Type:1, IntVal:0, StrVal:{go_quote(v)}}}')
    return GoRepr(f'intstr.IntOrString{{Type:0, IntVal:{int(v or 0)}, StrVal:""}}')


def go_label_selector(sel) -> GoRepr:
    sel = sel or {}
    ml = sel.get("matchLabels")
    ml_s = go_value(ml) if ml else "map[string]string(nil)"
    exprs = sel.get("matchExpressions")
    if exprs:
        parts = [f'v1.LabelSelectorRequirement{{Key:{go_quote(str(e.get("key", "")))}, '
                 f'Operator:{go_quote(str(e.get("operator", "")))}, '
                 f'Values:{go_value(list(e.get("values") or [])) if e.get("values") else "[]string(nil)"}}}'
                 for e in exprs]
        ex_s = "[]v1.LabelSelectorRequirement{" + ", ".join(parts) + "}"
    else:
        ex_s = "[]v1.LabelSelectorRequirement(nil)"
    return GoRepr(f"v1.LabelSelector{{MatchLabels:{ml_s}, MatchExpressions:{ex_s}}}")


def child_path(path: str, child: str) -> str:
    return f"{path}.{child}" if path else child
