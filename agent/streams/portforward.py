"""Port-forward, the kubelet's end: kube's `portforward.k8s.io` protocol over
SPDY/3.1 (kubectl before 1.31, and any kubectl falling back), or the same
SPDY carried in WebSocket binary messages (kubectl 1.31+ first asks for
subprotocol `SPDY/3.1+portforward.k8s.io`; websocket.ByteStream unwraps it).

Each connection a user opens to kubectl's local port becomes two SPDY
streams the client creates, with headers `streamType: error|data`, `port`
and `requestID`. The two are paired by request id (by stream id for
clients that send none, as the kubelet does), then the data stream is
spliced to a TCP connection `dial(port)` opens in the pod (its localhost),
half-closes passed on both ways. When the pod's side ends, both streams
are closed; when the client resets the data stream, the pod's connection
is closed. A failure to connect is written on the error stream as the
kubelet writes it (`error forwarding port 80 to pod ..., uid : ...`) and
both streams are closed: kubectl prints it and ends. Streams with a
missing or wrong header are refused with RST_STREAM, as the kubelet
refuses them, with its message in our log; a request whose second stream
does not come within the kubelet's 30 s is dropped with `timed out waiting
for streams` on its error stream.

`stream_headers` is pure; `Session` runs one connection (one reader
thread, and per forwarded connection one writer thread and one pump).
"""
from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from dataclasses import dataclass, field

from agent.streams import sessions, spdy
from agent.streams import websocket as ws

log = logging.getLogger("nsplane.portforward")

PROTOCOL = "portforward.k8s.io"
TUNNEL_PROTOCOL = ws.TUNNEL_PREFIX + PROTOCOL
RST_CANCEL = 5                       # what spdystream's Reset sends
FIN, RESET, POD_EOF, END = "fin", "reset", "pod-eof", "end"


class DialError(Exception):
    """Nothing answers on the port inside the pod; the message is the kubelet's."""


def stream_headers(headers: dict[str, list[str]], stream_id: int) -> tuple[str, int, str]:
    """(stream type, port, request id) of a client's SYN_STREAM headers;
    ValueError with the kubelet's message when one is missing or wrong."""
    def first(name: str) -> str:
        return (headers.get(name.lower()) or [""])[0].strip()
    raw = first("port")
    if not raw:
        raise ValueError('"port" header is required')
    try:
        port = int(raw, 10)
        if not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        raise ValueError(f'unable to parse "{raw}" as a port: value out of range or not a number') from None
    if port < 1:
        raise ValueError(f'port "{raw}" must be > 0')
    kind = first("streamType")
    if not kind:
        raise ValueError('"streamType" header is required')
    if kind not in ("error", "data"):
        raise ValueError(f'invalid stream type "{kind}"')
    request_id = first("requestID") or str(stream_id if kind == "error" else stream_id - 2)
    return kind, port, request_id


@dataclass
class Forward:
    """One forwarded connection: its two streams and what the client sent."""
    request_id: str
    port: int
    error_sid: int | None = None
    data_sid: int | None = None
    inbox: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    started: bool = False
    created: float = 0.0

    @property
    def complete(self) -> bool:
        return self.error_sid is not None and self.data_sid is not None


