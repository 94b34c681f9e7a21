"""Built-in workloads: the stand-ins for a few images when no image can be had.

A container runs its real image when the node's image store has it or can
pull it (agent/node/kubelet/images.py decides). On a machine without
registry access, the images the Kubernetes docs and e2e tests use most
(nginx, agnhost, curl, busybox, coredns...) run as a stand-in instead: a real
program of this machine (`command:`/`args:`, e.g. sh, curl, sleep) or a
small Python module that answers like the real image
(`agent.node.workloads.nginx`, `.httpd`, `.pause`, and the
`agent.node.workloads.agnhost` package, one module per subcommand), inside
the same kind of container, over a read-only view of the host (the kubelet
says so in the pod's Events).

`resolve` follows Kubernetes' rules for combining a container spec with the
image's own ENTRYPOINT and CMD (command replaces ENTRYPOINT and drops CMD; args
replace CMD), then interprets the image's entrypoint the way the real image's
entrypoint script does. An image we do not know, without a command, raises
`UnknownImage`: a clear pod error, never a silent success. `standin` says
whether an image has a stand-in, `environment` is the stand-ins' own image
environment (their Python finds the code the agent runs).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass


class UnknownImage(ValueError):
    """The container's image has no built-in workload and no command."""


@dataclass(frozen=True)
class Image:
    """The ENTRYPOINT and CMD of a real image, as its Dockerfile sets them."""

    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]


# Repository (registry, tag and digest stripped) -> the real image's config.
IMAGES: dict[str, Image] = {
    "nginx": Image(("/docker-entrypoint.sh",), ("nginx", "-g", "daemon off;")),
    "e2e-test-images/agnhost": Image(("/agnhost",), ("pause",)),
    "e2e-test-images/nginx": Image((), ("nginx", "-g", "daemon off;")),       # nginx:1.14-alpine
    "e2e-test-images/httpd": Image((), ("httpd-foreground",)),                 # httpd:2.4.38-alpine
    "e2e-test-images/busybox": Image((), ("sh",)),
    "e2e-test-images/jessie-dnsutils": Image((), ("bash",)),                   # debian:jessie + dnsutils
    "pause": Image(("/pause",), ()),                                           # registry.k8s.io/pause
    "curlimages/curl": Image(("/entrypoint.sh",), ("curl",)),
    "busybox": Image((), ("sh",)),
    "alpine": Image((), ("/bin/sh",)),
    "ubuntu": Image((), ("/bin/bash",)),
    "debian": Image((), ("bash",)),
    "coredns/coredns": Image(("/coredns",), ()),
}

# (repository, program) -> our module and its first arguments, for the images
# whose own program is a stand-in; the container's remaining arguments follow.
STANDINS: dict[tuple[str, str], tuple[str, ...]] = {
    ("e2e-test-images/nginx", "nginx"): ("nginx", "--release=1.14.2"),
    ("e2e-test-images/httpd", "httpd-foreground"): ("httpd",),
    ("pause", "/pause"): ("pause",),
}

AGNHOST_SUBCOMMANDS = ("connect", "dns-server-list", "dns-suffix", "etc-hosts", "netexec",
                       "pause", "porter", "serve-hostname", "test-webserver")
_KNOWN = ("nginx, registry.k8s.io/e2e-test-images/{agnhost,nginx,httpd,busybox,jessie-dnsutils}, "
          "registry.k8s.io/pause, curlimages/curl, busybox, alpine")


def repository(image: str) -> str:
    """"registry.k8s.io/e2e-test-images/agnhost:2.53@sha256:.." -> "e2e-test-images/agnhost"."""
    name = image.split("@", 1)[0]
    parts = name.split("/")
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost"):
        parts = parts[1:]
    parts[-1] = parts[-1].split(":", 1)[0]
    if len(parts) > 1 and parts[0] == "library":
        parts = parts[1:]
    return "/".join(parts)


