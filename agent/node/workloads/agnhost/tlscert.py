"""The "localhost" certificate the agnhost image carries, made on first use.

The real image holds /localhost.crt and /localhost.key (porter's default
CERT_FILE/KEY_FILE, and the example netexec --tls-cert-file): a self-signed
certificate for 127.0.0.1, ::1 and example.com. Ours is made with the openssl
CLI into a private temporary directory the first time a stand-in needs it:
the same names and purpose, a different key (clients of these servers, such
as the API server's pod proxy, do not verify them).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading

_lock = threading.Lock()
_made: tuple[str, str] | None = None


def localhost_pair() -> tuple[str, str]:
    """(certfile, keyfile) of a self-signed localhost certificate."""
    global _made
    with _lock:
        if _made is None:
            directory = tempfile.mkdtemp(prefix="agnhost-tls-")
            cert, key = os.path.join(directory, "localhost.crt"), os.path.join(directory, "localhost.key")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "36500",
                            "-subj", "/O=Acme Co", "-keyout", key, "-out", cert,
                            "-addext", "subjectAltName=IP:127.0.0.1,IP:::1,DNS:example.com",
                            "-addext", "keyUsage=digitalSignature,keyEncipherment,keyCertSign",
                            "-addext", "extendedKeyUsage=serverAuth"],
                           check=True, capture_output=True, timeout=60)
            _made = (cert, key)
        return _made


def resolve_pair(certfile: str, keyfile: str) -> tuple[str, str]:
    """The files to load: as given when they exist, else the image's defaults
    ("localhost.crt"/"localhost.key", which our rootfs does not carry) made here."""
    defaults = {"localhost.crt", "/localhost.crt", "localhost.key", "/localhost.key"}
    if (certfile in defaults and not os.path.exists(certfile)) or \
            (keyfile in defaults and not os.path.exists(keyfile)):
        return localhost_pair()
    return certfile, keyfile
