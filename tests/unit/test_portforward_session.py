"""The kubelet's end of port-forward (agent/streams/portforward.py), driven
over a socket pair the way client-go drives it: an error and a data stream
per connection with `port` and `requestID` headers, DATA, FIN, RST_STREAM;
directly in SPDY and tunnelled in WebSocket binary messages. The "pod" is
an echo server on this machine's loopback."""
import email.message
import io
import os
import socket
import struct
import threading
import time
import zlib

import pytest

from agent.streams import portforward as pf
from agent.streams import sessions, spdy
from agent.streams import websocket as ws

# ---- stream headers ------------------------------------------------------------

@pytest.mark.parametrize("headers,sid,want", [
    ({"streamtype": ["error"], "port": ["80"], "requestid": ["7"]}, 1, ("error", 80, "7")),
    ({"streamtype": ["data"], "port": ["8080"], "requestid": ["0"]}, 3, ("data", 8080, "0")),
    ({"streamtype": ["error"], "port": ["80"]}, 5, ("error", 80, "5")),       # an old client: by stream id
    ({"streamtype": ["data"], "port": ["80"]}, 7, ("data", 80, "5")),
])
def test_stream_headers(headers, sid, want):
    assert pf.stream_headers(headers, sid) == want


@pytest.mark.parametrize("headers,message", [
    ({"streamtype": ["data"]}, '"port" header is required'),
    ({"streamtype": ["data"], "port": ["http"]}, 'unable to parse "http" as a port'),
    ({"streamtype": ["data"], "port": ["70000"]}, 'unable to parse "70000" as a port'),
    ({"streamtype": ["data"], "port": ["0"]}, 'port "0" must be > 0'),
    ({"port": ["80"]}, '"streamType" header is required'),
    ({"streamtype": ["stdout"], "port": ["80"]}, 'invalid stream type "stdout"'),
])
def test_stream_headers_refused_with_the_kubelets_message(headers, message):
    with pytest.raises(ValueError, match=message):
        pf.stream_headers(headers, 1)


# ---- a session over a socket pair -------------------------------------------------------

class EchoPod:
    """A TCP echo server on 127.0.0.1: what it got, per connection."""

    def __init__(self):
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.got: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn):
        buf = b""
        with conn:
            while data := conn.recv(65536):
                buf += data
                conn.sendall(data.upper())
            self.got.append(buf)           # before the close the session sees

    def dial(self, port):
        try:
            return socket.create_connection(("127.0.0.1", self.port if port == 80 else port), timeout=5)
        except OSError as e:
            raise pf.DialError(f"error forwarding port {port} to pod abc, uid : dial tcp4 127.0.0.1:{port}: "
                               f"connect: {e.strerror.lower()}") from None


class Client:
    """client-go's side of one port-forward connection."""

    def __init__(self, sock, tunnel=False):
        self.sock, self.tunnel, self.next_id = sock, tunnel, 1
        self.deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zdict=spdy.DICTIONARY)
        self.inflate = zlib.decompressobj(zdict=spdy.DICTIONARY)
        self.dec, self.wsdec = spdy.FrameDecoder(), ws.FrameDecoder(require_mask=False)
        self.data, self.fin, self.replies, self.resets = {}, set(), set(), set()

    def write(self, raw: bytes):
        self.sock.sendall(ws.encode_frame(ws.OP_BINARY, raw, mask=os.urandom(4)) if self.tunnel else raw)

    def open(self, kind: str, port: int, request_id: str | None) -> int:
        sid, self.next_id = self.next_id, self.next_id + 2
        headers = {"streamType": kind, "port": str(port)}
        if request_id is not None:
            headers["requestID"] = request_id
        block = self.deflate.compress(spdy.encode_header_block(headers)) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.write(spdy.encode_syn_stream(sid, block))
        self.data[sid] = b""
        return sid

    def pair(self, port: int, request_id: str | None):
        err = self.open("error", port, request_id)
        self.write(spdy.encode_data(err, b"", fin=True))        # client-go closes its side at once
        return err, self.open("data", port, request_id)

    def frames(self, data: bytes):
        if not self.tunnel:
            return self.dec.feed(data)
        return [f for _, op, payload in self.wsdec.feed(data) if op == ws.OP_BINARY for f in self.dec.feed(payload)]

    def read_until(self, done, limit: float = 10.0):
        self.sock.settimeout(limit)
        while not done(self):
            chunk = self.sock.recv(65536)
            if not chunk:
                return
            for f in self.frames(chunk):
                if isinstance(f, spdy.Data):
                    self.data[f.stream_id] += f.data
                    if f.flags & spdy.FLAG_FIN:
                        self.fin.add(f.stream_id)
                elif f.type == spdy.SYN_REPLY:
                    self.inflate.decompress(f.payload[4:])
                    self.replies.add(struct.unpack("!I", f.payload[:4])[0])
                elif f.type == spdy.RST_STREAM:
                    self.resets.add(struct.unpack("!I", f.payload[:4])[0])


