"""Reading what `apply -f` / `delete -f` are given, the way kubectl reads it.

Owns: expanding `-f` arguments (files, directories — every .json/.yaml/.yml,
sorted, non-recursive unless `recursive=True` — and `-` for stdin), splitting
multi-document YAML (empty documents skipped), JSON (one object, or a `List`
whose items are expanded), and naming each document for messages
(`web.yaml`, or `web.yaml#2` when the file holds several).

Errors are `ManifestError`s worded like kubectl's, naming the file and line:
    error parsing web.yaml: error converting YAML to JSON: yaml: line 7: mapping values are not allowed in this context
    error validating "web.yaml": error validating data: [apiVersion not set, kind not set]

YAML is read as kubectl does (YAML 1.1 scalars, but timestamps stay strings
and map keys become strings), so the dicts are exactly the JSON the API gets.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import IO

import yaml

from agent.api import kinds

EXTENSIONS = (".json", ".yaml", ".yml")


class ManifestError(ValueError):
    pass


@dataclass(frozen=True)
class Document:
    source: str      # "web.yaml", "web.yaml#2", "STDIN#1"
    obj: dict
    line: int = 1    # first line of the document in its file

    @property
    def kind(self) -> kinds.Kind:
        return resolve_kind(self.obj)


class _Loader(yaml.SafeLoader):
    """SafeLoader without the timestamp resolver (kubectl keeps them strings)."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def _jsonable(node):
    """Map keys to strings as sigs.k8s.io/yaml does (80 -> "80", true -> "true")."""
    if isinstance(node, dict):
        return {_key(k): _jsonable(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_jsonable(v) for v in node]
    return node


def _key(k) -> str:
    if isinstance(k, bool):
        return "true" if k else "false"
    if k is None:
        return "null"
    return str(k)


_GO_YAML_WORDING = {
    "mapping values are not allowed here": "mapping values are not allowed in this context",
    "found character that cannot start any token": "found character that cannot start any token",
}


def _yaml_error(name: str, err: yaml.YAMLError, first_line: int) -> ManifestError:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    problem = _GO_YAML_WORDING.get(problem, problem)
    where = f"line {mark.line + first_line}: " if mark is not None else ""
    return ManifestError(f"error parsing {name}: error converting YAML to JSON: yaml: {where}{problem}")


def _split_yaml(text: str) -> list[tuple[int, str]]:
    """Split on `---` lines; returns (first line number, chunk) pairs."""
    chunks, cur, start = [], [], 1
    for i, line in enumerate(text.splitlines(keepends=True), start=1):
        if line.rstrip() == "---" or line.startswith("--- "):
            chunks.append((start, "".join(cur)))
            cur, start = [], i + 1
            rest = line[4:] if line.startswith("--- ") else ""
            if rest.strip():
                cur.append(rest)
        else:
            cur.append(line)
    chunks.append((start, "".join(cur)))
    return chunks


def _looks_like_json(text: str) -> bool:
    return text.lstrip()[:1] in ("{", "[")


def parse_text(text: str, name: str) -> list[Document]:
    """Every object in one file's text, in order, with Lists expanded."""
    raw: list[tuple[int, object]] = []
    if _looks_like_json(text):
        try:
            raw.append((1, json.loads(text)))
        except json.JSONDecodeError as e:
            if name.endswith(".json"):
                raise ManifestError(f"error parsing {name}: line {e.lineno}: {e.msg}") from None
    if not raw:
        for first, chunk in _split_yaml(text):
            try:
                data = yaml.load(chunk, Loader=_Loader)
            except yaml.YAMLError as e:
                raise _yaml_error(name, e, first) from None
            if data is not None:
                raw.append((first, _jsonable(data)))
    objs: list[tuple[int, object]] = []
    for line, data in raw:
        objs.extend((line, item) for item in _expand_list(data, name))
    if len(objs) == 1:
        return [Document(name, _checked(objs[0][1], name), objs[0][0])]
    return [Document(f"{name}#{i}", _checked(o, f"{name}#{i}"), line)
            for i, (line, o) in enumerate(objs, start=1)]


def _expand_list(data, name: str) -> list:
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and str(data.get("kind", "")).endswith("List") \
            and isinstance(data.get("items"), list):
        return list(data["items"])
    return [data]


def _checked(obj, source: str) -> dict:
    """kubectl's client-side 'error validating data' for apiVersion/kind."""
    if not isinstance(obj, dict):
        raise ManifestError(f'error validating "{source}": error validating data: invalid object to validate')
    missing = [f"{k} not set" for k in ("apiVersion", "kind") if not obj.get(k)]
    if missing:
        detail = missing[0] if len(missing) == 1 else "[" + ", ".join(missing) + "]"
        raise ManifestError(f'error validating "{source}": error validating data: {detail}')
    for k in ("apiVersion", "kind"):
        if not isinstance(obj[k], str):
            raise ManifestError(f'error validating "{source}": error validating data: {k} isn\'t string type')
    return obj


def resolve_kind(obj: dict) -> kinds.Kind:
    """The served Kind for a manifest; kinds.UnknownKind otherwise."""
    return kinds.by_api_version(obj.get("apiVersion", ""), obj.get("kind", ""))


def expand_paths(paths: list[str], *, recursive: bool = False) -> list[str]:
    """Files named by `-f` arguments, in kubectl's order ("-" kept as is)."""
    out: list[str] = []
    for path in paths:
        if path == "-":
            out.append(path)
        elif os.path.isdir(path):
            found = _dir_files(path, recursive)
            if not found:
                raise ManifestError(f"error reading [{path}]: recognized file extensions are "
                                    "[.json .yaml .yml]")
            out.extend(found)
        elif os.path.exists(path):
            out.append(path)
        else:
            raise ManifestError(f'the path "{path}" does not exist')
    return out


def _dir_files(path: str, recursive: bool) -> list[str]:
    found = []
    for entry in sorted(os.listdir(path)):
        full = os.path.join(path, entry)
        if os.path.isdir(full):
            if recursive:
                found.extend(_dir_files(full, True))
        elif entry.endswith(EXTENSIONS):
            found.append(full)
    return found


def load(paths: list[str], *, recursive: bool = False, stdin: IO[str] | None = None) -> list[Document]:
    """Every document named by `-f` arguments; ManifestError on the first bad one."""
    docs: list[Document] = []
    for path in expand_paths(paths, recursive=recursive):
        if path == "-":
            docs.extend(parse_text((stdin or sys.stdin).read(), "STDIN"))
            continue
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise ManifestError(f"error reading {path}: {e}") from None
        docs.extend(parse_text(text, path))
    return docs
