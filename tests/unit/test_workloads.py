"""agent.node.workloads: image -> argv mapping, and the built-in servers answering
real HTTP and UDP on 127.0.0.1 (no root needed)."""

import http.client
import os
import socket
import subprocess
import sys
import time

import pytest

from agent.node import workloads
from agent.node.workloads import UnknownImage, nginx, python_module, resolve

PY = sys.executable


# ---- resolve ---------------------------------------------------------------

@pytest.mark.parametrize("image,repo", [
    ("nginx", "nginx"),
    ("nginx:1.27", "nginx"),
    ("docker.io/library/nginx:1.27-alpine", "nginx"),
    ("nginx@sha256:" + "0" * 64, "nginx"),
    ("registry.k8s.io/e2e-test-images/agnhost:2.53", "e2e-test-images/agnhost"),
    ("localhost:5000/busybox:1.36", "busybox"),
    ("curlimages/curl:8.5.0", "curlimages/curl"),
])
def test_repository_strips_registry_tag_digest(image, repo):
    assert workloads.repository(image) == repo


def test_nginx_default_runs_our_nginx():
    assert resolve({"image": "nginx:1.27"}) == python_module("nginx")
    assert python_module("nginx")[:4] == [PY, "-m", "agent.node.workloads", "nginx"]


def test_nginx_args_replace_cmd_through_entrypoint():
    assert resolve({"image": "nginx", "args": ["nginx", "-g", "daemon off;"]}) == python_module("nginx")
    assert resolve({"image": "nginx", "args": ["sleep", "5"]}) == ["sleep", "5"]


def test_command_runs_as_given_with_args():
    spec = {"image": "busybox", "command": ["sh", "-c"], "args": ["echo hi"]}
    assert resolve(spec) == ["sh", "-c", "echo hi"]
    assert resolve({"image": "whatever/unknown:1", "command": ["sleep", "1"]}) == ["sleep", "1"]


@pytest.mark.parametrize("args,expected", [
    (["netexec", "--http-port=8080", "--udp-port=8081"],
     ["netexec", "--http-port=8080", "--udp-port=8081"]),
    (["netexec", "--http-port", "9376"], ["netexec", "--http-port", "9376"]),
    (None, ["pause"]),
])
def test_agnhost(args, expected):
    spec = {"image": "registry.k8s.io/e2e-test-images/agnhost:2.39"}
    if args is not None:
        spec["args"] = args
    assert resolve(spec) == python_module("agnhost", *expected)


def test_agnhost_command_naming_its_binary():
    spec = {"image": "registry.k8s.io/e2e-test-images/agnhost:2.39",
            "command": ["/agnhost", "netexec", "--http-port=80"]}
    assert resolve(spec) == python_module("agnhost", "netexec", "--http-port=80")


def test_agnhost_unknown_subcommand_is_clear():
    with pytest.raises(UnknownImage, match='subcommand "guestbook"'):
        resolve({"image": "registry.k8s.io/e2e-test-images/agnhost:2.39",
                 "args": ["guestbook"]})


def test_curl_image_entrypoint():
    image = "curlimages/curl:8.5.0"
    assert resolve({"image": image}) == ["curl"]
    assert resolve({"image": image, "args": ["-s", "http://x"]}) == ["curl", "-s", "http://x"]
    assert resolve({"image": image, "args": ["http://x"]}) == ["curl", "http://x"]
    assert resolve({"image": image, "args": ["sleep", "3600"]}) == ["sleep", "3600"]


@pytest.mark.parametrize("image,default", [
    ("busybox", ["sh"]), ("alpine:3.20", ["/bin/sh"]),
    ("ubuntu:24.04", ["/bin/bash"]), ("debian:12", ["bash"]),
])
def test_shell_images(image, default):
    assert resolve({"image": image}) == default
    assert resolve({"image": image, "args": ["sleep", "3600"]}) == ["sleep", "3600"]


def test_unknown_image_without_command():
    with pytest.raises(UnknownImage) as err:
        resolve({"image": "foo/bar:1"})
    text = str(err.value)
    assert 'image "foo/bar:1" has no built-in workload' in text
    assert "set command:" in text and "curlimages/curl" in text


def test_unknown_image_with_only_args():
    with pytest.raises(UnknownImage):
        resolve({"image": "foo/bar:1", "args": ["x"]})


# ---- the servers' pure functions ---------------------------------------------

@pytest.mark.parametrize("target,uri", [
    ("/", "/"), ("/index.html?x=1", "/index.html"), ("//index.html", "/index.html"),
    ("/a/../index.html", "/index.html"), ("/%69ndex.html", "/index.html"), ("/..", None),
])
def test_nginx_resolve_path(target, uri):
    assert nginx.resolve_path(target) == uri


def test_nginx_error_page_like_nginx():
    page = nginx.error_page(404).decode()
    assert page.startswith("<html>\r\n<head><title>404 Not Found</title></head>\r\n")
    assert "<hr><center>nginx/1.27.5</center>\r\n</body>\r\n</html>\r\n" in page
    assert len(page) == 153  # what real nginx 1.27 sends


