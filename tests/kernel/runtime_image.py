"""A real OCI image built offline, for the runtime's kernel tests and bench.

umoci makes an empty image, busybox-static goes in with its applet
symlinks (plus /etc/passwd and /etc/group with root, app=1000 and nobody),
umoci repacks it and sets ENTRYPOINT/CMD, and skopeo saves it as a
docker-archive, the kind of file `docker save` gives a user. Not collected
by pytest (no test_ prefix).
"""
from __future__ import annotations

import os
import shutil
import subprocess

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
