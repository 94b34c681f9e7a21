"""agnhost netexec, run for real on 127.0.0.1: every endpoint, the UDP server,
the flags (--udp-port=-1, --http-override, --delay-shutdown, TLS, SCTP), and
the bytes netexec.go sends (status codes, bodies, newlines, JSON, headers)."""

import os
import re
import signal
import socket
import ssl
import subprocess
import time
from urllib.parse import quote

import pytest

from tests.unit.loopback import (
    agnhost,
    free_port,
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
NOW = re.compile(r"NOW: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? [+-]\d{4} \S+ m=\+\d+\.\d{9}")


@pytest.fixture(scope="module")
def ne(tmp_path_factory):
    """One netexec (HTTP + UDP) for the endpoint tests; `.uploads` is its /uploads."""
    http_port, udp_port = free_port(), free_port(socket.SOCK_DGRAM)
    uploads = tmp_path_factory.mktemp("uploads")
    with serve(agnhost("netexec", f"--http-port={http_port}", "--udp-port", str(udp_port)), http_port,
               env={"NSPLANE_AGNHOST_UPLOADS": str(uploads)}) as proc:
        proc.http, proc.udp, proc.uploads = http_port, udp_port, uploads
        deadline = time.monotonic() + 5
        while get(http_port, "/healthz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        yield proc
    assert f"Started HTTP server on port {http_port}" in proc.output[1]
    assert f"Started UDP server on port  {udp_port}" in proc.output[1]


def head_and_body(response: bytes) -> tuple[list[str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    return head.decode().split("\r\n"), body


def test_root_is_the_time_and_catches_every_other_path(ne):
    assert NOW.fullmatch(get(ne.http, "/")[2])
    assert NOW.fullmatch(get(ne.http, "/no/such/endpoint")[2])


def test_response_head_is_gos(ne):
    head, body = head_and_body(raw(ne.http, b"GET /hostname HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert head[0] == "HTTP/1.1 200 OK"
    assert re.fullmatch(r"Date: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", head[1])
    assert head[2:] == [f"Content-Length: {len(HOST)}", "Content-Type: text/plain; charset=utf-8",
                        "Connection: close"]
    assert body == HOST.encode()


def test_hostname_both_spellings_and_clientip(ne):
    assert get(ne.http, "/hostname")[:3:2] == (200, HOST)
    assert get(ne.http, "/hostName")[:3:2] == (200, HOST)
    status, _, body, local_port = get(ne.http, "/clientip")
    assert (status, body) == (200, f"127.0.0.1:{local_port}")


def test_echo(ne):
    assert get(ne.http, "/echo?msg=hello%20nsplane")[:3:2] == (200, "hello nsplane")
    assert get(ne.http, "/echo?msg=x&code=503")[:3:2] == (503, "x")
    assert get(ne.http, "/echo?msg=x&code=abc")[:3:2] == (200, "argument 'code' must be an integer or empty, got \"abc\"\n")
    status, headers, body, _ = get(ne.http, "/echo?msg=x&code=204")
    assert (status, body) == (204, "") and "Content-Length" not in headers
    # a body form value wins over the query's, as FormValue reads them
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert get(ne.http, "/echo?msg=query", "POST", form, "msg=body")[2] == "body"


def test_echo_with_an_impossible_code_drops_the_connection(ne):
    assert raw(ne.http, b"GET /echo?msg=x&code=42 HTTP/1.1\r\nHost: x\r\n\r\n") == b""


def test_header(ne):
    assert get(ne.http, "/header?key=x-test", headers={"X-Test": "v1"})[2] == "v1"
    request = b"GET /header HTTP/1.1\r\nHost: x\r\nX-B: 2\r\nx-a: 1\r\nX-A: 3\r\nConnection: close\r\n\r\n"
    assert head_and_body(raw(ne.http, request))[1] == b'{"Connection":["close"],"X-A":["1","3"],"X-B":["2"]}'


def test_healthz_and_readyz_once_udp_runs(ne):
    status, headers, body, _ = get(ne.http, "/healthz")
    assert (status, body, headers["Content-Length"]) == (200, "", "0") and "Content-Type" not in headers
    assert get(ne.http, "/readyz")[:3:2] == (200, "ok")


def dial(ne, **params):
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items())
    return get(ne.http, f"/dial?{query}")


def test_dial_http_and_udp(ne):
    assert dial(ne, request="hostname", host="127.0.0.1", port=ne.http, tries=2)[:3:2] == \
        (200, f'{{"responses":["{HOST}","{HOST}"]}}')
    # "/hostname" makes http://ip:port//hostname: ServeMux's 301, which the client follows
    assert dial(ne, request="/hostname", host="127.0.0.1", port=ne.http)[2] == f'{{"responses":["{HOST}"]}}'
    assert dial(ne, request="hostname", host="localhost", port=ne.udp, protocol="udp")[2] == \
        f'{{"responses":["{HOST}"]}}'
    assert dial(ne, request="echo <b>", host="127.0.0.1", port=ne.udp, protocol="UDP")[2] == \
        '{"responses":["\\u003cb\\u003e"]}'


def test_dial_errors_and_quirks(ne):
    closed = free_port()
    assert dial(ne, request="hostname", host="127.0.0.1", port=closed)[:3:2] == (200, (
        f'{{"errors":["Get \\"http://127.0.0.1:{closed}/hostname\\": dial tcp 127.0.0.1:{closed}: '
        'connect: connection refused"]}'))
    body = dial(ne, request="hostname", host="127.0.0.1", port=free_port(socket.SOCK_DGRAM), protocol="udp")[2]
    assert re.fullmatch(r'\{"errors":\["reading from udp connection failed\. err:\'read udp '
                        r'127\.0\.0\.1:\d+-\\u003e127\.0\.0\.1:\d+: read: connection refused\'"\]\}', body)
    # netexec.go keeps "responses" only if the last answer was not empty
    assert dial(ne, request="echo?msg=", host="127.0.0.1", port=ne.http)[2] == "{}"
    assert dial(ne, request="hostname", host="127.0.0.1", port=ne.http, tries=0)[2] == "{}"


def test_dial_bad_parameters_are_400(ne):
    status, headers, body, _ = dial(ne, host="127.0.0.1", port=ne.http)
    assert (status, body) == (400, "request parameter not specified. <nil>\n")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert dial(ne, request="x", host="h", port=1, tries="x")[:3:2] == \
        (400, 'tries parameter is invalid. strconv.Atoi: parsing "x": invalid syntax\n')
    assert dial(ne, request="x", host="h", port=1, protocol="tcp")[:3:2] == (400, "unsupported protocol. tcp\n")
    status, _, body, _ = dial(ne, request="x", host="no-such-host.invalid", port=80)
    assert status == 400 and body.startswith("host and/or port param are invalid. lookup no-such-host.invalid")
    assert dial(ne, request="x", host="127.0.0.1", port="nope")[2] == \
        "host and/or port param are invalid. lookup tcp/nope: unknown port\n"


def test_shell(ne):
    cmd = quote("echo '<hi>' && echo err >&2 && exit 3", safe="")
    assert get(ne.http, f"/shell?cmd={cmd}")[:3:2] == \
        (200, '{"error":"exit status 3","output":"\\u003chi\\u003e\\nerr\\n"}')
    assert get(ne.http, "/shell?shellCommand=true")[2] == "{}"
    assert get(ne.http, "/shell?cmd=kill%20-9%20%24%24")[2] == '{"error":"signal: killed"}'


def test_redirect(ne):
    status, headers, body, _ = get(ne.http, "/redirect?location=/echo%3Fmsg%3Dfoobar")
    assert (status, headers["Location"], headers["Content-Type"]) == (302, "/echo?msg=foobar", "text/html; charset=utf-8")
    assert body == '<a href="/echo?msg=foobar">Found</a>.\n\n'
    assert get(ne.http, "/redirect?location=/x&code=307")[0] == 307
    status, headers, body, _ = get(ne.http, "/redirect?location=/x", "POST")
    assert (status, body) == (302, "") and "Content-Type" not in headers


def test_unclean_path_is_redirected_and_garbage_is_400(ne):
    head, body = head_and_body(raw(ne.http, b"GET //hostname?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert head[0] == "HTTP/1.1 301 Moved Permanently" and "Location: /hostname?x=1" in head
    assert body == b'<a href="/hostname?x=1">Moved Permanently</a>.\n\n'
    assert raw(ne.http, b"garbage\r\n\r\n") == (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; "
                                                b"charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request")


def test_upload(ne):
    boundary = "XyZ"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
            f"Content-Type: text/plain\r\n\r\nhello upload\r\n--{boundary}--\r\n")
    status, _, out, _ = get(ne.http, "/upload", "POST", {"Content-Type": f"multipart/form-data; boundary={boundary}"},
                            body)
    assert status == 201
    path = re.fullmatch(r'\{"output":"(.*/upload\d+)"\}', out).group(1)
    assert os.path.dirname(path) == str(ne.uploads)
    with open(path) as f:
        assert f.read() == "hello upload"
    assert os.stat(path).st_mode & 0o777 == 0o700
    assert get(ne.http, "/upload", "POST")[:3:2] == (200, '{"error":"Unable to upload file."}')


def test_udp_commands(ne):
    assert udp(ne.udp, b"hostname\n")[0] == HOST.encode()
    assert udp(ne.udp, b"  HOSTNAME ")[0] == HOST.encode()
    assert udp(ne.udp, b"echo Hello World")[0] == b"hello world"
    answer, local_port = udp(ne.udp, b"clientip")
    assert answer == f"127.0.0.1:{local_port}".encode()
    with pytest.raises(TimeoutError):
        udp(ne.udp, b"bogus", timeout=0.5)


def test_without_udp_never_ready():
    port = free_port()
    with serve(agnhost("netexec", f"--http-port={port}", "--udp-port=-1"), port):
        assert get(port, "/healthz")[0] == 412
        assert get(port, "/readyz")[:3:2] == (412, "")


def test_http_override_serves_one_path_for_all():
    port = free_port()
    with serve(agnhost("netexec", f"--http-port={port}", "--udp-port=-1", "--http-override=/echo?msg=over"), port):
        assert get(port, "/hostname")[2] == "over"
        assert get(port, "/anything/at/all", "POST")[2] == "over"
    with serve(agnhost("netexec", f"--http-port={port}", "--udp-port=-1", "--http-override=/clientip"), port):
        assert get(port, "/hostname")[:3:2] == (200, "")       # the override request has no peer


def test_sigterm_with_delay_shutdown_turns_readyz_503():
    port, udp_port = free_port(), free_port(socket.SOCK_DGRAM)
    proc = start(agnhost("netexec", f"--http-port={port}", f"--udp-port={udp_port}", "--delay-shutdown=2"))
    try:
        wait_listening(port, proc)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert get(port, "/readyz")[:3:2] == (503, "shutting down")
        assert get(port, "/healthz")[0] == 200
        assert get(port, "/hostname")[2] == HOST            # still serving while it waits
        began = time.monotonic()
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - began > 0.8
    finally:
        _out, err = stop(proc)
    assert "Sleeping 2 seconds before terminating..." in err


def test_sigterm_without_delay_exits_0_at_once():
    port = free_port()
    proc = start(agnhost("netexec", f"--http-port={port}", "--udp-port=-1"))
    wait_listening(port, proc)
    stop(proc)
    assert proc.returncode == 0


def test_exit_and_shutdown():
    port = free_port()
    with serve(agnhost("netexec", f"--http-port={port}", "--udp-port=-1"), port) as proc:
        assert get(port, "/exit?wait=soon")[:3:2] == \
            (200, "argument 'wait' must be a valid golang duration or empty, got \"soon\"\n")
        assert raw(port, b"GET /exit?code=7 HTTP/1.1\r\nHost: x\r\n\r\n") == b""
        assert proc.wait(timeout=10) == 7
    assert "Will begin shutdown in 0s, allowing 0s for connections to close, then will exit with 7" in proc.output[1]
    with serve(agnhost("netexec", f"--http-port={port}", "--udp-port=-1"), port) as proc:
        head, _ = head_and_body(raw(port, b"GET /exit?code=3&timeout=1500ms HTTP/1.1\r\nHost: x\r\n\r\n"))
        assert head[0] == "HTTP/1.1 200 OK" and "Connection: close" in head
        assert proc.wait(timeout=10) == 3
    assert "allowing 1.5s for connections to close" in proc.output[1]
    assert "Graceful shutdown completed with: <nil>" in proc.output[1]
    with serve(agnhost("netexec", f"--http-port={port}", "--udp-port=-1"), port) as proc:
        assert raw(port, b"GET /shutdown HTTP/1.1\r\nHost: x\r\n\r\n") == b""
        assert proc.wait(timeout=10) == 0


def test_https(tmp_path):
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    port = free_port()
    with serve(agnhost("netexec", f"--http-port={port}", "--udp-port=-1", f"--tls-cert-file={cert}",
                       f"--tls-private-key-file={key}"), port):
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, \
                context.wrap_socket(sock) as tls:
            tls.sendall(b"GET /hostname HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := tls.recv(4096):
                data += chunk
        assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(HOST.encode())


def test_sctp_is_logged_as_unsupported_and_bind_conflicts_are_fatal():
    port = free_port()
    with serve(agnhost("netexec", f"--http-port={port}", "--udp-port=-1", "--sctp-port=5060"), port) as proc:
        clash = run(agnhost("netexec", f"--http-port={port}", "--udp-port=-1"),
                    env={"NSPLANE_AGNHOST_BIND": "127.0.0.1"})
    assert "SCTP is not available in nsplane pods: --sctp-port=5060 is not served" in proc.output[1]
    assert clash.returncode == 1
    assert clash.stderr.rstrip().endswith(f"listen tcp :{port}: bind: address already in use")


def test_flags_are_read_as_pflag_reads_them():
    bad = run(agnhost("netexec", "--bogus"))
    assert bad.returncode == 1 and bad.stderr.startswith("Error: unknown flag: --bogus\n")
    bad = run(agnhost("netexec", "--http-port", "eighty"))
    assert bad.returncode == 1 and 'invalid argument "eighty" for "--http-port" flag' in bad.stderr
    unknown = run(agnhost("guestbook"))
    assert unknown.returncode == 1 and 'Error: unknown command "guestbook" for "agnhost"' in unknown.stderr
