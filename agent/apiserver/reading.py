"""How the API server reads a request and writes its answer's bytes, the
half of `Handler` (agent/apiserver/handler.py) that faces the socket: the
idle and read timeouts (kube-apiserver's IdleTimeout and ReadHeaderTimeout;
the whole request's deadline is agent/apiserver/serving.py's), the body
(Content-Length or chunked, at most MAX_BODY, a 408 when it never comes),
`Replay` to serve a body already read to the verb that reads it again, and
answers written in one piece (headers and body: one segment, one TLS
record, no wait behind the peer's delayed ACK).
"""
from __future__ import annotations

from agent.apiserver.registry import APIError

MAX_BODY = 3 * 1024 * 1024      # kube-apiserver's MaxRequestBodyBytes


class RequestReader:
    """Mixed into the BaseHTTPRequestHandler that serves the API; `api` is its APIServer."""

    def handle_one_request(self) -> None:
        """Wait up to the idle timeout for a request to begin on a kept-alive
        connection, then up to the read timeout for each part of it (as
        kube-apiserver's IdleTimeout and ReadHeaderTimeout): a client that
        stops sending frees its thread. Long-running requests (watch, logs,
        exec, proxy) lift the timeout once their body is read. The whole
        request must arrive within the read deadline (agent/apiserver/serving.py)."""
        try:
            self.connection.settimeout(self.api.idle_timeout)
            if not self.rfile.peek(1):
                self.close_connection = True
                return
            self.connection.settimeout(self.api.read_timeout)
        except OSError:          # the idle timeout passed, or the client went
            self.close_connection = True
            return
        self.api.deadlines.start(self.connection, self.api.read_deadline)
        try:
            super().handle_one_request()
        finally:
            self.api.deadlines.end(self.connection)

    def _write_with_headers(self, data: bytes) -> None:
        """The status line, headers and body in one write: one TLS record and
        one segment for a small answer, so no peer waits on a delayed ACK."""
        self._headers_buffer.append(b"\r\n")
        head, self._headers_buffer = b"".join(self._headers_buffer), []
        self.wfile.write(head + data)

    def _raw_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():   # kubectl create --raw -f
            return self._chunked_body()
        length = (self.headers.get("Content-Length") or "0").strip()
        if not length.isdigit():
            self.close_connection = True      # where the next request starts is unknown
            raise APIError(400, "BadRequest", f'invalid Content-Length "{length}": it must be a non-negative integer')
        n = int(length)
        if n > MAX_BODY:
            self._too_large()
        return self._read(n) if n else b""

    def _read(self, n: int) -> bytes:
        try:
            return self.rfile.read(n)
        except TimeoutError:
            self.close_connection = True
            raise APIError(408, "Timeout", f"the request body was not received within {self.api.read_timeout:g}s; "
                                           f"send the whole body its Content-Length announces") from None

    def _too_large(self):
        self.close_connection = True      # the rest of the body is never read
        raise APIError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY}")

    def _chunked_body(self) -> bytes:
        """A chunked request body, read whole; afterwards the headers say what
        a plain one would (its length), so the verbs read it the same way."""
        parts = []
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip() or b"x", 16)
            except ValueError:
                raise APIError(400, "BadRequest", "malformed chunked request body") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                break
            if size < 0:
                raise APIError(400, "BadRequest", "malformed chunked request body")
            if size > MAX_BODY:
                self._too_large()
            parts.append(self._read(size))
            self.rfile.readline(8)
            if sum(map(len, parts)) > MAX_BODY:
                self._too_large()
        data = b"".join(parts)
        del self.headers["Transfer-Encoding"]
        self.headers["Content-Length"] = str(len(data))
        return data


class Replay:
    """A request body already read, served again to the verb's own read;
    then the connection's stream as before."""

    def __init__(self, data: bytes, rest):
        self._data, self._rest = data, rest

    def read(self, n: int = -1) -> bytes:
        if not self._data:
            return self._rest.read(n)
        if n is None or n < 0 or n >= len(self._data):
            out, self._data = self._data, b""
            return out
        out, self._data = self._data[:n], self._data[n:]
        return out

    def read1(self, n: int = -1) -> bytes:
        return self.read(n) if self._data else self._rest.read1(n)

    def readline(self, limit: int = -1) -> bytes:
        return self.read(limit) if self._data else self._rest.readline(limit)
