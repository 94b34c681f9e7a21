"""A container's environment, as the kubelet builds it (pkg/kubelet's
makeEnvironmentVariables, envvars.FromServices, fieldpath and the downward
API's resource helpers), as pure functions over plain API objects.

Order of resolution, as the kubelet's:

1. the Service variables: `<NAME>_SERVICE_HOST`, `_SERVICE_PORT[_<PORT>]`
   and Docker-link `<NAME>_PORT...` for every Service with a cluster IP in
   the pod's namespace (unless `enableServiceLinks: false`), and for
   default/kubernetes always;
2. `envFrom` (configMapRef / secretRef, `prefix`, `optional`) in order,
   later sources overriding earlier ones;
3. `env` in order: a non-empty `value` has its `$(VAR)` references expanded
   against the variables so far and the Service variables (`$$` escapes,
   unknown names stay as written); `valueFrom` is resolved from a
   ConfigMap or Secret key, a pod field (`fieldRef`) or a container
   resource (`resourceFieldRef`, the node's allocatable when no limit);
4. the Service variables not already defined.

A missing non-optional ConfigMap, Secret or key raises ContainerConfigError
with the kubelet's message (`configmap "x" not found`, `couldn't find key k
in ConfigMap ns/x`): the container waits in CreateContainerConfigError and
the kubelet tries again. Kubernetes 1.32 runs with
RelaxedEnvironmentVariableValidation on, so envFrom keys are checked against
the relaxed rule (printable ASCII but '='); a key failing it is skipped and
reported in an InvalidEnvironmentVariableNames warning.
"""
from __future__ import annotations

import base64
import ipaddress
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.api.client import APIStatusError
from agent.api.fieldpath import convert_field_label, metadata_value
from agent.api.syntax import go_quote, relaxed_env_var_name_errors
from agent.node.runtime.errors import ContainerConfigError
from agent.node.runtime.process import expand
from agent.node.runtime.resources import parse_quantity

# (name) -> the object, or None when the API has no such object
ObjectGetter = Callable[[str], "dict | None"]

MASTER_SERVICES = ("kubernetes",)



@dataclass
class PodContext:
    """What the node knows besides the pod: its IPs, the node's, the node's
    allocatable resources and the Services the informer holds."""
    pod_ips: list[str]
    host_ips: list[str]
    allocatable: dict[str, str] = field(default_factory=dict)
    services: list[dict] = field(default_factory=list)


# ---- Service variables -------------------------------------------------------------

def _service_name(name: str) -> str:
    return name.replace("-", "_").upper()


def _ip_set(svc: dict) -> bool:
    ip = (svc.get("spec") or {}).get("clusterIP")
    return bool(ip) and ip != "None"


def _host_port(ip: str, port) -> str:
    try:
        v6 = ipaddress.ip_address(ip).version == 6
    except ValueError:
        v6 = False
    return f"[{ip}]:{port}" if v6 else f"{ip}:{port}"


def from_services(services: list[dict]) -> list[tuple[str, str]]:
    """envvars.FromServices: each Service's host, port and Docker-link variables."""
    out: list[tuple[str, str]] = []
    for svc in services:
        spec = svc.get("spec") or {}
        ports = spec.get("ports") or []
        if not _ip_set(svc) or not ports:
            continue
        ip, prefix = spec["clusterIP"], _service_name(svc["metadata"]["name"])
        out.append((f"{prefix}_SERVICE_HOST", ip))
        out.append((f"{prefix}_SERVICE_PORT", str(ports[0]["port"])))
        out += [(f"{prefix}_SERVICE_PORT_{_service_name(p['name'])}", str(p["port"])) for p in ports
                if p.get("name")]
        for i, p in enumerate(ports):
            proto = p.get("protocol") or "TCP"
            url = f"{proto.lower()}://{_host_port(ip, p['port'])}"
            if i == 0:
                out.append((f"{prefix}_PORT", url))
            key = f"{prefix}_PORT_{p['port']}_{proto.upper()}"
            out += [(key, url), (key + "_PROTO", proto.lower()), (key + "_PORT", str(p["port"])),
                    (key + "_ADDR", ip)]
    return out


