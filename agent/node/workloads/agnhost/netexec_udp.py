"""netexec's UDP server, and the readiness it gives /healthz and /readyz.

Mirrors startUDPServer and getHostName in netexec.go: one socket per
--udp-listen-addresses entry (":port", dual-stack, when none), each datagram
trimmed and lower-cased, then "hostname" -> the hostname, "echo <msg>" -> msg,
"clientip" -> the sender's "ip:port"; anything else is logged and not
answered. The server counts as ready from the moment it listens until its
loop ends (netexec.go's serverReady), and a bind failure ends the program.
"""

from __future__ import annotations

import os
import socket
import threading

from agent.node.workloads.agnhost import gofmt
from agent.node.workloads.signals import spawn

BIND = os.environ.get("NSPLANE_AGNHOST_BIND", "")
server_ready = threading.Event()


def get_host_name() -> str:
    """getHostName: os.Hostname(), logged."""
    name = gofmt.hostname()
    gofmt.log(f"hostname: {name}")
    return name


def udp_reply(text: str, client: str) -> str | None:
    """The answer to one datagram, or None for an unknown command."""
    received = text.strip().lower()
    if received == "hostname":
        gofmt.log("Sending udp hostName response")
        return get_host_name()
    if received.startswith("echo "):
        reply = received.split(" ", 1)[1]
        gofmt.log(f"Echoing {reply} to UDP client {client}")
        return reply
    if received == "clientip":
        gofmt.log(f"Sending clientip back to UDP client {client}")
        return client
    if received:
        gofmt.log(f"Unknown UDP command received from {client}: {received}")
    return None


def start_udp_server(address: str, port: int) -> None:
    """Bind (failure is fatal, as in Go), then serve in a thread."""
    sock = _udp_socket(address, port)
    gofmt.log(f"Started UDP server on port {address} {port}")
    server_ready.set()
    spawn(_serve_udp, sock, name=f"udp-{port}")


def _udp_socket(address: str, port: int) -> socket.socket:
    host = address or BIND
    families = [socket.AF_INET6, socket.AF_INET] if not host else \
        [socket.AF_INET6 if ":" in host else socket.AF_INET]
    for family in families:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6 and not host:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
            return sock
        except OSError as exc:
            sock.close()
            if family == families[-1]:
                where = gofmt.join_host_port(address, port)
                gofmt.fatal(f"Error occurred: failed to create listener for UDP address {where}:"
                            f"listen udp {where}: bind: {exc.strerror.lower()}")
    raise AssertionError("unreachable")


def _serve_udp(sock: socket.socket) -> None:
    try:
        while True:
            data, peer = sock.recvfrom(2048)
            client = gofmt.addr_string(peer)
            answer = udp_reply(data.decode(errors="replace"), client)
            if answer is not None:
                sock.sendto(answer.encode(), peer)
    finally:
        gofmt.log("UDP server exited")
        server_ready.clear()
