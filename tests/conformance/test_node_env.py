"""Kubernetes' [Conformance] specs about a container's environment, ported
from test/e2e/common/node: downwardapi.go ("Downward API ... as env vars"),
expansion.go ("Variable Expansion", the env/command/args specs),
configmap.go and secrets.go (consumable via environment variables and
envFrom, empty keys refused). Upstream's pods, images and expectations;
e2epodoutput.TestContainerOutput[Regexp] is `output_of` here: the pod runs
to completion and its log must contain (or match) every expectation."""
from __future__ import annotations

import json
import re
import uuid

import pytest

from tests.conformance.framework import BUSYBOX, POD_START_TIMEOUT, Framework, poll

pytestmark = pytest.mark.integration

BASE_NAME = "env"
REGEX_IPV4 = r"(?:\d+)\.(?:\d+)\.(?:\d+)\.(?:\d+)"        # e2enetwork.RegexIPv4
REGEX_IPV6 = r"(?:(?:(?:[0-9a-fA-F]{1,4}):){7}(?:[0-9a-fA-F]{1,4}))"   # e2enetwork.RegexIPv6 (full form)


def output_of(f: Framework, pod: dict, expected: list[str], regexp: bool = False) -> None:
    """e2epodoutput.TestContainerOutput(Regexp): create, wait for Succeeded
    (a Failed pod fails the spec), then every expectation in the log."""
    name = f.create(pod)["metadata"]["name"]

    def done() -> bool:
        phase = (f.get("pod", name).get("status") or {}).get("phase")
        assert phase != "Failed", f"pod {f.ns}/{name} failed: {f.kubectl('logs', name, check=False).stdout}"
        return phase == "Succeeded"
    poll(2, POD_START_TIMEOUT, done, what=f"pod {f.ns}/{name} to succeed")
    logs = f.kubectl("logs", name, "-c", pod["spec"]["containers"][0]["name"]).stdout
    for want in expected:
        found = re.search(want, logs) if regexp else want in logs
        assert found, f"{want!r} not in the output of {name}:\n{logs}"


def env_pod(name: str, env: list[dict], resources: dict | None = None, command=None, args=None,
            env_from=None) -> dict:
    container = {"name": "dapi-container", "image": BUSYBOX, "command": command or ["sh", "-c", "env"]}
    for key, value in (("args", args), ("env", env), ("envFrom", env_from), ("resources", resources)):
        if value:
            container[key] = value
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"name": name}},
            "spec": {"containers": [container], "restartPolicy": "Never"}}


DAPI_RESOURCES = {"requests": {"cpu": "250m", "memory": "32Mi"}, "limits": {"cpu": "1250m", "memory": "64Mi"}}


def field(name: str, path: str) -> dict:
    return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}


def resource(name: str, res: str) -> dict:
    return {"name": name, "valueFrom": {"resourceFieldRef": {"resource": res}}}


# ---- [sig-node] Downward API ------------------------------------------------------------------

def test_downward_api_pod_name_namespace_and_ip(framework):
    """should provide pod name, namespace and IP address as env vars [NodeConformance] [Conformance]"""
    name = "downward-api-" + str(uuid.uuid4())
    env = [field("POD_NAME", "metadata.name"), field("POD_NAMESPACE", "metadata.namespace"),
           field("POD_IP", "status.podIP")]
    output_of(framework, env_pod(name, env, DAPI_RESOURCES),
              [f"POD_NAME={name}", f"POD_NAMESPACE={framework.ns}", f"POD_IP={REGEX_IPV4}|{REGEX_IPV6}"],
              regexp=True)


def test_downward_api_host_ip(framework):
    """should provide host IP as an env var [NodeConformance] [Conformance]"""
    name = "downward-api-" + str(uuid.uuid4())
    output_of(framework, env_pod(name, [field("HOST_IP", "status.hostIP")], DAPI_RESOURCES),
              [f"HOST_IP={REGEX_IPV4}|{REGEX_IPV6}"], regexp=True)


def test_downward_api_limits_and_requests(framework):
    """should provide container's limits.cpu/memory and requests.cpu/memory as env vars [NodeConformance] [Conformance]"""
    name = "downward-api-" + str(uuid.uuid4())
    env = [resource("CPU_LIMIT", "limits.cpu"), resource("MEMORY_LIMIT", "limits.memory"),
           resource("CPU_REQUEST", "requests.cpu"), resource("MEMORY_REQUEST", "requests.memory")]
    output_of(framework, env_pod(name, env, DAPI_RESOURCES),
              ["CPU_LIMIT=2", "MEMORY_LIMIT=67108864", "CPU_REQUEST=1", "MEMORY_REQUEST=33554432"])


def test_downward_api_default_limits_from_node_allocatable(framework):
    """should provide default limits.cpu/memory from node allocatable [NodeConformance] [Conformance]"""
    name = "downward-api-" + str(uuid.uuid4())
    env = [resource("CPU_LIMIT", "limits.cpu"), resource("MEMORY_LIMIT", "limits.memory")]
    output_of(framework, env_pod(name, env), ["CPU_LIMIT=[1-9]", "MEMORY_LIMIT=[1-9]"], regexp=True)


def test_downward_api_pod_uid(framework):
    """should provide pod UID as env vars [NodeConformance] [Conformance]"""
    name = "downward-api-" + str(uuid.uuid4())
    output_of(framework, env_pod(name, [field("POD_UID", "metadata.uid")], DAPI_RESOURCES),
              ["POD_UID=[a-z0-9]{8}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{12}"], regexp=True)


