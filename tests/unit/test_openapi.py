"""OpenAPI documents and fieldValidation: valid manifests pass, unknown
fields are named as kube-apiserver names them."""
import glob
import json
import os

import pytest
import yaml

from agent.api.kinds import BY_KIND
from agent.apiserver import openapi
from agent.apiserver.registry import APIError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The Service chapter's Service manifests (indented as in the chapter) and a rich Pod.
SEED = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {port: 80, targetPort: 80, nodePort: 30080}
---
apiVersion: v1
kind: Service
metadata: {name: web-lb}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
  - {port: 80, targetPort: 80}
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  type: ExternalName
  externalName: db.example.com
---
apiVersion: v1
kind: Service
metadata: {name: web-headless}
spec:
  clusterIP: None
  selector: {app: web}
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}
  ports: [{name: http, port: 80, targetPort: http, protocol: TCP, appProtocol: http}]
---
apiVersion: v1
kind: Pod
metadata:
  name: rich
  labels: {app: rich}
  annotations: {note: "x"}
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 5
  nodeSelector: {kubernetes.io/os: linux}
  tolerations: [{key: k, operator: Exists, effect: NoSchedule}]
  affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: []}}}
  securityContext: {runAsUser: 1000}
  volumes:
  - {name: data, emptyDir: {}}
  - {name: cfg, configMap: {name: cfg}}
  initContainers:
  - {name: init, image: busybox, command: [sh, -c, "true"]}
  containers:
  - name: app
    image: registry.k8s.io/e2e-test-images/agnhost:2.47
    args: [netexec, --http-port=8080]
    ports: [{name: http, containerPort: 8080, protocol: TCP}]
    env:
    - {name: A, value: "1"}
    - name: NODE
      valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
    envFrom: [{configMapRef: {name: cfg}}]
    resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {memory: 128Mi}}
    volumeMounts: [{name: data, mountPath: /data}]
    readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 1}
    livenessProbe: {tcpSocket: {port: 8080}, initialDelaySeconds: 3}
    startupProbe: {exec: {command: [cat, /tmp/ok]}}
    lifecycle: {preStop: {exec: {command: [sleep, "1"]}}}
    securityContext: {capabilities: {add: [NET_ADMIN]}}
    imagePullPolicy: IfNotPresent
