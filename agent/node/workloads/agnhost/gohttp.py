"""A Go `net/http` server in Python, for the agnhost stand-ins.

agnhost's servers are Go `http.Server`s over `http.ServeMux`, and clients see
Go's habits, which this module reproduces:

- the response head: handler headers sorted by key, then `Date`,
  `Content-Length`, and a `Content-Type` sniffed from the body when the handler
  set none (http.DetectContentType); no body and no length for 1xx/204/304;
  `Connection: close` when the client asked or the server is shutting down;
  `HTTP/1.x <code> <text>` with "status code N" for codes Go does not name;
- any method reaches the handlers; a path that is not clean (`//hostname`,
  `/a/../b`) gets ServeMux's 301 to the clean path; a malformed request gets
  Go's bare "400 Bad Request";
- `WriteHeader` with a code outside 100-999 panics: the server logs
  "http: panic serving ..." and drops the connection without an answer;
- `RemoteAddr` is "ip:port" (IPv4-mapped peers shown as IPv4), `FormValue`
  reads a urlencoded or multipart body before the query, `Header.Get` is
  case-insensitive;
- a listener on ":port" is dual-stack (one IPv6 socket taking IPv4 too),
  falling back to IPv4 where the namespace has no IPv6; TLS when given a
  certificate and key, the handshake done in the connection's own thread;
- `shutdown(timeout)` as `http.Server.Shutdown`: stop accepting, let the
  requests in flight finish, give up after `timeout`.

`http_error`, `redirect` and `ServeMux` are net/http's functions of the same
names; `spawn` (from ..signals) starts a goroutine.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ThreadingMixIn
from urllib.parse import unquote, urlsplit

from agent.node.workloads.agnhost import gofmt
from agent.node.workloads.signals import WorkerThreadsBlockSignals, spawn

MAX_BODY = 32 << 20            # ParseMultipartForm's memory limit in agnhost
CRLF = b"\r\n"


class InvalidWriteHeader(Exception):
    """net/http panics on WriteHeader(code) for code < 100 or > 999."""


@dataclass
class Request:
    """The part of an *http.Request the handlers read."""

    method: str
    path: str                       # URL.Path, unescaped
    raw_query: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)   # canonical keys
    remote_addr: str = ""
    body: bytes = b""
    proto: str = "HTTP/1.1"
    _form: dict | None = None
    _files: dict | None = None

    def query(self) -> dict[str, list[str]]:
        return gofmt.parse_query(self.raw_query)

    def query_get(self, key: str) -> str:
        """URL.Query().Get(key)."""
        return (self.query().get(key) or [""])[0]

    def header(self, key: str) -> str:
        """Header.Get(key): the first value, "" when absent."""
        key = gofmt.canonical_header_key(key)
        return next((v for k, v in self.headers if k == key), "")

    def header_map(self) -> dict[str, list[str]]:
        """r.Header as a map[string][]string (Go moves Host and Transfer-Encoding out)."""
        out: dict[str, list[str]] = {}
        for key, value in self.headers:
            if key not in ("Host", "Transfer-Encoding"):
                out.setdefault(key, []).append(value)
        return out

    def form_value(self, key: str) -> str:
        """FormValue: a urlencoded/multipart body's value first, then the query's."""
        self._parse_form()
        values = self._form.get(key) or self.query().get(key) or [""]
        return values[0]

    def form_file(self, key: str) -> bytes | None:
        """FormFile(key)'s content, None when the request carries no such file."""
        self._parse_form()
        return self._files.get(key)

    def _parse_form(self) -> None:
        if self._form is not None:
            return
        self._form, self._files = {}, {}
        if self.method not in ("POST", "PUT", "PATCH"):
            return
        ctype = self.header("Content-Type")
        kind = ctype.split(";", 1)[0].strip().lower()
        if kind == "application/x-www-form-urlencoded":
            self._form = gofmt.parse_query(self.body.decode(errors="replace"))
        elif kind == "multipart/form-data":
            message = BytesParser(policy=HTTP).parsebytes(
                b"Content-Type: " + ctype.encode() + CRLF + CRLF + self.body)
            if not message.is_multipart():
                return
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True) or b""
                if part.get_filename() is not None:
                    self._files.setdefault(name, payload)
                elif name:
                    self._form.setdefault(name, []).append(payload.decode(errors="replace"))


