"""Container environment from ConfigMaps, Secrets, the pod's own fields and
its resources, with real kubectl against a throwaway cluster: a Deployment
reads env and envFrom from a ConfigMap and a Secret (`kubectl exec -- env`
shows them), fieldRef values equal the pod's, `$(VAR)` expands in command
and env, Service variables follow enableServiceLinks; a missing ConfigMap,
Secret or key keeps the container in CreateContainerConfigError with the
kubelet's message (get, describe, Events) until the object appears, then the
pod starts by itself; bad references are refused in kube-apiserver's words."""
import json
import shutil

import pytest
import yaml

from tests.integration.cluster import ThrowawayCluster

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed on this machine")]

BUNDLE = """
apiVersion: v1
kind: ConfigMap
metadata: {name: shop-config}
data: {MODE: prod, GREETING: hello world, app.name: shop}
---
apiVersion: v1
kind: Secret
metadata: {name: shop-secret}
stringData: {DB_USER: admin, DB_PASSWORD: s3cr=t}
---
apiVersion: v1
kind: Service
metadata: {name: backend}
spec:
  selector: {app: backend}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: shop}}
  template:
    metadata:
      labels: {app: shop, tier: front}
      annotations: {example.com/owner: team a}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: busybox
        command: [sh, -c, "echo 'mode=$(MODE) literal=$$(MODE) unknown=$(NOPE)'; exec sleep 3600"]
        resources: {limits: {memory: 64Mi}}
        envFrom:
        - configMapRef: {name: shop-config}
          prefix: CFG_
        - secretRef: {name: shop-secret}
        - configMapRef: {name: not-there, optional: true}
        env:
        - {name: MODE, valueFrom: {configMapKeyRef: {name: shop-config, key: MODE}}}
        - {name: PASSWORD, valueFrom: {secretKeyRef: {name: shop-secret, key: DB_PASSWORD}}}
        - {name: DB_URL, value: "postgres://$(DB_USER)@$(BACKEND_SERVICE_HOST):$(BACKEND_SERVICE_PORT)/$(MODE)"}
        - {name: ESCAPED, value: "$$(MODE)"}
        - {name: OPTIONAL, valueFrom: {secretKeyRef: {name: shop-secret, key: missing, optional: true}}}
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: POD_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
        - {name: POD_UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
        - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        - {name: POD_IPS, valueFrom: {fieldRef: {fieldPath: status.podIPs}}}
        - {name: HOST_IP, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}
        - {name: NODE_NAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
        - {name: SA, valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}}
        - {name: TIER, valueFrom: {fieldRef: {fieldPath: "metadata.labels['tier']"}}}
        - {name: OWNER, valueFrom: {fieldRef: {fieldPath: "metadata.annotations['example.com/owner']"}}}
        - {name: MEM_MI, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
        - {name: CPUS, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}
"""


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("envrefs")), dns=False) as tc:
        yield tc


def jget(c, *args) -> dict:
    return json.loads(c.kubectl("get", *args, "-o", "json").stdout)


def running_pod(c, selector: str) -> dict:
    def ready():
        pods = [p for p in jget(c, "pods", "-l", selector)["items"] if not p["metadata"].get("deletionTimestamp")]
        return pods and all(cs.get("state", {}).get("running") for cs in pods[0]["status"].get("containerStatuses", [])
                            ) and pods[0]["status"].get("containerStatuses") and pods[0]
    return c.wait(ready, 60, f"a running pod {selector}")


def env_of(c, pod: str) -> dict[str, str]:
    out = c.kubectl("exec", pod, "--", "env").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def waiting(c, pod: str) -> dict:
    return (jget(c, "pod", pod)["status"].get("containerStatuses") or [{}])[0].get("state", {}).get("waiting", {})


def events(c, pod: str) -> list[tuple[str, str, str]]:
    evs = jget(c, "events", "--field-selector", f"involvedObject.name={pod}")["items"]
    return [(e["type"], e["reason"], e["message"]) for e in evs]


def test_deployment_reads_config_map_secret_fields_and_resources(c):
    c.kubectl("apply", "-f", "-", input=BUNDLE)
    pod = running_pod(c, "app=shop")
    name = pod["metadata"]["name"]
    env = env_of(c, name)
    svc = jget(c, "service", "backend")
    assert (env["CFG_MODE"], env["CFG_GREETING"], env["CFG_app.name"]) == ("prod", "hello world", "shop")
    assert (env["DB_USER"], env["DB_PASSWORD"], env["PASSWORD"], env["MODE"]) == ("admin", "s3cr=t", "s3cr=t", "prod")
    assert env["DB_URL"] == f"postgres://admin@{svc['spec']['clusterIP']}:80/prod"
    assert env["ESCAPED"] == "$(MODE)" and "OPTIONAL" not in env
    assert (env["POD_NAME"], env["POD_NAMESPACE"], env["POD_UID"]) == (name, "default", pod["metadata"]["uid"])
    assert env["POD_IP"] == env["POD_IPS"] == pod["status"]["podIP"]
    assert env["HOST_IP"] == pod["status"]["hostIP"] and env["NODE_NAME"] == pod["spec"]["nodeName"]
    assert (env["SA"], env["TIER"], env["OWNER"], env["MEM_MI"]) == ("default", "front", "team a", "64")
    assert env["CPUS"] == jget(c, "node", pod["spec"]["nodeName"])["status"]["allocatable"]["cpu"]
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["BACKEND_PORT_80_TCP"] == f"tcp://{svc['spec']['clusterIP']}:80"
    assert env["HOSTNAME"] == name
    logs = c.wait(lambda: c.kubectl("logs", name).stdout, 20, "the container's first line")
    assert logs == "mode=prod literal=$(MODE) unknown=$(NOPE)\n"
    stored = jget(c, "deployment", "shop")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert stored[5]["valueFrom"]["fieldRef"] == {"apiVersion": "v1", "fieldPath": "metadata.name"}
    assert stored[-1]["valueFrom"]["resourceFieldRef"] == {"resource": "limits.cpu", "divisor": "0"}