"""


def manifests():
    docs = list(yaml.safe_load_all(SEED))
    for path in sorted(glob.glob(os.path.join(REPO, "vagrant", "demo", "*.yaml"))):
        with open(path) as f:
            docs += [d for d in yaml.safe_load_all(f) if d]
    return docs


@pytest.mark.parametrize("doc", manifests(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_valid_manifests_have_no_unknown_fields(doc):
    assert openapi.unknown_fields(doc["kind"], doc) == []
    assert openapi.check_fields(BY_KIND[doc["kind"]], doc, "Strict") == []


def test_served_objects_have_no_unknown_fields():
    """What the API server itself stores (defaults, status) must pass too."""
    from agent.apiserver.defaults import default
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "w", "namespace": "default",
                                                               "uid": "u", "resourceVersion": "1"},
           "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "sessionAffinity": "ClientIP"}}
    default("Service", svc)
    assert openapi.unknown_fields("Service", svc) == []
    dep = next(d for d in manifests() if d["kind"] == "Deployment")
    default("Deployment", dep)
    assert openapi.unknown_fields("Deployment", dep) == []


def test_unknown_fields_are_named_by_path():
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"any": "x"}},
           "spec": {"foo": 1, "replicas": 2, "template": {"spec": {"containers": [
               {"name": "a", "image": "nginx"}, {"name": "b", "image": "nginx", "bar": True,
                                                 "ports": [{"containerPort": 80, "baz": 1}]}]}}},
           "extra": {}}
    assert openapi.unknown_fields("Deployment", dep) == [
        "spec.foo", "spec.template.spec.containers[1].bar", "spec.template.spec.containers[1].ports[0].baz",
        "extra"]


def test_strict_warn_ignore():
    svc_kind = BY_KIND["Service"]
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
           "spec": {"foo": 1, "ports": [{"port": 80, "bar": "x"}]}}
    with pytest.raises(APIError) as e:
        openapi.check_fields(svc_kind, bad, "Strict")
    assert e.value.code == 400 and e.value.reason == "BadRequest"
    assert e.value.message == ('Service in version "v1" cannot be handled as a Service: strict decoding error: '
                               'unknown field "spec.foo", unknown field "spec.ports[0].bar"')
    assert openapi.check_fields(svc_kind, bad, "Warn") == ['unknown field "spec.foo"',
                                                           'unknown field "spec.ports[0].bar"']
    assert openapi.check_fields(svc_kind, bad, None) == openapi.check_fields(svc_kind, bad, "Warn")
    assert openapi.check_fields(svc_kind, bad, "Ignore") == []
    with pytest.raises(APIError, match="fieldValidation must be one of"):
        openapi.check_fields(svc_kind, bad, "Loud")


def test_patch_bodies():
    svc_kind = BY_KIND["Service"]
    smp = b'{"spec":{"$setElementOrder/ports":[{"port":80}],"foo":1}}'
    with pytest.raises(APIError) as e:
        openapi.check_body(svc_kind, smp, "PATCH", "application/strategic-merge-patch+json", "Strict")
    assert e.value.code == 422
    assert e.value.message.endswith('strict decoding error: unknown field "spec.foo"')
    assert e.value.details["causes"][0]["field"] == "patch"
    ok = b'{"spec":{"$setElementOrder/ports":[{"port":80}],"ports":[{"port":80,"$patch":"delete"}]}}'
    assert openapi.check_body(svc_kind, ok, "PATCH", "application/strategic-merge-patch+json", "Strict") == ([], ok)
    jp = b'[{"op":"add","path":"/spec/foo","value":1}]'
    assert openapi.check_body(svc_kind, jp, "PATCH", "application/json-patch+json", "Strict") == ([], jp)
    assert openapi.check_body(svc_kind, b"not json", "POST", "application/json", "Strict") == ([], b"not json")
    warnings, pruned = openapi.check_body(svc_kind, smp, "PATCH", "application/strategic-merge-patch+json", "Warn")
    assert warnings == ['unknown field "spec.foo"']
    assert json.loads(pruned) == {"spec": {"$setElementOrder/ports": [{"port": 80}]}}


def test_ignore_and_warn_drop_unknown_fields():
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "labels": {"foo": "kept"}},
           "spec": {"foo": 1, "ports": [{"port": 80, "bar": "x"}]}}
    for directive in ("Ignore", "Warn", None):
        _, body = openapi.check_body(BY_KIND["Service"], json.dumps(bad).encode(), "POST", "application/json",
                                     directive)
        assert json.loads(body) == {"apiVersion": "v1", "kind": "Service",
                                    "metadata": {"name": "x", "labels": {"foo": "kept"}},
                                    "spec": {"ports": [{"port": 80}]}}


def test_v3_documents_tell_kubectl_to_use_server_side_validation():
    root = openapi.v3_root()["paths"]
    assert set(root) == {"api/v1", "apis/apps/v1", "apis/authentication.k8s.io/v1", "apis/batch/v1",
                         "apis/certificates.k8s.io/v1", "apis/networking.k8s.io/v1", "apis/apiextensions.k8s.io/v1",
                         "apis/discovery.k8s.io/v1",
                         "apis/authorization.k8s.io/v1", "apis/rbac.authorization.k8s.io/v1"}
    assert root["apis/apps/v1"]["serverRelativeURL"].startswith("/openapi/v3/apis/apps/v1?hash=")
    doc, ctype = openapi.serve("/openapi/v3/apis/apps/v1", "application/json")
    assert ctype == "application/json" and doc["openapi"].startswith("3.")
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "kind": "Deployment", "version": "v1"}
    assert {"name": "fieldValidation", "in": "query"}.items() <= next(
        p for p in patch["parameters"] if p["name"] == "fieldValidation").items()
    assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]
    schemas = doc["components"]["schemas"]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}
    assert schemas["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}]
    with pytest.raises(APIError):
        openapi.serve("/openapi/v3/apis/policy/v1", None)
    auth, _ = openapi.serve("/openapi/v3/apis/authentication.k8s.io/v1", "application/json")
    assert list(auth["paths"]["/apis/authentication.k8s.io/v1/selfsubjectreviews"]) == ["post"]


def refs(v, found: list) -> list:
    if isinstance(v, dict):
        if "$ref" in v:
            found.append(v["$ref"].rsplit("/", 1)[1])
        for x in v.values():
            refs(x, found)
    elif isinstance(v, list):
        for x in v:
            refs(x, found)
    return found


def test_every_reference_resolves():
    for doc, defs in ((openapi.v2_document(), openapi.v2_document()["definitions"]),
                      (openapi.v3_document("v1"), openapi.v3_document("v1")["components"]["schemas"])):
        found = refs(doc, [])
        assert found and all(name in defs for name in found)


# ---- protobuf (kubectl 1.20) -------------------------------------------------------------

def read_fields(data: bytes) -> list[tuple[int, int, object]]:
    """A minimal protobuf reader: (field, wire type, value) in order."""
    out, i = [], 0

    def varint():
        nonlocal i
        n = shift = 0
        while True:
            b = data[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n
    while i < len(data):
        key = varint()
        field, wt = key >> 3, key & 7
        if wt == 0:
            out.append((field, wt, varint()))
        elif wt == 2:
            n = varint()
            out.append((field, wt, data[i:i + n]))
            i += n
        else:
            raise AssertionError(f"unexpected wire type {wt}")
    return out


def fields_of(data: bytes) -> dict:
    return {f: v for f, _, v in read_fields(data)}


def test_v2_protobuf_round_trip():
    body, ctype = openapi.serve("/openapi/v2", openapi.PROTOBUF_V2)
    assert ctype == openapi.PROTOBUF_V2_SERVED and "@" not in ctype
    top = {f: v for f, _, v in read_fields(body)}
    assert top[1] == b"2.0"
    defs = {}
    for f, _, named in read_fields(top[9]):            # Definitions.additional_properties
        fields = fields_of(named)
        defs[fields[1].decode()] = fields[2]
    svc = {f: v for f, _, v in read_fields(defs["io.k8s.api.core.v1.ServicePort"])}
    assert read_fields(svc[22]) == [(1, 2, b"object")]  # TypeItem
    props = [fields_of(p)[1] for _, _, p in read_fields(svc[25])]
    assert b"port" in props and b"targetPort" in props
    assert [v for f, _, v in read_fields(defs["io.k8s.api.core.v1.ServicePort"]) if f == 19] == [b"port"]
    ext = [fields_of(v) for f, _, v in read_fields(defs["io.k8s.api.core.v1.Service"])
           if f == 31]
    gvk = next(e for e in ext if e[1] == b"x-kubernetes-group-version-kind")
    assert b'"kind": "Service"' in fields_of(gvk[2])[2]
    json_doc, ctype = openapi.serve("/openapi/v2", "application/json")
    assert ctype == "application/json" and json_doc["swagger"] == "2.0"