class Session:
    """A server-side port-forward connection after the upgrade."""

    def __init__(self, rfile, wfile, dial, what: str = "pod", stream_timeout: float = spdy.CREATE_TIMEOUT):
        self.rfile, self.wfile, self.dial, self.what = rfile, wfile, dial, what
        self.stream_timeout = stream_timeout
        self.decoder = spdy.FrameDecoder()
        self.inflate, self.deflate = spdy.HeaderDecompressor(), spdy.HeaderCompressor()
        self.forwards: dict[str, Forward] = {}
        self.by_sid: dict[int, Forward] = {}
        self._finished: set[int] = set()
        self._wlock = threading.Lock()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # -- writing
    def _write(self, frame: bytes) -> None:
        with self._wlock:
            self.wfile.write(frame)
            self.wfile.flush()

    def send(self, sid: int, data: bytes) -> None:
        for i in range(0, len(data), spdy.CHUNK):
            with self._wlock:
                if sid in self._finished:
                    return
                self.wfile.write(spdy.encode_data(sid, data[i:i + spdy.CHUNK]))
                self.wfile.flush()

    def finish(self, sid: int | None) -> None:
        """FIN our direction of a stream (once)."""
        if sid is None:
            return
        with self._wlock:
            if sid in self._finished:
                return
            self._finished.add(sid)
            try:
                self.wfile.write(spdy.encode_data(sid, b"", fin=True))
                self.wfile.flush()
            except (OSError, ValueError):
                pass

    # -- reading
    def serve(self) -> None:
        """Read the client's frames until it goes; then end every forward."""
        stop = threading.Event()
        threading.Thread(target=self._watch, args=(stop,), daemon=True).start()
        try:
            while True:
                data = self.rfile.read1(65536)
                if not data:
                    break
                if any(self._handle(f) for f in self.decoder.feed(data)):
                    break
        except (OSError, ValueError, spdy.ProtocolError, ws.ProtocolError) as e:
            log.info("port-forward to %s ends: %s", self.what, e)
        stop.set()
        with self._lock:
            live = list(self.forwards.values())
        for fwd in live:
            fwd.inbox.put(END)
        for t in list(self._threads):
            t.join(5.0)

    def _handle(self, frame) -> bool:
        """Act on one frame; True when the client ended the session."""
        if isinstance(frame, spdy.Data):
            fwd = self.by_sid.get(frame.stream_id)
            if fwd is not None and frame.stream_id == fwd.data_sid:
                if frame.data:
                    fwd.inbox.put(frame.data)
                if frame.flags & spdy.FLAG_FIN:
                    fwd.inbox.put(FIN)
            return False
        if frame.type == spdy.SYN_STREAM:
            self._on_syn_stream(frame)
        elif frame.type == spdy.RST_STREAM:
            sid = spdy.parse_stream_id(frame.payload)
            fwd = self.by_sid.get(sid)
            if fwd is not None and sid == fwd.data_sid:
                fwd.inbox.put(RESET)
        elif frame.type == spdy.PING:
            self._write(spdy.encode_control(spdy.PING, 0, frame.payload))
        elif frame.type == spdy.GOAWAY:
            return True
        elif frame.type in (spdy.HEADERS, spdy.SYN_REPLY):      # keep the shared zlib context in step
            self.inflate.decompress(frame.payload[4:])
        return False

    def _on_syn_stream(self, frame) -> None:
        sid, _, block = spdy.parse_syn_stream(frame.payload)
        headers = self.inflate.decompress(block)
        try:
            kind, port, request_id = stream_headers(headers, sid)
            with self._lock:
                fwd = self.forwards.get(request_id)
                if fwd is None:
                    fwd = self.forwards[request_id] = Forward(request_id, port, created=time.monotonic())
                if (fwd.error_sid if kind == "error" else fwd.data_sid) is not None:
                    raise ValueError(f"{kind} stream already assigned")
                setattr(fwd, "error_sid" if kind == "error" else "data_sid", sid)
                self.by_sid[sid] = fwd
                start = fwd.complete and not fwd.started
                fwd.started = fwd.started or start
        except ValueError as e:
            log.info("port-forward to %s: refusing stream %d: %s", self.what, sid, e)
            self._write(spdy.encode_rst_stream(sid, RST_CANCEL))
            return
        with self._wlock:            # header blocks must leave in the order they were compressed
            self.wfile.write(spdy.encode_syn_reply(sid, self.deflate.compress({})))
            self.wfile.flush()
        if start:
            t = threading.Thread(target=self._run, args=(fwd,), name=f"portforward-{request_id}", daemon=True)
            self._threads.append(t)
            t.start()

    def _watch(self, stop: threading.Event) -> None:
        """The kubelet's stream creation timeout, checked while the session lasts."""
        while not stop.wait(min(1.0, self.stream_timeout / 2)):
            now = time.monotonic()
            with self._lock:
                late = [f for f in self.forwards.values() if not f.started and now - f.created >= self.stream_timeout]
            for fwd in late:
                self._expire(fwd)

    def _expire(self, fwd: Forward) -> None:
        """A request whose second stream never came is dropped, with the
        reason on its error stream."""
        with self._lock:
            if fwd.started or self.forwards.get(fwd.request_id) is not fwd:
                return
            del self.forwards[fwd.request_id]
            for sid in (fwd.error_sid, fwd.data_sid):
                self.by_sid.pop(sid, None)
        log.info("port-forward to %s: request %s timed out waiting for streams", self.what, fwd.request_id)
        try:
            if fwd.error_sid is not None:
                self.send(fwd.error_sid, f"(request={fwd.request_id}) timed out waiting for streams".encode())
                self.finish(fwd.error_sid)
            if fwd.data_sid is not None:
                self._write(spdy.encode_rst_stream(fwd.data_sid, RST_CANCEL))
        except (OSError, ValueError):
            pass

    # -- one forwarded connection
    def _run(self, fwd: Forward) -> None:
        try:
            sock = self.dial(fwd.port)
        except DialError as e:
            log.info("port-forward to %s: %s", self.what, e)
            self.send(fwd.error_sid, str(e).encode())
            self._done(fwd)
            return
        pump = threading.Thread(target=self._pump, args=(fwd, sock), daemon=True)
        pump.start()
        client_fin = pod_eof = False
        try:
            while True:
                item = fwd.inbox.get()
                if item in (RESET, END):
                    break
                if item == POD_EOF:
                    pod_eof = True
                elif item == FIN:
                    client_fin = True
                    socket.socket.shutdown(sock, socket.SHUT_WR)
                elif not client_fin:
                    sock.sendall(item)
                if client_fin and pod_eof:
                    break
        except OSError as e:
            log.debug("port-forward to %s, port %d: %s", self.what, fwd.port, e)
        finally:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            pump.join(5.0)
            sock.close()
            self._done(fwd)

    def _pump(self, fwd: Forward, sock: socket.socket) -> None:
        """The pod's bytes to the data stream; at its end, both streams close."""
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                self.send(fwd.data_sid, data)
        except (OSError, ValueError):
            pass
        self._done(fwd, keep=True)
        fwd.inbox.put(POD_EOF)

    def _done(self, fwd: Forward, keep: bool = False) -> None:
        self.finish(fwd.data_sid)
        self.finish(fwd.error_sid)
        if keep:
            return
        with self._lock:
            self.forwards.pop(fwd.request_id, None)
            self.by_sid.pop(fwd.error_sid, None)
            self.by_sid.pop(fwd.data_sid, None)
        me = threading.current_thread()
        if me in self._threads:
            self._threads.remove(me)


