"""The real kubectl (v1.32) with CustomResourceDefinitions and server-side
apply on a throwaway cluster: a Widget CRD with a schema, printer columns,
short name and scale subresource; invalid Widgets refused with the schema's
messages; the Gateway API's standard CRDs (v1.2.1, tests/data) applied and a
Gateway + HTTPRoute read back; a Deployment applied server-side by two field
managers (the conflict, then --force-conflicts), managedFields, and kubectl
diff --server-side."""
import json
import os
import re
import shutil

import pytest

from tests.integration.cluster import ThrowawayCluster

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed on this machine")]

GATEWAY_API = os.path.join(os.path.dirname(__file__), "..", "..", "agent", "controllers", "gateway", "standard-v1.2.1")

WIDGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wg]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Color, type: string, jsonPath: .spec.color}
    - {name: Size, type: integer, jsonPath: .spec.size}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [color]
            properties:
              color: {type: string, enum: [red, green, blue]}
              size: {type: integer, minimum: 1, maximum: 100, default: 10}
              replicas: {type: integer}
          status:
            type: object
            properties:
              replicas: {type: integer}
"""

GATEWAY = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: nsplane-example}
spec: {controllerName: example.com/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web-gw}
spec:
  gatewayClassName: nsplane-example
  listeners: [{name: http, protocol: HTTP, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: web-gw}]
  hostnames: [web.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: web, port: 80}]
"""


def deployment(replicas: int) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: ssa-web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: ssa-web}}}}
  template:
    metadata: {{labels: {{app: ssa-web}}}}
    spec:
      containers:
      - name: nginx
        image: nginx
        ports: [{{containerPort: 80}}]
"""


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("crdssa")), dns=False) as tc:
        yield tc


def jget(c, *args):
    return json.loads(c.kubectl("get", *args, "-o", "json").stdout)


def test_widget_crd(c):
    assert "widgets.example.com created" in c.kubectl("apply", "-f", "-", input=WIDGET_CRD).stdout
    c.kubectl("wait", "--for", "condition=Established", "crd/widgets.example.com", "--timeout=20s")
    c.kubectl("apply", "-f", "-", input="apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\n"
                                        "spec: {color: red}\n")
    bad = c.kubectl("apply", "-f", "-", check=False,
                    input="apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: bad}\nspec: {color: purple, "
                          "size: 200}\n")
    assert bad.returncode != 0
    assert 'The Widget "bad" is invalid' in bad.stderr
    assert 'spec.color: Unsupported value: "purple": supported values: "red", "green", "blue"' in bad.stderr
    assert "spec.size: Invalid value: 200: spec.size in body should be less than or equal to 100" in bad.stderr
    unknown = c.kubectl("apply", "-f", "-", check=False,
                        input="apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: u}\n"
                              "spec: {color: red, shape: round}\n")
    assert 'strict decoding error: unknown field "spec.shape"' in unknown.stderr
    lines = c.kubectl("get", "widgets").stdout.splitlines()
    assert lines[0].split() == ["NAME", "COLOR", "SIZE"] and lines[1].split() == ["w1", "red", "10"]
    assert c.kubectl("get", "wg", "w1", "-o", "jsonpath={.spec.size}").stdout == "10"
    c.kubectl("scale", "widget", "w1", "--replicas=3")
    assert jget(c, "widget", "w1")["spec"]["replicas"] == 3
    assert c.kubectl("get", "wg", "--field-selector", "metadata.name=w1", "-o", "name").stdout.strip() == \
        "widget.example.com/w1"
    c.kubectl("delete", "crd", "widgets.example.com")
    gone = c.kubectl("get", "--raw", "/apis/example.com/v1/namespaces/default/widgets/w1", check=False)
    assert gone.returncode != 0


def test_gateway_api_standard_crds(c):
    out = c.kubectl("apply", "-f", GATEWAY_API).stdout
    for name in ("gatewayclasses", "gateways", "grpcroutes", "httproutes", "referencegrants"):
        # `nsplane up` installs them already (agent/controllers/gateway/crds.py): applying them again is fine
        assert re.search(rf"customresourcedefinition.apiextensions.k8s.io/{name}.gateway.networking.k8s.io "
                         r"(created|configured|unchanged)", out), out
    c.kubectl("wait", "--for", "condition=Established", "crd", "--all", "--timeout=20s")
    r = c.kubectl("apply", "-f", "-", input=GATEWAY)
    assert "httproute.gateway.networking.k8s.io/web created" in r.stdout
    assert "x-kubernetes-validations" in r.stderr         # CEL rules are said to be unchecked, not ignored silently
    route = jget(c, "httproute", "web")
    assert route["spec"]["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                            "name": "web-gw"}]                   # the schema's defaults
    assert route["spec"]["rules"][0]["backendRefs"][0]["kind"] == "Service"
    assert jget(c, "gateway", "web-gw")["spec"]["listeners"][0]["port"] == 80
    assert "web.example.com" in c.kubectl("get", "httproutes").stdout


def test_server_side_apply_two_managers(c):
    assert "deployment.apps/ssa-web serverside-applied" in \
        c.kubectl("apply", "--server-side", "-f", "-", input=deployment(2)).stdout
    clash = c.kubectl("apply", "--server-side", "--field-manager=other", "-f", "-", input=deployment(3),
                      check=False)
    assert clash.returncode != 0
    assert 'Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas' in clash.stderr
    diff = c.kubectl("diff", "--server-side", "--force-conflicts", "--field-manager=other", "-f", "-",
                     input=deployment(3), check=False)
    assert diff.returncode == 1 and "-  replicas: 2" in diff.stdout and "+  replicas: 3" in diff.stdout
    c.kubectl("apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-", input=deployment(3))
    dep = jget(c, "deployment", "ssa-web", "--show-managed-fields")
    assert dep["spec"]["replicas"] == 3
    by = {(e["manager"], e["operation"]): e for e in dep["metadata"]["managedFields"]}
    assert "f:replicas" in by[("other", "Apply")]["fieldsV1"]["f:spec"]
    assert "f:replicas" not in by[("kubectl", "Apply")]["fieldsV1"]["f:spec"]
    assert by[("kubectl", "Apply")]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"] == {
        'k:{"name":"nginx"}': {".": {}, "f:image": {}, "f:name": {}, "f:ports": {
            'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}}}
    c.kubectl("apply", "-f", "-", input=deployment(3).replace("ssa-web", "csa-web"))      # client-side still works
    managers = jget(c, "deployment", "csa-web", "--show-managed-fields")["metadata"]["managedFields"]
    assert ("kubectl-client-side-apply", "Update") in [(m["manager"], m["operation"]) for m in managers]
