"""SPDY/3.1 framing and header compression against hand-built frames, and
exec sessions driven over a socket pair the way kubectl 1.20's client-go
drives them (SYN_STREAM per stream type, DATA, FIN, PING, GOAWAY)."""
import email.message
import io
import json
import os
import socket
import struct
import threading
import zlib

import pytest

from agent.streams import sessions as streams
from agent.streams import spdy

# ---- the dictionary and the header codec ---------------------------------------

def test_dictionary_is_the_spdy3_one():
    d = spdy.DICTIONARY
    assert len(d) == 1423
    assert d.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post")
    assert b"\x00\x00\x00\x06200 OK\x00\x00\x00\x07version\x00\x00\x00\x08HTTP/1.1" in d
    assert b"\x00\x00\x00\x06origin100101201202205206300302" in d and d.endswith(b"utf-,*,enq=0.")
    assert zlib.adler32(d) == 0xE3C6A7C2          # the DICTID every SPDY/3 peer puts in its zlib header


def test_header_block_layout_by_hand():
    raw = spdy.encode_header_block({"streamType": "error", "x": ["a", "b"]})
    assert raw == (b"\x00\x00\x00\x02" b"\x00\x00\x00\x0astreamtype" b"\x00\x00\x00\x05error"
                   b"\x00\x00\x00\x01x" b"\x00\x00\x00\x03a\x00b")
    assert spdy.decode_header_block(raw) == {"streamtype": ["error"], "x": ["a", "b"]}


@pytest.mark.parametrize("raw", [b"\x00\x00", b"\x00\x00\x00\x01\x00\x00\x00\x09short"])
def test_truncated_header_block_is_a_protocol_error(raw):
    with pytest.raises(spdy.ProtocolError):
        spdy.decode_header_block(raw)


def test_compressor_shares_one_context_and_names_the_dictionary():
    comp = spdy.HeaderCompressor()
    first, second = comp.compress({"streamtype": "stdout"}), comp.compress({"streamtype": "stdout"})
    # zlib header with FDICT set, then the dictionary's adler32 (RFC 1950)
    assert first[0] == 0x78 and first[1] & 0x20 and (first[0] << 8 | first[1]) % 31 == 0
    assert struct.unpack("!I", first[2:6])[0] == zlib.adler32(spdy.DICTIONARY)
    assert first.endswith(b"\x00\x00\xff\xff") and second.endswith(b"\x00\x00\xff\xff")   # sync flush
    assert len(second) < len(first)          # the second block only refers back to the first
    inflate = zlib.decompressobj(zdict=spdy.DICTIONARY)    # an independent peer
    assert inflate.decompress(first) == inflate.decompress(second) == spdy.encode_header_block(
        {"streamtype": "stdout"})


def test_decompressor_reads_a_peers_stream_of_blocks():
    peer = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zdict=spdy.DICTIONARY)
    blocks = [peer.compress(spdy.encode_header_block({"streamtype": t})) + peer.flush(zlib.Z_SYNC_FLUSH)
              for t in ("error", "stdin", "stdout")]
    inflate = spdy.HeaderDecompressor()
    assert [inflate.decompress(b)["streamtype"] for b in blocks] == [["error"], ["stdin"], ["stdout"]]
    with pytest.raises(spdy.ProtocolError):
        spdy.HeaderDecompressor().decompress(blocks[1])     # not the start of a stream


# ---- frames ----------------------------------------------------------------------------

