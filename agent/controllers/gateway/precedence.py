"""The order in which HTTPRoute matches are tried, as HTTPRouteRule's
`matches` documentation defines it (across every route on a host name):

1. an Exact path match, 2. a PathPrefix match with the most characters,
3. a method match, 4. the most header matches, 5. the most query-param
matches; then the oldest route, then `namespace/name` alphabetically, then
the first rule and match in list order. RegularExpression paths are
implementation-specific: here they come after Exact and before PathPrefix
matches (a `/` prefix would otherwise shadow every pattern), longer
patterns first.

Pure: a sort key over plain data."""
from __future__ import annotations

from dataclasses import dataclass, field

_RANK = {"Exact": 0, "RegularExpression": 1, "PathPrefix": 2}


def default_match(match: dict | None) -> dict:
    m = dict(match or {})
    m["path"] = {"type": "PathPrefix", "value": "/", **(m.get("path") or {})}
    return m


def prefix_length(value: str) -> int:
    """A prefix's characters, a trailing '/' not counted ('/foo/' = '/foo')."""
    return len(value.rstrip("/")) if value != "/" else 0


@dataclass(frozen=True)
class MatchRef:
    """One match of one rule of one route."""
    namespace: str
    name: str
    created: str
    rule: int
    index: int
    match: dict = field(compare=False, hash=False)


def sort_key(ref: MatchRef) -> tuple:
    m = default_match(ref.match)
    path = m["path"]
    kind = path.get("type", "PathPrefix")
    value = path.get("value", "/")
    length = {"Exact": len(value), "PathPrefix": prefix_length(value)}.get(kind, len(value))
    return (_RANK.get(kind, 3), -length, 0 if m.get("method") else 1, -len(m.get("headers") or ()),
            -len(m.get("queryParams") or ()), ref.created, f"{ref.namespace}/{ref.name}", ref.rule, ref.index)


def ordered(refs: list[MatchRef]) -> list[MatchRef]:
    return sorted(refs, key=sort_key)
