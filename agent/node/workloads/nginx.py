"""The `nginx` image's default behaviour, without nginx.

What the official image does with its stock config, as seen from a client and
from `kubectl logs`: it serves /usr/share/nginx/html (the "Welcome to nginx!"
index.html and 50x.html) on port 80 with `Server: nginx/1.27.5`, answers
other paths with nginx's own 404 page, GET/HEAD only (405 otherwise),
HTTP/1.1 keep-alive, ETag/Last-Modified with 304 on a match, one access-log
line per request on stdout in the image's `main` log format (combined plus
"$http_x_forwarded_for"), and the entrypoint's and nginx's startup notices.
SIGTERM/SIGINT stop it at once, SIGQUIT gracefully, like nginx.

`--release 1.14.2` is registry.k8s.io/e2e-test-images/nginx:1.14-4 (the
e2e tests' nginx, nginx:1.14-alpine mirrored): `Server: nginx/1.14.2`, that
release's 612-byte index.html and 50x.html with their 2018 validators, no
entrypoint script, and an error log at `warn`, so nothing on stderr at start
or stop.

A site mounted at /etc/nginx/conf.d (a ConfigMap volume) replaces the stock
one: its `server` blocks, in the subset nginxconf.py reads.

Listens on 0.0.0.0:80; `--listen ADDR:PORT` or NSPLANE_NGINX_LISTEN override
it (tests use 127.0.0.1 and a free port).
"""

from __future__ import annotations

import argparse
import calendar
import os
import platform
import re
import resource
import signal
import sys
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from agent.node.workloads import nginxconf
from agent.node.workloads.signals import WorkerThreadsBlockSignals, spawn

VERSION = "1.27.5"
SERVER = f"nginx/{VERSION}"
KEEPALIVE_TIMEOUT = 65
CRLF = "\r\n"

INDEX_HTML = """<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p>For online documentation and support please refer to
<a href="http://nginx.org/">nginx.org</a>.<br/>
Commercial support is available at
<a href="http://nginx.com/">nginx.com</a>.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
"""

ERROR_50X_HTML = """<!DOCTYPE html>
<html>
<head>
<title>Error</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>An error occurred.</h1>
<p>Sorry, the page you are looking for is currently unavailable.<br/>
Please try again later.</p>
<p>If you are the system administrator of this resource then you should check
the error log for details.</p>
<p><em>Faithfully yours, nginx.</em></p>
</body>
</html>
"""

INDEX_HTML_1_14 = """<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
    body {
        width: 35em;
        margin: 0 auto;
        font-family: Tahoma, Verdana, Arial, sans-serif;
    }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p>For online documentation and support please refer to
<a href="http://nginx.org/">nginx.org</a>.<br/>
Commercial support is available at
<a href="http://nginx.com/">nginx.com</a>.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
"""

ERROR_50X_HTML_1_14 = """<!DOCTYPE html>
<html>
<head>
<title>Error</title>
<style>
    body {
        width: 35em;
        margin: 0 auto;
        font-family: Tahoma, Verdana, Arial, sans-serif;
    }
</style>
</head>
<body>
<h1>An error occurred.</h1>
<p>Sorry, the page you are looking for is currently unavailable.<br/>
Please try again later.</p>
<p>If you are the system administrator of this resource then you should check
the <a href="http://nginx.org/r/error_log">error log</a> for details.</p>
<p><em>Faithfully yours, nginx.</em></p>
</body>
</html>
"""

REASONS = {400: "Bad Request", 404: "Not Found", 405: "Not Allowed",
           414: "Request-URI Too Large", 500: "Internal Server Error"}


class StaticFile:
    """One file under the document root, with its validators."""

    def __init__(self, text: str, mtime: int):
        self.body = text.encode()
        self.last_modified = formatdate(mtime, usegmt=True)
        self.etag = f'"{mtime:x}-{len(self.body):x}"'


@dataclass(frozen=True)
class Release:
    """What differs between the nginx images we stand in for."""

    version: str
    index_html: str
    error_50x_html: str
    html_mtime: int            # the html files' mtime in the image (Last-Modified, ETag)
    entrypoint: bool           # the image starts through /docker-entrypoint.sh
    notices: bool              # error_log at "notice" (else "warn": no startup lines)


RELEASES = {
    "1.27.5": Release("1.27.5", INDEX_HTML, ERROR_50X_HTML, calendar.timegm((2025, 4, 16, 12, 55, 34)),
                      entrypoint=True, notices=True),
    "1.14.2": Release("1.14.2", INDEX_HTML_1_14, ERROR_50X_HTML_1_14,
                      calendar.timegm((2018, 12, 4, 14, 44, 49)), entrypoint=False, notices=False),
}
RELEASE = RELEASES[VERSION]
DOCROOT: dict[str, StaticFile] = {}


def use_release(version: str) -> None:
    """Serve as nginx `version` does (its Server header, pages and logging)."""
    global RELEASE, SERVER, DOCROOT
    RELEASE = RELEASES[version]
    SERVER = f"nginx/{RELEASE.version}"
    DOCROOT = {"/index.html": StaticFile(RELEASE.index_html, RELEASE.html_mtime),
               "/50x.html": StaticFile(RELEASE.error_50x_html, RELEASE.html_mtime)}