def service_env(services: list[dict], namespace: str, enable_service_links: bool) -> dict[str, str]:
    """getServiceEnvVarMap: Services of the pod's namespace when links are
    enabled, default/kubernetes always (a same-named Service of the pod's
    namespace wins)."""
    chosen: dict[str, dict] = {}
    for svc in services:
        if not _ip_set(svc):
            continue
        md = svc["metadata"]
        ns, name = md.get("namespace", ""), md["name"]
        if ns == "default" and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)
        elif ns == namespace and enable_service_links:
            chosen[name] = svc
    return dict(from_services([chosen[k] for k in sorted(chosen)]))


# ---- fieldRef ------------------------------------------------------------------------

def field_ref_value(pod: dict, ref: dict, pod_ips: list[str], host_ips: list[str]) -> str:
    """podFieldSelectorRuntimeValue: a fieldRef's value for this pod on this node."""
    path = convert_field_label(ref.get("apiVersion") or "v1", ref.get("fieldPath", ""))
    spec = pod.get("spec") or {}
    node_values = {"spec.nodeName": spec.get("nodeName", ""),
                   "spec.serviceAccountName": spec.get("serviceAccountName", ""),
                   "status.hostIP": host_ips[0] if host_ips else "",
                   "status.hostIPs": ",".join(host_ips),
                   "status.podIP": pod_ips[0] if pod_ips else "",
                   "status.podIPs": ",".join(pod_ips)}
    if path in node_values:
        return node_values[path]
    return metadata_value(pod, path)


# ---- resourceFieldRef -----------------------------------------------------------------

RESOURCES = ("cpu", "memory", "ephemeral-storage")


def _find_container(pod: dict, name: str) -> dict:
    spec = pod.get("spec") or {}
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if c.get("name") == name:
            return c
    raise ValueError(f"container {name} not found")


def _amount(quantity) -> tuple[int, int]:
    """(MilliValue, Value) of a quantity, both rounded up like resource.Quantity."""
    q = parse_quantity(quantity)
    return math.ceil(q * 1000), math.ceil(q)


def resource_field_value(pod: dict, container: dict, ref: dict, allocatable: dict[str, str]) -> str:
    """containerResourceRuntimeValue over the pod with limits defaulted to the
    node's allocatable (defaultPodLimitsForDownwardAPI); ceil(value / divisor)."""
    target = _find_container(pod, ref["containerName"]) if ref.get("containerName") else container
    res = target.get("resources") or {}
    limits = dict(res.get("limits") or {})
    requests = dict(res.get("requests") or {})
    for name, limit in limits.items():        # API defaulting: request = limit
        requests.setdefault(name, limit)
    for name in RESOURCES:
        if name in allocatable and not parse_quantity(limits.get(name, 0)):
            limits[name] = allocatable[name]
    resource = ref.get("resource", "")
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or name not in RESOURCES:
        raise ValueError(f"unsupported container resource : {resource}")
    amount = (limits if kind == "limits" else requests).get(name, 0)
    divisor = ref.get("divisor")
    if divisor in (None, "", "0", 0) or not parse_quantity(divisor):
        divisor = "1"
    if name == "cpu":
        return str(math.ceil(_amount(amount)[0] / _amount(divisor)[0]))
    return str(math.ceil(_amount(amount)[1] / _amount(divisor)[1]))


# ---- the whole environment ---------------------------------------------------------------

def _not_found(kind: str, name: str) -> ContainerConfigError:
    return ContainerConfigError(f"{kind} {go_quote(name)} not found")


def _secret_data(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v or "").decode("utf-8", errors="replace")
            for k, v in (secret.get("data") or {}).items()}


class _Objects:
    """ConfigMaps and Secrets read once per container start, as the kubelet's maps."""

    def __init__(self, config_map: ObjectGetter, secret: ObjectGetter):
        self.get = {"configmap": config_map, "secret": secret}
        self.cache: dict[tuple[str, str], dict | None] = {}

    def data(self, kind: str, name: str, optional: bool) -> dict[str, str] | None:
        """The object's string data; None for a missing optional one."""
        if (kind, name) not in self.cache:
            self.cache[(kind, name)] = self.get[kind](name)
        obj = self.cache[(kind, name)]
        if obj is None:
            if optional:
                return None
            raise _not_found(kind, name)
        return _secret_data(obj) if kind == "secret" else dict(obj.get("data") or {})


