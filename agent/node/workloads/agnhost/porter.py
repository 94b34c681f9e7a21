"""`agnhost porter`: serve each SERVE_*_PORT_<n> variable's text on port n.

Mirrors test/images/agnhost/porter/porter.go, the backend of the proxy e2e
tests ("should proxy through a service and a pod"):

  SERVE_PORT_<n>, SERVE_TCP_PORT_<n>   HTTP on 0.0.0.0:n, every request gets the value
  SERVE_UDP_PORT_<n>                   UDP on 0.0.0.0:n, every datagram gets the value
  SERVE_TLS_PORT_<n>                   HTTPS on 0.0.0.0:n with CERT_FILE/KEY_FILE
                                       (default localhost.crt/localhost.key)
  SERVE_SCTP_PORT_<n>                  not in nsplane: logged, not served

--json-response answers {"Method":"<method>","Body":"<value>"} as
application/json instead. A port that cannot be served is logged ("server on
port "80" failed: ...") and the others go on; porter then runs until killed.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading

from agent.node.workloads.agnhost import flags, gofmt, gohttp, tlscert
from agent.node.workloads.agnhost.flags import Flag
from agent.node.workloads.signals import spawn

BIND = os.environ.get("NSPLANE_AGNHOST_BIND", "")
FLAGS = [Flag("json-response", "bool", False, "Responds to requests with a json response that includes "
                                               "the default value with the http.Request Method")]
PREFIXES = (("SERVE_PORT_", "tcp"), ("SERVE_TCP_PORT_", "tcp"), ("SERVE_UDP_PORT_", "udp"),
            ("SERVE_SCTP_PORT_", "sctp"), ("SERVE_TLS_PORT_", "tls"))


def servers(environ: dict[str, str]) -> list[tuple[str, str, str]]:
    """(kind, port, value) for every SERVE_* variable, in the environment's order."""
    out = []
    for key, value in environ.items():
        for prefix, kind in PREFIXES:
            if key.startswith(prefix):
                out.append((kind, key[len(prefix):], value))
                break
    return out


def http_app(value: str, json_response: bool):
    def handler(w: gohttp.ResponseWriter, r: gohttp.Request) -> None:
        body = value
        if json_response:
            w.set("Content-Type", "application/json")
            body = gofmt.json_struct([("Method", r.method), ("Body", value)])
        w.write(body)
    return handler


def _port(text: str, network: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise OSError(f"listen {network}: address {network}/{text}: unknown port")
    return int(text)


def serve_http(port: str, value: str, json_response: bool, tls: tuple[str, str] | None = None) -> None:
    try:
        server = gohttp.GoServer(_port(port, "tcp"), http_app(value, json_response),
                                 bind=BIND, ipv4_only=True, tls=tls)
    except OSError as exc:
        detail = f"listen tcp 0.0.0.0:{port}: bind: {exc.strerror.lower()}" if exc.strerror else str(exc)
        if tls:
            gofmt.log(f"tls server on port {gofmt.quote(port)} with certFile={gofmt.quote(tls[0])}, "
                      f"keyFile={gofmt.quote(tls[1])} failed: {detail}")
        else:
            gofmt.log(f"server on port {gofmt.quote(port)} failed: {detail}")
        return
    server.serve_forever()


def serve_tls(port: str, value: str, json_response: bool) -> None:
    certfile = os.environ.get("CERT_FILE") or "localhost.crt"
    keyfile = os.environ.get("KEY_FILE") or "localhost.key"
    try:
        tls = tlscert.resolve_pair(certfile, keyfile)
    except (OSError, ValueError) as exc:
        gofmt.log(f"tls server on port {gofmt.quote(port)} with certFile={gofmt.quote(certfile)}, "
                  f"keyFile={gofmt.quote(keyfile)} failed: {exc}")
        return
    serve_http(port, value, json_response, tls)


def serve_udp(port: str, value: str) -> None:
    try:
        number = _port(port, "udp")
    except OSError as exc:
        gofmt.fatal(f"UDP: failed to resolve address: {exc}")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((BIND or "0.0.0.0", number))
    except OSError as exc:
        gofmt.fatal(f"UDP: failed to listen on port {port}: listen udp 0.0.0.0:{port}: bind: "
                    f"{exc.strerror.lower()}")
    gofmt.log(f"Started UDP server on port {port}")
    while True:
        try:
            _data, peer = sock.recvfrom(16)
        except OSError as exc:
            gofmt.log(f"UDP: error from ReadFrom(): {exc}")
            return
        try:
            sock.sendto(value.encode(), peer)
        except OSError as exc:
            gofmt.log(f"UDP: error from WriteTo(): {exc}")


def main(argv: list[str]) -> int:
    opts = flags.parse_or_exit("porter", FLAGS, argv, "Serves requested data on ports specified in ENV variables")
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    json_response = opts["json-response"]
    for kind, port, value in servers(dict(os.environ)):
        if kind == "tcp":
            target, args = serve_http, (port, value, json_response)
        elif kind == "tls":
            target, args = serve_tls, (port, value, json_response)
        elif kind == "udp":
            target, args = serve_udp, (port, value)
        else:
            gofmt.log(f"SCTP is not available in nsplane pods: port {port} is not served")
            continue
        spawn(target, *args, name=f"porter-{kind}-{port}")
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
