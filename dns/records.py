"""Cluster state + question -> answer: the CoreDNS `kubernetes` plugin's decisions, as pure functions.

This follows coredns/coredns plugin/kubernetes (kubernetes.go findServices,
findPods, ns.go, reverse.go, handler.go) and plugin/backend_lookup.go, with
the kubeadm Corefile's options (`pods insecure`, `ttl 30`,
`fallthrough in-addr.arpa ip6.arpa`):

* `find()` turns a name into a list of `Target`s (CoreDNS's msg.Service): an
  IP (with a port), or a name for an ExternalName CNAME; or raises
  NoSuchName, which is NXDOMAIN.
* `resolve()` dispatches on the query type exactly as handler.go does and
  builds dnslib records. No records and no NoSuchName is NODATA: NOERROR with
  the zone's SOA in the authority section.
* Names outside our zones, and reverse names we hold nothing for, come back
  as `FORWARD`; an ExternalName pointing outside the cluster comes back with
  the CNAME and a `chase` (target, type) the server resolves upstream, as
  CoreDNS's Upstream.Lookup does, and appends after the CNAME.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from dnslib import AAAA, CNAME, NS, PTR, QTYPE, RCODE, RR, SOA, SRV, TXT, A, DNSLabel

from dns.cluster import ClusterView
from dns.names import (POD, REVERSE_ZONES, Labels, NoSuchName, Request, address_from_reverse, is_reverse,
                       is_subdomain, labels_of, match_zone, parse_request, pod_ip_from_label)

POD_MODES = ("disabled", "insecure", "verified")
DNS_SCHEMA_VERSION = "1.1.0"
DNS_VERSION_TTL = 28800
MAX_CNAME_CHAIN = 10


def pods_problem(pods: str) -> str | None:
    """What is wrong with a `pods` value, in CoreDNS's words (setup.go), or None."""
    if pods not in POD_MODES:
        return f"wrong value for pods: {pods},  must be one of: disabled, verified, insecure"
    return None


def ttl_problem(ttl: int) -> str | None:
    """What is wrong with a `ttl` value, in CoreDNS's words (setup.go), or None."""
    if not 0 <= ttl <= 3600:
        return f"ttl must be in range [0, 3600]: {ttl}"
    return None


@dataclass(frozen=True, slots=True)
class Config:
    """The Corefile's kubernetes block: zone, ttl, and the server's own pod IPs (for NS).

    The defaults are kubeadm's Corefile (`kubernetes cluster.local in-addr.arpa
    ip6.arpa { pods insecure; fallthrough in-addr.arpa ip6.arpa; ttl 30 }`).
    The options below are the block's, as CoreDNS's plugin/kubernetes setup.go
    parses them: `pods` is "disabled" | "insecure" | "verified"; `namespaces`
    limits the exposed namespaces (empty: all); `fallthrough` is None (off) or
    the zones it applies to (() for all); `reverse_zones` are the reverse zones
    named in the block (CIDRs given there already turned into arpa names).
    """

    domain: Labels = ("cluster", "local")
    ttl: int = 30
    local_ips: tuple[str, ...] = ()
    reverse_zones: tuple[Labels, ...] = REVERSE_ZONES
    pods: str = "insecure"
    namespaces: frozenset[str] = frozenset()
    endpoint_pod_names: bool = False
    noendpoints: bool = False
    ignore_empty_service: bool = False
    fallthrough: tuple[Labels, ...] | None = REVERSE_ZONES

    @property
    def zones(self) -> tuple[Labels, ...]:
        return (self.domain,) + self.reverse_zones

    def __post_init__(self) -> None:
        for problem in (pods_problem(self.pods), ttl_problem(self.ttl)):
            if problem:
                raise ValueError(f"kubernetes: {problem}")
        if any(not is_reverse(z) for z in self.reverse_zones):
            raise ValueError("kubernetes: reverse_zones must be under in-addr.arpa or ip6.arpa: "
                             f"{['.'.join(z) for z in self.reverse_zones if not is_reverse(z)]}")

    def namespace_configured(self, namespace: str) -> bool:
        """`namespaces`: only these are exposed (none listed: all)."""
        return not self.namespaces or namespace in self.namespaces

    def falls_through(self, qname: Labels) -> bool:
        """`fallthrough [zones]`: NXDOMAIN for qname goes to the next plugin instead."""
        if self.fallthrough is None:
            return False
        return not self.fallthrough or match_zone(qname, self.fallthrough) is not None


