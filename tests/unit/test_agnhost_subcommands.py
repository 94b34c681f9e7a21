"""agnhost's other subcommands, run for real on 127.0.0.1: serve-hostname (HTTP,
TCP, UDP, --close, SIGTERM), porter (HTTP, --json-response, UDP, TLS),
test-webserver (files, listings, redirects, ranges, errors), connect (its
REFUSED/TIMEOUT/DNS/UNKNOWN words), dns-suffix, dns-server-list, etc-hosts
and pause."""

import os
import signal
import socket
import ssl
import time

import pytest

from agent.node.workloads.agnhost import dnsinfo
from tests.unit.loopback import (
    agnhost,
    free_port,
    free_ports,
    get,
    raw,
    run,
    serve,
    start,
    stop,
    udp,
    wait_listening,
)

HOST = socket.gethostname()


# ---- serve-hostname ---------------------------------------------------------------

def test_serve_hostname_http_answers_every_path():
    port = free_port()
    with serve(agnhost("serve-hostname", "--port", str(port)), port, stop_signal=signal.SIGKILL) as proc:
        assert get(port, "/")[:3:2] == (200, HOST)
        assert get(port, "/any/path", "POST")[:3:2] == (200, HOST)
        head = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=0.3).split(b"\r\n")
        assert head[0] == b"HTTP/1.1 200 OK" and b"Connection: close" not in head   # keep-alive
    assert f"Serving on port {port}." in proc.output[1]
    assert "HTTP request from 127.0.0.1:" in proc.output[1]


def test_serve_hostname_close_ends_each_connection():
    port = free_port()
    with serve(agnhost("serve-hostname", f"--port={port}", "--close"), port, stop_signal=signal.SIGKILL):
        response = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")   # returns because the server closes
        assert b"\r\nConnection: close\r\n" in response and response.endswith(HOST.encode())


def test_serve_hostname_tcp_and_udp():
    port = free_port()
    with serve(agnhost("serve-hostname", "--http=false", "--tcp", "--udp", f"--port={port}"), port,
               stop_signal=signal.SIGKILL) as proc:
        assert raw(port, b"") == HOST.encode()
        assert raw(port, b"hostName\n") == HOST.encode()
        assert udp(port, b"hostName\n")[0] == HOST.encode()
        assert udp(port, b"x" * 100)[0] == HOST.encode()          # read into 16 bytes, answered anyway
    assert "TCP request from 127.0.0.1:" in proc.output[1] and "UDP request from 127.0.0.1:" in proc.output[1]


def test_serve_hostname_refuses_http_with_tcp():
    out = run(agnhost("serve-hostname", "--tcp"))
    assert out.returncode == 1
    assert out.stderr.rstrip().endswith("Can't server TCP/UDP mode and HTTP mode at the same time")


def test_serve_hostname_keeps_serving_after_sigterm():
    port = free_port()
    proc = start(agnhost("serve-hostname", f"--port={port}"))
    try:
        wait_listening(port, proc)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert get(port, "/")[2] == HOST                       # still answering while awaiting deletion
        assert proc.poll() is None
    finally:
        proc.kill()
        _out, err = proc.communicate(timeout=10)
    assert "Shutting down after receiving signal: terminated." in err
    assert "Awaiting pod deletion." in err


# ---- porter ---------------------------------------------------------------------------

def test_porter_serves_each_variable_on_its_port():
    p1, p2 = free_ports(2)
    u1 = free_port(socket.SOCK_DGRAM)
    env = {f"SERVE_PORT_{p1}": "foo", f"SERVE_TCP_PORT_{p2}": "bar", f"SERVE_UDP_PORT_{u1}": "udp baz",
           "SERVE_SCTP_PORT_5060": "nope", "SERVE_PORT_notaport": "x"}
    with serve(agnhost("porter"), p1, env=env) as proc:
        wait_listening(p2, proc)
        status, headers, body, _ = get(p1, "/whatever")
        assert (status, body, headers["Content-Type"]) == (200, "foo", "text/plain; charset=utf-8")
        assert get(p2, "/", "DELETE")[2] == "bar"
        assert udp(u1, b"anything")[0] == b"udp baz"
    err = proc.output[1]
    assert f"Started UDP server on port {u1}" in err
    assert 'server on port "notaport" failed' in err
    assert "SCTP is not available in nsplane pods: port 5060 is not served" in err


def test_porter_json_response():
    port = free_port()
    with serve(agnhost("porter", "--json-response"), port, env={f"SERVE_PORT_{port}": 'foo"<'}):
        status, headers, body, _ = get(port, "/", "PATCH")
        assert (status, headers["Content-Type"]) == (200, "application/json")
        assert body == '{"Method":"PATCH","Body":"foo\\"\\u003c"}'


def test_porter_tls_with_the_image_default_certificate():
    port = free_port()
    with serve(agnhost("porter"), port, env={f"SERVE_TLS_PORT_{port}": "tls baz"}):
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, \
                context.wrap_socket(sock) as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := tls.recv(4096):
                data += chunk
            san = tls.getpeercert(binary_form=True)
        assert data.endswith(b"\r\n\r\ntls baz") and san


# ---- test-webserver -----------------------------------------------------------------

