"""The registry.k8s.io/e2e-test-images/httpd:2.4.38-4 image, without Apache.

That image is httpd:2.4.38-alpine mirrored; the apps and kubectl e2e tests
use it as their "webserver" (Deployments, rollouts, `kubectl run`). With its
stock config, `httpd-foreground` serves htdocs on port 80, and a client sees:

- GET/HEAD (and POST, which Apache's default handler treats as GET) of "/" or
  "/index.html": "<html><body><h1>It works!</h1></body></html>\\n" with
  `Server: Apache/2.4.38 (Unix)`, the file's ETag "2d-432a5e4a73a80" and
  Last-Modified, `Accept-Ranges: bytes`, `Content-Type: text/html`; a 304
  for a matching If-None-Match or If-Modified-Since;
- any other path: Apache's 404 page (text/html; charset=iso-8859-1);
  OPTIONS: 200 with Allow; other methods: 405;
- one access-log line per request on stdout in the common log format, and
  the startup and shutdown notices on stderr (AH00558, AH00489, AH00094;
  AH00491 on SIGTERM, AH00492 on SIGWINCH, the image's STOPSIGNAL).

Listens on 0.0.0.0:80; `--listen ADDR:PORT` or NSPLANE_HTTPD_LISTEN override it.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
from datetime import datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from agent.node.workloads.signals import WorkerThreadsBlockSignals, spawn

SERVER = "Apache/2.4.38 (Unix)"
IT_WORKS = b"<html><body><h1>It works!</h1></body></html>\n"
ETAG = '"2d-432a5e4a73a80"'
LAST_MODIFIED = "Mon, 11 Jun 2007 18:53:14 GMT"
ALLOW = "POST,OPTIONS,HEAD,GET"


def not_found_page(path: str) -> bytes:
    return ('<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n'
            "<title>404 Not Found</title>\n</head><body>\n<h1>Not Found</h1>\n"
            f"<p>The requested URL {path} was not found on this server.</p>\n"
            "</body></html>\n").encode()


def method_not_allowed_page(method: str, path: str) -> bytes:
    return ('<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n'
            "<title>405 Method Not Allowed</title>\n</head><body>\n<h1>Method Not Allowed</h1>\n"
            f"<p>The requested method {method} is not allowed for the URL {path}.</p>\n"
            "</body></html>\n").encode()


def error_log(module: str, message: str) -> None:
    """An Apache error-log line: "[Wed Apr 16 12:00:00.123456 2025] [mpm_event:notice] ..."."""
    now = datetime.now()
    stamp = now.strftime("%a %b %d %H:%M:%S") + f".{now.microsecond:06d} {now.year}"
    sys.stderr.write(f"[{stamp}] [{module}] [pid {os.getpid()}:tid {threading.get_ident()}] {message}\n")
    sys.stderr.flush()


class HttpdHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle holds
    # the body until the client's delayed ACK (40 ms) on every keep-alive request.
    disable_nagle_algorithm = True
    timeout = 5                     # Apache's KeepAliveTimeout

    def version_string(self) -> str:
        return SERVER

    def __getattr__(self, name: str):
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def _serve(self) -> None:
        path = self.path.split("?", 1)[0]
        if self.command == "OPTIONS":
            self._respond(200, b"", {"Allow": ALLOW}, content_type=None)
        elif path not in ("/", "/index.html"):
            self._respond(404, not_found_page(path), {}, "text/html; charset=iso-8859-1")
        elif self.command not in ("GET", "HEAD", "POST"):
            self._respond(405, method_not_allowed_page(self.command, path), {"Allow": ALLOW},
                          "text/html; charset=iso-8859-1")
        elif self.headers.get("If-None-Match") == ETAG or \
                self.headers.get("If-Modified-Since") == LAST_MODIFIED:
            self._respond(304, b"", {"ETag": ETAG}, content_type=None)
        else:
            self._respond(200, IT_WORKS, {"Last-Modified": LAST_MODIFIED, "ETag": ETAG,
                                          "Accept-Ranges": "bytes"}, "text/html")

    def _respond(self, code: int, body: bytes, headers: dict, content_type: str | None) -> None:
        self.send_response_only(code)
        self.send_header("Date", formatdate(usegmt=True))
        self.send_header("Server", SERVER)
        for key, value in headers.items():
            self.send_header(key, value)
        if code != 304:
            self.send_header("Content-Length", str(len(body)))
        if content_type:
            self.send_header("Content-Type", content_type)
        self.end_headers()
        sent = len(body) if self.command != "HEAD" and code != 304 else 0
        if sent:
            self.wfile.write(body)
        self._access_log(code, sent)

    def _access_log(self, code: int, sent: int) -> None:
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z")
        sys.stdout.write(f'{self.client_address[0]} - - [{stamp}] "{self.requestline}" {code} '
                         f"{sent or '-'}\n")
        sys.stdout.flush()

    def log_message(self, format: str, *args) -> None:
        """The access log is written by _access_log."""


class HttpdServer(WorkerThreadsBlockSignals, ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name, self.server_port = "localhost", self.server_address[1]


def own_address() -> str:
    """The address httpd names in AH00558 (the pod's IP)."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="httpd-foreground", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default=os.environ.get("NSPLANE_HTTPD_LISTEN", "0.0.0.0:80"))
    opts, _ignored = parser.parse_known_args(argv)
    host, _, port = opts.listen.rpartition(":")
    try:
        server = HttpdServer((host or "0.0.0.0", int(port)), HttpdHandler)
    except OSError as exc:
        sys.stderr.write(f"(98){exc.strerror}: AH00072: make_sock: could not bind to address "
                         f"{host or '0.0.0.0'}:{port}\nno listening sockets available, shutting down\n"
                         "AH00015: Unable to open logs\n")
        return 1
    ah00558 = (f"AH00558: httpd: Could not reliably determine the server's fully qualified domain name, "
               f"using {own_address()}. Set the 'ServerName' directive globally to suppress this message\n")
    sys.stderr.write(ah00558 * 2)
    error_log("mpm_event:notice", f"AH00489: {SERVER} configured -- resuming normal operations")
    error_log("core:notice", "AH00094: Command line: 'httpd -D FOREGROUND'")
    stop = threading.Event()
    messages = {signal.SIGTERM: "AH00491: caught SIGTERM, shutting down",
                signal.SIGINT: "AH00491: caught SIGTERM, shutting down",
                signal.SIGWINCH: "AH00492: caught SIGWINCH, shutting down gracefully"}
    for signum, message in messages.items():
        signal.signal(signum, lambda _s, _f, m=message: (error_log("mpm_event:notice", m), stop.set()))
    spawn(server.serve_forever)
    while not stop.wait(3600):
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
