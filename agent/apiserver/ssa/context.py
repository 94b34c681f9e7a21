"""Who is writing: the field manager of the request being served, set by
the request handler around each request and read by the registry when it
stamps managedFields on the object it stores (every create and update).

In-process writers (the controllers) set nothing and are recorded as
kube-controller-manager, the program they stand in for. An apply request
computes its managedFields itself (managed.apply) and hands them over here,
so the registry keeps them as they are.
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar

from agent.api.objects import now_iso
from agent.apiserver.crd.definition import CustomKind
from agent.apiserver.ssa import managed
from agent.apiserver.ssa.schema import Shape

CONTROLLERS = "kube-controller-manager"
_MANAGER: ContextVar[str | None] = ContextVar("nsplane_field_manager", default=None)
_APPLIED: ContextVar[list | None] = ContextVar("nsplane_applied_fields", default=None)


def manager_of(query: dict, user_agent: str | None) -> str:
    """fieldManager, else the User-Agent's product (kube's prefixFromUserAgent)."""
    return query.get("fieldManager") or (user_agent or "").split("/")[0][:128] or "unknown"


@contextlib.contextmanager
def _setting(var: ContextVar, value):
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def writing_as(manager: str):
    """Writes inside are `manager`'s (operation Update)."""
    return _setting(_MANAGER, manager)


def applied(managed_fields: list):
    """The write inside is an apply that computed these managedFields."""
    return _setting(_APPLIED, managed_fields)


def applying() -> bool:
    return _APPLIED.get() is not None


def shape_of(kind) -> Shape:
    return Shape(kind.kind, kind.schema if isinstance(kind, CustomKind) else None)


def stamp(kind, old: dict | None, new: dict, subresource: str | None, status_sub: bool) -> None:
    """Set new's metadata.managedFields for this write."""
    fields = _APPLIED.get()
    if fields is None:
        fields = managed.track_update(old, new, _MANAGER.get() or CONTROLLERS, subresource or "",
                                      shape_of(kind), now_iso(), status_sub)
    md = new.setdefault("metadata", {})
    if fields:
        md["managedFields"] = fields
    else:
        md.pop("managedFields", None)
