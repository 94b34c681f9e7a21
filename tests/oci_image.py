"""A real OCI image built offline, and a local registry to pull it from, for
the runtime's kernel tests, the container integration tests and the benches.

umoci makes an empty image, busybox-static goes in with its applet
symlinks (plus /etc/passwd and /etc/group with root, app=1000 and nobody, and
/www/index.html for busybox httpd), umoci repacks it and sets ENTRYPOINT/CMD,
and skopeo saves it as a docker-archive, the kind of file `docker save` gives
a user. `local_registry` runs Debian's docker-registry (the CNCF distribution
registry) on a free port, in this namespace or a given one; `push` copies an
image there with skopeo. Not collected by pytest (no test_ prefix).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import warnings

BUSYBOX = "/bin/busybox"
PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "app:x:1000:1000:app:/home/app:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = "root:x:0:\nwheel:x:10:root\napp:x:1000:\nstaff:x:50:app\nnogroup:x:65534:\n"


def _run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc.stdout


def build_layout(workdir: str, tag: str = "busybox", payload_bytes: int = 0) -> str:
    """An OCI layout at <workdir>/layout holding busybox as `tag`; returns the layout."""
    layout = os.path.join(workdir, "layout")
    bundle = os.path.join(workdir, "bundle")
    _run(["umoci", "init", "--layout", layout])
    _run(["umoci", "new", "--image", f"{layout}:{tag}"])
    _run(["umoci", "unpack", "--image", f"{layout}:{tag}", bundle])
    root = os.path.join(bundle, "rootfs")
    for d in ("bin", "etc", "tmp", "www", "home/app"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    shutil.copy2(BUSYBOX, os.path.join(root, "bin", "busybox"))
    for applet in _run([BUSYBOX, "--list"]).split():
        if applet != "busybox":
            os.symlink("busybox", os.path.join(root, "bin", applet))
    with open(os.path.join(root, "etc", "passwd"), "w") as fh:
        fh.write(PASSWD)
    with open(os.path.join(root, "etc", "group"), "w") as fh:
        fh.write(GROUP)
    with open(os.path.join(root, "www", "index.html"), "w") as fh:
        fh.write("hello from nsplane\n")
    if payload_bytes:
        with open(os.path.join(root, "payload.bin"), "wb") as fh:
            fh.write(os.urandom(payload_bytes))
    _run(["umoci", "repack", "--image", f"{layout}:{tag}", bundle])
    _run(["umoci", "config", "--image", f"{layout}:{tag}",
          "--config.entrypoint", "/bin/sh", "--config.cmd", "-c",
          "--config.cmd", "echo hello from the image",
          "--config.env", "PATH=/bin", "--config.workingdir", "/"])
    shutil.rmtree(bundle)
    return layout


def save_docker_archive(layout: str, tag: str, archive: str, name: str) -> str:
    """skopeo copy oci:LAYOUT:TAG docker-archive:ARCHIVE:NAME; returns ARCHIVE."""
    _run(["skopeo", "--insecure-policy", "copy", "--quiet", f"oci:{layout}:{tag}",
          f"docker-archive:{archive}:{name}"])
    return archive


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).read()
    except urllib.error.HTTPError:
        return True                                     # 401: up, and asking for credentials
    except OSError:
        return False
    return True


@contextlib.contextmanager
def local_registry(work, users: dict[str, str] | None = None, host: str = "127.0.0.1",
                   netns: str | None = None):
    """Debian's docker-registry on host:<free port> (htpasswd auth if `users`),
    inside named network namespace `netns` if given, stopped by PID on every
    exit path; yields "host:port"."""
    from dataplane import netns as nsops
    port = free_port()
    auth = ""
    if users:
        import pytest
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            crypt = pytest.importorskip("crypt")     # bcrypt through libxcrypt
        lines = [f"{u}:{crypt.crypt(p, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))}"
                 for u, p in users.items()]
        (work / "htpasswd").write_text("\n".join(lines) + "\n")
        auth = f"auth:\n  htpasswd:\n    realm: nsplane\n    path: {work / 'htpasswd'}\n"
    config = work / "config.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                      f"    rootdirectory: {work / 'data'}\nhttp:\n  addr: {host}:{port}\n" + auth)
    argv = ["docker-registry", "serve", str(config)]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            with nsops.entered(netns) if netns else contextlib.nullcontext():
                up = _answers(f"http://{host}:{port}/v2/")
            if up:
                break
            assert proc.poll() is None, "docker-registry exited"
            assert time.monotonic() < deadline, "docker-registry did not answer"
            time.sleep(0.05)
        yield f"{host}:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def push(layout: str, name: str, target: str, creds: str = "", netns: str | None = None) -> None:
    """skopeo copy oci:LAYOUT:NAME docker://TARGET over plain HTTP."""
    argv = ["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false"]
    argv += ["--dest-creds", creds] if creds else []
    argv += [f"oci:{layout}:{name}", f"docker://{target}"]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