def test_frames_by_hand():
    assert spdy.encode_data(1, b"hi", fin=True) == b"\x00\x00\x00\x01\x01\x00\x00\x02hi"
    assert spdy.encode_data(5, b"") == b"\x00\x00\x00\x05\x00\x00\x00\x00"
    assert spdy.encode_ping(7) == b"\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x07"
    assert spdy.encode_goaway(9) == b"\x80\x03\x00\x07\x00\x00\x00\x08\x00\x00\x00\x09\x00\x00\x00\x00"
    assert spdy.encode_rst_stream(3, 3) == b"\x80\x03\x00\x03\x00\x00\x00\x08\x00\x00\x00\x03\x00\x00\x00\x03"
    assert spdy.encode_syn_reply(3, b"ZZ", fin=True) == b"\x80\x03\x00\x02\x01\x00\x00\x06\x00\x00\x00\x03ZZ"
    syn = spdy.encode_syn_stream(1, b"HB", priority=0)
    assert syn == b"\x80\x03\x00\x01\x00\x00\x00\x0c\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00HB"
    assert spdy.parse_syn_stream(syn[8:]) == (1, 0, b"HB")


def test_decoder_reassembles_frames_split_anywhere():
    wire = (spdy.encode_ping(1) + spdy.encode_data(3, b"x" * 70000, fin=True)
            + spdy.encode_syn_stream(5, b"abc", flags=spdy.FLAG_FIN))
    dec, got = spdy.FrameDecoder(), []
    for i in range(0, len(wire), 999):
        got += dec.feed(wire[i:i + 999])
    assert got == [spdy.Control(spdy.PING, 0, b"\x00\x00\x00\x01"), spdy.Data(3, 1, b"x" * 70000),
                   spdy.Control(spdy.SYN_STREAM, 1, b"\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00abc")]
    assert dec.buf == b""


def test_spdy2_frames_are_refused():
    with pytest.raises(spdy.ProtocolError, match="version 2"):
        spdy.FrameDecoder().feed(b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01")


def test_split_json_messages_across_frames():
    msgs, rest = spdy.split_json_messages(b'{"Width":80,"Height":24}\n{"Width":1')
    assert msgs == [b'{"Width":80,"Height":24}'] and rest == b'{"Width":1'
    msgs, rest = spdy.split_json_messages(rest + b'00,"Height":40}\n')
    assert msgs == [b'{"Width":100,"Height":40}'] and rest == b""


# ---- negotiation -------------------------------------------------------------------------

def test_negotiate_like_kube_handshake():
    offered = ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"]
    assert spdy.negotiate(offered) == "v4.channel.k8s.io"
    assert spdy.negotiate(["channel.k8s.io, v2.channel.k8s.io"]) == "v2.channel.k8s.io"
    assert spdy.negotiate([]) == ""
    with pytest.raises(spdy.UpgradeError) as e:
        spdy.negotiate(["v9.channel.k8s.io"])
    assert e.value.code == 403 and "unable to negotiate protocol" in str(e.value)
    assert b"X-Stream-Protocol-Version: v4.channel.k8s.io\r\n" in spdy.handshake_response("v4.channel.k8s.io")
    assert b"X-Stream" not in spdy.handshake_response("")


def test_expected_streams_follow_the_kubelet():
    assert spdy.expected_streams(spdy.V4, False, True, True, False) == {"error", "stdout", "stderr"}
    assert spdy.expected_streams(spdy.V4, True, True, True, True) == {"error", "stdin", "stdout", "resize"}
    assert spdy.expected_streams(spdy.V2, True, True, False, True) == {"error", "stdin", "stdout"}


# ---- sessions over a socket pair -----------------------------------------------------------------

class Client:
    """client-go's side: its own zlib contexts, SYN_STREAMs with odd ids."""

    def __init__(self, sock):
        self.sock, self.next_id = sock, 1
        self.deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zdict=spdy.DICTIONARY)
        self.inflate = zlib.decompressobj(zdict=spdy.DICTIONARY)
        self.dec = spdy.FrameDecoder()
        self.ids = {}

    def open(self, kind: str) -> int:
        sid, self.next_id = self.next_id, self.next_id + 2
        block = self.deflate.compress(spdy.encode_header_block({"streamtype": kind})) + \
            self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(spdy.encode_syn_stream(sid, block))
        self.ids[kind] = sid
        return sid

    def send(self, kind: str, data: bytes, fin: bool = False):
        self.sock.sendall(spdy.encode_data(self.ids[kind], data, fin))

    def read_all(self, limit: float = 10.0):
        """Until GOAWAY: data per stream, FINs, replies, pings, goaway."""
        self.sock.settimeout(limit)
        names = {v: k for k, v in self.ids.items()}
        got = {"data": {k: b"" for k in self.ids}, "fin": set(), "replies": set(), "pings": [], "goaway": None}
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return got
            for f in self.dec.feed(chunk):
                if isinstance(f, spdy.Data):
                    got["data"][names[f.stream_id]] += f.data
                    if f.flags & spdy.FLAG_FIN:
                        got["fin"].add(names[f.stream_id])
                elif f.type == spdy.SYN_REPLY:
                    sid = struct.unpack("!I", f.payload[:4])[0]
                    assert spdy.decode_header_block(self.inflate.decompress(f.payload[4:])) == {}
                    got["replies"].add(names[sid])
                elif f.type == spdy.PING:
                    got["pings"].append(f.payload)
                elif f.type == spdy.GOAWAY:
                    got["goaway"] = struct.unpack("!II", f.payload)
                    self.sock.shutdown(socket.SHUT_WR)     # kubectl hangs up once it has its status
                    return got


