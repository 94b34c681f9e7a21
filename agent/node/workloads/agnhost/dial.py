"""netexec's /dial: one request to another endpoint, as agnhost's Go client makes it.

The e2e framework's connectivity checks ask one netexec pod to dial another
(`/dial?request=hostname&protocol=http&host=10.244.1.5&port=8083&tries=1`)
and read the JSON of answers and errors back. This module owns one attempt:

- the address is resolved once per /dial (net.ResolveTCPAddr/ResolveUDPAddr:
  a name goes through the pod's resolver, IPv4 preferred), and a resolution
  failure is the caller's 400;
- http: `GET http://<ip:port>/<request>` with Go's client: its headers
  (`User-Agent: Go-http-client/1.1`, `Accept-Encoding: gzip`, gzip undone),
  redirects followed (at most 10), any status counts as an answer (the body
  is the response), 5 s for the whole exchange, one connection per attempt;
- udp: one datagram of `request` on a connected socket, the first answer
  (up to 2048 bytes) within 5 s;
- sctp: not in nsplane (the kernel module would change the host), an error.

Errors read as Go prints them: `Get "http://10.0.0.1:80/hostname": dial tcp
10.0.0.1:80: connect: connection refused`, `reading from udp connection failed.
err:'read udp 10.244.0.5:41234->10.96.0.12:90: i/o timeout'`.
"""

from __future__ import annotations

import errno
import gzip
import http.client
import re
import socket
import time
from urllib.parse import quote, unquote, urljoin, urlsplit

from agent.node.workloads.agnhost import gofmt

TIMEOUT = 5.0
MAX_REDIRECTS = 10
_PATH_OK = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*")


class DialError(Exception):
    """One failed attempt; str() is the entry of the "errors" list."""


class AddressError(ValueError):
    """host/port could not be resolved: the /dial answer is a 400."""


def resolve(host: str, port: str, kind: int) -> tuple[str, int]:
    """net.ResolveTCPAddr/ResolveUDPAddr of host:port, IPv4 first."""
    number = _port_number(port or "0", "tcp" if kind == socket.SOCK_STREAM else "udp")
    if not host:
        return "", number
    try:
        infos = socket.getaddrinfo(host, number, 0, kind)
    except (socket.gaierror, UnicodeError):
        raise AddressError(f"lookup {host}{_resolver_suffix()}: no such host") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return infos[0][4][0], infos[0][4][1]


def _port_number(port: str, network: str) -> int:
    if not port.isdigit():
        try:
            return socket.getservbyname(port, network)
        except OSError:
            raise AddressError(f"lookup {network}/{port}: unknown port") from None
    if int(port) > 65535:
        raise AddressError(f"address {port}: invalid port")
    return int(port)


def _resolver_suffix() -> str:
    """Go names the server it asked: "lookup x on 10.96.0.10:53: no such host"."""
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    return f" on {gofmt.join_host_port(parts[1], 53)}"
    except OSError:
        pass
    return ""


def http_url(address: tuple[str, int], request: str) -> str:
    """fmt.Sprintf("http://%s/%s", addr, request), as url.Parse then prints it."""
    path, mark, query = f"/{request}".partition("?")
    if not _PATH_OK.fullmatch(path):
        path = quote(unquote(path), safe="/:@!$&'()*+,;=-._~")
    return f"http://{gofmt.join_host_port(*address)}{path}{mark}{query}"


def dial_http(address: tuple[str, int], request: str) -> str:
    """One GET, following redirects; the body of the last response."""
    url = http_url(address, request)
    deadline = time.monotonic() + TIMEOUT
    for _ in range(MAX_REDIRECTS + 1):
        status, location, body = _get(url, deadline)
        if status in (301, 302, 303, 307, 308) and location:
            url = urljoin(url, location)
            continue
        return body.decode(errors="replace")
    raise DialError(f'Get {gofmt.quote(url)}: stopped after {MAX_REDIRECTS} redirects')


def _get(url: str, deadline: float) -> tuple[int, str, bytes]:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    left = deadline - time.monotonic()
    where = f"dial tcp {gofmt.join_host_port(parts.hostname or '', port)}"
    if left <= 0:
        raise DialError(f"Get {gofmt.quote(url)}: context deadline exceeded "
                        "(Client.Timeout exceeded while awaiting headers)")
    conn = http.client.HTTPConnection(host, port, timeout=left)
    try:
        try:
            conn.connect()
        except OSError as exc:
            raise DialError(f"Get {gofmt.quote(url)}: {where}: {_connect_error(exc)}") from None
        conn.putrequest("GET", target, skip_accept_encoding=True)
        conn.putheader("User-Agent", "Go-http-client/1.1")
        conn.putheader("Accept-Encoding", "gzip")
        conn.endheaders()
        response = conn.getresponse()
        body = response.read()
        if response.getheader("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        return response.status, response.getheader("Location") or "", body
    except TimeoutError:
        raise DialError(f"Get {gofmt.quote(url)}: context deadline exceeded "
                        "(Client.Timeout exceeded while awaiting headers)") from None
    except (http.client.HTTPException, OSError, EOFError) as exc:
        raise DialError(f"Get {gofmt.quote(url)}: {_read_error(exc)}") from None
    finally:
        conn.close()


def _connect_error(exc: OSError) -> str:
    if isinstance(exc, TimeoutError) or exc.errno == errno.ETIMEDOUT:
        return "i/o timeout (Client.Timeout exceeded while awaiting headers)"
    return f"connect: {_strerror(exc)}"


def _read_error(exc: Exception) -> str:
    if isinstance(exc, (http.client.RemoteDisconnected, http.client.IncompleteRead, EOFError)):
        return "EOF"
    if isinstance(exc, ConnectionResetError):
        return "read: connection reset by peer"
    if isinstance(exc, OSError) and exc.errno is not None:
        return _strerror(exc)
    return f"net/http: {exc}"


def _strerror(exc: OSError) -> str:
    """Go prints syscall errors lower-case: "connection refused"."""
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def dial_udp(address: tuple[str, int], request: str) -> str:
    """One datagram out, the first one back (dialUDP in netexec.go)."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        remote = gofmt.join_host_port(*address)
        try:
            sock.connect((address[0] or "127.0.0.1", address[1]))
        except OSError as exc:
            raise DialError(f"udp dial failed. err:dial udp {remote}: {_strerror(exc)}") from None
        local = gofmt.addr_string(sock.getsockname())
        try:
            sock.send(request.encode())
        except OSError as exc:
            raise DialError(f"udp connection write failed. err:write udp {local}->{remote}: "
                            f"write: {_strerror(exc)}") from None
        sock.settimeout(TIMEOUT)
        try:
            data = sock.recv(2048)
        except TimeoutError:
            raise DialError(f"reading from udp connection failed. err:'read udp {local}->{remote}: "
                            "i/o timeout'") from None
        except OSError as exc:
            raise DialError(f"reading from udp connection failed. err:'read udp {local}->{remote}: "
                            f"read: {_strerror(exc)}'") from None
        if not data:
            raise DialError("reading from udp connection failed. err:'<nil>'")
        return data.decode(errors="replace")


def dial_sctp(address: tuple[str, int], request: str) -> str:
    raise DialError(f"sctp dial failed. err:dial sctp {gofmt.join_host_port(*address)}: "
                    "SCTP is not available in nsplane pods")