def python_module(module: str, *args: str) -> list[str]:
    """argv that runs one of our Python workloads with this interpreter, through
    the launcher that makes it behave as a container's PID 1 (__main__.py)."""
    return [sys.executable, "-m", "agent.node.workloads", module, *args]


def resolve(container: dict) -> list[str]:
    """argv to run for Kubernetes container spec `container` (a dict)."""
    image_name = container.get("image") or ""
    command = list(container.get("command") or [])
    args = container.get("args")
    image = IMAGES.get(repository(image_name))
    if command:
        argv = command + list(args or [])
    elif image is not None:
        argv = list(image.entrypoint) + list(image.cmd if args is None else args)
    else:
        raise UnknownImage(
            f'image "{image_name}" has no built-in workload in nsplane; set '
            f"command: (and args:) to run a program, or use one of: {_KNOWN}"
        )
    if not argv:
        raise UnknownImage(f'image "{image_name}": nothing to run (empty command and args)')
    return _interpret(repository(image_name), argv, image_name)


def _interpret(repo: str, argv: list[str], image_name: str) -> list[str]:
    """Replace the image's own programs (entrypoint scripts, /agnhost, nginx)."""
    program, rest = argv[0], argv[1:]
    if (repo, program) in STANDINS:
        return python_module(*STANDINS[(repo, program)], *rest)
    if repo == "nginx":
        if program == "/docker-entrypoint.sh":
            return _nginx_entrypoint(rest)
        if program in ("nginx", "nginx-debug", "/usr/sbin/nginx"):
            return python_module("nginx")
    if repo == "e2e-test-images/agnhost" and program in ("/agnhost", "agnhost"):
        return _agnhost(rest, image_name)
    if repo == "coredns/coredns" and program in ("/coredns", "coredns"):
        return [sys.executable, "-m", "agent.coredns", *rest]
    if repo == "curlimages/curl" and program == "/entrypoint.sh":
        return _curl_entrypoint(rest)
    return argv


def _nginx_entrypoint(rest: list[str]) -> list[str]:
    """docker-entrypoint.sh: configure when starting nginx, then exec "$@"."""
    if not rest or rest[0] in ("nginx", "nginx-debug"):
        return python_module("nginx")
    return rest


def _curl_entrypoint(rest: list[str]) -> list[str]:
    """curlimages/curl entrypoint.sh: curl unless $1 is a known command."""
    if not rest or rest[0].startswith("-") or shutil.which(rest[0]) is None:
        return ["curl", *rest]
    return rest


def _agnhost(rest: list[str], image_name: str) -> list[str]:
    sub = rest[0] if rest else ""
    if sub not in AGNHOST_SUBCOMMANDS:
        raise UnknownImage(
            f'image "{image_name}": agnhost subcommand "{sub}" is not built into '
            f"nsplane; supported: {', '.join(AGNHOST_SUBCOMMANDS)} "
            f"(e.g. args: [netexec, --http-port=8080])"
        )
    return python_module("agnhost", *rest)


def programs(image: str) -> dict[str, str]:
    """The image's own programs a stand-in container gets at their paths (so
    `kubectl exec POD -- /agnhost dns-suffix` works as in the image): path ->
    a shell script running our workload with this interpreter."""
    if repository(image or "") == "e2e-test-images/agnhost":
        return {"/agnhost": f'#!/bin/sh\nexec {sys.executable} -m agent.node.workloads.agnhost "$@"\n'}
    return {}


def standin(image: str) -> Image | None:
    """The stand-in's image config for `image`, or None if it has none."""
    return IMAGES.get(repository(image or ""))


def environment() -> list[str]:
    """The Env of a stand-in "image": PATH, and the agent's PYTHONPATH when it
    has one, so `python -m agent...` in the container runs the agent's code."""
    env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]
    if os.environ.get("PYTHONPATH"):
        env.append(f"PYTHONPATH={os.environ['PYTHONPATH']}")
    return env
