"""Validation of a container's lifecycle hooks (kube's validateLifecycle and
validateHandler): each of postStart and preStop names exactly one handler
(exec, httpGet, tcpSocket or sleep), exec has a command, httpGet and
tcpSocket a port, httpGet a supported scheme, and a sleep lasts more than 0
and at most the pod's terminationGracePeriodSeconds."""
from __future__ import annotations

from agent.apiserver.validation.common import port_num_or_name
from agent.apiserver.validation.errors import Errs, child_path

HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc", "sleep")


def check_lifecycle(errs: Errs, ctr: dict, path: str, grace) -> None:
    """`grace`: the pod's terminationGracePeriodSeconds (None when invalid or unset)."""
    lifecycle = errs.typed(ctr, "lifecycle", child_path(path, "lifecycle"), "object")
    if not lifecycle:
        return
    for hook in ("postStart", "preStop"):
        handler = errs.typed(lifecycle, hook, child_path(path, f"lifecycle.{hook}"), "object")
        if handler is not None:
            _handler(errs, handler, child_path(path, f"lifecycle.{hook}"), grace)


def _handler(errs: Errs, handler: dict, path: str, grace) -> None:
    named = [h for h in HANDLERS if handler.get(h) is not None and h != "grpc"]
    for extra in named[1:]:
        errs.forbidden(child_path(path, extra), "may not specify more than 1 handler type")
    if not named:
        errs.required(path, "must specify a handler type")
        return
    kind, body = named[0], handler[named[0]] or {}
    if kind == "exec" and not body.get("command"):
        errs.required(child_path(path, "exec.command"))
    elif kind in ("httpGet", "tcpSocket"):
        port = body.get("port")
        if port is None:
            errs.invalid(child_path(path, f"{kind}.port"), 0, "must be between 1 and 65535, inclusive")
        else:
            port_num_or_name(errs, port, child_path(path, f"{kind}.port"))
        scheme = body.get("scheme", "HTTP")
        if kind == "httpGet" and scheme not in ("HTTP", "HTTPS"):
            errs.not_supported(child_path(path, "httpGet.scheme"), scheme, ["HTTP", "HTTPS"])
    elif kind == "sleep":
        seconds = body.get("seconds", 0)
        if isinstance(grace, int) and not isinstance(seconds, bool) and isinstance(seconds, int) and \
                (seconds <= 0 or seconds > grace):
            errs.invalid(child_path(path, "sleep"), seconds,
                         f"must be greater than 0 and less than terminationGracePeriodSeconds ({grace})")