use_release(VERSION)


def error_page(code: int) -> bytes:
    """nginx's built-in error page for `code` (CRLF line ends, as nginx)."""
    title = f"{code} {REASONS.get(code, 'Error')}"
    lines = ["<html>", f"<head><title>{title}</title></head>", "<body>",
             f"<center><h1>{title}</h1></center>", f"<hr><center>{SERVER}</center>",
             "</body>", "</html>"]
    return (CRLF.join(lines) + CRLF).encode()


def resolve_path(target: str) -> str | None:
    """Request target -> normalised URI path; None if it escapes the root."""
    if target.startswith("/"):  # origin-form; "//x" is a path, not a host
        raw = target.split("?", 1)[0].split("#", 1)[0]
    else:  # absolute-form, "http://host/path"
        raw = urlsplit(target).path or "/"
    path = unquote(raw)
    if not path.startswith("/"):
        return None
    stack: list[str] = []
    for part in re.sub("/+", "/", path).split("/")[1:]:
        if part == "..":
            if not stack:
                return None
            stack.pop()
        elif part != ".":
            stack.append(part)
    return "/" + "/".join(stack)


def lookup(uri: str) -> StaticFile | None:
    """The file nginx's `location /` serves for `uri` (index on "/")."""
    if uri.endswith("/"):
        return DOCROOT["/index.html"] if uri == "/" else None
    return DOCROOT.get(uri)


def log_escape(value: str | None) -> str:
    """nginx escapes '"', '\\' and non-printables in log variables as \\xHH."""
    if not value:
        return "-"
    return "".join(c if 0x20 <= ord(c) < 0x7f and c not in '"\\'
                   else "".join(f"\\x{b:02X}" for b in c.encode()) for c in value)


def notice(message: str, level: str = "notice") -> None:
    """An nginx error-log line (the image sends error.log to stderr)."""
    if level == "notice" and not RELEASE.notices:
        return
    pid = os.getpid()
    stamp = time.strftime("%Y/%m/%d %H:%M:%S")
    sys.stderr.write(f"{stamp} [{level}] {pid}#{pid}: {message}\n")
    sys.stderr.flush()


