"""SPDY/3.1 as kubectl < 1.30 speaks exec and attach, by hand: the kubelet
end of kube's remotecommand protocol over moby/spdystream.

Older kubectl (Debian 12 ships 1.20) upgrades `POST .../exec` with
`Upgrade: SPDY/3.1` and offers `X-Stream-Protocol-Version`s (v4, v3, v2,
channel.k8s.io); we answer 101 with the best one we share. The client then
opens one SPDY stream per standard stream: a SYN_STREAM whose header block
says `streamtype: error|stdin|stdout|stderr|resize`; we answer each with a
SYN_REPLY and from then on both ends send DATA frames on the client's
stream ids, a DATA frame with FLAG_FIN closing one direction. Header blocks
are zlib-compressed with the SPDY/3 dictionary, one compression context per
direction for the whole connection (each block ends with a sync flush).
PINGs from the client are echoed; GOAWAY ends the session.

So that `agent.streams.sessions` runs one exec/attach session for both transports,
`Session` offers the same three calls as `websocket.Connection`:
`send_channel(stream, data)`, `receive()` (stdin data, resize messages, and
"close stdin" in the v5 channel form) and `close()`. Protocol v4 carries the
final Status as JSON on the error stream (exit code in details.causes
ExitCode); v1-v3 carry only a failure's message, as the kubelet does.

Pure framing (`encode_*`, `FrameDecoder`, the header codecs) works on bytes
and is unit-tested against hand-built frames; `Session` wraps a file pair.
"""
from __future__ import annotations

import json
import logging
import struct
import threading
import time
import urllib.parse
import zlib
from dataclasses import dataclass

log = logging.getLogger("nsplane.spdy")

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN, FLAG_UNIDIRECTIONAL = 0x01, 0x02
RST_PROTOCOL_ERROR, RST_REFUSED_STREAM = 1, 3
GOAWAY_OK = 0
MAX_FRAME = (1 << 24) - 1
CHUNK = 32 << 10                      # DATA payload we send at most per frame

V4, V3, V2, V1 = "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"
PROTOCOLS = (V4, V3, V2, V1)          # what we speak, best first
# the channel numbers of agent.streams.websocket, which the shared session code uses
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
STREAM_TYPES = {"stdin": STDIN, "stdout": STDOUT, "stderr": STDERR, "error": ERROR, "resize": RESIZE}
CREATE_TIMEOUT = 30.0                 # the kubelet's default stream creation timeout
CLOSE_GRACE = 5.0                     # how long close() waits for the client to hang up

# The SPDY/3 header dictionary (draft 3, section 2.6.10.1): length-prefixed
# header names and values, then a run of common status lines and tokens.
_DICT_WORDS = ["options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding", "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection", "content-base", "content-encoding", "content-language", "content-length", "content-location", "content-md5", "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location", "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer", "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning", "www-authenticate", "method", "get", "status"] + ["200 OK"] + ["version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]
_DICT_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")


def _dictionary() -> bytes:
    return b"".join(struct.pack("!I", len(w)) + w.encode() for w in _DICT_WORDS) + _DICT_TAIL.encode()


DICTIONARY = _dictionary()


class ProtocolError(Exception):
    pass


class UpgradeError(Exception):
    """`code` is the HTTP status to answer with; 0 once the connection is
    already upgraded (nothing more can be answered in HTTP)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


# ---- negotiation --------------------------------------------------------------

def negotiate(offered: list[str], supported: tuple[str, ...] = PROTOCOLS) -> str:
    """The X-Stream-Protocol-Version to answer; '' (the legacy v1) when the
    client offered none, as kube's httpstream.Handshake does."""
    names = [p.strip() for v in offered for p in v.split(",") if p.strip()]
    if not names:
        return ""
    for p in supported:
        if p in names:
            return p
    raise UpgradeError(403, f"unable to upgrade: unable to negotiate protocol: client supports "
                            f"{names}, server supports {list(supported)}")


def handshake_response(protocol: str) -> bytes:
    version = f"X-Stream-Protocol-Version: {protocol}\r\n" if protocol else ""
    return ("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
            f"{version}\r\n").encode()


def expected_streams(protocol: str, stdin: bool, stdout: bool, stderr: bool, tty: bool) -> set[str]:
    """The stream types a client opens for these options (kubelet's count)."""
    want = {"error"} | {n for n, on in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr and not tty)) if on}
    if tty and protocol in (V4, V3):
        want.add("resize")
    return want


# ---- header blocks ---------------------------------------------------------------

