"""A container's process from its image config and its pod spec.

Kubernetes' rules, as the kubelet and containerd apply them:

- argv: `command` replaces the image's ENTRYPOINT and drops its CMD; `args`
  replaces CMD; `$(VAR)` in command and args expands from the container's env
  (`$$` escapes, unknown names stay as written);
- env: the image's Env first, the container's env overrides by name (in
  place) or appends;
- cwd: `workingDir`, else the image's WorkingDir, else "/";
- user: runAsUser (container, else pod) or the image's User ("uid",
  "uid:gid", "name", "name:group"); names resolve through the image's
  /etc/passwd and /etc/group (read inside the rootfs, symlinks confined to
  it); runAsGroup overrides the gid; additional gids are the primary gid,
  the groups listing the user in /etc/group, supplementalGroups, fsGroup;
- runAsNonRoot is checked as the kubelet checks it, with its messages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .errors import ContainerConfigError, ContainerCreateError

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Process:
    """What goes into the OCI spec's `process` (besides security settings)."""
    args: list[str]
    env: list[str]
    cwd: str
    uid: int
    gid: int
    additional_gids: list[int] = field(default_factory=list)


# ---- $(VAR) expansion ----------------------------------------------------------

def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: `$(X)` -> env[X] if defined, `$$` -> `$`."""
    out, i, n = [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            close = text.find(")", i + 2)
            if close < 0:
                out.append("$(")
                i += 2
            else:
                name = text[i + 2:close]
                out.append(env[name] if name in env else f"$({name})")
                i = close + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def container_env(container: dict, resolved: list[tuple[str, str]] | None = None
                  ) -> list[tuple[str, str]]:
    """The container's env as (name, value), each value expanded against the
    variables defined before it. `resolved` supplies values the kubelet
    computed (valueFrom, envFrom); without it an entry with valueFrom is an error."""
    if resolved is not None:
        return list(resolved)
    out: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for entry in container.get("env") or []:
        name = entry.get("name", "")
        if "valueFrom" in entry and "value" not in entry:
            raise ContainerConfigError(
                f"container {container.get('name')}: env {name} uses valueFrom; "
                "resolve it (configMap, secret, fieldRef) and pass env=")
        val = expand(str(entry.get("value", "")), seen)
        seen[name] = val
        out.append((name, val))
    return out


def merge_env(image_env: list[str], env: list[tuple[str, str]]) -> list[str]:
    """Image env first; container variables replace same-named ones in place."""
    merged: list[str] = []
    index: dict[str, int] = {}
    for item in list(image_env) + [f"{k}={v}" for k, v in env]:
        key = item.split("=", 1)[0]
        if key in index:
            merged[index[key]] = item
        else:
            index[key] = len(merged)
            merged.append(item)
    if "PATH" not in index:
        merged.insert(0, DEFAULT_PATH)
    return merged


def command_args(image_config: dict, container: dict, env: dict[str, str]) -> list[str]:
    """argv by Kubernetes' command/args rules over ENTRYPOINT/CMD."""
    entrypoint = list(image_config.get("Entrypoint") or [])
    cmd = list(image_config.get("Cmd") or [])
    command = container.get("command")
    args = container.get("args")
    if command:
        argv = [expand(c, env) for c in command]
        argv += [expand(a, env) for a in args] if args else []
    elif args:
        argv = entrypoint + [expand(a, env) for a in args]
    else:
        argv = entrypoint + cmd
    if not argv:
        raise ContainerCreateError(
            f"container {container.get('name')}: no command specified: the image has no "
            "ENTRYPOINT or CMD; set command (and args) in the container spec")
    return argv


# ---- users and groups inside the rootfs -------------------------------------