@dataclass(frozen=True, slots=True)
class Target:
    """One thing a name resolves to (CoreDNS msg.Service)."""

    host: str = ""            # an IP, or a name (ExternalName -> CNAME)
    port: int = -1
    domain: Labels = ()       # the name SRV targets and A glue use (msg.Domain(Key))
    ttl: int = 30
    text: str = ""            # TXT payload (dns-version only)

    @property
    def kind(self) -> int:
        if self.text:
            return QTYPE.TXT
        try:
            ip = ipaddress.ip_address(self.host)
        except ValueError:
            return QTYPE.CNAME
        return QTYPE.A if ip.version == 4 else QTYPE.AAAA


@dataclass(frozen=True, slots=True)
class Answer:
    rcode: int = RCODE.NOERROR
    answer: tuple = ()
    authority: tuple = ()
    additional: tuple = ()
    forward: bool = False             # not ours: send the query upstream unchanged
    chase: tuple | None = None        # (target labels, qtype) to resolve upstream and append


FORWARD = Answer(forward=True)
REFUSED = Answer(rcode=RCODE.REFUSED)
SERVFAIL = Answer(rcode=RCODE.SERVFAIL)


def label(labels: Labels) -> DNSLabel:
    return DNSLabel(tuple(part.encode("latin-1", "replace") for part in labels))


# -- finding (kubernetes.go) -----------------------------------------------

def namespace_exposed(view: ClusterView, namespace: str, cfg: Config) -> bool:
    """namespace.go: listed by `namespaces` (or none listed) and existing."""
    return cfg.namespace_configured(namespace) and view.namespace_exists(namespace)


def find(view: ClusterView, base: Labels, zone: Labels, cfg: Config) -> list[Target]:
    """Records(): the targets for `base` (labels left of `zone`)."""
    req = parse_request(base)
    if not req.pod_or_svc:
        return []
    if is_reverse(zone):
        raise NoSuchName("reverse zone")
    if not namespace_exposed(view, req.namespace, cfg):
        raise NoSuchName(f"namespace {req.namespace} does not exist or is not exposed")
    if req.pod_or_svc == POD:
        return _find_pods(view, req, zone, cfg)
    return _find_services(view, req, zone, cfg)


def _find_pods(view: ClusterView, req: Request, zone: Labels, cfg: Config) -> list[Target]:
    """findPods: `pods disabled` knows no pod names; `insecure` answers any IP-shaped
    label; `verified` only the IP of a pod that exists in that namespace."""
    if cfg.pods == "disabled":
        raise NoSuchName("pods disabled")
    if not req.service:
        return []
    ip = pod_ip_from_label(req.service)
    if ip is None:
        raise NoSuchName("pod label is not an IP")
    if cfg.pods == "verified" and req.namespace not in view.pods_by_ip.get(ip, ()):
        raise NoSuchName(f"no pod with IP {ip} in namespace {req.namespace} (pods verified)")
    # Port 0, not the -1 sentinel: CoreDNS answers SRV for a pod name with port 0.
    return [Target(host=ip, port=0, domain=(req.service, req.namespace, POD) + zone, ttl=cfg.ttl)]


def _subsets(view: ClusterView, svc, cfg: Config) -> tuple:
    """The Service's ready endpoints; none under `noendpoints` (no endpoint cache)."""
    return () if cfg.noendpoints else view.subsets.get((svc.namespace, svc.name), ())