def encode_header_block(headers: dict[str, list[str] | str]) -> bytes:
    """The uncompressed name/value block: lower-case names, several values
    joined by NUL."""
    out = [struct.pack("!I", len(headers))]
    for name, values in headers.items():
        v = values if isinstance(values, str) else "\0".join(values)
        for part in (name.lower().encode(), v.encode()):
            out.append(struct.pack("!I", len(part)) + part)
    return b"".join(out)


def decode_header_block(raw: bytes) -> dict[str, list[str]]:
    def take(pos: int) -> tuple[bytes, int]:
        if pos + 4 > len(raw):
            raise ProtocolError("header block ends inside a length")
        n = struct.unpack_from("!I", raw, pos)[0]
        if pos + 4 + n > len(raw):
            raise ProtocolError("header block ends inside a name or value")
        return raw[pos + 4:pos + 4 + n], pos + 4 + n
    if len(raw) < 4:
        raise ProtocolError("header block shorter than its count")
    count, pos, out = struct.unpack_from("!I", raw, 0)[0], 4, {}
    for _ in range(count):
        name, pos = take(pos)
        value, pos = take(pos)
        out.setdefault(name.decode().lower(), []).extend(value.decode().split("\0"))
    return out


class HeaderCompressor:
    """One direction's zlib context: every block ends with a sync flush."""

    def __init__(self):
        self._z = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, 9, zdict=DICTIONARY)

    def compress(self, headers: dict) -> bytes:
        return self._z.compress(encode_header_block(headers)) + self._z.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    def __init__(self):
        self._z = zlib.decompressobj(zdict=DICTIONARY)

    def decompress(self, block: bytes) -> dict[str, list[str]]:
        try:
            return decode_header_block(self._z.decompress(block))
        except zlib.error as e:
            raise ProtocolError(f"header block does not inflate with the SPDY/3 dictionary: {e}") from None


# ---- frames ------------------------------------------------------------------------

@dataclass
class Control:
    type: int
    flags: int
    payload: bytes


@dataclass
class Data:
    stream_id: int
    flags: int
    data: bytes


def encode_control(ftype: int, flags: int, payload: bytes) -> bytes:
    return struct.pack("!HHI", 0x8000 | VERSION, ftype, (flags << 24) | len(payload)) + payload


def encode_data(stream_id: int, data: bytes, fin: bool = False) -> bytes:
    if len(data) > MAX_FRAME:
        raise ValueError(f"DATA payload of {len(data)} bytes exceeds {MAX_FRAME}")
    return struct.pack("!II", stream_id & 0x7FFFFFFF, ((FLAG_FIN if fin else 0) << 24) | len(data)) + data


def encode_syn_stream(stream_id: int, block: bytes, flags: int = 0, priority: int = 0) -> bytes:
    """A SYN_STREAM with an already-compressed header block (the client's
    frame; we only build it in tests)."""
    return encode_control(SYN_STREAM, flags, struct.pack("!IIBB", stream_id, 0, priority << 5, 0) + block)


def encode_syn_reply(stream_id: int, block: bytes, fin: bool = False) -> bytes:
    return encode_control(SYN_REPLY, FLAG_FIN if fin else 0, struct.pack("!I", stream_id) + block)


def encode_ping(ping_id: int) -> bytes:
    return encode_control(PING, 0, struct.pack("!I", ping_id))


def encode_goaway(last_good: int, status: int = GOAWAY_OK) -> bytes:
    return encode_control(GOAWAY, 0, struct.pack("!II", last_good, status))


def encode_rst_stream(stream_id: int, status: int) -> bytes:
    return encode_control(RST_STREAM, 0, struct.pack("!II", stream_id, status))


def parse_syn_stream(payload: bytes) -> tuple[int, int, bytes]:
    """(stream id, associated stream id, compressed header block)."""
    if len(payload) < 10:
        raise ProtocolError(f"SYN_STREAM of {len(payload)} bytes is shorter than its 10-byte head")
    sid, assoc = struct.unpack_from("!II", payload, 0)
    return sid & 0x7FFFFFFF, assoc & 0x7FFFFFFF, payload[10:]


def parse_stream_id(payload: bytes) -> int:
    if len(payload) < 4:
        raise ProtocolError("control frame too short for a stream id")
    return struct.unpack_from("!I", payload, 0)[0] & 0x7FFFFFFF


