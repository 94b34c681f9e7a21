"""`agnhost netexec`: the HTTP(S) and UDP echo server of the Service e2e tests.

Mirrors test/images/agnhost/netexec/netexec.go (agnhost 2.53): the same
flags (--http-port 8080, --udp-port 8081 or -1 for none, --udp-listen-addresses,
--tls-cert-file/--tls-private-key-file for HTTPS, --http-override,
--delay-shutdown; --sctp-port is accepted and logged as unsupported), the
same endpoints with the same status codes and bodies:

  /             "NOW: <time.Now()>" (also every path no other route takes)
  /clientip     the peer's "ip:port"
  /header       ?key=K: that request header's value; no key: all headers as JSON
  /echo         ?msg=M[&code=N]: M with status N
  /exit         ?code=&timeout=&wait=: exit, gracefully when timeout > 0
  /healthz      200 once the UDP server runs, else 412 (no body)
  /readyz       "ok" 200; 412 before the UDP server runs; "shutting down" 503 after SIGTERM
  /hostname, /hostName   the pod's hostname
  /dial         ?request=&host=&port=&protocol=&tries=: {"errors":[..],"responses":[..]}
  /shell        ?cmd= (or shellCommand=): {"error":..,"output":..} of /bin/sh -c
  /upload       multipart "file" -> /uploads/uploadNNN, 201 {"output":path}
  /redirect     ?location=&code=: http.Redirect
  /shutdown     exit 0 at once

and netexec.go's quirks: /dial answers 200 even when every try failed, and
leaves "responses" out when the last try failed; /shell answers 200 whatever
the command did; an unparsable code or duration is a 200 with a message.
UDP (each listen address): "hostname", "echo <msg>", "clientip", after
trimming and lower-casing. SIGTERM: /readyz turns 503, the process exits 0
after --delay-shutdown seconds. Log lines go to stderr as Go's log prints them.

NSPLANE_AGNHOST_BIND (an address) restricts where it listens (tests);
NSPLANE_AGNHOST_UPLOADS replaces the /uploads directory.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

from agent.node.workloads.agnhost import dial, flags, gofmt, gohttp
from agent.node.workloads.agnhost.flags import Flag
from agent.node.workloads.agnhost.gohttp import Request, ResponseWriter, http_error
from agent.node.workloads.agnhost.netexec_udp import (
    get_host_name,
    server_ready,
    start_udp_server,
)
from agent.node.workloads.signals import spawn

BIND = os.environ.get("NSPLANE_AGNHOST_BIND", "")
UPLOADS = os.environ.get("NSPLANE_AGNHOST_UPLOADS", "/uploads")

FLAGS = [
    Flag("http-port", "int", 8080, "HTTP Listen Port"),
    Flag("tls-cert-file", "string", "", "File containing an x509 certificate for HTTPS."),
    Flag("tls-private-key-file", "string", "", "File containing an x509 private key matching --tls-cert-file"),
    Flag("udp-port", "int", 8081, "UDP Listen Port"),
    Flag("sctp-port", "int", -1, "SCTP Listen Port"),
    Flag("http-override", "string", "", "Override the HTTP handler to always respond as if it were a GET with this path & params"),
    Flag("udp-listen-addresses", "string", "", "A comma separated list of ip addresses the udp servers listen from"),
    Flag("delay-shutdown", "int", 0, "Number of seconds to delay shutdown when receiving SIGTERM."),
]

sigterm_received = threading.Event()
_exit_lock = threading.Lock()
_http_server: gohttp.GoServer | None = None


# ---- handlers (names and log lines as in netexec.go) -------------------------

def root_handler(w: ResponseWriter, r: Request) -> None:
    gofmt.log("GET /")
    w.write(f"NOW: {gofmt.time_now_string()}")


def clientip_handler(w: ResponseWriter, r: Request) -> None:
    gofmt.log("GET /clientip")
    w.write(r.remote_addr)


def header_handler(w: ResponseWriter, r: Request) -> None:
    key = r.form_value("key")
    if key:
        gofmt.log(f"GET /header?key={key}")
        w.write(r.header(key))
    else:
        gofmt.log("GET /header")
        w.write(gofmt.json_marshal(r.header_map()))


def echo_handler(w: ResponseWriter, r: Request) -> None:
    msg, code = r.form_value("msg"), r.form_value("code")
    gofmt.log(f"GET /echo?msg={msg}&code={code}")
    if code:
        try:
            status = gofmt.atoi(code)
        except ValueError:
            w.write(f"argument 'code' must be an integer or empty, got {gofmt.quote(code)}\n")
            return
        w.write_header(status)
    w.write(msg)


def exit_handler(w: ResponseWriter, r: Request) -> None:
    wait_s, timeout_s, code_s = r.form_value("wait"), r.form_value("timeout"), r.form_value("code")
    gofmt.log(f"GET /exit?code={code_s}&timeout={timeout_s}&wait={wait_s}")
    values = {}
    for name, text in (("timeout", timeout_s), ("wait", wait_s)):
        try:
            values[name] = gofmt.parse_duration(text) if text else 0
        except ValueError:
            w.write(f"argument '{name}' must be a valid golang duration or empty, got {gofmt.quote(text)}\n")
            return
    try:
        code = gofmt.atoi(code_s) if code_s else 0
    except ValueError:
        w.write(f"argument 'code' must be an integer [0-127] or empty, got {gofmt.quote(code_s)}\n")
        return
    timeout, wait = values["timeout"], values["wait"]
    gofmt.log(f"Will begin shutdown in {gofmt.format_duration(wait)}, allowing "
              f"{gofmt.format_duration(timeout)} for connections to close, then will exit with {code}")
    time.sleep(max(wait, 0) / 1e9)
    if timeout <= 0:
        os._exit(code & 0xFF)
    if not _exit_lock.acquire(blocking=False):
        threading.Event().wait()           # a second /exit waits forever, as on Go's channel
    spawn(_graceful_exit, timeout / 1e9, code)


def _graceful_exit(timeout: float, code: int) -> None:
    result = _http_server.shutdown_gracefully(timeout) if _http_server else "<nil>"
    gofmt.log(f"Graceful shutdown completed with: {result}")
    os._exit(code & 0xFF)


def hostname_handler(w: ResponseWriter, r: Request) -> None:
    gofmt.log("GET /hostname")
    w.write(get_host_name())


def hostName_handler(w: ResponseWriter, r: Request) -> None:
    gofmt.log("GET /hostName")
    w.write(get_host_name())


def healthz_handler(w: ResponseWriter, r: Request) -> None:
    gofmt.log("GET /healthz")
    w.write_header(200 if server_ready.is_set() else 412)


def readyz_handler(w: ResponseWriter, r: Request) -> None:
    gofmt.log("GET /readyz")
    if sigterm_received.is_set():
        w.write_header(503)
        w.write("shutting down")
    elif server_ready.is_set():
        w.write("ok")
    else:
        w.write_header(412)


def shutdown_handler(w: ResponseWriter, r: Request) -> None:
    gofmt.log("GET /shutdown")
    os._exit(0)


def dial_handler(w: ResponseWriter, r: Request) -> None:
    q = r.query()
    get = lambda k: (q.get(k) or [""])[0]
    host, port, request, protocol, tries_s = (get(k) for k in ("host", "port", "request", "protocol", "tries"))
    gofmt.log(f"GET /dial?host={host}&protocol={protocol}&port={port}&request={request}&tries={tries_s}")
    tries = 1
    if tries_s:
        try:
            tries = gofmt.atoi(tries_s)
        except ValueError as exc:
            http_error(w, f"tries parameter is invalid. {exc}", 400)
            return
    if not request:
        http_error(w, "request parameter not specified. <nil>", 400)
        return
    dialers = {"": (dial.dial_http, socket.SOCK_STREAM), "http": (dial.dial_http, socket.SOCK_STREAM),
               "udp": (dial.dial_udp, socket.SOCK_DGRAM), "sctp": (dial.dial_sctp, socket.SOCK_STREAM)}
    if protocol.lower() not in dialers:
        http_error(w, f"unsupported protocol. {protocol}", 400)
        return
    dialer, kind = dialers[protocol.lower()]
    try:
        address = dial.resolve(host, port, kind)
    except dial.AddressError as exc:
        http_error(w, f"host and/or port param are invalid. {exc}", 400)
        return
    responses, errors, response = [], [], ""
    for _ in range(tries):
        try:
            response = dialer(address, request)
            responses.append(response)
        except dial.DialError as exc:
            response = ""
            errors.append(str(exc))
    output = {}
    if response:                       # netexec.go tests the last answer, not the list
        output["responses"] = responses
    if errors:
        output["errors"] = errors
    w.write(gofmt.json_marshal(output))


def shell_handler(w: ResponseWriter, r: Request) -> None:
    cmd = r.form_value("shellCommand") or r.form_value("cmd")
    gofmt.log(f"GET /shell?cmd={cmd}")
    output = {}
    try:
        proc = subprocess.run(["/bin/sh", "-c", cmd], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, check=False)
        if proc.stdout:
            output["output"] = proc.stdout.decode(errors="replace")
        if proc.returncode > 0:
            output["error"] = f"exit status {proc.returncode}"
        elif proc.returncode < 0:
            output["error"] = f"signal: {_signal_name(-proc.returncode)}"
    except OSError as exc:
        output["error"] = f"fork/exec /bin/sh: {exc.strerror.lower()}"
    gofmt.log(f"Output: {gofmt.map_string(output)}")
    w.write(gofmt.json_marshal(output))


def _signal_name(signum: int) -> str:
    """Go's syscall.Signal.String(): "killed", "terminated", "interrupt"."""
    names = {1: "hangup", 2: "interrupt", 3: "quit", 6: "aborted", 9: "killed", 11: "segmentation fault",
             13: "broken pipe", 14: "alarm clock", 15: "terminated"}
    return names.get(signum, f"signal {signum}")


