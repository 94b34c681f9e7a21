"""The e2e-test-images/agnhost image's `netexec` and `pause`, without Go.

Kubernetes' own Service tests run `agnhost netexec` and ask it who it is
(/hostname), who called (/clientip), to echo and to dial other endpoints.
This module answers like test/images/agnhost/netexec/netexec.go:

HTTP (--http-port, default 8080): / ("NOW: <time>", also every unknown path,
as Go's ServeMux does), /clientip ("ip:port" of the peer), /echo?msg=&code=,
/healthz (200 once the UDP server runs, else 412), /hostname and /hostName,
/dial?host=&port=&request=&protocol=http|udp&tries=, /shell?cmd=, /redirect,
/exit?code=&timeout=&wait=, /shutdown. Bodies are text/plain like Go's.
UDP (--udp-port, default 8081, -1 disables): "hostname", "echo <msg>",
"clientip"; input is trimmed and lower-cased first, as agnhost does.
Log lines go to stderr in Go's `log` format.

NSPLANE_AGNHOST_BIND (an address) restricts where it listens, for tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

BIND = os.environ.get("NSPLANE_AGNHOST_BIND", "")
_STARTED = time.monotonic()
_UDP_READY = threading.Event()


def log(message: str) -> None:
    """Go's log.Printf: "2006/01/02 15:04:05 message" on stderr."""
    sys.stderr.write(f"{time.strftime('%Y/%m/%d %H:%M:%S')} {message}\n")
    sys.stderr.flush()


def hostname() -> str:
    """The pod's hostname (its UTS namespace holds the pod name)."""
    return socket.gethostname()


def go_time_now() -> str:
    """time.Now().String(): "2025-04-16 12:00:00.123456789 +0000 UTC m=+1.5"."""
    now = datetime.now().astimezone()
    frac = f"{now.microsecond:06d}000".rstrip("0")
    stamp = now.strftime("%Y-%m-%d %H:%M:%S") + (f".{frac}" if frac else "")
    mono = f"{time.monotonic() - _STARTED:.9f}"
    return f"{stamp} {now.strftime('%z')} {now.tzname()} m=+{mono}"


def parse_duration(text: str) -> float:
    """A Go duration ("1.5s", "300ms", "1m30s") in seconds; "" is 0."""
    if not text:
        return 0.0
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0,
             "m": 60.0, "h": 3600.0}
    parts = re.findall(r"([0-9.]+)(ns|us|µs|ms|s|m|h)", text)
    if text == "0":
        return 0.0
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(text)
    return sum(float(n) * units[u] for n, u in parts)


def udp_reply(text: str, client: tuple[str, int]) -> str | None:
    """netexec's UDP protocol: the answer to datagram `text`, or None."""
    received = text.strip().lower()
    if received == "hostname":
        return hostname()
    if received.startswith("echo "):
        return received.split(" ", 1)[1]
    if received == "clientip":
        return f"{client[0]}:{client[1]}"
    if received:
        log(f"Unknown UDP command received from {client[0]}:{client[1]}: {received}")
    return None


