"""A container's environment as the kubelet builds it (agent/node/kubelet/envvars.py):
Service variables, envFrom, valueFrom of every kind, $(VAR) expansion and the
kubelet's CreateContainerConfigError messages."""
import base64

import pytest

from agent.node.kubelet import envvars
from agent.node.runtime.errors import ContainerConfigError
from agent.node.runtime.process import expand
from agent.node.runtime.resources import node_resources


def svc(name, ip, ports, ns="default", stype="ClusterIP"):
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"type": stype, "clusterIP": ip, "ports": ports}}


KUBE = svc("kubernetes", "10.96.0.1", [{"name": "https", "port": 443, "protocol": "TCP"}])


def pod(containers=None, ns="default", **spec):
    return {"metadata": {"name": "web-1", "namespace": ns, "uid": "u-1",
                         "labels": {"app": "web", "tier": "front"},
                         "annotations": {"example.com/owner": "team a"}},
            "spec": {"nodeName": "node-1", "serviceAccountName": "builder",
                     "containers": containers or [{"name": "app"}], **spec}}


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


CONFIG = {"settings": {"data": {"MODE": "prod", "LEVEL": "3", "app.name": "shop"}}}
SECRETS = {"creds": {"data": {"USER": b64("admin"), "PASS": b64("s3cr=t")}}}


def build(p, container, ctx=None, config=CONFIG, secrets=SECRETS):
    ctx = ctx or envvars.PodContext(pod_ips=["10.244.1.5"], host_ips=["172.28.0.11"],
                                    allocatable={"cpu": "2", "memory": str(4 * 2**30)}, services=[KUBE])
    return envvars.make_environment(p, container, ctx, config.get, secrets.get)


# ---- $(VAR) expansion: third_party/forked/golang/expansion's table -----------------------

@pytest.mark.parametrize("text,want", [
    ("$(VAR_A)", "A"), ("___$(VAR_B)___", "___B___"), ("$(VAR_A)-$(VAR_A)", "A-A"),
    ("$(VAR_EMPTY)", ""), ("$(UNKNOWN)", "$(UNKNOWN)"), ("$$(VAR_A)", "$(VAR_A)"),
    ("$$$(VAR_A)", "$A"), ("$$$$(VAR_A)", "$$(VAR_A)"), ("$(VAR_A", "$(VAR_A"), ("$()", "$()"),
    ("f$oo", "f$oo"), ("foo$", "foo$"), ("$(VAR_A)$(VAR_B)", "AB"), ("$$", "$"), ("$(", "$("),
])
def test_expansion_follows_kubernetes_rules(text, want):
    assert expand(text, {"VAR_A": "A", "VAR_B": "B", "VAR_EMPTY": ""}) == want


# ---- Service variables -----------------------------------------------------------------

