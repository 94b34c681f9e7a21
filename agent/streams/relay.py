"""The API server's hop of exec, attach and logs -f: it runs nothing itself;
after checking the pod it relays the upgraded connection byte for byte to
the kubelet of the pod's node (`proxy_upgrade`, over TLS with the API
server's kubelet client certificate), and a followed log chunk by chunk
(`relay_chunked`). The kubelet's hop is agent/streams/sessions.py. The
proxy subresources relay WebSocket upgrades to pods the same way."""
from __future__ import annotations

import logging
import socket
import ssl
import threading

from agent.streams.sessions import StreamError

log = logging.getLogger("nsplane.streams")
FORWARDED = ("Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Protocol",
             "Sec-WebSocket-Extensions", "X-Stream-Protocol-Version")

def proxy_upgrade(handler, address: str, path: str, timeout: float = 10.0, tls: ssl.SSLContext | None = None,
                  headers: list[tuple[str, str]] | None = None, what: str = "the kubelet",
                  method: str = "GET") -> None:
    """Forward an upgrade request to `what` at `address` (host:port), over
    TLS when `tls` is given (the kubelet: its certificate verified, ours
    presented), and splice the two connections until either side ends.
    `headers`: what to send besides Host (default: the upgrade's own)."""
    host, port = address.rsplit(":", 1)
    try:
        up = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
        if tls is not None:
            up = tls.wrap_socket(up, server_hostname=host.strip("[]"))
    except OSError as e:
        raise StreamError(503, f"unable to upgrade connection: cannot reach {what} at {address}: {e}") from None
    if headers is None:
        headers = [(h, v) for h in FORWARDED for v in handler.headers.get_all(h) or []]
    head = "".join(f"{h}: {v}\r\n" for h, v in headers)
    up.sendall(f"{method} {path} HTTP/1.1\r\nHost: {address}\r\n{head}\r\n".encode())
    up.settimeout(None)
    handler.close_connection = True
    client_sock = handler.connection

    def downstream():
        try:
            while True:
                data = up.recv(65536)
                if not data:
                    break
                handler.wfile.write(data)
                handler.wfile.flush()
        except OSError:
            pass
        finally:
            _shutdown(client_sock)
    t = threading.Thread(target=downstream, daemon=True)
    t.start()
    try:
        while True:
            data = handler.rfile.read1(65536)
            if not data:
                break
            up.sendall(data)
    except (OSError, ValueError):
        pass
    finally:
        _shutdown(up, socket.SHUT_WR)
    t.join()
    up.close()


def _shutdown(sock, how=socket.SHUT_RDWR) -> None:
    """shutdown(2) on the descriptor: a TLS socket keeps its session (the
    other direction is still read, decrypted), unlike SSLSocket.shutdown."""
    try:
        socket.socket.shutdown(sock, how)
    except OSError:
        pass


def relay_chunked(resp, write_chunk) -> None:
    """Copy an http.client response to the client as it arrives."""
    while True:
        data = resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536)
        if not data:
            return
        write_chunk(data)