# ---- [sig-node] Variable Expansion -----------------------------------------------------------------

def test_variable_expansion_composes_env_vars(framework):
    """should allow composing env vars into new env vars [NodeConformance] [Conformance]"""
    name = "var-expansion-" + str(uuid.uuid4())
    env = [{"name": "FOO", "value": "foo-value"}, {"name": "BAR", "value": "bar-value"},
           {"name": "FOOBAR", "value": "$(FOO);;$(BAR)"}]
    output_of(framework, env_pod(name, env), ["FOO=foo-value", "BAR=bar-value", "FOOBAR=foo-value;;bar-value"])


def test_variable_expansion_in_command(framework):
    """should allow substituting values in a container's command [NodeConformance] [Conformance]"""
    name = "var-expansion-" + str(uuid.uuid4())
    pod = env_pod(name, [{"name": "TEST_VAR", "value": "test-value"}],
                  command=["sh", "-c", 'TEST_VAR=wrong echo "$(TEST_VAR)"'])
    output_of(framework, pod, ["test-value"])


def test_variable_expansion_in_args(framework):
    """should allow substituting values in a container's args [NodeConformance] [Conformance]"""
    name = "var-expansion-" + str(uuid.uuid4())
    pod = env_pod(name, [{"name": "TEST_VAR", "value": "test-value"}], command=["sh", "-c"],
                  args=['TEST_VAR=wrong echo "$(TEST_VAR)"'])
    output_of(framework, pod, ["test-value"])


# ---- [sig-node] ConfigMap / Secrets --------------------------------------------------------------

def _config_map(f: Framework, name: str, sep: str = "-") -> None:
    """newConfigMap (data-1...), or newEnvFromConfigMap (data_1...) with sep="_"."""
    f.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
              "data": {f"data{sep}{i}": f"value-{i}" for i in (1, 2, 3)}})


def _secret(f: Framework, name: str, sep: str = "-") -> None:
    """secretForTest (data-1: "value-1\\n"...), or newEnvFromSecret (data_1...) with sep="_"."""
    f.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
              "data": {f"data{sep}1": "dmFsdWUtMQo=", f"data{sep}2": "dmFsdWUtMgo=", f"data{sep}3": "dmFsdWUtMwo="}})


def test_config_map_consumable_via_environment_variable(framework):
    """[sig-node] ConfigMap should be consumable via environment variable [NodeConformance] [Conformance]"""
    name = "configmap-test-" + str(uuid.uuid4())
    _config_map(framework, name)
    env = [{"name": "CONFIG_DATA_1", "valueFrom": {"configMapKeyRef": {"name": name, "key": "data-1"}}}]
    output_of(framework, env_pod("pod-configmaps-" + str(uuid.uuid4()), env), ["CONFIG_DATA_1=value-1"])


def test_config_map_consumable_via_the_environment(framework):
    """[sig-node] ConfigMap should be consumable via the environment [NodeConformance] [Conformance]"""
    name = "configmap-test-" + str(uuid.uuid4())
    _config_map(framework, name, sep="_")
    env_from = [{"configMapRef": {"name": name}}, {"prefix": "p_", "configMapRef": {"name": name}}]
    output_of(framework, env_pod("pod-configmaps-" + str(uuid.uuid4()), [], env_from=env_from),
              ["data_1=value-1", "data_2=value-2", "data_3=value-3",
               "p_data_1=value-1", "p_data_2=value-2", "p_data_3=value-3"])


def test_secret_consumable_in_env_vars(framework):
    """[sig-node] Secrets should be consumable from pods in env vars [NodeConformance] [Conformance]"""
    name = "secret-test-" + str(uuid.uuid4())
    _secret(framework, name)
    env = [{"name": "SECRET_DATA", "valueFrom": {"secretKeyRef": {"name": name, "key": "data-1"}}}]
    output_of(framework, env_pod("pod-secrets-" + str(uuid.uuid4()), env), ["SECRET_DATA=value-1"])


def test_secret_consumable_via_the_environment(framework):
    """[sig-node] Secrets should be consumable via the environment [NodeConformance] [Conformance]"""
    name = "secret-test-" + str(uuid.uuid4())
    _secret(framework, name, sep="_")
    env_from = [{"secretRef": {"name": name}}, {"prefix": "p_", "secretRef": {"name": name}}]
    output_of(framework, env_pod("pod-configmaps-" + str(uuid.uuid4()), [], env_from=env_from),
              ["data_1=value-1", "data_2=value-2", "data_3=value-3",
               "p_data_1=value-1", "p_data_2=value-2", "p_data_3=value-3"])


@pytest.mark.parametrize("kind,body", [("ConfigMap", {"data": {"": "value-1"}}),
                                       ("Secret", {"data": {"": "dmFsdWUtMQo="}})])
def test_empty_keys_are_refused(framework, kind, body):
    """[sig-node] ConfigMap should fail to create ConfigMap with empty key / Secrets should fail to
    create secret due to empty secret key [Conformance]"""
    obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": f"{kind.lower()}-test-emptykey"}, **body}
    r = framework.kubectl("create", "-f", "-", input=json.dumps(obj), check=False)
    assert r.returncode != 0 and "is invalid" in r.stderr, r.stderr