class FrameDecoder:
    """Feed bytes, get complete Control and Data frames back."""

    def __init__(self):
        self.buf = b""

    def feed(self, data: bytes) -> list[Control | Data]:
        self.buf += data
        out = []
        while len(self.buf) >= 8:
            first, flags_len = struct.unpack_from("!II", self.buf, 0)
            n = flags_len & 0xFFFFFF
            if len(self.buf) < 8 + n:
                break
            payload, self.buf = self.buf[8:8 + n], self.buf[8 + n:]
            flags = flags_len >> 24
            if first & 0x80000000:
                version = (first >> 16) & 0x7FFF
                if version != VERSION:
                    raise ProtocolError(f"SPDY version {version} frame; only SPDY/3 is spoken")
                out.append(Control(first & 0xFFFF, flags, payload))
            else:
                out.append(Data(first & 0x7FFFFFFF, flags, payload))
        return out


def split_json_messages(buf: bytes) -> tuple[list[bytes], bytes]:
    """Complete JSON objects from a resize stream (client-go writes them with
    a json.Encoder, so frames may split or join them); the rest to keep."""
    dec, text, out, pos = json.JSONDecoder(), buf.decode(errors="replace"), [], 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if pos >= len(text):
            return out, b""
        try:
            _, end = dec.raw_decode(text, pos)
        except ValueError:
            return out, text[pos:].encode()
        out.append(text[pos:end].encode())
        pos = end


def status_text(status_json: bytes) -> bytes:
    """What v1-v3 put on the error stream for a Status: its message on
    failure, nothing on success."""
    try:
        status = json.loads(status_json)
    except ValueError:
        return status_json
    if status.get("status") == "Success":
        return b""
    return (status.get("message") or status.get("reason") or "error").encode()


# ---- the session on a connection -------------------------------------------------------

