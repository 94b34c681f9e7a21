"""The "localhost" certificate the agnhost image carries, made on first use.

The real image holds /localhost.crt and /localhost.key (porter's default
CERT_FILE/KEY_FILE, and the example netexec --tls-cert-file): a self-signed
certificate for 127.0.0.1, ::1 and example.com. Ours is made with the openssl
CLI the first time a stand-in needs it, into one directory shared by every
stand-in on the machine (the temporary directory's nsplane-agnhost-localhost,
made once and renamed into place, so no run leaves another behind): the same
names and purpose, a different key (clients of these servers, such as the API
server's pod proxy, do not verify them).
"""

from __future__ import annotations

import os
import shutil
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
            shared = os.path.join(tempfile.gettempdir(), "nsplane-agnhost-localhost")
            cert, key = os.path.join(shared, "localhost.crt"), os.path.join(shared, "localhost.key")
            if not (os.path.exists(cert) and os.path.exists(key)):
                _make(shared)
            _made = (cert, key)
        return _made


def _make(shared: str) -> None:
    """Write the pair into a fresh directory and rename it to `shared`; when
    another process got there first, keep theirs and drop ours."""
    directory = tempfile.mkdtemp(prefix="nsplane-agnhost-localhost-")
    try:
        cert, key = os.path.join(directory, "localhost.crt"), os.path.join(directory, "localhost.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "36500",
                        "-subj", "/O=Acme Co", "-keyout", key, "-out", cert,
                        "-addext", "subjectAltName=IP:127.0.0.1,IP:::1,DNS:example.com",
                        "-addext", "keyUsage=digitalSignature,keyEncipherment,keyCertSign",
                        "-addext", "extendedKeyUsage=serverAuth"],
                       check=True, capture_output=True, timeout=60)
        os.chmod(directory, 0o755)
        os.rename(directory, shared)
    except OSError:
        if not os.path.isdir(shared):
            raise
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def resolve_pair(certfile: str, keyfile: str) -> tuple[str, str]:
    """The files to load: as given when they exist, else the image's defaults
    ("localhost.crt"/"localhost.key", which our rootfs does not carry) made here."""
    defaults = {"localhost.crt", "/localhost.crt", "localhost.key", "/localhost.key"}
    if (certfile in defaults and not os.path.exists(certfile)) or \
            (keyfile in defaults and not os.path.exists(keyfile)):
        return localhost_pair()
    return certfile, keyfile