class ResponseWriter:
    """http.ResponseWriter: headers, then WriteHeader, then the body."""

    def __init__(self, handler: GoHandler):
        self._handler = handler
        self.headers: dict[str, list[str]] = {}
        self.status: int | None = None
        self.body = bytearray()

    def set(self, key: str, value: str) -> None:
        self.headers[gofmt.canonical_header_key(key)] = [value]

    def add(self, key: str, value: str) -> None:
        self.headers.setdefault(gofmt.canonical_header_key(key), []).append(value)

    def delete(self, key: str) -> None:
        self.headers.pop(gofmt.canonical_header_key(key), None)

    def write_header(self, code: int) -> None:
        if self.status is not None:
            return                          # "superfluous response.WriteHeader call"
        if code < 100 or code > 999:
            raise InvalidWriteHeader(code)
        if code < 200 and code != 101:    # informational: sent now, the final answer follows
            self._handler.send_head(code, self.headers, informational=True)
            return
        self.status = code

    def write(self, data: bytes | str) -> None:
        if self.status is None:
            self.status = 200
        self.body += data.encode() if isinstance(data, str) else data


def body_allowed(code: int) -> bool:
    return not (100 <= code < 200 or code in (204, 304))


def http_error(w: ResponseWriter, message: str, code: int) -> None:
    """http.Error: text/plain, nosniff, the message and a newline."""
    w.delete("Content-Length")
    w.set("Content-Type", "text/plain; charset=utf-8")
    w.set("X-Content-Type-Options", "nosniff")
    w.write_header(code)
    w.write(message + "\n")


def redirect(w: ResponseWriter, r: Request, url: str, code: int) -> None:
    """http.Redirect: a relative target is made absolute against r's path."""
    parts = urlsplit(url)
    if not parts.scheme and not parts.netloc:
        if not url.startswith("/"):
            url = (r.path or "/").rsplit("/", 1)[0] + "/" + url
        url, mark, query = url.partition("?")
        trailing = url.endswith("/")
        url = gofmt.clean_path(url)
        if trailing and not url.endswith("/"):
            url += "/"
        url += mark + query
    had_type = "Content-Type" in w.headers
    w.set("Location", gofmt.hex_escape_non_ascii(url))
    if not had_type and r.method in ("GET", "HEAD"):
        w.set("Content-Type", "text/html; charset=utf-8")
    w.write_header(code)
    if not had_type and r.method == "GET":
        w.write(f'<a href="{gofmt.html_escape(url)}">{gofmt.status_text(code)}</a>.\n\n')


Handler = Callable[[ResponseWriter, Request], None]

class ServeMux:
    """http.ServeMux with exact patterns and the catch-all "/"."""

    def __init__(self):
        self.routes: dict[str, Handler] = {}

    def handle(self, pattern: str, handler: Handler) -> None:
        self.routes[pattern] = handler

    def __call__(self, w: ResponseWriter, r: Request) -> None:
        if r.method != "CONNECT":
            clean = gofmt.mux_clean_path(r.path)
            if clean != r.path:
                target = clean + ("?" + r.raw_query if r.raw_query else "")
                redirect(w, r, target, 301)
                return
        handler = self.routes.get(r.path) or self.routes.get("/")
        if handler is None:
            http_error(w, "404 page not found", 404)
            return
        handler(w, r)


