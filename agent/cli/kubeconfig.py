"""Kubeconfig for real kubectl: build one for a cluster, merge it into the
user's file, and take it out again — as `kind create/delete cluster` do.

`nsplane up` merges a cluster, user and context (all named "nsplane" for the
default cluster, the cluster's name otherwise) into the first file of
$KUBECONFIG (default ~/.kube/config), creating it if missing, leaving every
other entry alone, and makes it the current context (kind does the same).
`nsplane down --purge` removes the three entries and unsets current-context
if it pointed at ours. `nsplane kubeconfig` prints a standalone one.

Merging is pure (dict in, dict out); only read_file/write_file touch disk.
"""
from __future__ import annotations

import base64
import os
import sys
import tempfile

import yaml

from agent.api.config import DEFAULT_CLUSTER, ClusterConfig


def context_name(cfg: ClusterConfig) -> str:
    return "nsplane" if cfg.name == DEFAULT_CLUSTER else cfg.name


def build(name: str, server: str, ca_pem: bytes, token: str) -> dict:
    """A complete kubeconfig holding one cluster, user and context."""
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": name, "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }


def for_cluster(cfg: ClusterConfig, server: str | None = None) -> dict:
    with open(cfg.ca_file, "rb") as f:
        ca = f.read()
    with open(cfg.token_file("admin")) as f:
        token = f.read().strip()
    return build(context_name(cfg), server or cfg.loopback_api_url, ca, token)


def _upsert(entries: list, entry: dict) -> list:
    out = [e for e in entries or [] if e.get("name") != entry["name"]]
    out.append(entry)
    return out


def merge(existing: dict | None, new: dict, switch_context: bool = True) -> dict:
    """`existing` with `new`'s clusters, users and contexts added or replaced
    by name; nothing else changes. current-context moves to new's when
    switch_context (or when none is set)."""
    out = dict(existing or {})
    out.setdefault("apiVersion", "v1")
    out.setdefault("kind", "Config")
    out.setdefault("preferences", {})
    for section in ("clusters", "users", "contexts"):
        entries = list(out.get(section) or [])
        for e in new.get(section, []):
            entries = _upsert(entries, e)
        out[section] = entries
    if switch_context or not out.get("current-context"):
        out["current-context"] = new["current-context"]
    return out


def remove(existing: dict | None, name: str) -> dict:
    """`existing` without the cluster, user and context called `name`."""
    out = dict(existing or {})
    for section in ("clusters", "users", "contexts"):
        if section in out:
            out[section] = [e for e in out.get(section) or [] if e.get("name") != name]
    if out.get("current-context") == name:
        out["current-context"] = ""
    return out


def path(environ: dict | None = None) -> str:
    """The file kubectl would write: the first of $KUBECONFIG, else ~/.kube/config."""
    env = os.environ if environ is None else environ
    files = [p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    if files:
        return files[0]
    return os.path.join(os.path.expanduser("~"), ".kube", "config")


def read_file(p: str) -> dict:
    try:
        with open(p) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{p} is not a kubeconfig (a YAML mapping); fix or move it and run `nsplane up` again")
    return data


def write_file(p: str, config: dict) -> None:
    """Atomic write, mode 0600 (it holds a token)."""
    d = os.path.dirname(p) or "."
    os.makedirs(d, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".nsplane-kubeconfig-", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(config, f, default_flow_style=False, sort_keys=False)
        os.chmod(tmp, 0o600)
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def install(cfg: ClusterConfig, environ: dict | None = None) -> tuple[str, str]:
    """Merge the cluster's entries into the user's kubeconfig; (path, context)."""
    p = path(environ)
    new = for_cluster(cfg)
    write_file(p, merge(read_file(p), new))
    return p, new["current-context"]


def install_and_say(cfg: ClusterConfig) -> None:
    """`nsplane up`'s last line: where kubectl's context went (a warning if it couldn't)."""
    try:
        where, context = install(cfg)
        print(f'Set kubectl context to "{context}" (in {where})')
    except (OSError, ValueError) as e:
        print(f"warning: kubeconfig not updated: {e}; `nsplane kubeconfig` prints one", file=sys.stderr)


def uninstall(cfg: ClusterConfig, environ: dict | None = None) -> str | None:
    """Remove the cluster's entries; the path if something was removed."""
    p = path(environ)
    cur = read_file(p)
    name = context_name(cfg)
    new = remove(cur, name)
    if new == cur or not cur:
        return None
    write_file(p, new)
    return p
