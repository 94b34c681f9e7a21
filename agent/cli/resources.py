"""kubectl's object verbs against our API: apply (client-side, with the
last-applied annotation and a merge patch), delete (by file or name, waiting
for graceful deletion), get (kubectl's tables, -o yaml/json/wide) and scale."""
from __future__ import annotations

import json
import sys
import time

from agent.api import printers
from agent.api.client import APIStatusError, Client
from agent.api.kinds import UnknownKind, lookup
from agent.cli import manifests
from agent.cli.errors import LAST_APPLIED, die, ref, server_error


def merge_diff(old, new):
    """The JSON merge patch turning `old` into `new`."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch = {k: None for k in old if k not in new}
    for k, v in new.items():
        if k not in old:
            patch[k] = v
        elif old[k] != v:
            patch[k] = merge_diff(old[k], v)
    return patch


def apply_one(client: Client, kind, doc: dict, ns: str | None) -> str:
    md = doc.setdefault("metadata", {})
    if kind.namespaced:
        md["namespace"] = md.get("namespace") or ns or "default"
    applied = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    body = json.loads(applied)
    body["metadata"].setdefault("annotations", {})[LAST_APPLIED] = applied + "\n"
    try:
        live = client.get(kind, md["name"], md.get("namespace"))
    except APIStatusError as e:
        if e.code != 404:
            raise
        client.create(kind, body, md.get("namespace"))
        return "created"
    last = (live["metadata"].get("annotations") or {}).get(LAST_APPLIED)
    if last and json.loads(last) == json.loads(applied):
        return "unchanged"
    patch = merge_diff(json.loads(last) if last else {}, body)
    patch.setdefault("metadata", {})["resourceVersion"] = live["metadata"]["resourceVersion"]
    patch["metadata"].setdefault("annotations", {})[LAST_APPLIED] = applied + "\n"
    new = client.patch(kind, md["name"], patch, md.get("namespace"))
    return "configured" if new["metadata"]["resourceVersion"] != live["metadata"]["resourceVersion"] else "unchanged"


def documents(args) -> list[tuple[str, dict]]:
    try:
        docs = manifests.load(args.filename, recursive=getattr(args, "recursive", False))
    except manifests.ManifestError as e:
        die(f"error: {e}")
    return [(d.source, d.obj) for d in docs]


def cmd_apply(cfg, args) -> int:
    client = Client(cfg.local_api_url)
    failed = 0
    for source, doc in documents(args):
        try:
            kind = manifests.resolve_kind(doc)
            result = apply_one(client, kind, doc, args.namespace)
            print(f"{ref(kind, doc['metadata']['name'])} {result}")
        except UnknownKind as e:
            failed += 1
            print(f'error: resource mapping not found for "{source}": {e}', file=sys.stderr)
        except APIStatusError as e:
            failed += 1
            print(server_error(e, "applying", source), file=sys.stderr)
    return 1 if failed else 0


def wait_gone(client: Client, kind, name: str, ns: str | None, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.get(kind, name, ns)
        except APIStatusError as e:
            if e.code == 404:
                return
        time.sleep(0.1)


def cmd_delete(cfg, args) -> int:
    client = Client(cfg.local_api_url)
    targets = []
    if args.filename:
        for source, doc in documents(args):
            try:
                kind = manifests.resolve_kind(doc)
            except UnknownKind as e:
                print(f'error: "{source}": {e}', file=sys.stderr)
                continue
            targets.append((kind, doc["metadata"]["name"], doc["metadata"].get("namespace") or args.namespace))
    else:
        if not args.args:
            die("error: You must provide one or more resources by argument or filename.")
        kind_names, rest = _kind_and_names(args.args)
        for k in kind_names:
            targets += [(k, n, args.namespace) for n in rest]
        if not rest:
            die("error: resource(s) were provided, but no name was specified")
    failed = 0
    for kind, name, ns in targets:
        ns = (ns or "default") if kind.namespaced else None
        try:
            client.delete(kind, name, ns, grace=0 if args.now or args.force else None)
            print(f'{kind.singular}{"." + kind.group if kind.group else ""} "{name}" deleted')
            if args.wait:
                wait_gone(client, kind, name, ns)
        except APIStatusError as e:
            failed += 1
            print(server_error(e), file=sys.stderr)
    return 1 if failed else 0


def _kind_and_names(words: list[str]):
    first = words[0]
    if "/" in first:
        pairs = [w.split("/", 1) for w in words]
        kinds = {lookup(k) for k, _ in pairs}
        if len(kinds) != 1:
            die("error: give one kind at a time")
        return list(kinds), [n for _, n in pairs]
    try:
        return [lookup(k) for k in first.split(",")], words[1:]
    except UnknownKind as e:
        die(f"error: {e}")


# ---- get -----------------------------------------------------------------

def cmd_get(cfg, args) -> int:
    client = Client(cfg.local_api_url)
    kinds, wanted = _kind_and_names(args.args)
    ns = None if args.all_namespaces else (args.namespace or "default")
    objs_by_kind = []
    for kind in kinds:
        try:
            if wanted:
                objs = [client.get(kind, n, ns if kind.namespaced else None) for n in wanted]
            else:
                objs = client.list(kind, ns if kind.namespaced else None, args.selector,
                                   args.field_selector)["items"]
        except APIStatusError as e:
            die(server_error(e))
        for o in objs:
            o.setdefault("apiVersion", kind.api_version)
            o.setdefault("kind", kind.kind)
        objs_by_kind.append((kind, objs))
    out = args.output or ""
    everything = [o for _, objs in objs_by_kind for o in objs]
    if out in ("yaml", "json"):
        doc = everything[0] if wanted and len(everything) == 1 else everything
        text = printers.to_yaml(doc) if out == "yaml" else printers.to_json(doc)
        print(text, end="" if text.endswith("\n") else "\n")
        return 0
    if out == "name":
        for kind, objs in objs_by_kind:
            for o in objs:
                print(ref(kind, o["metadata"]["name"]))
        return 0
    if out not in ("", "wide"):
        die(f"error: unable to match a printer suitable for the output format \"{out}\", "
            "allowed formats are: json,name,wide,yaml")
    if not everything:
        print(printers.no_resources_message(ns, all_namespaces=ns is None, namespaced=kinds[0].namespaced),
              file=sys.stderr)
        return 0
    blocks = []
    for kind, objs in objs_by_kind:
        if objs:
            blocks.append(printers.table(kind.kind, objs, wide=out == "wide",
                                         all_namespaces=ns is None and kind.namespaced,
                                         show_labels=args.show_labels, with_kind=len(kinds) > 1))
    print("\n".join(b.rstrip("\n") + "\n" for b in blocks), end="")
    return 0


def cmd_scale(cfg, args) -> int:
    client = Client(cfg.local_api_url)
    kinds, wanted = _kind_and_names(args.args)
    ns = args.namespace or "default"
    for kind in kinds:
        if kind.kind not in ("Deployment", "ReplicaSet", "StatefulSet", "ReplicationController"):
            die(f"error: cannot scale {kind.resource}; scale deployments, replicasets, statefulsets or "
                "replicationcontrollers")
        for n in wanted:
            try:
                client.patch(kind, n, {"spec": {"replicas": args.replicas}}, ns)
            except APIStatusError as e:
                die(server_error(e))
            print(f"{ref(kind, n)} scaled")
    return 0
