"""`agnhost connect host:port`: one connection attempt, its failure named.

Mirrors test/images/agnhost/connect/connect.go. The Service e2e tests exec
`/agnhost connect --timeout=3s svc:80` and look for the word that opens
stderr: a Service without endpoints must answer REFUSED (kube-proxy's REJECT),
not TIMEOUT.

  tcp (default)  exit 0 on connect; "UNKNOWN: <err>" for a bad address,
                 "DNS: <err>", "TIMEOUT", "REFUSED", else "OTHER: <err>"
  udp            send --udp-data + "\\n", wait for any answer; "TIMEOUT: <err>",
                 "REFUSED: <err>", "UNKNOWN: <err>", "OTHER: No data received..."
  sctp           not in nsplane: "OTHER: ..."

--timeout 0 (the default) means no timeout of our own, as Go's Dial.
"""

from __future__ import annotations

import errno
import socket
import sys

from agent.node.workloads.agnhost import flags, gofmt
from agent.node.workloads.agnhost.flags import Flag

FLAGS = [Flag("timeout", "duration", 0, "Maximum time before returning an error"),
         Flag("protocol", "string", "tcp", "The protocol to use to perform the connection, can be tcp, udp or sctp"),
         Flag("udp-data", "string", "hostname", "The UDP payload send to the server"),
         Flag("sctp-data", "string", "hostname", "The SCTP payload send to the server")]


def fail(message: str) -> int:
    sys.stderr.write(message + "\n")
    return 1


def split_host_port(dest: str) -> tuple[str, str]:
    """net.SplitHostPort; ValueError with Go's message."""
    if dest.startswith("["):
        host, bracket, rest = dest[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ValueError(f"address {dest}: missing port in address")
        return host, rest[1:]
    if dest.count(":") == 0:
        raise ValueError(f"address {dest}: missing port in address")
    if dest.count(":") > 1:
        raise ValueError(f"address {dest}: too many colons in address")
    host, _, port = dest.partition(":")
    return host, port


def resolve(dest: str, kind: int) -> tuple[str, int]:
    """net.ResolveTCPAddr/ResolveUDPAddr; ValueError with Go's message."""
    host, port = split_host_port(dest)
    try:
        infos = socket.getaddrinfo(host or None, port or "0", 0, kind)
    except socket.gaierror:
        if port and not port.isdigit():
            raise ValueError(f"lookup {'tcp' if kind == socket.SOCK_STREAM else 'udp'}/{port}: "
                             "unknown port") from None
        raise ValueError(f"lookup {host}: no such host") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return infos[0][4][0], infos[0][4][1]


def connect_tcp(dest: str, timeout: float | None) -> int:
    try:
        split_host_port(dest)
    except ValueError as exc:
        return fail(f"UNKNOWN: {exc}")
    try:
        address = resolve(dest, socket.SOCK_STREAM)
    except ValueError as exc:
        return fail(f"DNS: {exc}")
    try:
        socket.create_connection(address, timeout=timeout).close()
        return 0
    except TimeoutError:
        return fail("TIMEOUT")
    except OSError as exc:
        if exc.errno == errno.ECONNREFUSED:
            return fail("REFUSED")
        if exc.errno == errno.ETIMEDOUT:
            return fail("TIMEOUT")
        where = gofmt.join_host_port(*address)
        return fail(f"OTHER: dial tcp {where}: connect: {_lower(exc.strerror)}")


def connect_udp(dest: str, timeout: float | None, data: str) -> int:
    try:
        address = resolve(dest, socket.SOCK_DGRAM)
    except ValueError as exc:
        return fail(f"DNS: {exc}")
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        remote = gofmt.join_host_port(*address)
        try:
            sock.connect(address)
        except OSError as exc:
            return fail(f"OTHER: dial udp {remote}: {_lower(exc.strerror)}")
        local = gofmt.addr_string(sock.getsockname())
        sock.settimeout(timeout)
        try:
            sock.send(f"{data}\n".encode())
            answer = sock.recv(1024)
        except TimeoutError:
            return fail(f"TIMEOUT: read udp {local}->{remote}: i/o timeout")
        except OSError as exc:
            text = f"read udp {local}->{remote}: read: {_lower(exc.strerror)}"
            return fail(("REFUSED: " if exc.errno == errno.ECONNREFUSED else "UNKNOWN: ") + text)
    if not answer:
        return fail("OTHER: No data received from the server. Cannot guarantee the server received the request.")
    return 0


def _lower(text: str | None) -> str:
    text = text or "unknown error"
    return text[:1].lower() + text[1:]


def main(argv: list[str]) -> int:
    opts = flags.parse_or_exit("connect", FLAGS, argv,
                               "Attempts a TCP, UDP or SCTP connection and returns useful errors",
                               exact_args=1)
    dest = opts.args[0]
    timeout = opts["timeout"] / 1e9 if opts["timeout"] > 0 else None
    protocol = opts["protocol"]
    if protocol in ("", "tcp"):
        return connect_tcp(dest, timeout)
    if protocol == "udp":
        return connect_udp(dest, timeout, opts["udp-data"])
    if protocol == "sctp":
        return fail(f"OTHER: dial sctp {dest}: SCTP is not available in nsplane pods")
    sys.stderr.write(f"Unsupported protocol\n{protocol}")
    return 1