def test_service_links_of_the_namespace_and_kubernetes_always():
    services = [KUBE, svc("web-api", "10.96.5.5", [{"name": "http", "port": 80, "protocol": "TCP"},
                                                   {"name": "dns", "port": 53, "protocol": "UDP"}]),
                svc("headless", "None", [{"port": 80}]), svc("ext", "", [], stype="ExternalName"),
                svc("other", "10.96.7.7", [{"port": 8080}], ns="team")]
    env = envvars.service_env(services, "default", True)
    assert env == {
        "KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443", "KUBERNETES_PORT": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP": "tcp://10.96.0.1:443", "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": "443", "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1",
        "WEB_API_SERVICE_HOST": "10.96.5.5", "WEB_API_SERVICE_PORT": "80",
        "WEB_API_SERVICE_PORT_HTTP": "80", "WEB_API_SERVICE_PORT_DNS": "53",
        "WEB_API_PORT": "tcp://10.96.5.5:80",
        "WEB_API_PORT_80_TCP": "tcp://10.96.5.5:80", "WEB_API_PORT_80_TCP_PROTO": "tcp",
        "WEB_API_PORT_80_TCP_PORT": "80", "WEB_API_PORT_80_TCP_ADDR": "10.96.5.5",
        "WEB_API_PORT_53_UDP": "udp://10.96.5.5:53", "WEB_API_PORT_53_UDP_PROTO": "udp",
        "WEB_API_PORT_53_UDP_PORT": "53", "WEB_API_PORT_53_UDP_ADDR": "10.96.5.5"}
    team = envvars.service_env(services, "team", False)
    assert "OTHER_SERVICE_HOST" not in team and team["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert envvars.service_env(services, "team", True)["OTHER_PORT"] == "tcp://10.96.7.7:8080"


def test_ipv6_service_urls_are_bracketed():
    env = envvars.service_env([svc("v6", "fd00::10", [{"port": 80}])], "default", True)
    assert env["V6_PORT"] == "tcp://[fd00::10]:80" and env["V6_PORT_80_TCP_ADDR"] == "fd00::10"


# ---- envFrom, env, valueFrom -----------------------------------------------------------------

def test_env_from_with_prefix_then_env_overrides_and_expands():
    c = {"name": "app",
         "envFrom": [{"configMapRef": {"name": "settings"}}, {"secretRef": {"name": "creds"}, "prefix": "DB_"},
                     {"configMapRef": {"name": "absent", "optional": True}}],
         "env": [{"name": "MODE", "value": "dev"},
                 {"name": "URL", "value": "postgres://$(DB_USER)@$(KUBERNETES_SERVICE_HOST)/$(LATER)"},
                 {"name": "LATER", "value": "x"},
                 {"name": "LITERAL", "value": "$$(MODE) $(HOSTNAME)"}]}
    env, warnings = build(pod(), c)
    d = dict(env)
    assert warnings == []
    assert d["MODE"] == "dev" and d["LEVEL"] == "3" and d["app.name"] == "shop"
    assert d["DB_USER"] == "admin" and d["DB_PASS"] == "s3cr=t" and "USER" not in d
    assert d["URL"] == "postgres://admin@10.96.0.1/$(LATER)"   # only variables defined before
    assert d["LITERAL"] == "$(MODE) $(HOSTNAME)"                # HOSTNAME is the runtime's, not the kubelet's
    names = [k for k, _ in env]
    assert names.index("LITERAL") < names.index("KUBERNETES_SERVICE_HOST")   # Service variables last
    assert len(names) == len(set(names))


def test_value_from_config_map_secret_and_optional_misses():
    c = {"name": "app", "env": [
        {"name": "M", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "MODE"}}},
        {"name": "P", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASS"}}},
        {"name": "GONE", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "x", "optional": True}}},
        {"name": "NOKEY", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nope", "optional": True}}},
        {"name": "EMPTY", "value": ""}]}
    d = dict(build(pod(), c)[0])
    assert (d["M"], d["P"], d["EMPTY"]) == ("prod", "s3cr=t", "")
    assert "GONE" not in d and "NOKEY" not in d


@pytest.mark.parametrize("entry,message", [
    ({"valueFrom": {"configMapKeyRef": {"name": "x", "key": "k"}}}, 'configmap "x" not found'),
    ({"valueFrom": {"secretKeyRef": {"name": "x", "key": "k"}}}, 'secret "x" not found'),
    ({"valueFrom": {"configMapKeyRef": {"name": "settings", "key": "k"}}},
     "couldn't find key k in ConfigMap team/settings"),
    ({"valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}}, "couldn't find key k in Secret team/creds"),
    ({"valueFrom": {"fieldRef": {"apiVersion": "v2", "fieldPath": "metadata.name"}}},
     "unsupported pod version: v2"),
    ({"valueFrom": {"resourceFieldRef": {"containerName": "sidecar", "resource": "limits.cpu"}}},
     "container sidecar not found"),
])
def test_missing_sources_are_create_container_config_errors(entry, message):
    with pytest.raises(ContainerConfigError) as err:
        build(pod(ns="team"), {"name": "app", "env": [{"name": "V", **entry}]})
    assert str(err.value) == message and err.value.reason == "CreateContainerConfigError"


def test_missing_env_from_source_names_the_object():
    with pytest.raises(ContainerConfigError, match='^configmap "nope" not found$'):
        build(pod(), {"name": "app", "envFrom": [{"configMapRef": {"name": "nope"}}]})
    with pytest.raises(ContainerConfigError, match='^secret "nope" not found$'):
        build(pod(), {"name": "app", "envFrom": [{"secretRef": {"name": "nope"}}]})


def test_invalid_env_from_keys_are_skipped_with_the_kubelet_warning():
    config = {"odd": {"data": {"GOOD": "1", "a=b": "2", "tab\tkey": "3"}}}
    env, warnings = build(pod(), {"name": "app", "envFrom": [{"configMapRef": {"name": "odd"}}]}, config=config)
    assert dict(env)["GOOD"] == "1" and "a=b" not in dict(env)
    assert warnings == [("Keys [a=b, tab\tkey] from the EnvFrom configMap default/odd were skipped since they "
                        "are considered invalid environment variable names.")]
    # Kubernetes 1.32 (RelaxedEnvironmentVariableValidation on) keeps keys the strict rule refused
    env, warnings = build(pod(), {"name": "app", "envFrom": [{"configMapRef": {"name": "settings"}}]})
    assert dict(env)["app.name"] == "shop" and warnings == []


# ---- fieldRef ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path,want", [
    ("metadata.name", "web-1"), ("metadata.namespace", "default"), ("metadata.uid", "u-1"),
    ("metadata.labels['tier']", "front"), ("metadata.labels['missing']", ""),
    ("metadata.annotations['example.com/owner']", "team a"),
    ("metadata.labels", 'app="web"\ntier="front"'),
    ("spec.nodeName", "node-1"), ("spec.host", "node-1"), ("spec.serviceAccountName", "builder"),
    ("status.podIP", "10.244.1.5"), ("status.podIPs", "10.244.1.5,fd00::5"),
    ("status.hostIP", "172.28.0.11"), ("status.hostIPs", "172.28.0.11"),
])
def test_field_refs(path, want):
    value = envvars.field_ref_value(pod(), {"apiVersion": "v1", "fieldPath": path},
                                    ["10.244.1.5", "fd00::5"], ["172.28.0.11"])
    assert value == want