def upload_handler(w: ResponseWriter, r: Request) -> None:
    gofmt.log("GET /upload")
    content = r.form_file("file")
    if content is None:
        w.write(gofmt.json_marshal({"error": "Unable to upload file."}))
        gofmt.log("Unable to upload file: http: no such file")
        return
    try:
        path = _create_temp(UPLOADS, "upload")
    except OSError as exc:
        w.write(gofmt.json_marshal({"error": "Unable to open file for write"}))
        gofmt.log(f"Unable to open file for write: open {UPLOADS}/upload: {exc.strerror.lower()}")
        return
    with open(path, "wb") as f:
        f.write(content)
    os.chmod(path, 0o700)
    gofmt.log(f"Wrote upload to {path}")
    w.write_header(201)
    w.write(gofmt.json_marshal({"output": path}))


def _create_temp(directory: str, prefix: str) -> str:
    """os.CreateTemp(dir, prefix): prefix + a random number, created exclusively."""
    for _ in range(10000):
        path = os.path.join(directory, f"{prefix}{random.getrandbits(32)}")
        try:
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"{directory}: too many temporary files")


def redirect_handler(w: ResponseWriter, r: Request) -> None:
    location, code_s = r.form_value("location"), r.form_value("code")
    gofmt.log(f"{r.method} /redirect?msg={location}&code={code_s}")
    code = 302
    if code_s:
        try:
            code = gofmt.atoi(code_s)
        except ValueError:
            w.write(f"argument 'code' must be an integer or empty, got {gofmt.quote(code_s)}\n")
            return
    gohttp.redirect(w, r, location, code)