def test_agnhost_udp_protocol():
    from agent.node.workloads.agnhost import netexec_udp
    client = "10.244.0.5:40000"
    assert netexec_udp.udp_reply("hostname\n", client) == socket.gethostname()
    assert netexec_udp.udp_reply("echo Hello World", client) == "hello world"
    assert netexec_udp.udp_reply("clientip", client) == "10.244.0.5:40000"
    assert netexec_udp.udp_reply("bogus", client) is None


# ---- the servers, for real, on loopback --------------------------------------

def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {deadline}s")


def start(argv, env_extra):
    env = dict(os.environ, **env_extra)
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def stop(proc) -> tuple[str, str]:
    proc.terminate()
    try:
        return proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate(timeout=10)


def test_nginx_serves_welcome_page_keepalive_and_logs():
    port = free_port()
    proc = start(python_module("nginx"), {"NSPLANE_NGINX_LISTEN": f"127.0.0.1:{port}"})
    try:
        wait_listening(port, proc)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/", headers={"User-Agent": "curl/8.5.0"})
        resp = conn.getresponse()
        body = resp.read().decode()
        assert resp.status == 200
        assert resp.getheader("Server") == "nginx/1.27.5"
        assert resp.getheader("Content-Type") == "text/html"
        assert resp.getheader("Connection") == "keep-alive"
        assert body.startswith("<!DOCTYPE html>") and "<title>Welcome to nginx!</title>" in body
        assert len(body) == 615
        sock_before = conn.sock
        conn.request("GET", "/nope")
        resp = conn.getresponse()
        assert resp.status == 404 and "404 Not Found" in resp.read().decode()
        assert conn.sock is sock_before  # same TCP connection: keep-alive
        conn.request("POST", "/")
        resp = conn.getresponse()
        assert (resp.status, resp.reason) == (405, "Not Allowed")
        resp.read()
        conn.request("GET", "/")
        etag = conn.getresponse()
        etag.read()
        conn.request("GET", "/", headers={"If-None-Match": etag.getheader("ETag")})
        resp = conn.getresponse()
        assert resp.status == 304 and resp.read() == b""
        conn.close()
    finally:
        out, err = stop(proc)
    lines = [l for l in out.splitlines() if l.startswith("127.0.0.1 - - [")]
    assert '"GET / HTTP/1.1" 200 615 "-" "curl/8.5.0" "-"' in lines[0]
    assert '"GET /nope HTTP/1.1" 404 153' in lines[1]
    assert "[notice]" in err and "nginx/1.27.5" in err and "SIGTERM" in err
    assert proc.returncode == 0


def test_agnhost_netexec_http_and_udp():
    http_port, udp_port = free_port(), free_port(socket.SOCK_DGRAM)
    argv = python_module("agnhost", "netexec", f"--http-port={http_port}",
                         "--udp-port", str(udp_port))
    proc = start(argv, {"NSPLANE_AGNHOST_BIND": "127.0.0.1"})
    try:
        wait_listening(http_port, proc)

        def get(path):
            conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
            conn.request("GET", path)
            resp = conn.getresponse()
            data = resp.read().decode()
            local_port = conn.sock.getsockname()[1]
            conn.close()
            return resp.status, data, local_port

        assert get("/hostname")[:2] == (200, socket.gethostname())
        status, body, local_port = get("/clientip")
        assert (status, body) == (200, f"127.0.0.1:{local_port}")
        assert get("/echo?msg=hello%20nsplane")[:2] == (200, "hello nsplane")
        assert get("/echo?msg=x&code=503")[:2] == (503, "x")
        assert get("/anything")[1].startswith("NOW: ")
        end = time.monotonic() + 5
        while get("/healthz")[0] != 200 and time.monotonic() < end:
            time.sleep(0.05)
        assert get("/healthz")[0] == 200

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(5)
            udp.bind(("127.0.0.1", 0))
            for msg, want in ((b"hostname", socket.gethostname()),
                              (b"echo Hi There", "hi there"),
                              (b"clientip", f"127.0.0.1:{udp.getsockname()[1]}")):
                udp.sendto(msg, ("127.0.0.1", udp_port))
                assert udp.recv(2048).decode() == want
    finally:
        _out, err = stop(proc)
    assert f"Started HTTP server on port {http_port}" in err
    assert "GET /hostname" in err


def test_agnhost_healthz_412_without_udp():
    port = free_port()
    proc = start(python_module("agnhost", "netexec", f"--http-port={port}", "--udp-port=-1"),
                 {"NSPLANE_AGNHOST_BIND": "127.0.0.1"})
    try:
        wait_listening(port, proc)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 412
        conn.close()
    finally:
        stop(proc)


def test_agnhost_pause_exits_2_on_sigterm():
    proc = start(python_module("agnhost", "pause"), {})
    try:
        assert proc.stdout.readline().strip() == "Paused"
    finally:
        stop(proc)
    assert proc.returncode == 2
