"""Mount points a stand-in's read-only host view lacks
(agent/node/runtime/mountpoints.py) and the nginx stand-in's conf.d subset
(agent/node/workloads/nginxconf.py)."""
import os

import pytest

from agent.node.runtime.mountpoints import Entry, make_skeleton, skeleton_entries
from agent.node.workloads import nginxconf


@pytest.fixture
def host(tmp_path):
    (tmp_path / "etc").mkdir(mode=0o755)
    os.chmod(tmp_path / "etc", 0o751)
    (tmp_path / "etc" / "hosts").write_text("")
    (tmp_path / "run").mkdir()
    (tmp_path / "link").symlink_to("etc")
    return tmp_path


def test_missing_mount_points_and_their_parents(host):
    out = skeleton_entries([("/etc/nginx/conf.d", True), ("/etc/app.conf", False), ("/etc/hosts", False),
                            ("/run/secrets/x", True), ("/link/x", True)], writable=["/run"], host_root=str(host))
    assert out == [Entry("etc", True, 0o751, os.getuid(), os.getgid()), Entry("etc/nginx", True, 0o755),
                   Entry("etc/app.conf", False, 0o644), Entry("etc/nginx/conf.d", True, 0o755)]


def test_make_skeleton(tmp_path, host):
    entries = skeleton_entries([("/etc/a/b", True), ("/etc/f", False)], host_root=str(host))
    (tmp_path / "layer").mkdir()
    make_skeleton(str(tmp_path / "layer"), entries)
    assert (tmp_path / "layer" / "etc" / "a" / "b").is_dir()
    assert (tmp_path / "layer" / "etc" / "f").is_file()
    assert (tmp_path / "layer" / "etc").stat().st_mode & 0o777 == 0o751


SITE = """
# a site from a ConfigMap
server {
    listen 8080 default_server;
    server_name _;
    add_header X-Site demo;
    location / { return 200 'hello "you"\\n'; }
    location = /healthz { return 204; }
    location /old { return 301 https://example.com/new; }
    location /static/ { root %s; }
    proxy_buffering off;
}
server { listen 127.0.0.1:9090; root %s; }
"""


def test_servers_locations_and_answers(tmp_path):
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "app.css").write_text("body{}")
    (tmp_path / "index.html").write_text("<p>root</p>")
    site, second = nginxconf.parse(SITE % (tmp_path, tmp_path))
    assert site.listen == ("0.0.0.0", 8080) and second.listen == ("127.0.0.1", 9090)
    assert site.warnings == ['the nsplane nginx stand-in ignores "proxy_buffering" in nginx.conf']
    a = nginxconf.answer(site, "/anything")
    assert (a.code, a.body, a.content_type, a.headers) == (200, b'hello "you"\n', "application/octet-stream",
                                                            [("X-Site", "demo")])
    assert nginxconf.answer(site, "/healthz").code == 204
    assert nginxconf.answer(site, "/old").headers[-1] == ("Location", "https://example.com/new")
    css = nginxconf.answer(site, "/static/app.css")
    assert (css.code, css.body, css.content_type) == (200, b"body{}", "text/css")
    assert nginxconf.answer(site, "/static/none.css").code == 404
    assert nginxconf.answer(second, "/").body == b"<p>root</p>"


def test_config_files_in_name_order_and_errors(tmp_path):
    (tmp_path / "b.conf").write_text("server { listen 82; }")
    (tmp_path / "a.conf").write_text("server { listen 81; }")
    (tmp_path / "skip.txt").write_text("server { listen 83; }")
    assert [s.listen[1] for s in nginxconf.load(str(tmp_path))] == [81, 82]
    (tmp_path / "c.conf").write_text("server { listen 84; ")
    with pytest.raises(nginxconf.ConfigError, match="unexpected end of file"):
        nginxconf.load(str(tmp_path))