class GoServer(WorkerThreadsBlockSignals, ThreadingMixIn, HTTPServer):
    """http.Server listening on [bind]:port; `app` is its Handler."""

    daemon_threads = True
    allow_reuse_address = True      # Go sets SO_REUSEADDR on its listeners

    def __init__(self, port: int, app: Handler, bind: str = "", ipv4_only: bool = False,
                 tls: tuple[str, str] | None = None):
        self.app = app
        self.tls = _tls_context(*tls) if tls else None
        self.shutting_down = False
        self._active = 0
        self._lock = threading.Condition()
        host = bind or ("0.0.0.0" if ipv4_only else "::")
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            super().__init__((host, port), GoHandler)
        except OSError:
            if bind or ipv4_only or self.address_family == socket.AF_INET:
                raise
            self.address_family = socket.AF_INET         # no IPv6 in this namespace
            super().__init__(("0.0.0.0", port), GoHandler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of our own name."""
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name, self.server_port = "localhost", self.server_address[1]

    def get_request(self):
        conn, addr = self.socket.accept()
        if self.tls is not None:
            conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, addr

    def begin(self) -> None:
        with self._lock:
            self._active += 1

    def end(self) -> None:
        with self._lock:
            self._active -= 1
            self._lock.notify_all()

    def shutdown_gracefully(self, timeout: float) -> str:
        """Shutdown(ctx): "<nil>" once idle, or "context deadline exceeded"."""
        self.shutting_down = True
        spawn(self.shutdown)
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._active > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return "context deadline exceeded"
                self._lock.wait(min(left, 0.5))
        return "<nil>"


def _tls_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile or None)
    return context


class GoHandler(BaseHTTPRequestHandler):
    """One connection, served as net/http's conn.serve serves it."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle holds
    # the body until the client's delayed ACK (40 ms) on every keep-alive request.
    disable_nagle_algorithm = True
    timeout = 600                   # Go sets none; ours frees threads of dead peers
    server: GoServer

    def setup(self) -> None:
        super().setup()
        self.handshake_failed = False
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.settimeout(10)
                self.connection.do_handshake()
                self.connection.settimeout(self.timeout)
            except (OSError, ssl.SSLError) as exc:
                gofmt.log(f"http: TLS handshake error from {gofmt.addr_string(self.client_address)}: {exc}")
                self.handshake_failed = True

    def handle(self) -> None:
        if not self.handshake_failed:
            super().handle()

    def __getattr__(self, name: str):
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def _serve(self) -> None:
        if self.request_version == "HTTP/0.9":
            self.send_error(400)
            return
        words = self.requestline.split()
        target = words[1] if len(words) == 3 else self.path   # http.server folds a leading "//"
        if not target.startswith("/"):           # absolute-form: "http://host/path?query"
            parts = urlsplit(target)
            target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        raw_path, _, raw_query = target.partition("?")
        request = Request(method=self.command, path=unquote(raw_path), raw_query=raw_query,
                          headers=[(gofmt.canonical_header_key(k), v) for k, v in self.headers.items()],
                          remote_addr=gofmt.addr_string(self.client_address),
                          body=self._read_body(), proto=self.request_version)
        w = ResponseWriter(self)
        self.server.begin()            # in flight until the answer is written
        try:
            self.server.app(w, request)
            self._finish(w)
        except InvalidWriteHeader as exc:
            self._panic(f"invalid WriteHeader code {exc.args[0]}")
        except OSError:
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 (a Go handler's panic: logged, connection dropped)
            self._panic(str(exc))
        finally:
            self.server.end()

    def _panic(self, message: str) -> None:
        gofmt.log(f"http: panic serving {gofmt.addr_string(self.client_address)}: {message}")
        self.close_connection = True

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = bytearray()
            while len(body) <= MAX_BODY:
                size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024).strip():
                        pass
                    break
                body += self.rfile.read(size)
                self.rfile.readline(16)
            return bytes(body)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(min(length, MAX_BODY)) if length > 0 else b""

    def _finish(self, w: ResponseWriter) -> None:
        code = w.status or 200
        body = bytes(w.body) if body_allowed(code) else b""
        headers = dict(w.headers)
        if any(v.lower() == "close" for v in headers.get("Connection", [])):
            self.close_connection = True
        if self.server.shutting_down:
            self.close_connection = True
        extra: list[tuple[str, str]] = []
        if "Date" not in headers:
            extra.append(("Date", formatdate(usegmt=True)))
        if body_allowed(code) and "Content-Length" not in headers and \
                (self.command != "HEAD" or body):
            extra.append(("Content-Length", str(len(body))))
        if "Content-Type" not in headers and body and not headers.get("Content-Encoding"):
            extra.append(("Content-Type", gofmt.detect_content_type(body)))
        if "Connection" not in headers:
            if self.close_connection:
                extra.append(("Connection", "close"))
            elif self.request_version == "HTTP/1.0":
                extra.append(("Connection", "keep-alive"))
        self.send_head(code, headers, extra=extra)
        if body and self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def send_head(self, code: int, headers: dict[str, list[str]], extra=(),
                  informational: bool = False) -> None:
        version = "HTTP/1.1" if self.request_version != "HTTP/1.0" else "HTTP/1.0"
        text = gofmt.status_text(code) or f"status code {code}"
        lines = [f"{version} {code} {text}"]
        lines += [f"{k}: {v}" for k in sorted(headers) for v in headers[k]]
        lines += [f"{k}: {v}" for k, v in extra]
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace"))
        if informational:
            self.wfile.flush()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A request Go cannot parse: its bare answer, then the connection closes."""
        if code == 414:
            code = 431
        elif code not in (400, 431, 505):
            code = 400
        text = f"{code} {gofmt.status_text(code)}"
        self.close_connection = True
        self.wfile.write(f"HTTP/1.1 {text}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                         f"Connection: close\r\n\r\n{text}".encode())

    def log_message(self, format: str, *args) -> None:
        """Go's server logs nothing per request."""
