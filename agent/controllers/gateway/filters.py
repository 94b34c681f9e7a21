"""HTTPRoute filters as nginx directives inside a match's location:
RequestHeaderModifier (proxy_set_header; `add` appends to what the client
sent, through a map), ResponseHeaderModifier (add_header ... always,
proxy_hide_header), RequestRedirect and URLRewrite (rewrite, with the
spec's ReplaceFullPath / ReplacePrefixMatch and redirect port rules),
timeouts (GEP-2257 durations).

User text reaches nginx only quoted, with `$` spelled `${nsplane_dollar}`
so a header value can never name an nginx variable.

Pure: text in, text out."""
from __future__ import annotations

import re

DOLLAR_SNIPPET = 'geo $nsplane_dollar { default "$"; }'
FORWARD_HEADERS = (("Host", "$http_host"), ("X-Real-IP", "$remote_addr"),
                   ("X-Forwarded-For", "$proxy_add_x_forwarded_for"), ("X-Forwarded-Host", "$host"),
                   ("X-Forwarded-Port", "$server_port"), ("X-Forwarded-Proto", "$scheme"),
                   ("Upgrade", "$http_upgrade"), ("Connection", "$connection_upgrade"))
WELL_KNOWN = {"http": 80, "https": 443}
_DURATION = re.compile(r"(\d+)(h|ms|m|s)")


def lit(text: str) -> str:
    """User text for the inside of a quoted nginx string: no variables."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "${nsplane_dollar}")


def q(text: str) -> str:
    """An nginx string with no variables in it."""
    return f'"{lit(text)}"'


def qre(text: str) -> str:
    """A quoted regex (rewrite/map patterns are not variable-expanded)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def duration_ms(text: str) -> int:
    """GEP-2257 duration ('1h', '10s', '500ms', '1m30s') in milliseconds."""
    total = 0
    for n, unit in _DURATION.findall(text or ""):
        total += int(n) * {"h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}[unit]
    return total


def request_headers(filters: list[dict], tid: str) -> tuple[list[str], list[str]]:
    """(location directives, http-level map snippets) for the proxied request."""
    headers = {name.lower(): (name, value) for name, value in FORWARD_HEADERS}
    maps = []
    for f in filters:
        if f.get("type") == "URLRewrite" and (f.get("urlRewrite") or {}).get("hostname"):
            headers["host"] = ("Host", q(f["urlRewrite"]["hostname"]))
        if f.get("type") != "RequestHeaderModifier":
            continue
        mod = f.get("requestHeaderModifier") or {}
        for h in mod.get("set") or ():
            headers[h["name"].lower()] = (h["name"], q(h["value"]))
        for i, h in enumerate(mod.get("add") or ()):
            var = f"$nsplane_add_{tid}_{i}"
            src = "$http_" + h["name"].lower().replace("-", "_")
            maps.append(f'map {src} {var} {{ "" {q(h["value"])}; default "{src},{lit(h["value"])}"; }}')
            headers[h["name"].lower()] = (h["name"], var)
        for name in mod.get("remove") or ():
            headers[name.lower()] = (name, '""')
    return [f"proxy_set_header {name} {value}" for name, value in headers.values()], maps


def response_headers(filters: list[dict]) -> list[str]:
    out = []
    for f in filters:
        if f.get("type") != "ResponseHeaderModifier":
            continue
        mod = f.get("responseHeaderModifier") or {}
        for h in mod.get("set") or ():
            out += [f"proxy_hide_header {h['name']}", f"add_header {h['name']} {q(h['value'])} always"]
        for h in mod.get("add") or ():
            out.append(f"add_header {h['name']} {q(h['value'])} always")
        for name in mod.get("remove") or ():
            out.append(f"proxy_hide_header {name}")
    return out


def _path_rewrites(base: str, match_path: dict, path: dict | None, target: str, flag: str) -> list[str]:
    """rewrite directives from `base`+original URI to `target` (already
    quoted inside: it may hold $host) + the new path."""
    if not path:
        return [f'rewrite {qre("^" + re.escape(base) + "(/.*)$")} "{target}$1" {flag}']
    if path.get("type") == "ReplaceFullPath":
        return [f'rewrite ^ "{target}{lit(path.get("replaceFullPath") or "/")}" {flag}']
    prefix = (match_path.get("value") or "/").rstrip("/")
    repl = path.get("replacePrefixMatch") or "/"
    head = "^" + re.escape(base + prefix)
    return [f'rewrite {qre(head + "$")} "{target}{lit(repl)}" {flag}',
            f'rewrite {qre(head + "(/.*)$")} "{target}{lit(repl.rstrip("/"))}$1" {flag}']


def redirect(f: dict, base: str, match_path: dict, listener_scheme: str, listener_port: int) -> list[str]:
    """The rewrite that answers a RequestRedirect (301 or 302, the query kept)."""
    r = f.get("requestRedirect") or {}
    scheme = r.get("scheme") or listener_scheme
    if r.get("port") is not None:
        port = r["port"]
    elif r.get("scheme"):
        port = WELL_KNOWN.get(scheme, listener_port)
    else:
        port = listener_port
    host = lit(r["hostname"]) if r.get("hostname") else "$host"
    where = f"{scheme}://{host}" + ("" if WELL_KNOWN.get(scheme) == port else f":{port}")
    flag = "permanent" if r.get("statusCode") == 301 else "redirect"
    return _path_rewrites(base, match_path, r.get("path"), where, flag)


def rewrite(filters: list[dict], base: str, match_path: dict) -> list[str]:
    """The rewrite from the internal location back to the path the backend sees."""
    path = next(((f.get("urlRewrite") or {}).get("path") for f in filters if f.get("type") == "URLRewrite"), None)
    return _path_rewrites(base, match_path, path, "", "break")


def timeouts(t: dict) -> list[str]:
    """timeouts.request / backendRequest as nginx's per-phase timeouts, the
    shorter one ('0s' means none: a day)."""
    given = [duration_ms(t[k]) or 86_400_000 for k in ("request", "backendRequest") if k in t]
    if not given:
        return []
    ms = min(given)
    return [f"proxy_read_timeout {ms}ms", f"proxy_send_timeout {ms}ms"]
