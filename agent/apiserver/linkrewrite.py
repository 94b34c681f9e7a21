"""Links in what the pods, services and nodes proxies bring back, pointed
back through the proxy (apimachinery's proxy.Transport, which kube-apiserver
wraps around every `.../proxy/` request).

A page served at /api/v1/namespaces/ns/pods/web/proxy/ that links to
"/style.css" would send the browser to the API server's own /style.css; the
proxy rewrites such absolute paths on the backend's own host into
"/api/v1/namespaces/ns/pods/web/proxy/style.css". It does so for a redirect's
Location header and for the URL-valued attributes of text/html bodies
(a href, img src, form action...); relative links and links to other hosts
are left alone, and a link that already carries the prefix too. As Go's HTML
tokenizer re-renders them, every start tag comes out normalised: lower-case
names, each attribute as name="value" with its value escaped.
"""
from __future__ import annotations

import html
import posixpath
import re
import urllib.parse
from typing import Callable

# html/atom -> the attributes that hold URLs (apimachinery's atomsToAttrs)
URL_ATTRS = {
    "a": {"href"}, "applet": {"codebase"}, "area": {"href"}, "audio": {"src"}, "base": {"href"},
    "blockquote": {"cite"}, "body": {"background"}, "button": {"formaction"}, "command": {"icon"},
    "del": {"cite"}, "embed": {"src"}, "form": {"action"}, "frame": {"longdesc", "src"}, "head": {"profile"},
    "html": {"manifest"}, "iframe": {"longdesc", "src"}, "img": {"longdesc", "src", "usemap"},
    "input": {"src", "usemap", "formaction"}, "ins": {"cite"}, "link": {"href"}, "object": {
        "classid", "codebase", "data", "usemap"}, "q": {"cite"}, "script": {"src"}, "source": {"src"},
    "video": {"poster", "src"},
}
RAW_TEXT = ("script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes")

_ATTR = r"""[^\s"'>/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?"""
_TOKEN = re.compile(r"<!--.*?(?:-->|$)|<([a-zA-Z][^\s/>]*)((?:\s*/?\s*" + _ATTR + r")*)\s*(/?)>", re.S)
_ONE_ATTR = re.compile(r"""([^\s"'>/=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'=<>`]+))?""")


def path_prepend(request_path: str, backend_path: str) -> str:
    """The part of the request's path before the backend's (defaultProxyTransport)."""
    suffix = backend_path
    if request_path.endswith("/") and not suffix.endswith("/"):
        suffix += "/"
    return request_path[:-len(suffix)] if suffix and request_path.endswith(suffix) else request_path


def rewrite_url(target: str, prepend: str, backend_host: str, request_host: str) -> str:
    """proxy.Transport.rewriteURL, with the empty scheme and host a server request carries."""
    try:
        url = urllib.parse.urlsplit(target)
    except ValueError:
        return target
    if (url.netloc and url.netloc not in (backend_host, request_host)) or not url.path.startswith("/"):
        return target
    # a link to the caller's own Host keeps it; one to the backend loses the backend's address
    scheme, host = (url.scheme, url.netloc) if url.netloc and url.netloc == request_host else ("", "")
    if url.path.startswith(prepend):
        return urllib.parse.urlunsplit((scheme, host, url.path, url.query, url.fragment))
    joined = posixpath.normpath(posixpath.join(prepend, url.path.lstrip("/")))
    if url.path.endswith("/") and not joined.endswith("/"):
        joined += "/"
    return urllib.parse.urlunsplit((scheme, host, joined, url.query, url.fragment))


def _escape(value: str) -> str:
    return (value.replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("\r", "&#13;"))


def _render(name: str, attrs: str, self_closing: bool, rewriter: Callable[[str], str]) -> str:
    name = name.lower()
    wanted = URL_ATTRS.get(name, set())
    out = []
    for m in _ONE_ATTR.finditer(attrs):
        key, raw = m.group(1).lower(), m.group(2) or ""
        value = html.unescape(raw[1:-1] if raw[:1] in ("'", '"') else raw)
        if key in wanted:
            value = rewriter(value)
        out.append(f' {key}="{_escape(value)}"')
    return f"<{name}{''.join(out)}{'/' if self_closing else ''}>"


def rewrite_html(text: str, rewriter: Callable[[str], str]) -> str:
    """Every start tag re-rendered with its URL attributes rewritten; text,
    comments, end tags and raw-text elements' content as they were."""
    out, pos = [], 0
    while True:
        m = _TOKEN.search(text, pos)
        if m is None:
            out.append(text[pos:])
            return "".join(out)
        out.append(text[pos:m.start()])
        if m.group(1) is None:                        # a comment
            out.append(m.group(0))
            pos = m.end()
            continue
        out.append(_render(m.group(1), m.group(2) or "", bool(m.group(3)), rewriter))
        pos = m.end()
        name = m.group(1).lower()
        if name in RAW_TEXT and not m.group(3):       # no tags inside: up to its end tag as it is
            end = re.compile(rf"</{name}\s*>", re.I).search(text, pos)
            stop = end.start() if end else len(text)
            out.append(text[pos:stop])
            pos = stop
