"""Label and field selectors, as kube-apiserver and kubectl understand them.

Owns two things, all pure:

* `parse(text)` — kubectl's `-l` / `?labelSelector=` syntax, a port of
  k8s.io/apimachinery/pkg/labels/selector.go (lexer, parser, error wording:
  "unable to parse requirement: ...", "found 'x', expected: ...").
* `from_label_selector(dict)` — the API form (`matchLabels` /
  `matchExpressions`) used by Deployments and ReplicaSets, and `from_map(dict)`
  — the plain map of a Service's `.spec.selector`.

The one subtle rule kept explicit: a *nil* LabelSelector selects nothing, an
empty one (`{}`) selects everything; a Service whose selector map is empty or
absent selects nothing (it is a "selectorless" Service whose endpoints the user
manages), so `from_map({})` is `NOTHING` unless asked otherwise.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from agent.api.syntax import go_quote, label_value_errors, qualified_name_errors

# ---- requirements and selectors ---------------------------------------------

IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "in", "notin", "=", "==", "!="
EXISTS, DOES_NOT_EXIST, GT, LT = "exists", "!", "gt", "lt"
_BINARY_OPERATORS = [IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GT, LT]


def _go_string_slice(values) -> str:
    return "[]string{" + ", ".join(go_quote(v) for v in values) + "}"


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: dict) -> bool:
        has = self.key in labels
        op = self.operator
        if op in (IN, EQUALS, DOUBLE_EQUALS):
            return has and labels[self.key] in self.values
        if op in (NOT_IN, NOT_EQUALS):
            return not has or labels[self.key] not in self.values
        if op == EXISTS:
            return has
        if op == DOES_NOT_EXIST:
            return not has
        if op in (GT, LT):
            if not has:
                return False
            try:
                have, want = int(labels[self.key]), int(self.values[0])
            except (TypeError, ValueError):
                return False
            return have > want if op == GT else have < want
        return False

    def __str__(self) -> str:
        op = self.operator
        if op == EXISTS:
            return self.key
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        if op in (IN, NOT_IN):
            return f"{self.key} {op} ({','.join(sorted(self.values))})"
        if op in (GT, LT):
            return f"{self.key}{'>' if op == GT else '<'}{self.values[0]}"
        return f"{self.key}{op}{self.values[0]}"


def new_requirement(key: str, op: str, values: list[str]) -> Requirement:
    """labels.NewRequirement: validates key, operator arity and values."""
    errs = []
    key_errs = qualified_name_errors(key)
    if key_errs:
        errs.append(f"key: Invalid value: {go_quote(key)}: " + "; ".join(key_errs))
    bad_values = f"values: Invalid value: {_go_string_slice(values)}: "
    if op in (IN, NOT_IN):
        if not values:
            errs.append(bad_values + "for 'in', 'notin' operators, values set can't be empty")
    elif op in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        if len(values) != 1:
            errs.append(bad_values + "exact-match compatibility requires one single value")
    elif op in (EXISTS, DOES_NOT_EXIST):
        if values:
            errs.append(bad_values + "values set must be empty for exists and does not exist")
    elif op in (GT, LT):
        if len(values) != 1:
            errs.append(bad_values + "for 'Gt', 'Lt' operators, exactly one value is required")
        for i, v in enumerate(values):
            if not re.fullmatch(r"[+-]?[0-9]+", v):
                errs.append(f"values[{i}]: Invalid value: {go_quote(v)}: "
                            "for 'Gt', 'Lt' operators, the value must be an integer")
    else:
        errs.append(f"operator: Unsupported value: {go_quote(op)}: supported values: "
                    + ", ".join(go_quote(o) for o in ["in", "notin", "=", "==", "!=", "gt", "lt", "exists", "!"]))
    for i, v in enumerate(values):
        msgs = label_value_errors(v)
        if msgs:
            errs.append(f"values[{i}][{key}]: Invalid value: {go_quote(v)}: " + "; ".join(msgs))
    errs = list(dict.fromkeys(errs))
    if errs:
        raise ValueError(errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]")
    return Requirement(key, op, tuple(sorted(set(values))))


@dataclass(frozen=True)
class Selector:
    """A conjunction of requirements; `nothing=True` is labels.Nothing()."""
    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    @property
    def empty(self) -> bool:
        """True when it selects everything (labels.Selector.Empty())."""
        return not self.nothing and not self.requirements

    def matches(self, labels: dict | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = Selector()
NOTHING = Selector(nothing=True)


def _sorted(reqs) -> Selector:
    return Selector(tuple(sorted(reqs, key=lambda r: r.key)))


def from_map(selector: dict | None, *, empty_selects_all: bool = False) -> Selector:
    """A Service's `.spec.selector` (or any plain label map) as a selector.

    Empty or absent selects nothing — a Service without a selector gets no
    controller-managed endpoints. Pass `empty_selects_all=True` for the
    labels.SelectorFromSet meaning (empty set = everything)."""
    if not selector:
        return EVERYTHING if empty_selects_all else NOTHING
    _require_string_map(selector, "selector")
    return _sorted(new_requirement(k, EQUALS, [v]) for k, v in selector.items())


def _require_string_map(m, what: str) -> None:
    if not isinstance(m, dict):
        raise ValueError(f"{what} must be a map of string keys to string values, got {type(m).__name__}")
    for k, v in m.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ValueError(f"{what} must be a map of string keys to string values: "
                             f"{k!s}: {v!r} is not a string (quote it in YAML)")


_API_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def from_label_selector(selector: dict | None) -> Selector:
    """metav1.LabelSelectorAsSelector: nil -> nothing, {} -> everything."""
    if selector is None:
        return NOTHING
    match_labels = selector.get("matchLabels") or {}
    exprs = selector.get("matchExpressions") or []
    if not match_labels and not exprs:
        return EVERYTHING
    _require_string_map(match_labels, "matchLabels")
    reqs = [new_requirement(k, EQUALS, [v]) for k, v in match_labels.items()]
    for expr in exprs:
        op = _API_OPERATORS.get(expr.get("operator"))
        if op is None:
            raise ValueError(f'"{expr.get("operator")}" is not a valid label selector operator')
        reqs.append(new_requirement(expr.get("key", ""), op, list(expr.get("values") or [])))
    return _sorted(reqs)


# ---- the `-l` parser (port of labels/selector.go) ---------------------------

_ID, _EOS, _COMMA, _OPEN, _CLOSE, _ERR = "id", "eos", ",", "(", ")", "err"
_SYMBOLS = {"!": "!", "!=": "!=", "==": "==", "=": "=", ">": "gt", "<": "lt",
            "(": _OPEN, ")": _CLOSE, ",": _COMMA}
_SPECIAL = set("=!(),><")
_WHITESPACE = set(" \t\r\n")


def _lex(text: str) -> list[tuple[str, str]]:
    items, i, n = [], 0, len(text)
    while True:
        while i < n and text[i] in _WHITESPACE:
            i += 1
        if i >= n:
            items.append((_EOS, ""))
            return items
        if text[i] in _SPECIAL:
            buf, last = "", None
            while i < n and text[i] in _SPECIAL:
                if buf + text[i] in _SYMBOLS:
                    buf += text[i]
                    last = (_SYMBOLS[buf], buf)
                    i += 1
                elif last:
                    break
                else:
                    buf += text[i]
                    i += 1
            items.append(last or (_ERR, f"error expected: keyword found '{buf}'"))
            continue
        start = i
        while i < n and text[i] not in _WHITESPACE and text[i] not in _SPECIAL:
            i += 1
        word = text[start:i]
        items.append((word if word in (IN, NOT_IN) else _ID, word))


class _Parser:
    def __init__(self, text: str):
        self.items = _lex(text)
        self.pos = 0

    def lookahead(self, values: bool = True) -> tuple[str, str]:
        tok, lit = self.items[self.pos]
        if values and tok in (IN, NOT_IN):
            tok = _ID
        return tok, lit

    def consume(self, values: bool = True) -> tuple[str, str]:
        tok = self.lookahead(values)
        self.pos = min(self.pos + 1, len(self.items) - 1)
        return tok

    def parse(self) -> list[Requirement]:
        reqs = []
        while True:
            tok, lit = self.lookahead()
            if tok == _EOS:
                return reqs
            if tok not in (_ID, "!"):
                raise ValueError(f"found '{lit}', expected: !, identifier, or 'end of string'")
            try:
                reqs.append(self.requirement())
            except ValueError as e:
                raise ValueError(f"unable to parse requirement: {e}") from None
            tok, lit = self.consume()
            if tok == _EOS:
                return reqs
            if tok != _COMMA:
                raise ValueError(f"found '{lit}', expected: ',' or 'end of string'")
            tok2, lit2 = self.lookahead()
            if tok2 not in (_ID, "!"):
                raise ValueError(f"found '{lit2}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        op = None
        tok, lit = self.consume()
        if tok == "!":
            op = DOES_NOT_EXIST
            tok, lit = self.consume()
        if tok != _ID:
            raise ValueError(f"found '{lit}', expected: identifier")
        key = lit
        errs = qualified_name_errors(key)
        if errs:
            raise ValueError(f"key: Invalid value: {go_quote(key)}: " + "; ".join(errs))
        if self.lookahead()[0] in (_EOS, _COMMA):
            op = op or EXISTS
        if op in (EXISTS, DOES_NOT_EXIST):
            return new_requirement(key, op, [])
        tok, lit = self.consume(values=False)
        if tok not in _BINARY_OPERATORS:
            raise ValueError(f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        values = self.set_values() if tok in (IN, NOT_IN) else self.exact_value()
        return new_requirement(key, tok, sorted(values))

    def exact_value(self) -> set[str]:
        tok, _ = self.lookahead()
        if tok in (_EOS, _COMMA):
            return {""}
        tok, lit = self.consume()
        if tok == _ID:
            return {lit}
        raise ValueError(f"found '{lit}', expected: identifier")

    def set_values(self) -> set[str]:
        tok, lit = self.consume()
        if tok != _OPEN:
            raise ValueError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead()
        if tok == _CLOSE:
            self.consume()
            return {""}
        if tok not in (_ID, _COMMA):
            raise ValueError(f"found '{lit}', expected: ',', ')' or identifier")
        values = self.identifiers()
        if self.consume()[0] != _CLOSE:
            raise ValueError(f"found '{lit}', expected: ')'")
        return values

    def identifiers(self) -> set[str]:
        values: set[str] = set()
        for _ in range(len(self.items) + 1):
            tok, lit = self.consume()
            if tok == _ID:
                values.add(lit)
                tok2, lit2 = self.lookahead()
                if tok2 == _CLOSE:
                    return values
                if tok2 != _COMMA:
                    raise ValueError(f"found '{lit2}', expected: ',' or ')'")
            elif tok == _COMMA:
                if not values:
                    values.add("")
                tok2, _ = self.lookahead()
                if tok2 == _CLOSE:
                    values.add("")
                    return values
                if tok2 == _COMMA:
                    self.consume()
                    values.add("")
            else:
                raise ValueError(f"found '{lit}', expected: ',', or identifier")
        raise ValueError("unterminated value list")


def parse(text: str) -> Selector:
    """Parse kubectl's `-l` syntax; ValueError carries kube's message."""
    return _sorted(_Parser(text).parse())