class NginxHandler(BaseHTTPRequestHandler):
    """One connection; HTTP/1.1 keep-alive until the client or timeout ends it."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle holds
    # the body until the client's delayed ACK (40 ms) on every keep-alive request.
    disable_nagle_algorithm = True
    timeout = KEEPALIVE_TIMEOUT
    server_version = SERVER
    sys_version = ""

    def version_string(self) -> str:
        return SERVER

    def do_GET(self) -> None:
        self._static(head=False)

    def do_HEAD(self) -> None:
        self._static(head=True)

    def _not_allowed(self) -> None:
        self._error(405)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def _static(self, head: bool) -> None:
        uri = resolve_path(self.path)
        if uri is None:
            self._error(400)
            return
        found = lookup(uri)
        if found is None:
            self._error(404, head=head)
        elif self._not_modified(found):
            self._respond(304, b"", found, head=True)
        else:
            self._respond(200, found.body, found, head=head)

    def _not_modified(self, found: StaticFile) -> bool:
        inm = self.headers.get("If-None-Match")
        if inm is not None:
            return inm.strip() == "*" or found.etag in [t.strip() for t in inm.split(",")]
        return self.headers.get("If-Modified-Since") == found.last_modified

    def _respond(self, code: int, body: bytes, found: StaticFile | None,
                 head: bool = False, content_type: str = "text/html", extra=()) -> None:
        self.send_response_only(code, REASONS.get(code))  # "405 Not Allowed"
        for name, value in extra:
            self.send_header(name, value)
        self.send_header("Server", SERVER)
        self.send_header("Date", self.date_time_string())
        if code != 304:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        if found is not None:
            self.send_header("Last-Modified", found.last_modified)
        self.send_header("Connection", "close" if self.close_connection else "keep-alive")
        if found is not None:
            self.send_header("ETag", found.etag)
            if code == 200:
                self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        sent = 0 if head or code == 304 else len(body)
        if sent:
            self.wfile.write(body)
        self._access_log(code, sent)

    def _error(self, code: int, head: bool = False) -> None:
        if code in (400, 414):
            self.close_connection = True
        self._respond(code, error_page(code), None, head=head)

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """Malformed requests get nginx's page, not http.server's."""
        if not hasattr(self, "headers"):
            self.headers = {}  # parse failed before headers were read
        if code == 501:  # unknown method: nginx's static handler says 405
            code = 405
        self._error(code if code in REASONS else 400)

    def _access_log(self, status: int, sent: int) -> None:
        headers = self.headers
        request = getattr(self, "requestline", "") or ""
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z")
        line = (f'{self.client_address[0]} - - [{stamp}] "{log_escape(request)}" '
                f'{status} {sent} "{log_escape(headers.get("Referer"))}" '
                f'"{log_escape(headers.get("User-Agent"))}" '
                f'"{log_escape(headers.get("X-Forwarded-For"))}"\n')
        sys.stdout.write(line)
        sys.stdout.flush()

    def log_request(self, code="-", size="-") -> None:
        """The access log is written by _access_log, with the body size."""

    def log_error(self, format: str, *args) -> None:
        """Timeouts of idle keep-alive connections are not errors in nginx."""


class SiteHandler(NginxHandler):
    """A `server` block of /etc/nginx/conf.d (nginxconf.py) instead of the stock site."""
    site: nginxconf.Server

    def _static(self, head: bool) -> None:
        uri = resolve_path(self.path)
        if uri is None:
            self._error(400)
            return
        ans = nginxconf.answer(self.site, uri)
        stock = lookup(uri) if nginxconf.root_for(self.site, uri) == nginxconf.STOCK_ROOT else None
        if ans.code == 404 and stock is not None:     # the image's own pages, which the stand-in holds
            ans = nginxconf.Answer(200, stock.body, headers=ans.headers)
        body = ans.body if ans.body is not None else (error_page(ans.code) if ans.code >= 400 else b"")
        self._respond(ans.code, body, None, head=head,
                      content_type=ans.content_type if ans.body is not None else "text/html", extra=ans.headers)


class NginxServer(WorkerThreadsBlockSignals, ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def parse_listen(value: str) -> tuple[str, int]:
    """"127.0.0.1:8080" or "8080" -> (host, port)."""
    host, _, port = value.rpartition(":")
    return host or "0.0.0.0", int(port)


def startup_banner(workers: int = 1) -> None:
    """What the image prints: entrypoint lines on stdout, notices on stderr."""
    ep = "/docker-entrypoint.sh"
    for line in () if not RELEASE.entrypoint else (
        f"{ep}: /docker-entrypoint.d/ is not empty, will attempt to perform configuration",
        f"{ep}: Looking for shell scripts in /docker-entrypoint.d/",
        f"{ep}: Launching /docker-entrypoint.d/10-listen-on-ipv6-by-default.sh",
        "10-listen-on-ipv6-by-default.sh: info: ipv6 not available",
        f"{ep}: Sourcing /docker-entrypoint.d/15-local-resolvers.envsh",
        f"{ep}: Launching /docker-entrypoint.d/20-envsubst-on-templates.sh",
        f"{ep}: Launching /docker-entrypoint.d/30-tune-worker-processes.sh",
        f"{ep}: Configuration complete; ready for start up",
    ):
        sys.stdout.write(line + "\n")
    sys.stdout.flush()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    notice('using the "epoll" event method')
    notice(SERVER)
    notice(f"OS: {platform.system()} {platform.release()}")
    notice(f"getrlimit(RLIMIT_NOFILE): {soft}:{hard}")
    notice("start worker processes")
    notice(f"start worker process {os.getpid()}")


SIGNAL_NOTICES = {signal.SIGTERM: "signal 15 (SIGTERM) received, exiting",
                  signal.SIGINT: "signal 2 (SIGINT) received, exiting",
                  signal.SIGQUIT: "signal 3 (SIGQUIT) received, shutting down"}


def _servers(host: str, port: int, sites: list[nginxconf.Server]) -> list[NginxServer]:
    """One listening server for the stock site, or one per conf.d `server` block."""
    if not sites:
        return [NginxServer((host, port), NginxHandler)]
    out = []
    for site in sites:
        for warning in site.warnings:
            notice(warning, "warn")
        handler = type("Site", (SiteHandler,), {"site": site})
        out.append(NginxServer(site.listen, handler))
    return out


def serve(host: str, port: int, sites: list | None = None) -> int:
    """Run until SIGTERM/SIGINT/SIGQUIT; return the exit code."""
    try:
        servers = _servers(host, port, sites or [])
    except OSError as exc:
        notice(f"bind() to {host}:{port} failed ({exc.errno}: {exc.strerror})", "emerg")
        return 1
    stop = threading.Event()

    def on_signal(signum, _frame):
        notice(SIGNAL_NOTICES[signum])
        stop.set()

    for signum in SIGNAL_NOTICES:
        signal.signal(signum, on_signal)
    startup_banner()
    for server in servers:
        spawn(server.serve_forever)
    while not stop.wait(3600):
        pass
    for server in servers:
        server.shutdown()
        server.server_close()
    notice("exit")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nginx", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default=os.environ.get("NSPLANE_NGINX_LISTEN", "0.0.0.0:80"),
                        help="ADDR:PORT to listen on (default 0.0.0.0:80)")
    parser.add_argument("--release", default=VERSION, choices=sorted(RELEASES),
                        help=f"the nginx image to be (default {VERSION})")
    opts, _ignored = parser.parse_known_args(argv)  # e.g. -g "daemon off;"
    use_release(opts.release)
    host, port = parse_listen(opts.listen)
    try:
        sites = nginxconf.load(only_mounted=True)
    except (nginxconf.ConfigError, ValueError, OSError) as e:
        notice(str(e), "emerg")
        return 1
    return serve(host, port, sites)


if __name__ == "__main__":
    sys.exit(main())
