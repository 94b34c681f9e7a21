"""Where pods/proxy, services/proxy and nodes/proxy send a request: the
ResourceLocation functions of kube-apiserver's pod, service and node
registries (pkg/registry/core/{pod,service,node}), over plain objects.

The name in the URL is `name`, `name:port` or `scheme:name:port`
(utilnet.SplitSchemeNamePort: scheme http or https, default http).

- pods: the pod's IP; the port given, else the first container port, else
  none (the scheme's). A port that is not a number is a service name looked
  up as Go's dialer looks it up (/etc/services: `http` is 80), not a
  container port's name, exactly as kube-apiserver does;
- services: a port number is turned into the name of the Service port that
  has it (503 `no service port 81 found for service "web"` if none); then a
  random ready address of the Endpoints subset carrying a port of that name
  (no port given: the unnamed one). None is 503 `no endpoints available for
  service "web"`;
- nodes: the kubelet (https, with the API server's kubelet client
  certificate) when no port or the kubelet's port is given; another port is
  plain proxying to the node's InternalIP.

Malformed names and ports (`ftp:web:80`, `web:80:1`, `web:0`, `web:Bad_Name`)
are 400; a pod without an IP that can be proxied to is 400 `address not
allowed`. Unknown objects are the registry's 404.
"""
from __future__ import annotations

import ipaddress
import random
import re
import socket
from dataclasses import dataclass

from agent.api.objects import internal_ip
from agent.apiserver.registry import APIError

_SCHEMES = ("", "http", "https")
_PORT_NAME = re.compile(r"^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]+(-[a-z0-9]+)*$")   # IANA_SVC_NAME


@dataclass(frozen=True)
class Location:
    scheme: str                # http or https
    host: str                  # an IP
    port: int | None           # None: the scheme's
    kubelet: bool = False      # call with the kubelet client certificate, verify the kubelet's

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


def bad_request(message: str) -> APIError:
    return APIError(400, "BadRequest", message)


def unavailable(message: str) -> APIError:
    return APIError(503, "ServiceUnavailable", message)


def split_scheme_name_port(what: str, ident: str) -> tuple[str, str, str]:
    """'https:web:443' -> ('https', 'web', '443'); 400 when malformed."""
    parts = ident.split(":")
    if len(parts) == 1:
        scheme, name, port = "", parts[0], ""
    elif len(parts) == 2:
        scheme, name, port = "", parts[0], parts[1]
    elif len(parts) == 3:
        scheme, name, port = parts
    else:
        raise bad_request(f'invalid {what} request "{ident}"')
    if not name or scheme not in _SCHEMES:
        raise bad_request(f'invalid {what} request "{ident}"')
    if port and not (port.isdigit() and 0 < int(port) < 65536) and not _PORT_NAME.match(port):
        raise bad_request(f'invalid {what} request "{ident}": port "{port}" is neither a number in 1-65535 '
                          "nor a port name (lower-case letters, digits and '-', at most 15)")
    return scheme or "http", name, port


def _dial_port(port: str) -> int | None:
    """A port as Go's dialer reads it: a number, or a name from /etc/services."""
    if not port:
        return None
    if port.isdigit():
        return int(port)
    try:
        return socket.getservbyname(port, "tcp")
    except OSError:
        raise unavailable(f"error trying to reach service: dial tcp: lookup tcp/{port}: unknown port") from None


def pod_location(pod: dict, scheme: str, port: str) -> Location:
    if not port:
        for c in (pod.get("spec") or {}).get("containers") or []:
            if c.get("ports"):
                port = str(c["ports"][0].get("containerPort", ""))
                break
    ip = (pod.get("status") or {}).get("podIP") or ""
    if not _global_unicast(ip):
        raise bad_request("address not allowed")
    return Location(scheme, ip, _dial_port(port))


def _global_unicast(ip: str) -> bool:
    """Go's net.IP.IsGlobalUnicast: private ranges count, loopback,
    link-local, multicast and unspecified do not."""
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return not (a.is_unspecified or a.is_loopback or a.is_link_local or a.is_multicast
                or str(a) == "255.255.255.255")


def service_location(svc: dict, endpoints: dict | None, scheme: str, port: str, ident: str,
                     rng: random.Random | None = None) -> Location:
    rng = rng or random.Random()
    name = svc["metadata"]["name"]
    if port.isdigit():
        match = next((p for p in (svc.get("spec") or {}).get("ports") or [] if p.get("port") == int(port)), None)
        if match is None:
            raise unavailable(f'no service port {int(port)} found for service "{name}"')
        port = match.get("name") or ""
    subsets = (endpoints or {}).get("subsets") or []
    if not subsets:
        raise unavailable(f'no endpoints available for service "{name}"')
    start = rng.randrange(len(subsets))
    for i in range(len(subsets)):
        ss = subsets[(start + i) % len(subsets)]
        addresses = [a for a in ss.get("addresses") or [] if a.get("ip")]
        if not addresses:
            continue
        for p in ss.get("ports") or []:
            if (p.get("name") or "") == port:
                return Location(scheme, rng.choice(addresses)["ip"], int(p["port"]))
    raise unavailable(f'no endpoints available for service "{ident}"')


def node_location(node: dict, scheme: str, port: str, kubelet_port: int) -> Location:
    ip = internal_ip(node)
    if not ip:
        raise unavailable(f'node "{node["metadata"]["name"]}" has no InternalIP to proxy to')
    port_of_node = (node.get("status") or {}).get("daemonEndpoints", {}).get("kubeletEndpoint", {}).get("Port")
    kport = int(port_of_node or kubelet_port)
    if not port or port == str(kport):
        return Location("https", ip, kport, kubelet=True)
    return Location(scheme, ip, _dial_port(port))
