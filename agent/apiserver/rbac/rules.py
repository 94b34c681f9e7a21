"""PolicyRule matching and covering, as Kubernetes' RBAC does it.

Pure functions over plain dicts (rbac.authorization.k8s.io/v1 PolicyRule):

- `rule_allows(rule, attrs)`: plugin/pkg/auth/authorizer/rbac RuleAllows —
  verbs (`*` matches any), apiGroups (`*`), resources (`*`, `pods/log`,
  `*/scale`), resourceNames (empty = all; a rule with names never matches
  a request without one, such as list or create),
  nonResourceURLs (exact, or a prefix ending in `*`).
- `covers(owner, servant)`: pkg/registry/rbac/validation Covers — which of
  the servant's rules (broken down per group/resource/name/verb) no owner
  rule grants; the escalation check refuses a Role holding those.
- `compact_string(rule)`: rbacv1helpers.CompactString, how the escalation
  error lists missing rules.
"""
from __future__ import annotations

from dataclasses import dataclass

ALL = "*"


@dataclass(frozen=True)
class Attributes:
    """What a request asks, as kube's authorizer.Attributes (request info)."""
    verb: str
    path: str = ""
    resource_request: bool = False
    group: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


def _list(rule: dict, key: str) -> list[str]:
    v = rule.get(key) or []
    return [x for x in v if isinstance(x, str)]


def verb_matches(rule: dict, verb: str) -> bool:
    verbs = _list(rule, "verbs")
    return ALL in verbs or verb in verbs


def api_group_matches(rule: dict, group: str) -> bool:
    groups = _list(rule, "apiGroups")
    return ALL in groups or group in groups


def resource_matches(rule: dict, resource: str, subresource: str) -> bool:
    """`*` matches all; `res/sub` and `*/sub` match a subresource (kube has
    no `res/*`: such a rule matches nothing but a subresource named `*`)."""
    combined = f"{resource}/{subresource}" if subresource else resource
    for r in _list(rule, "resources"):
        if r == ALL or r == combined:
            return True
        if not subresource:
            continue
        if r == f"{ALL}/{subresource}":
            return True
    return False


def resource_name_matches(rule: dict, name: str) -> bool:
    names = _list(rule, "resourceNames")
    if not names:
        return True
    return name in names


def non_resource_url_matches(rule: dict, path: str) -> bool:
    for url in _list(rule, "nonResourceURLs"):
        if url == ALL or url == path:
            return True
        if url.endswith(ALL) and path.startswith(url[:-1]):
            return True
    return False


def rule_allows(rule: dict, a: Attributes) -> bool:
    if a.resource_request:
        return (verb_matches(rule, a.verb) and api_group_matches(rule, a.group)
                and resource_matches(rule, a.resource, a.subresource) and resource_name_matches(rule, a.name))
    return verb_matches(rule, a.verb) and non_resource_url_matches(rule, a.path)


def rules_allow(rules, a: Attributes) -> bool:
    return any(rule_allows(r, a) for r in rules)


# ---- covering (escalation prevention) ----------------------------------------------------

def breakdown(rule: dict) -> list[dict]:
    """BreakdownRule: one rule per (group, resource, resourceName, verb) or
    (nonResourceURL, verb)."""
    out = []
    for group in _list(rule, "apiGroups"):
        for resource in _list(rule, "resources"):
            names = _list(rule, "resourceNames") or [None]
            for name in names:
                for verb in _list(rule, "verbs"):
                    r = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                    if name is not None:
                        r["resourceNames"] = [name]
                    out.append(r)
    for url in _list(rule, "nonResourceURLs"):
        for verb in _list(rule, "verbs"):
            out.append({"nonResourceURLs": [url], "verbs": [verb]})
    return out


def _has_all(have: list[str], want: list[str]) -> bool:
    return ALL in have or all(w in have for w in want)


def _resource_covers(owner: list[str], wanted: list[str]) -> bool:
    for w in wanted:
        if ALL in owner or w in owner:
            continue
        _, _, sub = w.partition("/")
        if sub and f"{ALL}/{sub}" in owner:
            continue
        return False
    return True


def _url_covers(owner: list[str], wanted: list[str]) -> bool:
    for w in wanted:
        if any(o == w or o == ALL or (o.endswith(ALL) and w.startswith(o[:-1])) for o in owner):
            continue
        return False
    return True


def rule_covers(owner: dict, servant: dict) -> bool:
    """ruleCovers: does owner grant everything the (broken-down) servant asks?"""
    verbs = _has_all(_list(owner, "verbs"), _list(servant, "verbs"))
    groups = _has_all(_list(owner, "apiGroups"), _list(servant, "apiGroups"))
    resources = _resource_covers(_list(owner, "resources"), _list(servant, "resources"))
    urls = _url_covers(_list(owner, "nonResourceURLs"), _list(servant, "nonResourceURLs"))
    owner_names, wanted_names = _list(owner, "resourceNames"), _list(servant, "resourceNames")
    names = not owner_names or (bool(wanted_names) and all(n in owner_names for n in wanted_names))
    return verbs and groups and resources and urls and names


def covers(owner_rules, servant_rules) -> list[dict]:
    """The broken-down servant rules no owner rule covers ([] = covered)."""
    missing = []
    for rule in servant_rules:
        for part in breakdown(rule):
            if not any(rule_covers(o, part) for o in owner_rules):
                missing.append(part)
    return missing


def compact(rules: list[dict]) -> list[dict]:
    """CompactRules: broken-down rules for the same group/resource/name (or
    URL) merged into one rule with all their verbs."""
    out: dict[tuple, dict] = {}
    for r in rules:
        key = (tuple(_list(r, "apiGroups")), tuple(_list(r, "resources")), tuple(_list(r, "resourceNames")),
               tuple(_list(r, "nonResourceURLs")))
        if key in out:
            for v in _list(r, "verbs"):
                if v not in out[key]["verbs"]:
                    out[key]["verbs"].append(v)
        else:
            out[key] = {k: list(v) for k, v in r.items()}
    return list(out.values())


def _go_quoted(items: list[str]) -> str:
    """fmt's %q of a []string: ["a" "b"]."""
    return "[" + " ".join('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in items) + "]"


def compact_string(rule: dict) -> str:
    parts = []
    for key, label in (("apiGroups", "APIGroups"), ("resources", "Resources"), ("nonResourceURLs", "NonResourceURLs"),
                       ("resourceNames", "ResourceNames"), ("verbs", "Verbs")):
        if _list(rule, key):
            parts.append(f"{label}:{_go_quoted(_list(rule, key))}")
    return "{" + ", ".join(parts) + "}"
