"""The API server's hop of exec, attach and logs -f: it runs nothing itself;
after checking the pod it relays the upgraded connection byte for byte to
the kubelet of the pod's node (`proxy_upgrade`), and a followed log chunk by
chunk (`relay_chunked`). The kubelet's hop is agent/streams/sessions.py."""
from __future__ import annotations

import logging
import socket
import threading

from agent.streams.sessions import StreamError

log = logging.getLogger("nsplane.streams")
FORWARDED = ("Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Protocol",
             "Sec-WebSocket-Extensions", "X-Stream-Protocol-Version")

def proxy_upgrade(handler, address: str, path: str, timeout: float = 10.0) -> None:
    """Forward an upgrade request to the kubelet at `address` (host:port) and
    splice the two connections until either side ends."""
    host, port = address.rsplit(":", 1)
    try:
        up = socket.create_connection((host, int(port)), timeout=timeout)
    except OSError as e:
        raise StreamError(503, f"unable to upgrade connection: cannot reach the kubelet at {address}: {e}") from None
    headers = "".join(f"{h}: {v}\r\n" for h in FORWARDED for v in handler.headers.get_all(h) or [])
    up.sendall(f"GET {path} HTTP/1.1\r\nHost: {address}\r\n{headers}\r\n".encode())
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
    try:
        sock.shutdown(how)
    except OSError:
        pass


def relay_chunked(resp, write_chunk) -> None:
    """Copy an http.client response to the client as it arrives."""
    while True:
        data = resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536)
        if not data:
            return
        write_chunk(data)