class Session:
    """A server-side SPDY connection after the 101: streams keyed by type,
    writes serialised (stdout and stderr pumps share it)."""

    def __init__(self, rfile, wfile, protocol: str, sock=None):
        self.rfile, self.wfile, self.protocol = rfile, wfile, protocol
        self.sock = sock                           # for the stream-creation timeout only
        self.decoder = FrameDecoder()
        self.inflate, self.deflate = HeaderDecompressor(), HeaderCompressor()
        self.streams: dict[int, int] = {}          # channel -> client stream id
        self._channel_of: dict[int, int] = {}      # client stream id -> channel
        self._finished: set[int] = set()           # stream ids we sent FIN on
        self._pending: list = []
        self._ready: list[bytes] = []              # channel messages parsed, not yet returned
        self._resize_buf = b""
        self._last_id = 0
        self._wlock = threading.Lock()
        self._peer_gone = threading.Event()
        self.closed = False

    # -- writing
    def _write(self, data: bytes) -> None:
        with self._wlock:
            self.wfile.write(data)
            self.wfile.flush()

    def send_channel(self, stream: int, data: bytes) -> None:
        sid = self.streams.get(stream)
        if stream == ERROR and self.protocol != V4:
            data = status_text(data)
        for i in range(0, len(data), CHUNK):
            with self._wlock:
                if sid is None or sid in self._finished:     # not opened by the client, or FIN sent
                    return
                self.wfile.write(encode_data(sid, data[i:i + CHUNK]))
                self.wfile.flush()

    def finish(self, stream: int) -> None:
        """FIN our direction of one stream."""
        sid = self.streams.get(stream)
        with self._wlock:
            if sid is None or sid in self._finished:
                return
            self._finished.add(sid)
            self.wfile.write(encode_data(sid, b"", fin=True))
            self.wfile.flush()

    def close(self) -> None:
        """FIN every stream, GOAWAY, then give the client a moment to hang
        up first, so none of what we sent is lost to a reset."""
        if self.closed:
            return
        try:
            for ch in (STDOUT, STDERR, ERROR, STDIN, RESIZE):
                self.finish(ch)
            self.closed = True
            self._write(encode_goaway(self._last_id))
        except OSError:
            self.closed = True
            return
        self._peer_gone.wait(CLOSE_GRACE)

    # -- reading
    def _frames(self) -> bool:
        data = self.rfile.read1(65536) if hasattr(self.rfile, "read1") else self.rfile.read(65536)
        if not data:
            return False
        self._pending.extend(self.decoder.feed(data))
        return True

    def accept(self, want: set[str], timeout: float = CREATE_TIMEOUT) -> None:
        """Wait for the client's SYN_STREAMs of the `want` types and reply to
        each; data arriving meanwhile is kept for receive()."""
        deadline = time.monotonic() + timeout
        early: list = []
        while not want <= {t for t, ch in STREAM_TYPES.items() if ch in self.streams}:
            if not self._pending:
                self._read_until(deadline, want)
                continue
            frame = self._pending.pop(0)
            if isinstance(frame, Control) and frame.type == SYN_STREAM:
                self._on_syn_stream(frame)
            elif isinstance(frame, Control) and frame.type == PING:
                self._write(encode_control(PING, 0, frame.payload))
            else:
                early.append(frame)
        self._pending[:0] = early
        if self.protocol in (V1, "") and STDIN in self.streams:
            self.finish(STDIN)          # the v1 kubelet closes stdin's reply side at once

    def _read_until(self, deadline: float, want: set[str]) -> None:
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            if self.sock is not None:
                self.sock.settimeout(left)
            alive = self._frames()
        except TimeoutError:
            raise UpgradeError(0, f"timed out waiting for the client to create streams {sorted(want)}") from None
        finally:
            if self.sock is not None:
                self.sock.settimeout(None)
        if not alive:
            raise UpgradeError(0, "the client hung up before creating its streams")

    def _on_syn_stream(self, frame: Control) -> None:
        sid, _, block = parse_syn_stream(frame.payload)
        headers = self.inflate.decompress(block)
        kind = (headers.get("streamtype") or [""])[0]
        self._last_id = max(self._last_id, sid)
        ch = STREAM_TYPES.get(kind)
        if ch is None or ch in self.streams:
            log.info("refusing SPDY stream %d of type %r", sid, kind)
            self._write(encode_rst_stream(sid, RST_REFUSED_STREAM))
            return
        self.streams[ch], self._channel_of[sid] = sid, ch
        with self._wlock:          # blocks must leave in the order they were compressed
            self.wfile.write(encode_syn_reply(sid, self.deflate.compress({})))
            self.wfile.flush()
        if frame.flags & FLAG_FIN and ch == STDIN:
            self._pending.append(Data(sid, FLAG_FIN, b""))

    def receive(self) -> tuple[int, bytes] | None:
        """The next client message in the WebSocket channel form (opcode 2,
        channel byte + payload); None when the client went away."""
        while True:
            if self._ready:
                return 0x2, self._ready.pop(0)
            try:
                alive = True
                while alive and not self._pending:      # a read may hold only part of a frame
                    alive = self._frames()
                msg = self._handle(self._pending.pop(0)) if alive else "gone"
            except (OSError, ValueError, ProtocolError) as e:
                log.info("SPDY session ends: %s", e)
                msg = "gone"
            if msg == "gone":
                self._peer_gone.set()
                return None
            if msg is not None:
                return 0x2, msg

    def _handle(self, frame):
        if isinstance(frame, Data):
            return self._on_data(frame)
        if frame.type == PING:
            if not self.closed:
                self._write(encode_control(PING, 0, frame.payload))
        elif frame.type == GOAWAY:
            return "gone"
        elif frame.type == SYN_STREAM:
            self._on_syn_stream(frame)
        elif frame.type in (HEADERS, SYN_REPLY):     # inflated only to keep the shared zlib context in step
            self.inflate.decompress(frame.payload[4:])
        elif frame.type == RST_STREAM and self._channel_of.get(parse_stream_id(frame.payload)) == STDIN:
            return bytes([CLOSE, STDIN])
        return None            # SETTINGS, WINDOW_UPDATE: nothing to do (spdystream has no flow control)

    def _on_data(self, frame: Data):
        ch = self._channel_of.get(frame.stream_id)
        if ch == STDIN:
            if frame.flags & FLAG_FIN:
                if frame.data:
                    self._pending.insert(0, Data(frame.stream_id, FLAG_FIN, b""))
                    return bytes([STDIN]) + frame.data
                return bytes([CLOSE, STDIN])
            return bytes([STDIN]) + frame.data if frame.data else None
        if ch == RESIZE and frame.data:
            msgs, self._resize_buf = split_json_messages(self._resize_buf + frame.data)
            self._ready.extend(bytes([RESIZE]) + m for m in msgs)
        return None


def upgrade(handler) -> tuple[Session, str]:
    """Answer an `Upgrade: SPDY/3.1` request on a BaseHTTPRequestHandler and
    wait for the client's streams; the connection is the session's from
    then on. UpgradeError(code) before the 101, UpgradeError(0) after."""
    protocol = negotiate(handler.headers.get_all("X-Stream-Protocol-Version") or [])
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(handler.path).query)

    def flag(k):
        return (q.get(k) or ["false"])[-1] in ("1", "true")
    want = expected_streams(protocol, flag("stdin"), flag("stdout"), flag("stderr"), flag("tty"))
    handler.wfile.write(handshake_response(protocol))
    handler.wfile.flush()
    handler.close_connection = True
    session = Session(handler.rfile, handler.wfile, protocol, getattr(handler, "connection", None))
    session.accept(want)
    return session, protocol
