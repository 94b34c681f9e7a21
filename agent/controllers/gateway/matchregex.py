"""An HTTPRouteMatch as one PCRE over a request summary line, so nginx can
try a host's matches in the spec's precedence order with a single `map`
(regex entries are tried in the order written; the first hit wins).

The summary is `$request_method\\n$uri\\n$args\\n` followed by one
`$http_<name>\\n` per header any match on that host names. Each field is
matched whole: Exact values escaped, PathPrefix element-wise (`/foo`
matches `/foo` and `/foo/bar`, not `/foobar`), RegularExpression values as
written (full match, `^`/`$` anchored to their field), query parameters as
lookaheads into `$args` (in any order), absent constraints as `[^\\n]*`.

Pure: text in, text out."""
from __future__ import annotations

import re

ANY_FIELD = r"[^\n]*"


def header_var(name: str) -> str:
    return "$http_" + name.lower().replace("-", "_")


def summary(headers: list[str]) -> str:
    """The map's source string, as written in nginx.conf (\\n escapes)."""
    return "$request_method\\n$uri\\n$args\\n" + "".join(header_var(h) + "\\n" for h in headers)


def header_names(matches: list[dict]) -> list[str]:
    """Every header name the matches test, lowercased, sorted."""
    return sorted({h["name"].lower() for m in matches for h in m.get("headers") or ()})


def _user(regex: str) -> str:
    return f"(?m:(?:{regex}))"


def _path(path: dict) -> str:
    kind, value = path.get("type", "PathPrefix"), path.get("value", "/")
    if kind == "Exact":
        return re.escape(value)
    if kind == "RegularExpression":
        return _user(value)
    prefix = value.rstrip("/")
    return re.escape(prefix) + r"(?:/[^\n]*)?" if prefix else r"/[^\n]*"


def _query(q: dict) -> str:
    value = _user(q["value"]) if q.get("type") == "RegularExpression" else re.escape(q["value"])
    return rf"(?=(?:[^\n]*&)?{re.escape(q['name'])}={value}(?:&|\n))"


def pattern(match: dict, headers: list[str]) -> str:
    """The PCRE for one (defaulted) match over `summary(headers)`."""
    method = re.escape(match["method"]) if match.get("method") else ANY_FIELD
    args = "".join(_query(q) for q in match.get("queryParams") or ()) + ANY_FIELD
    wanted = {h["name"].lower(): h for h in match.get("headers") or ()}
    fields = []
    for name in headers:
        h = wanted.get(name)
        if h is None:
            fields.append(ANY_FIELD)
        elif h.get("type") == "RegularExpression":
            fields.append(_user(h["value"]))
        else:
            fields.append(re.escape(h["value"]))
    return r"\A" + r"\n".join([method, _path(match["path"]), args, *fields]) + r"\n\Z"


def subject(method: str, uri: str, args: str, headers: dict[str, str], names: list[str]) -> str:
    """What nginx builds from a request (for tests: Python's re runs the
    same patterns)."""
    low = {k.lower(): v for k, v in headers.items()}
    return "\n".join([method, uri, args, *(low.get(n, "") for n in names)]) + "\n"