def secure_join(root: str, path: str, max_links: int = 40) -> str:
    """`path` inside `root`, resolving symlinks as if `root` were "/"."""
    root = os.path.abspath(root)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    current = root
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = os.path.dirname(current) if current != root else root
            continue
        candidate = os.path.join(current, part)
        if os.path.islink(candidate):
            links += 1
            if links > max_links:
                raise ContainerCreateError(f"too many symlinks resolving {path} in {root}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = root
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        current = candidate
    return current


def _read_db(rootfs: str, name: str) -> list[list[str]]:
    try:
        with open(secure_join(rootfs, f"/etc/{name}"), encoding="utf-8", errors="replace") as fh:
            return [line.rstrip("\n").split(":") for line in fh
                    if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def _passwd(rootfs: str) -> list[tuple[str, int, int]]:
    out = []
    for f in _read_db(rootfs, "passwd"):
        if len(f) >= 4 and f[2].isdigit() and f[3].isdigit():
            out.append((f[0], int(f[2]), int(f[3])))
    return out


def _groups(rootfs: str) -> list[tuple[str, int, list[str]]]:
    out = []
    for f in _read_db(rootfs, "group"):
        if len(f) >= 3 and f[2].isdigit():
            members = [m for m in (f[3].split(",") if len(f) > 3 else []) if m]
            out.append((f[0], int(f[2]), members))
    return out


def resolve_user(rootfs: str, user: str) -> tuple[int, int, list[int]]:
    """(uid, gid, groups from /etc/group) for an image/CRI user string."""
    name_part, _, group_part = (user or "0").partition(":")
    passwd = _passwd(rootfs)
    if name_part.isdigit():
        uid = int(name_part)
        entry = next((p for p in passwd if p[1] == uid), None)
    else:
        entry = next((p for p in passwd if p[0] == name_part), None)
        if entry is None:
            raise ContainerCreateError(f"unable to find user {name_part}: no matching entries "
                                       "in passwd file; add the user to the image or set runAsUser")
        uid = entry[1]
    gid = entry[2] if entry else 0
    groups = _groups(rootfs)
    if group_part:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            found = next((g for g in groups if g[0] == group_part), None)
            if found is None:
                raise ContainerCreateError(f"unable to find group {group_part}: no matching "
                                           "entries in group file; use a numeric gid")
            gid = found[1]
    username = entry[0] if entry else None
    extra = [g[1] for g in groups if username and username in g[2]]
    return uid, gid, extra


# ---- securityContext ----------------------------------------------------------

def effective_security(pod: dict, container: dict) -> dict:
    """Pod securityContext fields overridden by the container's (kubelet rules)."""
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    merged = {k: pod_sc[k] for k in ("runAsUser", "runAsGroup", "runAsNonRoot",
                                     "seLinuxOptions", "seccompProfile") if k in pod_sc}
    merged.update(container.get("securityContext") or {})
    return merged


def pod_label(pod: dict) -> str:
    """format.Pod: name_namespace(uid)."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('name', '')}_{meta.get('namespace', '')}({meta.get('uid', '')})"


def verify_run_as_non_root(pod: dict, container: dict, image_user: str) -> None:
    """The kubelet's verifyRunAsNonRoot, with its messages."""
    sc = effective_security(pod, container)
    if not sc.get("runAsNonRoot"):
        return
    where = f'(pod: "{pod_label(pod)}", container: {container.get("name", "")})'
    if sc.get("runAsUser") is not None:
        if int(sc["runAsUser"]) == 0:
            raise ContainerConfigError(f"container's runAsUser breaks non-root policy {where}")
        return
    user = (image_user or "").split(":", 1)[0]
    if user and not user.isdigit():
        raise ContainerConfigError(f"container has runAsNonRoot and image has non-numeric user "
                                   f"({user}), cannot verify user is non-root {where}")
    if not user or int(user) == 0:
        raise ContainerConfigError(f"container has runAsNonRoot and image will run as root {where}")


def resolve_process(pod: dict, container: dict, image_config: dict, rootfs: str,
                    env: list[tuple[str, str]] | None = None) -> Process:
    """Everything about the container's process that comes from image + spec."""
    image_config = image_config or {}
    image_user = image_config.get("User") or ""
    verify_run_as_non_root(pod, container, image_user)
    sc = effective_security(pod, container)
    pairs = container_env(container, env)
    argv = command_args(image_config, container, dict(pairs))
    user = str(sc["runAsUser"]) if sc.get("runAsUser") is not None else (image_user or "0")
    uid, gid, file_groups = resolve_user(rootfs, user)
    if sc.get("runAsGroup") is not None:
        gid = int(sc["runAsGroup"])
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    gids: list[int] = []
    for g in [gid, *file_groups, *(pod_sc.get("supplementalGroups") or []),
              *([pod_sc["fsGroup"]] if pod_sc.get("fsGroup") is not None else [])]:
        if int(g) not in gids:
            gids.append(int(g))
    cwd = container.get("workingDir") or image_config.get("WorkingDir") or "/"
    return Process(args=argv, env=merge_env(image_config.get("Env") or [], pairs),
                   cwd=cwd, uid=uid, gid=gid, additional_gids=gids)
