"""Query names -> what they ask for (CoreDNS plugin/kubernetes parse.go, plus reverse names).

Names are handled as tuples of lower-case labels, never as dotted strings,
so a label holding a '.' or other odd bytes can never be mis-split.

The grammar, relative to the cluster zone (the Kubernetes DNS spec):

    service.namespace.svc               a Service
    endpoint.service.namespace.svc      one endpoint of a Service
    _port._proto.service.namespace.svc  SRV for a named port
    a-b-c-d.namespace.pod               a pod, by IP (pods insecure)

Anything longer, or whose last label is neither svc nor pod, is invalid,
which CoreDNS answers NXDOMAIN.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

SVC = "svc"
POD = "pod"
IN_ADDR_ARPA = ("in-addr", "arpa")
IP6_ARPA = ("ip6", "arpa")
REVERSE_ZONES = (IN_ADDR_ARPA, IP6_ARPA)

Labels = tuple[str, ...]


class NoSuchName(Exception):
    """The name does not exist in the zone: NXDOMAIN (CoreDNS's errNoItems/errInvalidRequest)."""


@dataclass(frozen=True, slots=True)
class Request:
    """A parsed cluster name (CoreDNS's recordRequest); '' means not present."""

    pod_or_svc: str = ""
    namespace: str = ""
    service: str = ""
    endpoint: str = ""
    port: str = ""
    protocol: str = ""


def strip_underscore(label: str) -> str:
    return label[1:] if label.startswith("_") else label


def parse_request(base: Labels) -> Request:
    """Labels left of the zone -> Request; raises NoSuchName for shapes CoreDNS rejects."""
    if base in ((), (SVC,), (POD,)):
        return Request()  # apex-like: NODATA
    segs = list(base)
    kind = segs.pop()
    if kind not in (SVC, POD):
        raise NoSuchName("last label is neither svc nor pod")
    if not segs:
        return Request(kind)
    namespace = segs.pop()
    if not segs:
        return Request(kind, namespace)
    service = segs.pop()
    if not segs:
        return Request(kind, namespace, service)
    if len(segs) == 1:
        return Request(kind, namespace, service, endpoint=segs[0])
    if len(segs) == 2:
        return Request(kind, namespace, service, port=strip_underscore(segs[0]),
                       protocol=strip_underscore(segs[1]))
    raise NoSuchName("name too long for the cluster schema")


def is_subdomain(name: Labels, zone: Labels) -> bool:
    return len(name) >= len(zone) and name[len(name) - len(zone):] == zone


def is_reverse(name: Labels) -> bool:
    """dnsutil.IsReverse: a name under in-addr.arpa or ip6.arpa (a CIDR's zone included)."""
    return is_subdomain(name, IN_ADDR_ARPA) or is_subdomain(name, IP6_ARPA)


def match_zone(name: Labels, zones: tuple[Labels, ...]) -> Labels | None:
    """The longest of `zones` that `name` is in (plugin.Zones.Matches), or None."""
    best = None
    for zone in zones:
        if is_subdomain(name, zone) and (best is None or len(zone) > len(best)):
            best = zone
    return best


def labels_of(name: str) -> Labels:
    """'Web.Default.svc.cluster.local.' -> ('web', 'default', 'svc', 'cluster', 'local')."""
    return tuple(label.lower() for label in name.strip(".").split(".") if label)


def address_from_reverse(name: Labels) -> str | None:
    """dnsutil.ExtractAddressFromReverse: the IP a full reverse name stands for, else None."""
    if is_subdomain(name, IN_ADDR_ARPA):
        parts = name[:-2]
        if len(parts) != 4:
            return None
        text = ".".join(reversed(parts))
    elif is_subdomain(name, IP6_ARPA):
        parts = name[:-2]
        if len(parts) != 32 or any(len(p) != 1 for p in parts):
            return None
        nibbles = "".join(reversed(parts))
        text = ":".join(nibbles[i:i + 4] for i in range(0, 32, 4))
    else:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def pod_ip_from_label(label: str) -> str | None:
    """'10-244-1-5' -> '10.244.1.5'; IPv6 with dashes for colons (CoreDNS findPods)."""
    if label.count("-") == 3 and "--" not in label:
        text = label.replace("-", ".")
    else:
        text = label.replace("-", ":")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None