def _port_matches(req: Request, name: str, protocol: str) -> bool:
    return ((not req.port or req.port == name.lower())
            and (not req.protocol or req.protocol == protocol.lower()))


def _find_services(view: ClusterView, req: Request, zone: Labels, cfg: Config) -> list[Target]:
    if not req.service:
        return []
    svc = view.service(req.namespace, req.service)
    if svc is None:
        raise NoSuchName("no such service")
    if cfg.ignore_empty_service and not svc.external and not svc.headless \
            and not any(sub.addresses for sub in _subsets(view, svc, cfg)):
        raise NoSuchName("no ready endpoints (ignore empty_service)")
    base = (svc.name, svc.namespace, "svc") + zone
    if svc.external:
        if req.endpoint or req.port or req.protocol or not svc.external_name:
            raise NoSuchName("ExternalName has no endpoints or ports")
        target = Target(host=svc.external_name.rstrip("."), domain=base, ttl=cfg.ttl)
        if target.kind != QTYPE.CNAME:
            raise NoSuchName("ExternalName is an IP")
        return [target]
    if svc.headless or req.endpoint:
        out = []
        for subset in _subsets(view, svc, cfg):
            for addr in subset.addresses:
                hostname = addr.label(cfg.endpoint_pod_names)
                if req.endpoint and req.endpoint != hostname.lower():
                    continue
                for p in subset.ports:
                    if _port_matches(req, p.name, p.protocol):
                        out.append(Target(host=addr.ip, port=p.port, ttl=cfg.ttl,
                                          domain=(hostname,) + base))
        if not out:
            raise NoSuchName("no ready endpoint matches")
        return out
    matched, out = False, []
    for p in svc.ports:
        if not _port_matches(req, p.name, p.protocol):
            continue
        matched = True
        out.extend(Target(host=ip, port=p.port, domain=base, ttl=cfg.ttl)
                   for ip in svc.cluster_ips if ip)
    if not matched:
        raise NoSuchName("no port matches")
    return out


def ns_addresses(view: ClusterView, zone: Labels, cfg: Config) -> list[tuple[Labels, str]]:
    """ns.go nsAddrs: (name, ip) of the Service(s) whose endpoints are this server."""
    out: list[tuple[Labels, str]] = []
    found = False
    for local in cfg.local_ips:
        for namespace, name, addr in _endpoints_by_ip(view, local, cfg):
            found = True
            svc = view.service(namespace, name)
            if svc is None:
                continue
            base = (svc.name, svc.namespace, "svc") + zone
            if svc.headless:
                out.append(((addr.label(cfg.endpoint_pod_names),) + base, local))
            else:
                out.extend((base, ip) for ip in svc.cluster_ips if ip)
    if not found:
        out = [(("ns", "dns") + zone, ip) for ip in cfg.local_ips]
    return list(dict.fromkeys(out))


def _endpoints_by_ip(view: ClusterView, ip: str, cfg: Config) -> tuple:
    return () if cfg.noendpoints else view.endpoints_by_ip.get(ip, ())


def services(view: ClusterView, qname: Labels, zone: Labels, qtype: int, cfg: Config) -> list[Target]:
    """kubernetes.go Services(): find() plus the TXT, NS and ns.dns special cases."""
    base = qname[:len(qname) - len(zone)]
    if qtype == QTYPE.TXT:
        if base == ("dns-version",):
            return [Target(text=DNS_SCHEMA_VERSION, ttl=DNS_VERSION_TTL)]
        if find(view, base, zone, cfg):
            return []
        raise NoSuchName("no TXT")
    if qtype == QTYPE.NS:
        return [Target(host=ip, domain=name, ttl=cfg.ttl) for name, ip in ns_addresses(view, zone, cfg)]
    if base == ("ns", "dns"):
        found = [Target(host=ip, domain=qname, ttl=cfg.ttl) for _, ip in ns_addresses(view, zone, cfg)]
        return [t for t in found if t.kind == qtype]
    found = find(view, base, zone, cfg)
    if qtype == QTYPE.SRV:
        found = [t for t in found if t.kind != QTYPE.CNAME]
    return found


