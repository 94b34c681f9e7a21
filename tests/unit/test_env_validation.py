"""env / envFrom validation with kube-apiserver's (1.32) messages."""
import pytest

from agent.apiserver import validation as V
from agent.apiserver.validation.env import canonical_quantity

ENV_PATHS = ('"metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", '
             '"spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"')


def pod(env=None, env_from=None):
    c = {"name": "app", "image": "busybox"}
    if env is not None:
        c["env"] = env
    if env_from is not None:
        c["envFrom"] = env_from
    return {"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": [c]}}


def msgs(obj):
    return [str(c) for c in V.validate("Pod", obj)]


def vf(**source):
    return [{"name": "V", "valueFrom": source}]


def test_every_kind_of_reference_is_valid():
    env = [{"name": "A", "value": "1"}, {"name": "my.var-1", "value": "x"}, {"name": "1st name", "value": "y"},
           {"name": "E", "value": ""},
           {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app.kubernetes.io/name']"}}},
           {"name": "C", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIPs"}}},
           {"name": "D", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
           {"name": "F", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
           {"name": "G", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode.conf", "optional": True}}},
           {"name": "H", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASS"}}}]
    env_from = [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}, {"secretRef": {"name": "creds"}}]
    assert msgs(pod(env, env_from)) == []


P = "spec.containers[0].env[0]"


@pytest.mark.parametrize("env,expected", [
    ([{"name": "A=B", "value": "x"}],
     (f'{P}.name: Invalid value: "A=B": a valid environment variable name must consist only of printable ASCII '
     "characters other than '='")),
    ([{"name": "", "value": "x"}], f"{P}.name: Required value"),
    (vf(), (f'{P}.valueFrom: Invalid value: "": must specify one of: `fieldRef`, `resourceFieldRef`, '
           "`configMapKeyRef` or `secretKeyRef`")),
    (vf(fieldRef={"fieldPath": "metadata.name"}, secretKeyRef={"name": "s", "key": "k"}),
     f'{P}.valueFrom: Invalid value: "": may not have more than one field specified at a time'),
    ([{"name": "V", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
     f'{P}.valueFrom: Invalid value: "": may not be specified when `value` is not empty'),
    (vf(secretKeyRef={"name": "creds"}), f"{P}.valueFrom.secretKeyRef.key: Required value"),
    (vf(configMapKeyRef={"name": "cfg", "key": "a/b"}),
     f'{P}.valueFrom.configMapKeyRef.key: Invalid value: "a/b": a valid config key must consist of alphanumeric'),
    (vf(configMapKeyRef={"name": "Cfg", "key": "k"}),
     f'{P}.valueFrom.configMapKeyRef.name: Invalid value: "Cfg": a lowercase RFC 1123 subdomain'),
    (vf(secretKeyRef={"key": "k"}), f'{P}.valueFrom.secretKeyRef.name: Invalid value: "": a lowercase RFC 1123'),
    (vf(fieldRef={"fieldPath": "spec.containers"}),
     (f'{P}.valueFrom.fieldRef.fieldPath: Invalid value: "spec.containers": error converting fieldPath: '
     "field label not supported: spec.containers")),
    (vf(fieldRef={"fieldPath": "status.phase"}),
     f'{P}.valueFrom.fieldRef.fieldPath: Unsupported value: "status.phase": supported values: {ENV_PATHS}'),
    (vf(fieldRef={"fieldPath": "metadata.labels"}),
     f'{P}.valueFrom.fieldRef.fieldPath: Unsupported value: "metadata.labels": supported values: {ENV_PATHS}'),
    (vf(fieldRef={"fieldPath": "spec.nodeName['x']"}),
     (f"{P}.valueFrom.fieldRef.fieldPath: Invalid value: \"spec.nodeName['x']\": error converting fieldPath: "
     "field label does not support subscript: spec.nodeName['x']")),
    (vf(fieldRef={"fieldPath": "metadata.labels['-x']"}),
     f'{P}.valueFrom.fieldRef: Invalid value: "-x": name part must consist of alphanumeric characters'),
    (vf(fieldRef={"apiVersion": "v2", "fieldPath": "metadata.name"}),
     (f'{P}.valueFrom.fieldRef.fieldPath: Invalid value: "metadata.name": error converting fieldPath: '
     "unsupported pod version: v2")),
    (vf(fieldRef={"apiVersion": "v1"}), f"{P}.valueFrom.fieldRef.fieldPath: Required value"),
    (vf(resourceFieldRef={"resource": "limits.gpu"}),
     (f'{P}.valueFrom.resourceFieldRef.resource: Unsupported value: "limits.gpu": supported values: '
     '"limits.cpu", "limits.ephemeral-storage", "limits.memory", "requests.cpu", '
     '"requests.ephemeral-storage", "requests.memory"')),
    (vf(resourceFieldRef={}), f"{P}.valueFrom.resourceFieldRef.resource: Required value"),
    (vf(resourceFieldRef={"resource": "limits.cpu", "divisor": "2"}),
     (f'{P}.valueFrom.resourceFieldRef.divisor: Invalid value: "limits.cpu": only divisor\'s values 1m and 1 '
     "are supported with the cpu resource")),
    (vf(resourceFieldRef={"resource": "requests.memory", "divisor": "1024"}),
     (f'{P}.valueFrom.resourceFieldRef.divisor: Invalid value: "requests.memory": only divisor\'s values 1, 1k, '
     "1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the memory resource")),
])
def test_env_rules(env, expected):
    out = msgs(pod(env))
    assert any(m.startswith(expected) for m in out), out


F = "spec.containers[0].envFrom"


@pytest.mark.parametrize("env_from,expected", [
    ([{"prefix": "X_"}], f'{F}: Invalid value: "": must specify one of: `configMapRef` or `secretRef`'),
    ([{"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}],
     f'{F}: Invalid value: "": may not have more than one field specified at a time'),
    ([{"configMapRef": {}}], f"{F}[0].configMapRef.name: Required value"),
    ([{"secretRef": {"name": "Bad_Name"}}], f'{F}[0].secretRef.name: Invalid value: "Bad_Name": a lowercase RFC'),
    ([{"configMapRef": {"name": "a"}, "prefix": "A="}],
     f'{F}[0].prefix: Invalid value: "A=": a valid environment variable name must consist only of printable'),
])
def test_env_from_rules(env_from, expected):
    out = msgs(pod(env_from=env_from))
    assert any(m.startswith(expected) for m in out), out


@pytest.mark.parametrize("text,want", [("1", "1"), ("1000m", "1"), ("1m", "1m"), ("0.001", "1m"), ("1Ki", "1Ki"),
                                       ("1024Ki", "1Mi"), ("1024", "1024"), ("1000", "1k"), ("1e3", "1e3"),
                                       (1, "1"), ("2", "2")])
def test_divisors_canonicalise_like_quantities(text, want):
    assert canonical_quantity(text) == want


def test_templates_are_checked_too():
    dep = {"metadata": {"name": "d", "namespace": "default"},
           "spec": {"selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}}, "spec": pod(vf())["spec"]}}}
    assert any("spec.template.spec.containers[0].env[0].valueFrom: Invalid value" in m
               for m in (str(c) for c in V.validate("Deployment", dep))), V.validate("Deployment", dep)