def _env_from(container: dict, namespace: str, objects: _Objects,
              env: dict[str, str], warnings: list[str]) -> None:
    for source in container.get("envFrom") or []:
        kind, ref = ("configmap", source["configMapRef"]) if source.get("configMapRef") else \
            ("secret", source.get("secretRef") or {})
        name = ref.get("name", "")
        data = objects.data(kind, name, bool(ref.get("optional")))
        if data is None:
            continue
        invalid = []
        for key, value in data.items():
            key = (source.get("prefix") or "") + key
            if relaxed_env_var_name_errors(key):
                invalid.append(key)
                continue
            env[key] = value
        if invalid:
            what = "configMap" if kind == "configmap" else "secret"
            warnings.append(f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom {what} {namespace}/{name} "
                            "were skipped since they are considered invalid environment variable names.")


def _value_from(pod: dict, container: dict, source: dict, ctx: PodContext,
                objects: _Objects) -> str | None:
    """A valueFrom's value; None when an optional source is missing."""
    ns = (pod.get("metadata") or {}).get("namespace", "")
    try:
        if source.get("fieldRef"):
            return field_ref_value(pod, source["fieldRef"], ctx.pod_ips, ctx.host_ips)
        if source.get("resourceFieldRef"):
            return resource_field_value(pod, container, source["resourceFieldRef"], ctx.allocatable)
    except ValueError as e:
        raise ContainerConfigError(str(e)) from None
    for key, kind, title in (("configMapKeyRef", "configmap", "ConfigMap"), ("secretKeyRef", "secret", "Secret")):
        ref = source.get(key)
        if ref:
            optional = bool(ref.get("optional"))
            data = objects.data(kind, ref.get("name", ""), optional)
            if data is None:
                return None
            if ref.get("key") not in data:
                if optional:
                    return None
                raise ContainerConfigError(f"couldn't find key {ref.get('key')} in {title} {ns}/{ref.get('name')}")
            return data[ref["key"]]
    return ""


def make_environment(pod: dict, container: dict, ctx: PodContext, config_map: ObjectGetter,
                     secret: ObjectGetter) -> tuple[list[tuple[str, str]], list[str]]:
    """The container's variables in the kubelet's order, and the
    InvalidEnvironmentVariableNames warnings to record on the pod."""
    md, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    ns = md.get("namespace", "")
    services = service_env(ctx.services, ns, spec.get("enableServiceLinks", True) is not False)
    objects = _Objects(config_map, secret)
    env: dict[str, str] = {}
    warnings: list[str] = []
    _env_from(container, ns, objects, env, warnings)
    for entry in container.get("env") or []:
        value = entry.get("value") or ""
        if value:
            value = expand(str(value), {**services, **env})
        elif entry.get("valueFrom"):
            resolved = _value_from(pod, container, entry["valueFrom"], ctx, objects)
            if resolved is None:
                continue
            value = resolved
        env[entry["name"]] = value
    return list(env.items()) + [(k, v) for k, v in services.items() if k not in env], warnings


# ---- the node's side: objects from the API, the node's allocatable ------------------------

def api_getters(client, namespace: str) -> tuple[ObjectGetter, ObjectGetter]:
    """(ConfigMap getter, Secret getter) of `namespace` over the API client:
    None for a 404, ContainerConfigError for any other failure."""
    def getter(resource: str) -> ObjectGetter:
        def get(name: str) -> dict | None:
            try:
                return client.get(resource, name, namespace)
            except APIStatusError as e:
                if e.code == 404:
                    return None
                raise ContainerConfigError(str(e)) from None
            except OSError as e:
                raise ContainerConfigError(f"failed to get {resource[:-1]} {namespace}/{name}: {e}") from None
        return get
    return getter("configmaps"), getter("secrets")
