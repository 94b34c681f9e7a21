"""Loading -f inputs: files, directories, stdin, multi-document YAML, JSON Lists, errors."""
import io
import json

import pytest

from agent.api import kinds
from agent.cli import manifests as M

SVC = """apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 80
"""
DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    created: 2024-01-01T00:00:00Z
spec:
  replicas: 3
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_single_document_is_named_by_file(tmp_path):
    path = write(tmp_path, "web-svc.yaml", SVC)
    docs = M.load([path])
    assert [(d.source, d.obj["kind"], d.line) for d in docs] == [(path, "Service", 1)]
    assert docs[0].obj["spec"]["ports"] == [{"port": 80, "targetPort": 80}]
    assert docs[0].kind is kinds.BY_KIND["Service"]


def test_multi_document_skips_empty_and_numbers_documents(tmp_path):
    path = write(tmp_path, "all.yaml", "---\n" + DEPLOY + "---\n# only a comment\n---\n" + SVC + "---\n")
    docs = M.load([path])
    assert [(d.source, d.obj["kind"]) for d in docs] == [(f"{path}#1", "Deployment"), (f"{path}#2", "Service")]
    assert docs[1].line == 13
    # timestamps stay strings, as kubectl sends them
    assert docs[0].obj["metadata"]["annotations"]["created"] == "2024-01-01T00:00:00Z"


def test_json_object_and_list(tmp_path):
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}}
    one = write(tmp_path, "one.json", json.dumps(obj))
    lst = write(tmp_path, "list.json", json.dumps({"apiVersion": "v1", "kind": "List", "items": [obj, {**obj, "metadata": {"name": "b"}}]}))
    assert [d.source for d in M.load([one])] == [one]
    docs = M.load([lst])
    assert [(d.source, d.obj["metadata"]["name"]) for d in docs] == [(f"{lst}#1", "a"), (f"{lst}#2", "b")]


def test_directory_is_sorted_and_not_recursive(tmp_path):
    write(tmp_path, "b.yaml", SVC)
    write(tmp_path, "a.yml", DEPLOY)
    write(tmp_path, "notes.txt", "not a manifest")
    sub = tmp_path / "sub"
    sub.mkdir()
    write(sub, "c.json", json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}))
    assert [d.obj["kind"] for d in M.load([str(tmp_path)])] == ["Deployment", "Service"]
    assert [d.obj["kind"] for d in M.load([str(tmp_path)], recursive=True)] == ["Deployment", "Service", "Namespace"]


def test_stdin():
    docs = M.load(["-"], stdin=io.StringIO(SVC + "---\n" + DEPLOY))
    assert [d.source for d in docs] == ["STDIN#1", "STDIN#2"]


def test_invalid_yaml_names_file_and_line(tmp_path):
    bad = SVC.replace("  name: web\n", "  name: web\n  labels: app: web\n")
    path = write(tmp_path, "web.yaml", bad)
    with pytest.raises(M.ManifestError) as e:
        M.load([path])
    assert str(e.value) == (f"error parsing {path}: error converting YAML to JSON: yaml: line 5: "
                            "mapping values are not allowed in this context")


def test_yaml_error_line_is_counted_in_the_whole_file(tmp_path):
    path = write(tmp_path, "two.yaml", SVC + "---\n" + "apiVersion: v1\nkind: Service\nmetadata:\n  name: x: y\n")
    with pytest.raises(M.ManifestError, match=r"yaml: line 15: mapping values"):
        M.load([path])


@pytest.mark.parametrize("text, detail", [
    ("metadata:\n  name: web\n", "[apiVersion not set, kind not set]"),
    ("apiVersion: v1\nmetadata:\n  name: web\n", "kind not set"),
    ("kind: Service\n", "apiVersion not set"),
])
def test_missing_apiversion_or_kind(tmp_path, text, detail):
    path = write(tmp_path, "web.yaml", text)
    with pytest.raises(M.ManifestError) as e:
        M.load([path])
    assert str(e.value) == f'error validating "{path}": error validating data: {detail}'


def test_missing_path_and_empty_directory(tmp_path):
    with pytest.raises(M.ManifestError, match='the path "nope.yaml" does not exist'):
        M.load(["nope.yaml"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(M.ManifestError, match=r"recognized file extensions are \[.json .yaml .yml\]"):
        M.load([str(empty)])


def test_numeric_keys_become_strings():
    docs = M.parse_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  labels:\n    80: http\n", "x.yaml")
    assert docs[0].obj["metadata"]["labels"] == {"80": "http"}


def test_resolve_kind():
    assert M.resolve_kind({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice"}).resource == "endpointslices"
    with pytest.raises(kinds.UnknownKind, match="use apiVersion: apps/v1"):
        M.resolve_kind({"apiVersion": "extensions/v1beta1", "kind": "Deployment"})