def test_service_links_off_keeps_only_kubernetes_and_no_limit_is_allocatable(c):
    c.kubectl("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nolinks", "labels": {"app": "nolinks"}},
        "spec": {"enableServiceLinks": False, "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "app", "image": "busybox", "command": ["sleep", "3600"], "env": [
                     {"name": "MEM_KI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                                           "divisor": "1Ki"}}}]}]}}))
    pod = running_pod(c, "app=nolinks")
    env = env_of(c, "nolinks")
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert not [k for k in env if k.startswith("BACKEND_")]
    node = jget(c, "node", pod["spec"]["nodeName"])["status"]     # no limit: the node's allocatable
    assert f"{env['MEM_KI']}Ki" == node["allocatable"]["memory"] != node["capacity"]["memory"]


def _waiting_pod(name: str, env=None, env_from=None) -> str:
    container = {"name": "app", "image": "busybox", "command": ["sleep", "3600"]}
    container.update({"env": env} if env else {})
    container.update({"envFrom": env_from} if env_from else {})
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
                           "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]}})


def test_missing_config_map_then_key_then_the_pod_starts_by_itself(c):
    c.kubectl("apply", "-f", "-", input=_waiting_pod(
        "late", env=[{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "late-config", "key": "k"}}}]))
    w = c.wait(lambda: (w := waiting(c, "late")).get("reason") == "CreateContainerConfigError" and w, 40,
               "CreateContainerConfigError")
    assert w["message"] == 'configmap "late-config" not found'
    row = c.kubectl("get", "pod", "late").stdout.splitlines()[1].split()
    assert row[1:3] == ["0/1", "CreateContainerConfigError"], row
    c.wait(lambda: ("Warning", "Failed", 'Error: configmap "late-config" not found') in events(c, "late"), 20,
           "the Failed event")
    described = c.kubectl("describe", "pod", "late").stdout
    assert "Reason:       CreateContainerConfigError" in described
    assert 'Error: configmap "late-config" not found' in described
    c.kubectl("create", "configmap", "late-config", "--from-literal=other=1")
    c.wait(lambda: waiting(c, "late").get("message") == "couldn't find key k in ConfigMap default/late-config",
           40, "the missing-key message")
    c.kubectl("patch", "configmap", "late-config", "-p", '{"data": {"k": "finally"}}')
    running_pod(c, "app=late")
    assert env_of(c, "late")["K"] == "finally"


def test_missing_secret_of_env_from(c):
    c.kubectl("apply", "-f", "-", input=_waiting_pod("nosecret", env_from=[{"secretRef": {"name": "later"}}]))
    w = c.wait(lambda: (w := waiting(c, "nosecret")).get("reason") == "CreateContainerConfigError" and w, 40,
               "CreateContainerConfigError")
    assert w["message"] == 'secret "later" not found'
    c.kubectl("create", "secret", "generic", "later", "--from-literal=TOKEN=abc")
    running_pod(c, "app=nosecret")
    assert env_of(c, "nosecret")["TOKEN"] == "abc"


@pytest.mark.parametrize("entry,message", [
    ({"name": "V", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"},
                                 "configMapKeyRef": {"name": "x", "key": "k"}}},
     'spec.containers[0].env[0].valueFrom: Invalid value: "": may not have more than one field specified at a time'),
    ({"name": "A=B", "value": "x"},
     ('spec.containers[0].env[0].name: Invalid value: "A=B": a valid environment variable name must consist only '
     "of printable ASCII characters other than '='")),
    ({"name": "V", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}},
     ('spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: "status.phase": supported values: '
     '"metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName", '
     '"status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"')),
    ({"name": "V", "valueFrom": {"secretKeyRef": {"name": "s"}}},
     "spec.containers[0].env[0].valueFrom.secretKeyRef.key: Required value"),
])
def test_bad_references_are_refused_in_kube_words(c, entry, message):
    r = c.kubectl("apply", "-f", "-", input=_waiting_pod("bad", env=[entry]), check=False)
    assert r.returncode != 0
    assert r.stderr.strip() == f'The Pod "bad" is invalid: {message}', r.stderr
    assert c.kubectl("get", "pod", "bad", check=False).returncode != 0
