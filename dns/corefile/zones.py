"""Server block keys and zone arguments -> fully qualified zones (CoreDNS's plugin.Host / SplitHostPort).

`.:53`, `example.org`, `dns://example.org:1053`, and reverse zones written as
CIDRs: `10.0.0.0/8` is `10.in-addr.arpa.`; a mask off an octet (nibble for
IPv6) boundary stands for every zone it covers (`10.0.0.0/15` is
`0.10.in-addr.arpa.` and `1.10.in-addr.arpa.`), as NormalizeExact gives.
Zones are lower-case dotted names ending in "." ("." is the root).
"""

from __future__ import annotations

import ipaddress

DEFAULT_PORT = 53
MAX_EXPANSION = 256


class ZoneError(ValueError):
    pass


def fqdn(name: str) -> str:
    name = name.lower()
    return name if name.endswith(".") else name + "."


def transport(key: str) -> tuple[str, str]:
    for scheme in ("dns", "tls", "grpc", "https", "quic"):
        if key.startswith(scheme + "://"):
            return scheme, key[len(scheme) + 3:]
    return "dns", key


def _valid_domain(host: str) -> bool:
    if host in ("", "."):
        return True
    labels = host.rstrip(".").split(".")
    return all(0 < len(label) <= 63 for label in labels)


def split_host_port(text: str) -> tuple[str, int | None]:
    """'example.org:1053' -> ('example.org', 1053); the port is None when not given."""
    host, port = text, None
    colon = text.rfind(":")
    if colon == len(text) - 1 and colon >= 0:
        raise ZoneError(f'expecting data after last colon: "{text}"')
    if colon != -1 and text[colon + 1:].isdigit():
        host, port = text[:colon], int(text[colon + 1:])
    if len(host) > 255:
        raise ZoneError(f"specified zone is too long: {len(host)} > 255")
    if not _valid_domain(host):
        raise ZoneError(f"zone is not a valid domain name: {host}")
    return host, port


def reverse_zones(cidr: str) -> list[str] | None:
    """The arpa zones a CIDR covers, or None when the text is not a CIDR."""
    if "/" not in cidr:
        return None
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None
    step = 8 if net.version == 4 else 4
    prefix = -(-net.prefixlen // step) * step
    subnets = [net] if prefix == net.prefixlen else list(_limited(net.subnets(new_prefix=prefix)))
    out = []
    for sub in subnets:
        rev = sub.network_address.reverse_pointer.split(".")
        keep = prefix // step
        labels = rev[len(rev) - 2 - keep:] if keep else rev[-2:]
        out.append(".".join(labels) + ".")
    return out


def _limited(it):
    for n, item in enumerate(it):
        if n >= MAX_EXPANSION:
            raise ZoneError(f"CIDR expands to more than {MAX_EXPANSION} reverse zones")
        yield item


def normalize_host(text: str) -> list[str]:
    """A zone argument (no port expected) -> its zones: NormalizeExact."""
    _, rest = transport(text)
    host, _ = split_host_port(rest)
    return reverse_zones(host) or [fqdn(host)]


def server_key(key: str) -> tuple[str, list[str], int]:
    """A server block key -> (transport, zones, port)."""
    scheme, rest = transport(key)
    if scheme != "dns":
        raise ZoneError(f"{scheme}:// servers are not supported by nsplane's DNS: serve dns:// (plain DNS) "
                        f"instead of '{key}'")
    host, port = split_host_port(rest)
    return scheme, reverse_zones(host) or [fqdn(host)], DEFAULT_PORT if port is None else port


def is_subdomain(parent: str, child: str) -> bool:
    """child equals parent or lies below it (both fully qualified, lower case)."""
    return parent == "." or child == parent or child.endswith("." + parent)


def longest_match(zones, qname: str) -> str | None:
    best = None
    for z in zones:
        if is_subdomain(z, qname) and (best is None or len(z) > len(best)):
            best = z
    return best
