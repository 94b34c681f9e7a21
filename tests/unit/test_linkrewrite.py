"""The proxies' link rewriting (agent/apiserver/linkrewrite.py), on the cases
of apimachinery's proxy transport_test.go and the Proxy conformance spec."""
import pytest

from agent.apiserver.linkrewrite import path_prepend, rewrite_html, rewrite_url

PREFIX = "/api/v1/namespaces/ns/pods/web:1080/proxy"
BACKEND, CALLER = "10.244.0.5:1080", "127.0.0.1:6443"


def rw(url: str) -> str:
    return rewrite_url(url, PREFIX, BACKEND, CALLER)


@pytest.mark.parametrize("target,want", [
    ("/rewriteme", PREFIX + "/rewriteme"),
    ("/dir/", PREFIX + "/dir/"),                                  # the trailing slash kept
    ("/a/b?x=1#top", PREFIX + "/a/b?x=1#top"),
    (f"http://{BACKEND}/x", PREFIX + "/x"),                       # the backend's own address goes
    (f"http://{CALLER}/x", f"http://{CALLER}{PREFIX}/x"),         # the caller's Host stays
    ("http://example.com/x", "http://example.com/x"),             # another host: untouched
    ("relative/x", "relative/x"),                                 # relative: untouched
    (PREFIX + "/already", PREFIX + "/already"),                   # already through the proxy
])
def test_rewrite_url(target, want):
    assert rw(target) == want


def test_path_prepend_is_the_request_path_before_the_backends():
    assert path_prepend(PREFIX + "/", "/") == PREFIX
    assert path_prepend(PREFIX + "/static/app.js", "/static/app.js") == PREFIX
    assert path_prepend(PREFIX + "/dir/", "/dir") == PREFIX


def test_conformance_page_comes_back_through_the_proxy():
    assert rewrite_html('<a href="/rewriteme">test</a>', rw) == f'<a href="{PREFIX}/rewriteme">test</a>'


def test_start_tags_are_normalised_as_gos_tokenizer_renders_them():
    page = ("<HTML><IMG SRC='/i.png' alt=x disabled><br/><!-- <a href=\"/c\"> -->"
            "<script src=/s.js>if (a<b) {'<a href=\"/no\">'}</script><p>a &amp; b</p>")
    assert rewrite_html(page, rw) == (
        f'<html><img src="{PREFIX}/i.png" alt="x" disabled=""><br/><!-- <a href="/c"> -->'
        f'<script src="{PREFIX}/s.js">if (a<b) {{\'<a href="/no">\'}}</script><p>a &amp; b</p>')


def test_values_are_unescaped_then_escaped():
    assert rewrite_html('<a href="/x?a=1&amp;b=2" title="&quot;q&quot;">', rw) == \
        f'<a href="{PREFIX}/x?a=1&amp;b=2" title="&#34;q&#34;">'