@pytest.fixture(scope="module")
def web(tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    (root / "results").mkdir()
    (root / "results" / "wheezy_udp@kubernetes.default").write_text("OK")
    (root / "site").mkdir()
    (root / "site" / "index.html").write_text("<html>index</html>")
    (root / "data.json").write_text('{"a": 1}')
    (root / "a&b.txt").write_text("0123456789")
    (root / "secret").write_text("x")
    os.chmod(root / "secret", 0)
    port = free_port()
    with serve(agnhost("test-webserver", f"--port={port}"), port,
               env={"NSPLANE_TESTWEBSERVER_ROOT": str(root)}) as proc:
        proc.port = port
        yield proc


def test_webserver_serves_files_with_cors_headers(web):
    status, headers, body, _ = get(web.port, "/results/wheezy_udp@kubernetes.default")
    assert (status, body) == (200, "OK")
    assert headers["Content-Type"] == "text/plain; charset=utf-8" and headers["Accept-Ranges"] == "bytes"
    assert headers["Cache-Control"] == "private" and headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    assert "Last-Modified" in headers
    assert get(web.port, "/data.json")[1]["Content-Type"] == "application/json"


def test_webserver_directories(web):
    status, headers, body, _ = get(web.port, "/results")
    assert (status, headers["Location"]) == (301, "results/")
    status, headers, body, _ = get(web.port, "/")
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert body.startswith('<!doctype html>\n<meta name="viewport" content="width=device-width">\n<pre>\n')
    assert '<a href="a&b.txt">a&amp;b.txt</a>\n<a href="data.json">data.json</a>\n' in body
    assert '<a href="results/">results/</a>\n' in body and body.endswith("</pre>\n")
    assert get(web.port, "/site/")[2] == "<html>index</html>"
    assert get(web.port, "/site/index.html")[1]["Location"] == "./"
    assert get(web.port, "/data.json/")[1]["Location"] == "../data.json"


def test_webserver_ranges_and_errors(web):
    status, headers, body, _ = get(web.port, "/a&b.txt", headers={"Range": "bytes=2-4"})
    assert (status, body, headers["Content-Range"]) == (206, "234", "bytes 2-4/10")
    assert get(web.port, "/a&b.txt", headers={"Range": "bytes=20-"})[0] == 416
    status, headers, body, _ = get(web.port, "/missing")
    assert (status, body) == (404, "404 page not found\n") and "Cache-Control" not in headers
    if os.geteuid() != 0:                                           # root reads anything
        assert get(web.port, "/secret")[:3:2] == (403, "403 Forbidden\n")


# ---- connect ---------------------------------------------------------------------------

def test_connect_names_its_failures():
    port = free_port()
    with serve(agnhost("netexec", f"--http-port={port}", "--udp-port=-1"), port):
        assert run(agnhost("connect", f"127.0.0.1:{port}")).returncode == 0
    refused = run(agnhost("connect", "--timeout=3s", f"127.0.0.1:{free_port()}"))
    assert (refused.returncode, refused.stderr) == (1, "REFUSED\n")
    assert run(agnhost("connect", "127.0.0.1")).stderr == "UNKNOWN: address 127.0.0.1: missing port in address\n"
    assert run(agnhost("connect", "no-such-host.invalid:80")).stderr.startswith("DNS: lookup no-such-host.invalid")
    usage = run(agnhost("connect"))
    assert usage.returncode == 1 and usage.stderr.startswith("Error: accepts 1 arg(s), received 0")


def test_connect_udp():
    port = free_port(socket.SOCK_DGRAM)
    with serve(agnhost("serve-hostname", "--http=false", "--udp", f"--port={port}"), stop_signal=signal.SIGKILL):
        assert run(agnhost("connect", "--protocol=udp", "--timeout=2s", f"127.0.0.1:{port}")).returncode == 0
    refused = run(agnhost("connect", "--protocol=udp", "--timeout=2s", f"127.0.0.1:{port}"))
    assert refused.returncode == 1 and refused.stderr.startswith("REFUSED: read udp 127.0.0.1:")


# ---- dns-suffix, dns-server-list, etc-hosts, pause --------------------------------------

def test_resolver_view(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 10.96.0.10\nsearch ns.svc.cluster.local svc.cluster.local cluster.local\n"
                    "options ndots:5\n")
    assert dnsinfo.dns_suffix_list(str(conf)) == ["ns.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    assert dnsinfo.dns_server_list(str(conf)) == ["10.96.0.10"]
    conf.write_text("options ndots:5\n")
    with pytest.raises(dnsinfo.GoPanic, match="Could not find DNS search list!"):
        dnsinfo.dns_suffix_list(str(conf))


def test_resolver_view_commands_read_this_machine():
    with open("/etc/resolv.conf") as f:
        text = f.read()
    suffix = run(agnhost("dns-suffix"))
    if any(line.startswith("search") for line in text.split("\n")):
        expected = next(line for line in text.split("\n") if line.startswith("search")).split(" ")[1:]
        assert (suffix.returncode, suffix.stdout) == (0, ",".join(expected) + "\n")
    else:
        assert suffix.returncode == 2 and suffix.stderr.startswith("panic: Could not find DNS search list!")
    hosts = run(agnhost("etc-hosts"))
    with open("/etc/hosts") as f:
        assert hosts.stdout == f.read() + "\n"
    assert run(agnhost("--v=4", "etc-hosts")).stdout == hosts.stdout     # klog flags before the subcommand
    assert run(agnhost("dns-server-list")).returncode in (0, 2)


def test_pause_prints_paused_and_exits_2_on_sigterm_1_on_sigint():
    for signum, code in ((signal.SIGTERM, 2), (signal.SIGINT, 1)):
        proc = start(agnhost("pause"))
        assert proc.stdout.readline() == "Paused\n"
        stop(proc, signum)
        assert proc.returncode == code