def routes() -> gohttp.ServeMux:
    mux = gohttp.ServeMux()
    for pattern, handler in (("/", root_handler), ("/clientip", clientip_handler),
                             ("/header", header_handler), ("/dial", dial_handler),
                             ("/echo", echo_handler), ("/exit", exit_handler),
                             ("/healthz", healthz_handler), ("/readyz", readyz_handler),
                             ("/hostname", hostname_handler), ("/redirect", redirect_handler),
                             ("/shell", shell_handler), ("/upload", upload_handler),
                             ("/hostName", hostName_handler), ("/shutdown", shutdown_handler)):
        mux.handle(pattern, handler)
    return mux


def override(mux: gohttp.ServeMux, target: str) -> gohttp.ServeMux:
    """--http-override: every request served as `GET <target>`, with no
    headers and no peer address, as the request netexec.go builds."""
    path, _, query = target.partition("?")
    outer = gohttp.ServeMux()
    outer.handle("/", lambda w, r: mux(w, Request(method="GET", path=path, raw_query=query)))
    return outer


# ---- main ------------------------------------------------------------------------

def _is_ip(text: str) -> bool:
    """netutils.ParseIPSloppy accepts it (an IPv4 or IPv6 address)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, text)
            return True
        except OSError:
            pass
    return False


def on_sigterm(delay: int) -> None:
    """netexec.go's SIGTERM goroutines: /readyz 503 at once, exit 0 after the delay."""
    def handler(_signum, _frame):
        if sigterm_received.is_set():
            return
        sigterm_received.set()
        spawn(_exit_after, delay)
    signal.signal(signal.SIGTERM, handler)


def _exit_after(delay: int) -> None:
    if delay > 0:
        gofmt.log(f"Sleeping {delay} seconds before terminating...")
        time.sleep(delay)
    os._exit(0)


def main(argv: list[str]) -> int:
    global _http_server
    opts = flags.parse_or_exit("netexec", FLAGS, argv,
                               "Creates HTTP(S), UDP, and (optionally) SCTP servers with various endpoints")
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    on_sigterm(opts["delay-shutdown"])
    mux = routes()
    app = override(mux, opts["http-override"]) if opts["http-override"] else mux
    if opts["udp-port"] != -1:
        addresses = sorted(set(opts["udp-listen-addresses"].split(","))) if opts["udp-listen-addresses"] else [""]
        for address in addresses:
            if address and not _is_ip(address):
                gofmt.fatal(f"parseAddress: invalid address {address}")
        for address in addresses:
            start_udp_server(address, opts["udp-port"])
    if opts["sctp-port"] != -1:
        gofmt.log(f"SCTP is not available in nsplane pods: --sctp-port={opts['sctp-port']} is not served")
    port = opts["http-port"]
    gofmt.log(f"Started HTTP server on port {port}")
    tls = (opts["tls-cert-file"], opts["tls-private-key-file"]) if opts["tls-cert-file"] else None
    try:
        _http_server = gohttp.GoServer(port, app, bind=BIND, tls=tls)
    except ssl.SSLError as exc:
        gofmt.fatal(f"tls: failed to load key pair: {exc}")
    except OSError as exc:
        if exc.filename:
            gofmt.fatal(f"open {exc.filename}: {exc.strerror.lower()}")
        gofmt.fatal(f"listen tcp :{port}: bind: {(exc.strerror or str(exc)).lower()}")
    _http_server.serve_forever()
    threading.Event().wait()               # shut down by /exit: wait for os._exit
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
