"""Duplicate fields in request bodies, which kube's strict decoders report
(fieldValidation=Strict refuses them, Warn warns): in JSON as paths
(`duplicate field "spec.replicas"`), in YAML as sigs.k8s.io/yaml says it
(`line 11: key "foo" already set in map`). Pure.
"""
from __future__ import annotations

import json

import yaml


class _Pairs(dict):
    """A JSON object that remembers which of its keys came more than once."""

    def __init__(self, pairs):
        super().__init__(pairs)
        seen: set = set()
        self.duplicates = []
        for k, _ in pairs:
            if k in seen and k not in self.duplicates:
                self.duplicates.append(k)
            seen.add(k)


def _walk(node, path: str, out: list[str]) -> None:
    if isinstance(node, _Pairs):
        out.extend(f"{path}.{k}" if path else k for k in node.duplicates)
        for k, v in node.items():
            _walk(v, f"{path}.{k}" if path else k, out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _walk(v, f"{path}[{i}]", out)


def json_duplicates(raw: bytes) -> list[str]:
    """Paths of the keys a JSON body repeats (none if it is not JSON)."""
    try:
        doc = json.loads(raw or b"null", object_pairs_hook=_Pairs)
    except (ValueError, UnicodeDecodeError):
        return []
    out: list[str] = []
    _walk(doc, "", out)
    return out


class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that records repeated mapping keys with their lines."""

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                self.repeated.append(f'line {key_node.start_mark.line + 1}: key "{key}" already set in map')
            seen.add(key)
        return super().construct_mapping(node, deep)


def yaml_duplicates(raw: bytes) -> list[str]:
    """sigs.k8s.io/yaml's messages for the keys a YAML body repeats."""
    loader = _StrictLoader(raw or b"")
    loader.repeated = []
    try:
        loader.get_single_data()
    except yaml.YAMLError:
        return []
    finally:
        loader.dispose()
    return loader.repeated
