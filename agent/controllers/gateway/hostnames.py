"""Gateway API hostname semantics: which host names a route serves on a
listener (the intersection of the listener's `hostname` with the route's
`hostnames`), wildcard matching as the spec defines it (`*.example.com`
matches `a.example.com` and `a.b.example.com`, never `example.com`), and
the specificity order the spec gives overlapping hostnames.

Pure: plain strings in, plain strings out."""
from __future__ import annotations

ANY = ""          # no hostname: every host name


def _norm(h: str | None) -> str:
    return (h or "").lower().rstrip(".")


def wildcard_matches(pattern: str, host: str) -> bool:
    """`*.example.com` covers `host` when `host` has at least one more label."""
    pattern, host = _norm(pattern), _norm(host)
    if not pattern.startswith("*."):
        return pattern == host
    suffix = pattern[1:]                     # ".example.com"
    name = host.removeprefix("*.")
    return name.endswith(suffix)


def intersect(listener: str | None, route: str) -> str | None:
    """The host name(s) a route hostname serves on a listener, or None when
    they share none: the more specific of the two when one covers the other."""
    lh, rh = _norm(listener), _norm(route)
    if not lh:
        return rh
    if not rh:
        return lh
    if lh == rh:
        return lh
    if wildcard_matches(lh, rh):
        return rh
    if wildcard_matches(rh, lh):
        return lh
    return None


def route_hostnames(listener: str | None, hostnames: list[str] | None) -> list[str]:
    """The names a route serves on a listener: [] when none intersect (the
    route is then `NoMatchingListenerHostname`); [ANY] when neither side
    names one."""
    if not hostnames:
        return [_norm(listener)]
    out = []
    for h in hostnames:
        i = intersect(listener, h)
        if i is not None and i not in out:
            out.append(i)
    return out


def specificity(host: str) -> tuple:
    """Sort key, most specific first: exact names before wildcards, then
    longer before shorter (the spec's 'characters in a matching non-wildcard
    hostname', then 'characters in a matching hostname'); ANY last."""
    if host == ANY:
        return (2, 0, "")
    if host.startswith("*."):
        return (1, -len(host), host)
    return (0, -len(host), host)