@pytest.fixture
def pod():
    p = EchoPod()
    yield p
    p.srv.close()


def session(pod, tunnel=False, **kw):
    a, b = socket.socketpair()
    rfile, wfile = a.makefile("rb"), a.makefile("wb", buffering=0)
    if tunnel:
        rfile = wfile = ws.ByteStream(ws.Connection(rfile, wfile))
    t = threading.Thread(target=pf.Session(rfile, wfile, pod.dial, **kw).serve, daemon=True)
    t.start()
    return Client(b, tunnel), t, (a, b)


@pytest.mark.parametrize("tunnel", [False, True], ids=["spdy", "websocket"])
def test_connections_are_spliced_to_the_pod_and_closed_cleanly(pod, tunnel):
    client, t, socks = session(pod, tunnel)
    pairs = [client.pair(80, str(i)) for i in range(3)]
    for i, (_, data) in enumerate(pairs):
        client.write(spdy.encode_data(data, b"hello %d" % i))
        client.write(spdy.encode_data(data, b"", fin=True))          # the user's side half-closes
    client.read_until(lambda c: all(e in c.fin and d in c.fin for e, d in pairs))
    assert client.replies == {sid for p in pairs for sid in p}
    assert [client.data[d] for _, d in pairs] == [b"HELLO 0", b"HELLO 1", b"HELLO 2"]
    assert all(client.data[e] == b"" for e, _ in pairs)               # no error
    assert sorted(pod.got) == [b"hello 0", b"hello 1", b"hello 2"]
    socks[1].shutdown(socket.SHUT_WR)                                  # kubectl goes: the session ends
    t.join(10)
    assert not t.is_alive()


def test_reset_data_stream_closes_the_pods_connection(pod):
    client, t, socks = session(pod)
    err, data = client.pair(80, "0")
    client.write(spdy.encode_data(data, b"ping"))
    client.read_until(lambda c: c.data[data] == b"PING")
    client.write(spdy.encode_rst_stream(data, 5))
    client.read_until(lambda c: err in c.fin)
    for _ in range(100):                      # the pod's side sees the end of its connection
        if pod.got:
            break
        time.sleep(0.05)
    assert pod.got == [b"ping"]
    socks[1].close()
    t.join(10)


def test_nothing_listening_is_reported_on_the_error_stream(pod):
    spare = socket.create_server(("127.0.0.1", 0))
    closed_port = spare.getsockname()[1]
    spare.close()
    client, t, socks = session(pod)
    err, data = client.pair(closed_port, "0")
    client.read_until(lambda c: err in c.fin and data in c.fin)
    assert client.data[err].decode() == (f"error forwarding port {closed_port} to pod abc, uid : "
                                         f"dial tcp4 127.0.0.1:{closed_port}: connect: connection refused")
    socks[1].close()
    t.join(10)