def run_session(argv, kinds, protocol=spdy.V4, stdin_data=None, tty=False, resize=None):
    a, b = socket.socketpair()
    session = spdy.Session(a.makefile("rb"), a.makefile("wb", buffering=0), protocol)
    client = Client(b)
    client.open(kinds[0])
    b.sendall(spdy.encode_ping(1))           # answered while the streams are being set up (sent before
    for k in kinds[1:]:                      # the last of them, so accept() reads it: an exec that ends
        client.open(k)                       # at once may close the session before a later ping is read)
    session.accept(set(kinds), timeout=5)
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("code", streams.exec_session(
        session, argv, {"PATH": os.environ["PATH"]}, "stdin" in kinds, tty, argv)))
    t.start()
    if resize:
        client.send("resize", resize[:7])
        client.send("resize", resize[7:])
    if stdin_data is not None:              # cat waits for it, so this ping is answered mid-session
        b.sendall(spdy.encode_ping(3))
        client.send("stdin", stdin_data, fin=True)
    got = client.read_all()
    t.join(10)
    a.close()
    b.close()
    return result["code"], got


def test_exec_streams_exit_code_and_fins_every_stream():
    code, got = run_session(["sh", "-c", "echo out; echo err >&2; exit 3"], ["error", "stdout", "stderr"])
    assert code == 3
    assert got["replies"] == {"error", "stdout", "stderr"}
    assert got["data"]["stdout"] == b"out\n" and got["data"]["stderr"] == b"err\n"
    status = json.loads(got["data"]["error"])
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert got["fin"] == {"error", "stdout", "stderr"}
    assert got["pings"] == [b"\x00\x00\x00\x01"]
    assert got["goaway"] == (5, 0)         # last stream the client opened, status OK


def test_exec_stdin_then_fin_closes_the_commands_input():
    code, got = run_session(["cat"], ["error", "stdin", "stdout", "stderr"], stdin_data=b"through stdin\n")
    assert code == 0 and got["data"]["stdout"] == b"through stdin\n"
    assert json.loads(got["data"]["error"]) == {"metadata": {}, "status": "Success"}
    assert "stdin" in got["fin"]          # client-go waits for the server to close stdin too
    assert got["pings"] == [b"\x00\x00\x00\x01", b"\x00\x00\x00\x03"]


def test_exec_on_a_tty_applies_resize_messages():
    code, got = run_session(["sh", "-c", "sleep 0.5; stty size"], ["error", "stdin", "stdout", "resize"],
                            tty=True, resize=b'{"Width":100,"Height":40}\n')
    assert code == 0 and b"40 100" in got["data"]["stdout"]


