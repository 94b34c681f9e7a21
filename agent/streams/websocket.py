"""WebSocket (RFC 6455) as kubectl's exec and attach speak it, by hand: the
standard library has no WebSocket and the needed part is small.

The server side only: the upgrade handshake, reading (masked) client
frames, writing (unmasked) server frames, answering pings (client-go's
heartbeat closes the session if its pings go unanswered), and Kubernetes'
channel protocol on top: every binary message starts with a stream id
(0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize; in v5.channel.k8s.io 255
carries "close stream <id>").

Pure framing is separated from sockets: `encode_frame`/`FrameDecoder` work
on bytes and are unit-tested; `Connection` wraps a file pair.
"""
from __future__ import annotations

import base64
import hashlib
import struct
import threading

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")   # what we speak, best first
TUNNEL_PREFIX = "SPDY/3.1+"   # kubectl >= 1.31 port-forward: SPDY carried in binary messages

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
MAX_MESSAGE = 16 << 20


class ProtocolError(Exception):
    pass


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1((key.strip() + GUID).encode()).digest()).decode()


def choose_protocol(offered: str | None, supported: tuple[str, ...] = PROTOCOLS) -> str | None:
    """The subprotocol to answer from a Sec-WebSocket-Protocol header."""
    names = [p.strip() for p in (offered or "").split(",") if p.strip()]
    for p in supported:
        if p in names:
            return p
    return None


def handshake_response(key: str, protocol: str) -> bytes:
    return ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(key)}\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n").encode()


def encode_frame(opcode: int, payload: bytes, mask: bytes | None = None, fin: bool = True) -> bytes:
    """One frame; servers send unmasked (mask None), clients masked."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 1 << 16:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if mask:
        head += mask
        payload = _xor(payload, mask)
    return head + payload


def _xor(data: bytes, mask: bytes) -> bytes:
    if not data:
        return data
    m = (mask * (len(data) // 4 + 1))[:len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(m, "big")).to_bytes(len(data), "big")


class FrameDecoder:
    """Feed bytes, get complete frames (fin, opcode, payload) back."""

    def __init__(self, require_mask: bool = True):
        self.buf = b""
        self.require_mask = require_mask

    def feed(self, data: bytes) -> list[tuple[bool, int, bytes]]:
        self.buf += data
        out = []
        while True:
            frame = self._one()
            if frame is None:
                return out
            out.append(frame)

    def _one(self):
        b = self.buf
        if len(b) < 2:
            return None
        fin, opcode = bool(b[0] & 0x80), b[0] & 0x0F
        masked, n = bool(b[1] & 0x80), b[1] & 0x7F
        pos = 2
        if n == 126:
            if len(b) < 4:
                return None
            n, pos = struct.unpack("!H", b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, pos = struct.unpack("!Q", b[2:10])[0], 10
        if n > MAX_MESSAGE:
            raise ProtocolError(f"frame of {n} bytes is larger than {MAX_MESSAGE}")
        if self.require_mask and not masked:
            raise ProtocolError("client frames must be masked (RFC 6455 5.1)")
        mask = b""
        if masked:
            if len(b) < pos + 4:
                return None
            mask, pos = b[pos:pos + 4], pos + 4
        if len(b) < pos + n:
            return None
        payload = b[pos:pos + n]
        self.buf = b[pos + n:]
        return fin, opcode, _xor(payload, mask) if masked else payload


class Connection:
    """A server-side WebSocket on (rfile, wfile): messages in, frames out.
    Writes are serialised (stdout and stderr pumps share it)."""

    def __init__(self, rfile, wfile):
        self.rfile, self.wfile = rfile, wfile
        self.decoder = FrameDecoder()
        self._pending: list = []
        self._parts: list[bytes] = []
        self._part_op = None
        self._wlock = threading.Lock()
        self.closed = False

    def send(self, opcode: int, payload: bytes) -> None:
        with self._wlock:
            if self.closed and opcode != OP_CLOSE:
                return
            self.wfile.write(encode_frame(opcode, payload))
            self.wfile.flush()

    def send_channel(self, stream: int, data: bytes) -> None:
        self.send(OP_BINARY, bytes([stream]) + data)

    def close(self, code: int = 1000) -> None:
        if not self.closed:
            try:
                self.send(OP_CLOSE, struct.pack("!H", code))
            except OSError:
                pass
            self.closed = True

    def receive(self) -> tuple[int, bytes] | None:
        """The next data message (opcode, payload); None when the peer closed.
        Pings are answered here."""
        while True:
            while not self._pending:
                data = self.rfile.read1(65536) if hasattr(self.rfile, "read1") else self.rfile.read(65536)
                if not data:
                    return None
                self._pending.extend(self.decoder.feed(data))
            fin, op, payload = self._pending.pop(0)
            if op == OP_PING:
                self.send(OP_PONG, payload)
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                self.close()
                return None
            if op == OP_CONT:
                self._parts.append(payload)
            else:
                self._parts, self._part_op = [payload], op
            if fin:
                msg, self._parts = b"".join(self._parts), []
                return self._part_op, msg


class ByteStream:
    """A WebSocket Connection as one byte stream, as client-go's tunneling
    connection makes it (kubectl port-forward, subprotocol
    `SPDY/3.1+portforward.k8s.io`): reads return the binary messages'
    payloads in order, each write is one binary message. File-like enough
    for agent/streams/spdy.py's readers and writers."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self._buf = b""

    def read1(self, n: int = 65536) -> bytes:
        while not self._buf:
            msg = self.conn.receive()
            if msg is None:
                return b""
            op, data = msg
            if op != OP_BINARY:
                raise ProtocolError("a tunnelled stream carries binary messages only")
            self._buf = data
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    read = read1

    def write(self, data: bytes) -> int:
        self.conn.send(OP_BINARY, bytes(data))
        return len(data)

    def flush(self) -> None:
        pass
