"""Kubernetes-shaped dicts -> the slim objects DNS needs, converted in exactly one place.

As CoreDNS's plugin/kubernetes/object does, we keep only the fields that can
change an answer: a Service's ClusterIPs, type, externalName and ports; an
EndpointSlice's ports and endpoints (address, hostname, readiness, target pod);
a Pod's name, IPs, hostname and subdomain. Everything else in the object is
dropped here, so the rest of the package never touches a raw dict.
"""

from __future__ import annotations

from dataclasses import dataclass

SERVICE_NAME_LABEL = "kubernetes.io/service-name"

KINDS = ("Service", "EndpointSlice", "Pod", "Namespace")


class ObjectError(ValueError):
    """A dict that cannot be read as the kind it was handed in as."""


@dataclass(frozen=True, slots=True)
class Port:
    """One named (or unnamed) port; port -1 is CoreDNS's 'no ports' sentinel."""

    name: str
    protocol: str
    port: int


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    type: str
    cluster_ips: tuple[str, ...]
    external_name: str
    ports: tuple[Port, ...]
    publish_not_ready: bool

    @property
    def headless(self) -> bool:
        return bool(self.cluster_ips) and self.cluster_ips[0] == "None"

    @property
    def external(self) -> bool:
        return self.type == "ExternalName"


@dataclass(frozen=True, slots=True)
class Endpoint:
    addresses: tuple[str, ...]
    hostname: str
    ready: bool
    pod_name: str  # targetRef name when targetRef.kind is Pod, else ""


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    namespace: str
    name: str
    service_name: str
    ports: tuple[Port, ...]
    endpoints: tuple[Endpoint, ...]


@dataclass(frozen=True, slots=True)
class Pod:
    namespace: str
    name: str
    ips: tuple[str, ...]
    hostname: str
    subdomain: str


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str


def object_key(kind: str, obj: dict) -> tuple[str, str]:
    """(namespace, name) of a Kubernetes dict; Namespaces use ("", name)."""
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ObjectError(f"{kind} without metadata.name: cannot index it; fix the object or the watch feed")
    if kind == "Namespace":
        return "", name
    return meta.get("namespace") or "default", name


def _ports(raw: list | None) -> tuple[Port, ...]:
    if not raw:
        return (Port("", "", -1),)
    out = []
    for p in raw:
        port = p.get("port")
        out.append(Port(str(p.get("name") or ""), str(p.get("protocol") or "TCP"),
                        int(port) if port is not None else -1))
    return tuple(out)


def service_from_dict(obj: dict) -> Service:
    ns, name = object_key("Service", obj)
    spec = obj.get("spec") or {}
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return Service(
        namespace=ns, name=name,
        type=spec.get("type") or "ClusterIP",
        cluster_ips=tuple(str(ip) for ip in ips),
        external_name=str(spec.get("externalName") or ""),
        ports=_ports(spec.get("ports")),
        publish_not_ready=bool(spec.get("publishNotReadyAddresses")),
    )


def _endpoint(raw: dict) -> Endpoint:
    ready = (raw.get("conditions") or {}).get("ready")
    ref = raw.get("targetRef") or {}
    pod_name = ref.get("name", "") if ref.get("kind", "Pod") == "Pod" else ""
    return Endpoint(
        addresses=tuple(str(a) for a in raw.get("addresses") or ()),
        hostname=str(raw.get("hostname") or ""),
        # Per the API: a nil ready condition means "unknown", read as ready.
        ready=True if ready is None else bool(ready),
        pod_name=pod_name if len(pod_name) < 64 else "",
    )


def endpoint_slice_from_dict(obj: dict) -> EndpointSlice:
    ns, name = object_key("EndpointSlice", obj)
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return EndpointSlice(
        namespace=ns, name=name,
        service_name=str(labels.get(SERVICE_NAME_LABEL, "")),
        ports=_ports(obj.get("ports")),
        endpoints=tuple(_endpoint(e) for e in obj.get("endpoints") or ()),
    )


def pod_from_dict(obj: dict) -> Pod:
    ns, name = object_key("Pod", obj)
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or () if p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    return Pod(namespace=ns, name=name, ips=tuple(ips),
               hostname=str(spec.get("hostname") or ""),
               subdomain=str(spec.get("subdomain") or ""))


def namespace_from_dict(obj: dict) -> Namespace:
    return Namespace(object_key("Namespace", obj)[1])


CONVERTERS = {
    "Service": service_from_dict,
    "EndpointSlice": endpoint_slice_from_dict,
    "Pod": pod_from_dict,
    "Namespace": namespace_from_dict,
}


def convert(kind: str, obj: dict):
    """The one entry point: a Kubernetes dict of `kind` -> its slim object."""
    try:
        conv = CONVERTERS[kind]
    except KeyError:
        raise ObjectError(f"unknown kind {kind!r}: DNS watches only {', '.join(KINDS)}") from None
    try:
        return conv(obj)
    except ObjectError:
        raise
    except (AttributeError, TypeError, ValueError) as exc:
        raise ObjectError(f"{kind} {object_key(kind, obj)}: malformed object ({exc}); fix its spec") from exc