def test_streams_with_bad_headers_are_reset(pod):
    client, t, socks = session(pod)
    bad = client.open("stdout", 80, "0")
    twice = [client.open("error", 80, "1"), client.open("error", 80, "1")]
    client.read_until(lambda c: {bad, twice[1]} <= c.resets)
    assert twice[0] in client.replies and bad not in client.replies
    socks[1].close()
    t.join(10)


def test_pings_are_answered(pod):
    client, t, socks = session(pod)
    client.write(spdy.encode_ping(7))
    got = []
    socks[1].settimeout(5)
    while not got:
        got = [f for f in client.frames(socks[1].recv(65536)) if not isinstance(f, spdy.Data) and f.type == spdy.PING]
    assert got[0].payload == struct.pack("!I", 7)
    socks[1].close()
    t.join(10)


# ---- the upgrade ----------------------------------------------------------------------------

class FakeHandler:
    def __init__(self, headers):
        self.headers = email.message.Message()
        for k, v in headers:
            self.headers[k] = v
        self.rfile, self.wfile = io.BytesIO(), io.BytesIO()


def test_upgrade_answers_the_websocket_tunnel_subprotocol():
    h = FakeHandler([("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                     ("Sec-WebSocket-Protocol", "SPDY/3.1+portforward.k8s.io")])
    rfile, wfile = pf.upgrade(h)
    assert isinstance(rfile, ws.ByteStream)
    assert b"Sec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io\r\n" in h.wfile.getvalue()


def test_upgrade_answers_spdy_with_the_portforward_protocol():
    h = FakeHandler([("Upgrade", "SPDY/3.1"), ("Connection", "Upgrade"),
                     ("X-Stream-Protocol-Version", "portforward.k8s.io")])
    pf.upgrade(h)
    assert h.wfile.getvalue().startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"X-Stream-Protocol-Version: portforward.k8s.io\r\n" in h.wfile.getvalue()


@pytest.mark.parametrize("headers,code", [
    ([("Upgrade", "websocket"), ("Sec-WebSocket-Key", "x"), ("Sec-WebSocket-Protocol", "v5.channel.k8s.io")], 400),
    ([("Upgrade", "SPDY/3.1"), ("X-Stream-Protocol-Version", "v4.channel.k8s.io")], 403),
    ([], 400),
])
def test_upgrade_refusals(headers, code):
    h = FakeHandler(headers)
    with pytest.raises(sessions.StreamError) as e:
        pf.upgrade(h)
    assert e.value.code == code and h.wfile.getvalue() == b""


@pytest.mark.parametrize("tunnel", [False, True], ids=["spdy", "websocket"])
def test_a_megabyte_each_way(pod, tunnel):
    client, t, socks = session(pod, tunnel)
    err, data = client.pair(80, "0")
    blob = os.urandom(1 << 20).hex().encode()[: 1 << 20].lower()
    sender = threading.Thread(target=lambda: [client.write(spdy.encode_data(data, blob[i:i + 30000]))
                                              for i in range(0, len(blob), 30000)]
                              + [client.write(spdy.encode_data(data, b"", fin=True))])
    sender.start()
    client.read_until(lambda c: err in c.fin and data in c.fin, limit=30)
    sender.join(10)
    assert client.data[data] == blob.upper() and pod.got == [blob]
    socks[1].close()
    t.join(10)


def test_a_request_whose_data_stream_never_comes_times_out(pod):
    client, t, socks = session(pod, stream_timeout=0.2)
    err = client.open("error", 80, "0")
    client.read_until(lambda c: err in c.fin)
    assert client.data[err] == b"(request=0) timed out waiting for streams"
    later = client.open("data", 80, "0")            # too late: a new request, which times out in turn
    client.read_until(lambda c: later in c.resets)
    socks[1].close()
    t.join(10)