def upgrade(handler):
    """Answer a port-forward upgrade on a BaseHTTPRequestHandler: a WebSocket
    tunnel or SPDY/3.1. Returns (rfile, wfile) carrying SPDY from then on;
    StreamError(code) when it cannot be answered."""
    kind = sessions.upgrade_kind(handler.headers)
    if kind == "websocket":
        proto = ws.choose_protocol(handler.headers.get("Sec-WebSocket-Protocol"), (TUNNEL_PROTOCOL,))
        key = handler.headers.get("Sec-WebSocket-Key")
        if not proto or not key:
            raise sessions.StreamError(400, f"unable to upgrade: port-forward over WebSocket needs subprotocol "
                                            f"{TUNNEL_PROTOCOL}")
        handler.wfile.write(ws.handshake_response(key, proto))
        handler.wfile.flush()
        handler.close_connection = True
        stream = ws.ByteStream(ws.Connection(handler.rfile, handler.wfile))
        return stream, stream
    if kind == "spdy":
        try:
            proto = spdy.negotiate(handler.headers.get_all("X-Stream-Protocol-Version") or [], (PROTOCOL,))
        except spdy.UpgradeError as e:
            raise sessions.StreamError(e.code, str(e)) from None
        handler.wfile.write(spdy.handshake_response(proto))
        handler.wfile.flush()
        handler.close_connection = True
        return handler.rfile, handler.wfile
    raise sessions.StreamError(400, "Upgrade request required: port-forward needs an upgrade to SPDY/3.1 "
                                    f"({PROTOCOL}) or WebSocket ({TUNNEL_PROTOCOL})")


def serve(handler, dial, what: str = "pod") -> None:
    """Upgrade, then forward until the client goes (the kubelet's ServePortForward)."""
    rfile, wfile = upgrade(handler)
    Session(rfile, wfile, dial, what).serve()
    if isinstance(wfile, ws.ByteStream):
        wfile.conn.close()
