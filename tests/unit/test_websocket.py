"""RFC 6455 framing and the channel protocol, and an exec session driven
over a socket pair the way kubectl drives it (no namespaces: plain argv)."""
import json
import os
import socket
import threading

import pytest

from agent.streams import sessions as streams
from agent.streams import websocket as ws


def test_accept_key_rfc_example():
    assert ws.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_choose_protocol_prefers_v5():
    assert ws.choose_protocol("v4.channel.k8s.io, v5.channel.k8s.io") == "v5.channel.k8s.io"
    assert ws.choose_protocol("v4.channel.k8s.io") == "v4.channel.k8s.io"
    assert ws.choose_protocol("channel.k8s.io") is None
    assert ws.choose_protocol(None) is None


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536, 70000])
def test_masked_frames_round_trip_at_every_length_encoding(size):
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    frame = ws.encode_frame(ws.OP_BINARY, payload, mask=b"\x01\x02\x03\x04")
    dec = ws.FrameDecoder()
    # fed in awkward pieces: a frame may arrive split anywhere
    got = []
    for i in range(0, len(frame), 7000):
        got += dec.feed(frame[i:i + 7000])
    assert got == [(True, ws.OP_BINARY, payload)]
    assert dec.buf == b""


def test_unmasked_client_frame_is_a_protocol_error():
    with pytest.raises(ws.ProtocolError):
        ws.FrameDecoder().feed(ws.encode_frame(ws.OP_BINARY, b"x"))


def test_server_frames_are_unmasked_with_small_header():
    assert ws.encode_frame(ws.OP_BINARY, b"\x01hi") == b"\x82\x03\x01hi"


class Client:
    """The kubectl side: masked frames out, server frames in."""

    def __init__(self, sock):
        self.sock = sock
        self.dec = ws.FrameDecoder(require_mask=False)
        self.frames = []

    def send(self, stream: int, data: bytes = b"", opcode=ws.OP_BINARY):
        self.sock.sendall(ws.encode_frame(opcode, bytes([stream]) + data if opcode == ws.OP_BINARY else data,
                                          mask=os.urandom(4)))

    def read_all(self, limit: float = 10.0):
        self.sock.settimeout(limit)
        out = {1: b"", 2: b"", 3: b""}
        pongs = []
        while True:
            data = self.sock.recv(65536)
            if not data:
                break
            for fin, op, payload in self.dec.feed(data):
                if op == ws.OP_BINARY:
                    out[payload[0]] += payload[1:]
                elif op == ws.OP_PONG:
                    pongs.append(payload)
                elif op == ws.OP_CLOSE:
                    return out, pongs
        return out, pongs


def run_session(argv, stdin_data=None, stdin=False, tty=False):
    a, b = socket.socketpair()
    conn = ws.Connection(a.makefile("rb"), a.makefile("wb", buffering=0))
    result = {}
    t = threading.Thread(target=lambda: result.setdefault(
        "code", streams.exec_session(conn, argv, {"PATH": os.environ["PATH"]}, stdin, tty, argv)))
    t.start()
    client = Client(b)
    client.send(0, b"", opcode=ws.OP_PING)
    if stdin_data is not None:
        client.send(ws.STDIN, stdin_data)
        client.send(ws.CLOSE, bytes([ws.STDIN]))      # v5: stdin is done
    out, pongs = client.read_all()
    t.join(10)
    a.close()
    b.close()
    return result["code"], out, pongs


def test_exec_session_streams_and_reports_exit_code():
    code, out, pongs = run_session(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert code == 3
    assert out[1] == b"out\n" and out[2] == b"err\n"
    status = json.loads(out[3])
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


def test_exec_session_stdin_pings_and_success_status():
    # the ping is read before stdin, so it is answered while cat still runs
    code, out, pongs = run_session(["cat"], stdin_data=b"hello\n", stdin=True)
    assert code == 0 and out[1] == b"hello\n"
    assert pongs == [b""]
    assert json.loads(out[3]) == {"metadata": {}, "status": "Success"}


def test_exec_session_on_a_tty():
    code, out, _ = run_session(["sh", "-c", "test -t 0 && echo tty"], tty=True)
    assert code == 0 and b"tty" in out[1]


def test_exit_status_success_and_failure():
    assert streams.exit_status(0, ["x"]) == {"metadata": {}, "status": "Success"}
    assert "exit code 7" in streams.exit_status(7, ["sh", "-c", "exit 7"])["message"]


def test_upgrade_kind():
    assert streams.upgrade_kind({"Upgrade": "websocket"}) == "websocket"
    assert streams.upgrade_kind({"Upgrade": "SPDY/3.1"}) == "spdy"
    assert streams.upgrade_kind({}) == ""
