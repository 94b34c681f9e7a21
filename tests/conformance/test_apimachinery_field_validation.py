"""Ports of test/e2e/apimachinery/field_validation.go ([sig-api-machinery]
FieldValidation, v1.27 [Conformance]): server-side field validation of
typed objects (unknown and duplicate fields, unknown metadata) and of custom
resources applied with fieldValidation=Strict (valid, no schema, extra
properties, unknown metadata, duplicates). Upstream's bodies and checks.

The e2e REST client sends the bodies byte for byte (duplicate keys
included), which kubectl would first decode; so these requests go to the
API server as they are, with curl in the cluster's host namespace and the
admin token of its kubeconfig.
"""
from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from dataplane import netns
from tests.conformance.test_apimachinery_apply import NOXU_SCHEMA, noxu_crd

pytestmark = pytest.mark.integration

BASE_NAME = "field-validation"


def raw(f, method: str, path: str, body: str, ctype: str) -> tuple[int, str]:
    """(HTTP code, body) of one request sent as is (rest.Post()/Patch()...Body(...).DoRaw())."""
    cluster = f.cluster
    with open(cluster.kubeconfig()) as fh:
        token = yaml.safe_load(fh)["users"][0]["user"]["token"]
    argv = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--cacert", cluster.cfg.ca_file, "-X", method,
            "-H", f"Authorization: Bearer {token}", "-H", f"Content-Type: {ctype}", "--data-binary", "@-",
            f"https://127.0.0.1:{cluster.cfg.api_port}{path}"]
    if cluster.cfg.host_netns:
        argv = ["nsenter", f"--net={netns.path(cluster.cfg.host_netns)}", "--", *argv]
    out = subprocess.run(argv, input=body, capture_output=True, text=True, timeout=30).stdout
    text, _, code = out.rpartition("\n")
    return int(code), text


DEPLOYMENT = """{{
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {{
        "name": "my-dep",
        {meta}"labels": {{"app": "nginx"}}
    }},
    "spec": {{
        {spec}"selector": {{"matchLabels": {{"app": "nginx"}}}},
        "template": {{
            "metadata": {{"labels": {{"app": "nginx"}}}},
            "spec": {{"containers": [{{"name": "nginx", "image": "nginx:latest"}}]}}
        }}
    }}
}}"""


def post_deployment(f, meta: str = "", spec: str = "") -> tuple[int, str]:
    return raw(f, "POST", f"/apis/apps/v1/namespaces/{f.ns}/deployments?fieldManager=field_validation_mgr"
                          "&fieldValidation=Strict", DEPLOYMENT.format(meta=meta, spec=spec), "application/json")


def test_should_detect_unknown_and_duplicate_fields_of_a_typed_object(framework):
    """[sig-api-machinery] FieldValidation should detect unknown and duplicate fields of a typed object
    [Conformance]"""
    code, out = post_deployment(framework, spec='"unknownField": "foo",\n"replicas": 2,\n"replicas": 3,\n')
    assert code >= 400
    assert 'strict decoding error: unknown field \\"spec.unknownField\\", duplicate field \\"spec.replicas\\"' in out, out


def test_should_detect_unknown_metadata_fields_of_a_typed_object(framework):
    """[sig-api-machinery] FieldValidation should detect unknown metadata fields of a typed object [Conformance]"""
    code, out = post_deployment(framework, meta='"unknownMeta": "foo",\n')
    assert code >= 400 and 'strict decoding error: unknown field \\"metadata.unknownMeta\\"' in out, out


def apply_cr(f, crd: dict, body: str) -> tuple[int, str]:
    spec = crd["spec"]
    path = f"/apis/{spec['group']}/{spec['versions'][0]['name']}/{spec['names']['plural']}/mytest" \
           "?fieldManager=field_validation_mgr&fieldValidation=Strict"
    head = f"\napiVersion: {spec['group']}/{spec['versions'][0]['name']}\nkind: {spec['names']['kind']}\n"
    return raw(f, "PATCH", path, head + body, "application/apply-patch+yaml")


PORTS = 'spec:\n  {}foo: foo1\n  cronSpec: "* * * * */5"\n  ports:\n  - name: x\n    containerPort: 80\n' \
        '    protocol: TCP'
META = "metadata:\n  name: mytest\n  finalizers:\n  - test-finalizer\n"


def crd_with(f, schema: dict | None) -> dict:
    if schema is None:
        return noxu_crd(f, {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}})
    return noxu_crd(f, schema)


