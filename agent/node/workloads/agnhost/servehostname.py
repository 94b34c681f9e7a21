"""`agnhost serve-hostname`: the pod's hostname over HTTP, raw TCP or UDP.

Mirrors test/images/agnhost/serve-hostname/serve_hostname.go, the backend of
the Service e2e tests (StartServeHostnameService runs `/agnhost
serve-hostname`; the test jig runs `serve-hostname --http=false --tcp --udp`):

  --port 9376     the port of every mode
  --http (true)   any request: the hostname, no newline; --close adds
                  `Connection: close` (one request per connection)
  --tcp           each connection gets the hostname, then is closed
  --udp           each datagram (read into 16 bytes) gets the hostname back

--http with --tcp or --udp is refused at start ("Can't server TCP/UDP mode and
HTTP mode at the same time", exit 1). On SIGTERM it logs, keeps serving for
60 seconds ("Awaiting pod deletion.") and exits 0: a terminating pod still
answers, which the terminating-endpoints tests rely on.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time

from agent.node.workloads.agnhost import flags, gofmt, gohttp
from agent.node.workloads.agnhost.flags import Flag
from agent.node.workloads.signals import spawn

BIND = os.environ.get("NSPLANE_AGNHOST_BIND", "")
AWAIT_DELETION = 60.0

FLAGS = [Flag("tcp", "bool", False, "Serve raw over TCP."),
         Flag("udp", "bool", False, "Serve raw over UDP."),
         Flag("http", "bool", True, "Serve HTTP."),
         Flag("close", "bool", False, "Close connection per each HTTP request."),
         Flag("port", "int", 9376, "Port number.")]


def listener(kind: int, port: int) -> socket.socket:
    """A ":port" socket, dual-stack where the namespace has IPv6 (as Go's)."""
    families = [socket.AF_INET6 if ":" in BIND else socket.AF_INET] if BIND else \
        [socket.AF_INET6, socket.AF_INET]
    for family in families:
        sock = socket.socket(family, kind)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and not BIND:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((BIND or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
            if kind == socket.SOCK_STREAM:
                sock.listen(128)
            return sock
        except OSError:
            sock.close()
            if family == families[-1]:
                raise
    raise AssertionError("unreachable")


def serve_tcp(sock: socket.socket, name: str) -> None:
    while True:
        conn, peer = sock.accept()
        gofmt.log(f"TCP request from {gofmt.addr_string(peer)}")
        try:
            conn.sendall(name.encode())
        except OSError:
            pass
        conn.close()


def serve_udp(sock: socket.socket, name: str) -> None:
    while True:
        _data, peer = sock.recvfrom(16)
        gofmt.log(f"UDP request from {gofmt.addr_string(peer)}")
        try:
            sock.sendto(name.encode(), peer)
        except OSError:
            pass


def http_app(name: str, close: bool):
    def handler(w: gohttp.ResponseWriter, r: gohttp.Request) -> None:
        gofmt.log(f"HTTP request from {r.remote_addr}")
        if close:
            w.add("Connection", "close")
        w.write(name)
    mux = gohttp.ServeMux()
    mux.handle("/", handler)
    return mux


def main(argv: list[str]) -> int:
    opts = flags.parse_or_exit("serve-hostname", FLAGS, argv, "Serves the hostname")
    if opts["http"] and (opts["tcp"] or opts["udp"]):
        gofmt.fatal("Can't server TCP/UDP mode and HTTP mode at the same time")
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    terminated = threading.Event()
    signal.signal(signal.SIGTERM, lambda _s, _f: terminated.set())
    name, port = gofmt.hostname(), opts["port"]
    if opts["tcp"]:
        sock = _or_fatal("net.Listen", lambda: listener(socket.SOCK_STREAM, port), f"listen tcp :{port}")
        spawn(serve_tcp, sock, name)
    if opts["udp"]:
        sock = _or_fatal("ListenUDP", lambda: listener(socket.SOCK_DGRAM, port), f"listen udp :{port}")
        spawn(serve_udp, sock, name)
    if opts["http"]:
        server = _or_fatal("http.ListenAndServe", lambda: gohttp.GoServer(port, http_app(name, opts["close"]),
                                                                         bind=BIND), f"listen tcp :{port}")
        spawn(server.serve_forever)
    gofmt.log(f"Serving on port {port}.\n")
    while not terminated.wait(3600):
        pass
    gofmt.log("Shutting down after receiving signal: terminated.\n")
    gofmt.log("Awaiting pod deletion.\n")
    time.sleep(AWAIT_DELETION)
    return 0


def _or_fatal(what: str, make, where: str):
    """Go's log.Fatalf("Error from net.Listen(): %s", err) on a bind failure."""
    try:
        return make()
    except OSError as exc:
        if what == "http.ListenAndServe":
            gofmt.fatal(f"{where}: bind: {exc.strerror.lower()}")
        gofmt.fatal(f"Error from {what}(): {where}: bind: {exc.strerror.lower()}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