# -- answering (backend_lookup.go) -----------------------------------------

def _address_records(view, qname, zone, qtype, cfg, previous=()) -> tuple[list, tuple | None]:
    """plugin.A / plugin.AAAA, with in-zone CNAME chasing; returns (records, chase)."""
    records, chase, seen = [], None, set()
    for t in services(view, qname, zone, qtype, cfg):
        kind = t.kind
        if kind == QTYPE.CNAME:
            target = labels_of(t.host)
            if target == qname or len(previous) > MAX_CNAME_CHAIN or target in previous:
                continue
            cname = RR(label(qname), QTYPE.CNAME, ttl=t.ttl, rdata=CNAME(label(target)))
            if is_subdomain(target, zone):
                try:
                    more, chase = _address_records(view, target, zone, qtype, cfg, previous + (qname,))
                except NoSuchName:
                    more = []
                if more:
                    records += [cname] + more
                continue
            records.append(cname)
            chase = (target, qtype)
        elif kind == qtype and t.host not in seen:
            seen.add(t.host)
            rdata = A(t.host) if kind == QTYPE.A else AAAA(t.host)
            records.append(RR(label(qname), kind, ttl=t.ttl, rdata=rdata))
    return records, chase


def _srv_records(view, qname, zone, cfg) -> tuple[list, list]:
    found = services(view, qname, zone, QTYPE.SRV, cfg)
    weight_sum: dict[int, int] = {}
    for _ in found:
        weight_sum[0] = weight_sum.get(0, 0) + 100
    records, extra, dup = [], [], set()
    for t in found:
        if t.port == -1:
            continue
        weight = max(1, math.floor(100.0 / weight_sum[0] * 100))
        if (t.domain, t.port) not in dup:
            dup.add((t.domain, t.port))
            records.append(RR(label(qname), QTYPE.SRV, ttl=t.ttl,
                              rdata=SRV(0, weight, t.port, label(t.domain))))
        if (t.domain, t.host) not in dup:
            dup.add((t.domain, t.host))
            rdata = A(t.host) if t.kind == QTYPE.A else AAAA(t.host)
            extra.append(RR(label(t.domain), t.kind, ttl=t.ttl, rdata=rdata))
    return records, extra


def _ptr_visible(view: ClusterView, namespace: str, cfg: Config) -> bool:
    return not cfg.namespaces or namespace_exposed(view, namespace, cfg)


def _ptr_records(view: ClusterView, qname: Labels, zone: Labels, cfg: Config) -> list:
    """reverse.go: the Service with this ClusterIP, else every ready endpoint with it
    (from the EndpointSlices alone, so a PTR outlives its Service, as in CoreDNS);
    names are in the primary zone. Raises NoSuchName when nothing has the IP."""
    ip = address_from_reverse(qname)
    if ip is None:
        find(view, qname[:len(qname) - len(zone)], zone, cfg)
        return []
    names = [(svc.name, svc.namespace, "svc") + cfg.domain
             for svc in view.services_by_ip.get(ip, ()) if _ptr_visible(view, svc.namespace, cfg)][:1]
    if not names:
        names = [(addr.label(cfg.endpoint_pod_names), name, namespace, "svc") + cfg.domain
                 for namespace, name, addr in _endpoints_by_ip(view, ip, cfg)
                 if _ptr_visible(view, namespace, cfg)]
    if not names:
        raise NoSuchName(f"nothing has the IP {ip}")
    return [RR(label(qname), QTYPE.PTR, ttl=cfg.ttl, rdata=PTR(label(n))) for n in dict.fromkeys(names)]


