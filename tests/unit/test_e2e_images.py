"""The e2e test images besides agnhost: what a container of each runs
(their real ENTRYPOINT and CMD), and the stand-ins of nginx:1.14-4,
httpd:2.4.38-4 and registry.k8s.io/pause, run for real on 127.0.0.1."""

import signal

import pytest

from agent.node.workloads import python_module, resolve
from tests.unit.loopback import free_port, get, raw, run, serve, start, stop

E2E = "registry.k8s.io/e2e-test-images"


@pytest.mark.parametrize("container,argv", [
    ({"image": f"{E2E}/nginx:1.14-4"}, python_module("nginx", "--release=1.14.2", "-g", "daemon off;")),
    ({"image": f"{E2E}/nginx:1.14-4", "args": ["sleep", "1"]}, ["sleep", "1"]),
    ({"image": f"{E2E}/httpd:2.4.38-4"}, python_module("httpd")),
    ({"image": f"{E2E}/busybox:1.36.1-1"}, ["sh"]),
    ({"image": f"{E2E}/busybox:1.36.1-1", "command": ["sh", "-c", "sleep 1"]}, ["sh", "-c", "sleep 1"]),
    ({"image": f"{E2E}/jessie-dnsutils:1.7"}, ["bash"]),
    ({"image": f"{E2E}/jessie-dnsutils:1.7", "command": ["sh", "-c", "dig +short x"]},
     ["sh", "-c", "dig +short x"]),
    ({"image": "registry.k8s.io/pause:3.10"}, python_module("pause")),
    ({"image": f"{E2E}/agnhost:2.53", "command": ["/agnhost", "serve-hostname", "--http=false", "--tcp"]},
     python_module("agnhost", "serve-hostname", "--http=false", "--tcp")),
    ({"image": f"{E2E}/agnhost:2.53", "args": ["porter"]}, python_module("agnhost", "porter")),
    ({"image": f"{E2E}/agnhost:2.53", "args": ["test-webserver"]}, python_module("agnhost", "test-webserver")),
    ({"image": f"{E2E}/agnhost:2.53", "args": ["dns-suffix"]}, python_module("agnhost", "dns-suffix")),
    ({"image": f"{E2E}/agnhost:2.53", "args": ["connect", "x:1"]}, python_module("agnhost", "connect", "x:1")),
])
def test_what_each_image_runs(container, argv):
    assert resolve(container) == argv


def test_e2e_nginx_is_nginx_1_14():
    port = free_port()
    with serve(python_module("nginx", "--release=1.14.2", "-g", "daemon off;") + [f"--listen=127.0.0.1:{port}"],
               port) as proc:
        status, headers, body, _ = get(port, "/", headers={"User-Agent": "e2e"})
        assert (status, headers["Server"], len(body)) == (200, "nginx/1.14.2", 612)
        assert headers["ETag"] == '"5c0692e1-264"' and headers["Last-Modified"] == "Tue, 04 Dec 2018 14:44:49 GMT"
        assert "<title>Welcome to nginx!</title>" in body and "color-scheme" not in body
        status, _, body, _ = get(port, "/nope")
        assert status == 404 and "<hr><center>nginx/1.14.2</center>" in body
    out, err = proc.output
    assert '"GET / HTTP/1.1" 200 612 "-" "e2e" "-"' in out
    assert err == "" and "docker-entrypoint" not in out      # no entrypoint script, error_log at warn


def test_e2e_httpd_is_apache_2_4_38():
    port = free_port()
    with serve(python_module("httpd", f"--listen=127.0.0.1:{port}"), port) as proc:
        response = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, _, body = response.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        assert lines[0] == "HTTP/1.1 200 OK" and body == b"<html><body><h1>It works!</h1></body></html>\n"
        assert [line.split(":")[0] for line in lines[1:]] == \
            ["Date", "Server", "Last-Modified", "ETag", "Accept-Ranges", "Content-Length", "Content-Type"]
        assert "Server: Apache/2.4.38 (Unix)" in lines and 'ETag: "2d-432a5e4a73a80"' in lines
        assert get(port, "/", headers={"If-None-Match": '"2d-432a5e4a73a80"'})[0] == 304
        status, _, body, _ = get(port, "/missing")
        assert status == 404 and "The requested URL /missing was not found on this server." in body
        assert get(port, "/", "DELETE")[0] == 405
    out, err = proc.output
    assert '"GET / HTTP/1.1" 200 45' in out and '"GET /missing HTTP/1.1" 404' in out
    assert "AH00558" in err and "AH00094: Command line: 'httpd -D FOREGROUND'" in err
    assert "AH00491: caught SIGTERM, shutting down" in err
    assert proc.returncode == 0


def test_pause_image():
    assert run(python_module("pause", "-V")).stdout == "pause.c v3.10\n"
    for signum, name in ((signal.SIGTERM, "Terminated"), (signal.SIGINT, "Interrupt")):
        proc = start(python_module("pause"))
        assert proc.stderr.readline() == "Warning: pause should be the first process\n"
        _out, err = stop(proc, signum)
        assert (proc.returncode, err) == (0, f"Shutting down, got signal: {name}\n")