def test_v3_error_stream_carries_only_a_failure_message():
    code, got = run_session(["sh", "-c", "exit 2"], ["error", "stdout", "stderr"], protocol=spdy.V3)
    assert code == 2 and got["data"]["error"].startswith(b"command terminated with non-zero exit code")
    code, got = run_session(["true"], ["error", "stdout", "stderr"], protocol=spdy.V3)
    assert code == 0 and got["data"]["error"] == b""


def test_unknown_stream_type_is_refused_and_the_wait_times_out():
    a, b = socket.socketpair()
    session = spdy.Session(a.makefile("rb"), a.makefile("wb", buffering=0), spdy.V4, a)
    client = Client(b)
    client.open("bogus")
    b.sendall(spdy.encode_ping(3))           # keeps the wait reading until its deadline passes
    with pytest.raises(spdy.UpgradeError) as e:
        session.accept({"error"}, timeout=0.3)
    assert e.value.code == 0
    b.settimeout(2)
    frames = spdy.FrameDecoder().feed(b.recv(4096))
    assert spdy.Control(spdy.RST_STREAM, 0, struct.pack("!II", 1, spdy.RST_REFUSED_STREAM)) in frames
    a.close()
    b.close()


def test_receive_keeps_the_header_context_in_step_and_ends_on_a_bad_frame():
    a, b = socket.socketpair()
    session = spdy.Session(a.makefile("rb"), a.makefile("wb", buffering=0), spdy.V4, a)
    client = Client(b)
    client.open("error")
    session.accept({"error"}, timeout=5)
    block = client.deflate.compress(spdy.encode_header_block({"x": "y"})) + client.deflate.flush(zlib.Z_SYNC_FLUSH)
    b.sendall(spdy.encode_control(spdy.HEADERS, 0, struct.pack("!I", 1) + block))
    client.open("stdin")                     # inflates only if the HEADERS block was inflated too
    client.send("stdin", b"ab")
    assert session.receive() == (2, b"\x00ab")
    frame = spdy.encode_data(client.ids["stdin"], b"c", fin=True)
    b.sendall(frame[:5])                      # a read may hold only part of a frame
    threading.Timer(0.2, b.sendall, (frame[5:],)).start()
    assert session.receive() == (2, b"\x00c")
    assert session.receive() == (2, bytes([spdy.CLOSE, spdy.STDIN]))
    b.sendall(b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01")     # a SPDY/2 PING
    assert session.receive() is None
    a.close()
    b.close()


class FakeHandler:
    def __init__(self, headers: list[tuple[str, str]], path: str, rfile):
        self.headers = email.message.Message()
        for k, v in headers:
            self.headers[k] = v
        self.path, self.rfile, self.wfile = path, rfile, io.BytesIO()
        self.close_connection = False


def test_upgrade_negotiates_then_waits_for_the_streams_the_query_asks_for():
    peer = Client(socket.socket())           # only its compressor is used: frames go into a buffer
    sent = io.BytesIO()
    peer.sock = type("S", (), {"sendall": lambda self, d: sent.write(d)})()
    for k in ("error", "stdout", "stderr"):
        peer.open(k)
    h = FakeHandler([("Upgrade", "SPDY/3.1"), ("X-Stream-Protocol-Version", "v4.channel.k8s.io"),
                     ("X-Stream-Protocol-Version", "v3.channel.k8s.io")],
                    "/exec/default/p/c?command=true&stdout=true&stderr=true", io.BytesIO(sent.getvalue()))
    session, proto = spdy.upgrade(h)
    assert proto == spdy.V4 and h.close_connection
    assert h.wfile.getvalue().startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert set(session.streams) == {spdy.ERROR, spdy.STDOUT, spdy.STDERR}
    h = FakeHandler([("Upgrade", "SPDY/3.1"), ("X-Stream-Protocol-Version", "v9")], "/exec/a/b/c", io.BytesIO())
    with pytest.raises(spdy.UpgradeError) as e:
        spdy.upgrade(h)
    assert e.value.code == 403 and h.wfile.getvalue() == b""