def soa_record(view: ClusterView, zone: Labels, cfg: Config) -> RR:
    """plugin.SOA: CoreDNS's fields; the serial is the time of the last change."""
    return RR(label(zone), QTYPE.SOA, ttl=min(cfg.ttl, 300),
              rdata=SOA(label(("ns", "dns") + zone), label(("hostmaster",) + zone),
                        (view.serial & 0xFFFFFFFF, 7200, 1800, 86400, cfg.ttl)))


def _ns_records(view, qname, zone, cfg) -> tuple[list, list]:
    records, extra, seen = [], [], set()
    for t in services(view, qname, zone, QTYPE.NS, cfg):
        extra.append(RR(label(t.domain), t.kind, ttl=t.ttl,
                        rdata=A(t.host) if t.kind == QTYPE.A else AAAA(t.host)))
        if t.domain not in seen:
            seen.add(t.domain)
            records.append(RR(label(qname), QTYPE.NS, ttl=t.ttl, rdata=NS(label(t.domain))))
    return records, extra


def _lookup(view, qname, zone, qtype, cfg) -> tuple[list, list, tuple | None]:
    """handler.go's switch: (answer, additional, chase); raises NoSuchName."""
    if qtype in (QTYPE.A, QTYPE.AAAA):
        records, chase = _address_records(view, qname, zone, qtype, cfg)
        return records, [], chase
    if qtype == QTYPE.TXT:
        found = services(view, qname, zone, qtype, cfg)
        return [RR(label(qname), QTYPE.TXT, ttl=t.ttl, rdata=TXT(t.text)) for t in found if t.text], [], None
    if qtype == QTYPE.CNAME:
        found = services(view, qname, zone, qtype, cfg)
        if found and found[0].kind == QTYPE.CNAME:
            t = found[0]
            return [RR(label(qname), QTYPE.CNAME, ttl=t.ttl, rdata=CNAME(label(labels_of(t.host))))], [], None
        return [], [], None
    if qtype == QTYPE.PTR:
        return _ptr_records(view, qname, zone, cfg), [], None
    if qtype == QTYPE.SRV:
        records, extra = _srv_records(view, qname, zone, cfg)
        return records, extra, None
    if qtype == QTYPE.SOA:
        return ([soa_record(view, zone, cfg)] if qname == zone else []), [], None
    if qtype == QTYPE.NS and qname == zone:
        records, extra = _ns_records(view, qname, zone, cfg)
        return records, extra, None
    if qtype == QTYPE.MX:
        services(view, qname, zone, qtype, cfg)
        return [], [], None
    _address_records(view, qname, zone, QTYPE.A, cfg)  # the "fake A" for NXDOMAIN vs NODATA
    return [], [], None


def resolve(view: ClusterView, qname: Labels, qtype: int, cfg: Config) -> Answer:
    """The whole decision for one question (lower-case labels), as CoreDNS makes it.

    A name error is NXDOMAIN with the zone's SOA; under `fallthrough` for the
    name it is FORWARD instead (the next plugin); before the first list has
    synced it is SERVFAIL with the SOA (handler.go).
    """
    zone = match_zone(qname, cfg.zones)
    if zone is None:
        return FORWARD
    if qtype in (QTYPE.AXFR, QTYPE.IXFR):
        return REFUSED
    try:
        records, extra, chase = _lookup(view, qname, zone, qtype, cfg)
    except NoSuchName:
        if cfg.falls_through(qname):
            return FORWARD
        rcode = RCODE.NXDOMAIN if view.synced else RCODE.SERVFAIL
        return Answer(rcode=rcode, authority=(soa_record(view, zone, cfg),))
    if not records:
        return Answer(authority=(soa_record(view, zone, cfg),))
    return Answer(answer=tuple(records), additional=tuple(extra), chase=chase)