def schema_without_preserve() -> dict:
    s = json.loads(json.dumps(NOXU_SCHEMA))
    spec = s["openAPIV3Schema"]["properties"]["spec"]
    del spec["x-kubernetes-preserve-unknown-fields"]
    spec["properties"]["foo"] = {"type": "string"}
    return s


def cleanup(f, crd: dict) -> None:
    f.cluster.kubectl("delete", "crd", crd["metadata"]["name"], "--wait=false")


def test_should_create_apply_a_valid_cr_for_crd_with_validation_schema(framework):
    """[sig-api-machinery] FieldValidation should create/apply a valid CR for CRD with validation schema
    [Conformance]"""
    f = framework
    crd = crd_with(f, schema_without_preserve())
    try:
        code, out = apply_cr(f, crd, META + PORTS.format(""))
        assert code in (200, 201), out
    finally:
        f.cluster.kubectl("patch", f"{crd['spec']['names']['plural']}.{crd['spec']['group']}", "mytest",
                          "--type=merge", "-p", '{"metadata":{"finalizers":[]}}', check=False)
        cleanup(f, crd)


def test_should_create_apply_a_cr_with_unknown_fields_for_crd_with_no_validation_schema(framework):
    """[sig-api-machinery] FieldValidation should create/apply a CR with unknown fields for CRD with no validation
    schema [Conformance]"""
    f = framework
    crd = crd_with(f, None)
    try:
        code, out = apply_cr(f, crd, META + PORTS.format("unknown: uk1\n  ").replace("  foo: foo1\n", ""))
        assert code in (200, 201), out
    finally:
        f.cluster.kubectl("patch", f"{crd['spec']['names']['plural']}.{crd['spec']['group']}", "mytest",
                          "--type=merge", "-p", '{"metadata":{"finalizers":[]}}', check=False)
        cleanup(f, crd)


def test_should_create_apply_an_invalid_cr_with_extra_properties_for_crd_with_validation_schema(framework):
    """[sig-api-machinery] FieldValidation should create/apply an invalid CR with extra properties for CRD with
    validation schema [Conformance]"""
    f = framework
    crd = crd_with(f, schema_without_preserve())
    try:
        code, out = apply_cr(f, crd, META + "unknownField: unknown\n" + PORTS.format(""))
        assert ".unknownField: field not declared in schema" in out, out
    finally:
        cleanup(f, crd)


def test_should_detect_unknown_metadata_fields_in_both_the_root_and_embedded_object_of_a_cr(framework):
    """[sig-api-machinery] FieldValidation should detect unknown metadata fields in both the root and embedded
    object of a CR [Conformance]"""
    f = framework
    schema = json.loads(json.dumps(NOXU_SCHEMA))
    props = schema["openAPIV3Schema"]["properties"]["spec"]["properties"]
    props["template"] = {"type": "object", "x-kubernetes-embedded-resource": True, "properties": {
        "metadata": {"type": "object", "properties": {"name": {"type": "string"}}}, "spec": {"type": "object"}}}
    props["foo"] = {"type": "string"}
    crd = crd_with(f, schema)
    try:
        body = ("metadata:\n  name: mytest\n  unknownMeta: unknown\n  finalizers:\n  - test-finalizer\n"
                f"spec:\n  template:\n    apiversion: foo/v1\n    kind: Sub\n    metadata:\n"
                f"        unknownSubMeta: unknown\n        name: subobject\n        namespace: {f.ns}\n"
                + PORTS.format("")[len("spec:\n"):])
        code, out = apply_cr(f, crd, body)
        assert ".spec.template.metadata.unknownSubMeta: field not declared in schema" in out or \
            ".metadata.unknownMeta: field not declared in schema" in out, out
    finally:
        cleanup(f, crd)


def test_should_detect_duplicates_in_a_cr_when_preserving_unknown_fields(framework):
    """[sig-api-machinery] FieldValidation should detect duplicates in a CR when preserving unknown fields
    [Conformance]"""
    f = framework
    schema = json.loads(json.dumps(NOXU_SCHEMA))
    schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["foo"] = {"type": "string"}
    crd = crd_with(f, schema)
    try:
        code, out = apply_cr(f, crd, META + PORTS.format("unknown: uk1\n  foo: foo1\n  "))
        assert 'line 11: key \\"foo\\" already set in map' in out, out
    finally:
        cleanup(f, crd)