@pytest.mark.parametrize("path,message", [
    ("spec.containers", "field label not supported: spec.containers"),
    ("spec.nodeName['x']", "field label does not support subscript: spec.nodeName['x']"),
    ("metadata.labels['-bad-']", "invalid key subscript in metadata.labels['-bad-']: name part must consist"),
])
def test_bad_field_refs(path, message):
    with pytest.raises(ValueError) as err:
        envvars.field_ref_value(pod(), {"fieldPath": path}, [], [])
    assert str(err.value).startswith(message)


# ---- resourceFieldRef ----------------------------------------------------------------------------

ALLOC = {"cpu": "2", "memory": str(4 * 2**30)}


@pytest.mark.parametrize("resources,ref,want", [
    ({"limits": {"cpu": "500m", "memory": "64Mi"}}, {"resource": "limits.cpu"}, "1"),
    ({"limits": {"cpu": "500m", "memory": "64Mi"}}, {"resource": "limits.cpu", "divisor": "1m"}, "500"),
    ({"limits": {"cpu": "500m", "memory": "64Mi"}}, {"resource": "limits.memory"}, str(64 * 2**20)),
    ({"limits": {"cpu": "500m", "memory": "64Mi"}}, {"resource": "limits.memory", "divisor": "1Mi"}, "64"),
    ({"limits": {"memory": "100M"}}, {"resource": "limits.memory", "divisor": "1Mi"}, "96"),
    ({"limits": {"cpu": "250m"}}, {"resource": "requests.cpu", "divisor": "1m"}, "250"),   # request = limit
    ({"requests": {"cpu": "100m"}}, {"resource": "requests.cpu", "divisor": "1m"}, "100"),
    ({}, {"resource": "limits.cpu"}, "2"),                                     # node allocatable
    ({}, {"resource": "limits.memory", "divisor": "1Gi"}, "4"),
    ({}, {"resource": "requests.memory"}, "0"),
    ({}, {"resource": "limits.cpu", "divisor": "0"}, "2"),
])
def test_resource_field_refs(resources, ref, want):
    c = {"name": "app", "resources": resources}
    assert envvars.resource_field_value(pod([c]), c, ref, ALLOC) == want


def test_resource_field_ref_of_another_container():
    main = {"name": "app"}
    side = {"name": "side", "resources": {"limits": {"memory": "32Mi"}}}
    value = envvars.resource_field_value(pod([main, side]), main,
                                         {"containerName": "side", "resource": "limits.memory", "divisor": "1Mi"},
                                         ALLOC)
    assert value == "32"


def test_env_sees_field_and_resource_values_in_order():
    c = {"name": "app", "resources": {"limits": {"memory": "128Mi"}}, "env": [
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        {"name": "DESC", "value": "$(POD) has $(MEM)Mi on $(NODE)"},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}
    d = dict(build(pod([c]), c)[0])
    assert d["DESC"] == "web-1 has 128Mi on $(NODE)" and d["NODE"] == "node-1"


def test_node_allocatable_is_capacity_less_the_eviction_threshold():
    capacity, allocatable = node_resources(4, 8 * 2**30)
    assert capacity == {"cpu": "4", "pods": "110", "memory": "8388608Ki"}
    assert allocatable == {"cpu": "4", "pods": "110", "memory": f"{8388608 - 102400}Ki"}
    c = {"name": "app"}
    assert envvars.resource_field_value(pod([c]), c, {"resource": "limits.memory", "divisor": "1Ki"},
                                        allocatable) == str(8388608 - 102400)