def serve_udp(address: str, port: int) -> None:
    """The UDP server loop (a daemon thread); sets readiness while it runs."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, port))
    log(f"Started UDP server on port {address} {port}")
    _UDP_READY.set()
    try:
        while True:
            data, client = sock.recvfrom(2048)
            answer = udp_reply(data.decode(errors="replace"), client)
            if answer is not None:
                sock.sendto(answer.encode(), client)
    finally:
        log("UDP server exited")
        _UDP_READY.clear()


def dial(protocol: str, host: str, port: str, request: str) -> str:
    """One /dial attempt; raises OSError (or ValueError) on failure."""
    if protocol in ("", "http"):
        url = f"http://{host}:{port}/{request}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode(errors="replace")
    if protocol == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.connect((host, int(port)))
            sock.send(request.encode())
            data = sock.recv(2048)
            if not data:
                raise OSError("reading from udp connection failed. err:'EOF'")
            return data.decode(errors="replace")
    raise ValueError(f"unsupported protocol. {protocol}")


class NetexecHandler(BaseHTTPRequestHandler):
    """Routes like netexec's ServeMux; any method reaches the handlers."""

    protocol_version = "HTTP/1.1"
    timeout = 180

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        self.query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        route = ROUTES.get(url.path, NetexecHandler.root_handler)
        route(self)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch

    def reply(self, body: str = "", code: int = 200, headers: dict | None = None) -> None:
        data = body.encode()
        self.send_response_only(code)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Length", str(len(data)))
        if data:
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def log_request(self, code="-", size="-") -> None:
        """Handlers log like netexec ("GET /hostname"), not like http.server."""

    def log_error(self, format: str, *args) -> None:
        """Idle keep-alive timeouts are not worth a line."""

    # ---- handlers (names follow netexec.go) ----

    def root_handler(self) -> None:
        log("GET /")
        self.reply(f"NOW: {go_time_now()}")

    def clientip_handler(self) -> None:
        log("GET /clientip")
        self.reply(f"{self.client_address[0]}:{self.client_address[1]}")

    def echo_handler(self) -> None:
        msg, code = self.query.get("msg", ""), self.query.get("code", "")
        log(f"GET /echo?msg={msg}&code={code}")
        if code and not (code.isdigit() and 100 <= int(code) <= 999):
            self.reply(f"argument 'code' must be an integer or empty, got {json.dumps(code)}\n")
            return
        self.reply(msg, int(code) if code else 200)

    def healthz_handler(self) -> None:
        log("GET /healthz")
        self.reply("", 200 if _UDP_READY.is_set() else 412)

    def hostname_handler(self) -> None:
        log(f"GET {urlsplit(self.path).path}")
        self.reply(hostname())

    def dial_handler(self) -> None:
        q = self.query
        host, port, request = q.get("host", ""), q.get("port", ""), q.get("request", "")
        protocol, tries = q.get("protocol", ""), q.get("tries", "")
        log(f"GET /dial?host={host}&protocol={protocol}&port={port}&request={request}&tries={tries}")
        if tries and not tries.isdigit():
            self.reply(f"tries parameter is invalid. {tries}\n", 400)
            return
        if not request:
            self.reply("request parameter not specified. <nil>\n", 400)
            return
        responses, errors = [], []
        for _ in range(min(int(tries or 1), 100)):
            try:
                responses.append(dial(protocol.lower(), host, port, request))
            except ValueError as exc:
                self.reply(f"{exc}\n", 400)
                return
            except OSError as exc:
                errors.append(str(exc))
        output = {}
        if responses:
            output["responses"] = responses
        if errors:
            output["errors"] = errors
        self.reply(json.dumps(output, separators=(",", ":")))

    def shell_handler(self) -> None:
        cmd = self.query.get("shellCommand") or self.query.get("cmd", "")
        log(f"GET /shell?cmd={cmd}")
        output = {}
        try:
            proc = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True,
                                  timeout=60, check=False)
            if proc.stdout or proc.stderr:
                output["output"] = (proc.stdout + proc.stderr).decode(errors="replace")
            if proc.returncode != 0:
                output["error"] = f"exit status {proc.returncode}"
        except subprocess.TimeoutExpired:
            output["error"] = "signal: killed"
        self.reply(json.dumps(output, separators=(",", ":")),
                   417 if "error" in output else 200)

    def redirect_handler(self) -> None:
        location, code = self.query.get("location", ""), self.query.get("code", "")
        log(f"{self.command} /redirect?msg={location}&code={code}")
        status = int(code) if code.isdigit() else 302
        self.reply("", status, {"Location": location})

    def exit_handler(self) -> None:
        q = self.query
        code, timeout, wait = q.get("code", ""), q.get("timeout", ""), q.get("wait", "")
        log(f"GET /exit?code={code}&timeout={timeout}&wait={wait}")
        try:
            wait_s, timeout_s = parse_duration(wait), parse_duration(timeout)
        except ValueError as exc:
            self.reply(f"argument must be a valid golang duration or empty, got \"{exc}\"\n")
            return
        if code and not code.isdigit():
            self.reply(f"argument 'code' must be an integer [0-127] or empty, got \"{code}\"\n")
            return
        log(f"Will begin shutdown in {wait or '0s'}, allowing {timeout or '0s'} for "
            f"connections to close, then will exit with {int(code or 0)}")
        time.sleep(min(wait_s, 600))
        if timeout_s:
            self.reply("")
            time.sleep(min(timeout_s, 600))
        os._exit(int(code or 0))

    def shutdown_handler(self) -> None:
        log("GET /shutdown")
        os._exit(0)


ROUTES = {"/clientip": NetexecHandler.clientip_handler, "/echo": NetexecHandler.echo_handler,
          "/healthz": NetexecHandler.healthz_handler, "/hostname": NetexecHandler.hostname_handler,
          "/hostName": NetexecHandler.hostname_handler, "/dial": NetexecHandler.dial_handler,
          "/shell": NetexecHandler.shell_handler, "/redirect": NetexecHandler.redirect_handler,
          "/exit": NetexecHandler.exit_handler, "/shutdown": NetexecHandler.shutdown_handler}


class NetexecServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def netexec(http_port: int, udp_port: int, udp_addresses: str = "") -> int:
    """Run netexec until killed (SIGTERM ends it, as Go's default does)."""
    if udp_port != -1:
        for address in sorted(set(udp_addresses.split(","))) if udp_addresses else [BIND]:
            threading.Thread(target=serve_udp, args=(address, udp_port), daemon=True).start()
    try:
        server = NetexecServer((BIND, http_port), NetexecHandler)
    except OSError as exc:
        log(f"listen tcp :{http_port}: bind: {exc.strerror.lower()}")
        return 1
    log(f"Started HTTP server on port {http_port}")
    server.serve_forever()
    return 0


def pause() -> int:
    """agnhost pause: print "Paused", exit 1 on SIGINT and 2 on SIGTERM."""
    codes = {signal.SIGINT: 1, signal.SIGTERM: 2}
    for signum, code in codes.items():
        signal.signal(signum, lambda _s, _f, c=code: os._exit(c))
    print("Paused", flush=True)   # only once the handlers are in: a SIGTERM right after must exit 2
    while True:
        signal.pause()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="agnhost")
    sub = parser.add_subparsers(dest="command", required=True)
    net = sub.add_parser("netexec", help="HTTP and UDP servers for Service tests")
    net.add_argument("--http-port", type=int, default=8080)
    net.add_argument("--udp-port", type=int, default=8081)
    net.add_argument("--sctp-port", type=int, default=-1)
    net.add_argument("--udp-listen-addresses", default="")
    sub.add_parser("pause", help="sleep until a signal")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    if opts.command == "pause":
        return pause()
    if opts.sctp_port != -1:
        log("SCTP is not supported by nsplane's agnhost; ignoring --sctp-port")
    return netexec(opts.http_port, opts.udp_port, opts.udp_listen_addresses)


if __name__ == "__main__":
    sys.exit(main())
