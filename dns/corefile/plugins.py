"""The plugins CoreDNS knows, in plugin.cfg's order, and the setups of kubernetes, forward and cache.

ORDER is CoreDNS 1.11's plugin.cfg: a server block runs its plugins in this
order whatever order the Corefile lists them in. Each setup reads one
plugin's occurrences through a Dispenser and returns plain options, raising
CorefileError with the plugin's own wording (`plugin/forward: not an IP
address or file: "foo"`); the behaviour lives in the `dns` modules.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass

from dns.corefile.parser import CorefileError, Dispenser
from dns.corefile.zones import ZoneError, normalize_host
from dns.names import labels_of
from dns.records import Config, pods_problem, ttl_problem

ORDER = ("root", "metadata", "geoip", "cancel", "tls", "timeouts", "multisocket", "reload", "nsid", "bufsize",
         "bind", "debug", "trace", "ready", "health", "pprof", "prometheus", "errors", "log", "dnstap", "local",
         "dns64", "acl", "any", "chaos", "loadbalance", "tsig", "cache", "rewrite", "header", "dnssec",
         "autopath", "minimal", "template", "transfer", "hosts", "route53", "azure", "clouddns", "k8s_external",
         "kubernetes", "file", "auto", "secondary", "etcd", "loop", "forward", "grpc", "erratic", "whoami", "on",
         "sign", "view")
KNOWN = frozenset(ORDER) | {"import"}
ERR_ONCE = "this plugin can only be used once per Server Block"
MAX_UPSTREAMS = 15

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def plugin_error(name: str, err: Exception | str) -> CorefileError:
    return CorefileError(f"plugin/{name}: {err}")


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration, in seconds."""
    s, sign = text, 1.0
    if s[:1] in "+-":
        sign, s = (-1.0 if s[0] == "-" else 1.0), s[1:]
    if s == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION.match(s, pos)
        if m is None:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s):
        raise ValueError(f'time: invalid duration "{text}"')
    return sign * total


def atoi(text: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ValueError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def zones_from_args_or_keys(args: list[str], keys: list[str]) -> list[str]:
    """OriginsFromArgsOrServerBlock: the zones named, else the server block's."""
    if not args:
        return list(keys)
    out = []
    for a in args:
        try:
            out += normalize_host(a)
        except ZoneError:
            out.append(a)
    return out


# -- kubernetes ---------------------------------------------------------------

def setup_kubernetes(c: Dispenser) -> Config:
    cfg, n = None, 0
    while c.next():
        if n:
            raise plugin_error("kubernetes", ERR_ONCE)
        n += 1
        try:
            cfg = _kubernetes_stanza(c)
        except CorefileError as exc:
            raise plugin_error("kubernetes", exc) from None
    return cfg


def _kubernetes_stanza(c: Dispenser) -> Config:
    zones = zones_from_args_or_keys(c.remaining_args(), c.keys)
    for z in zones:
        if "/" in z:       # a CIDR that did not parse (a good one is its reverse zones by now)
            raise CorefileError(f"'{z.rstrip('.')}' is not a CIDR: write a network such as 10.96.0.0/12")
    forward_zones = [z for z in zones if not z.endswith(("in-addr.arpa.", "ip6.arpa."))]
    if not forward_zones:
        raise CorefileError("non-reverse zone name must be used")
    if len(forward_zones) > 1:
        raise CorefileError(f"nsplane serves one cluster zone per kubernetes block, not {forward_zones}: "
                            f"keep {forward_zones[0]} and add a server block for the others")
    opts: dict = {"domain": labels_of(forward_zones[0]),
                  "reverse_zones": tuple(labels_of(z) for z in zones if z not in forward_zones),
                  "fallthrough": None}
    while c.next_block():
        prop = c.val()
        args = c.remaining_args()
        if prop == "endpoint_pod_names":
            if args:
                raise c.arg_err()
            opts["endpoint_pod_names"] = True
        elif prop == "pods":
            if len(args) != 1:
                raise c.arg_err()
            if pods_problem(args[0]):
                raise CorefileError(pods_problem(args[0]))
            opts["pods"] = args[0]
        elif prop == "namespaces":
            if not args:
                raise c.arg_err()
            opts["namespaces"] = frozenset(args)
        elif prop == "fallthrough":
            opts["fallthrough"] = tuple(labels_of(z) for a in args for z in normalize_host(a))
        elif prop == "ttl":
            if not args:
                raise c.arg_err()
            try:
                ttl = atoi(args[0])
            except ValueError as exc:
                raise CorefileError(str(exc)) from None
            if ttl_problem(ttl):
                raise c.errf(ttl_problem(ttl))
            opts["ttl"] = ttl
        elif prop == "noendpoints":
            if args:
                raise c.arg_err()
            opts["noendpoints"] = True
        elif prop == "ignore":
            if args and args[0] != "empty_service":
                raise CorefileError(f"unable to parse ignore value: '{args[0]}'")
            if args:
                opts["ignore_empty_service"] = True
        elif prop in ("endpoint", "tls", "kubeconfig", "labels", "namespace_labels"):
            raise c.errf(f"'{prop}' is not supported by nsplane: its DNS pods always read the cluster "
                         f"they run in (remove the '{prop}' line)")
        else:
            raise c.errf(f"unknown property '{prop}'")
    return Config(**opts)


# -- forward ------------------------------------------------------------------

@dataclass(frozen=True)
class ForwardOptions:
    from_zone: str
    to: tuple[tuple[str, int], ...]
    resolv_files: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    policy: str = "random"
    max_concurrent: int = 0           # 0: unlimited
    force_tcp: bool = False
    prefer_udp: bool = False
    max_fails: int = 2
    expire: float = 10.0
    health_check: float = 0.5


def host_port_or_file(args: list[str], read=None) -> tuple[list[tuple[str, int]], list[str]]:
    """parse.HostPortOrFile: IP[:port] (with an optional dns://), or a resolv.conf-style file."""
    from dns.forward import parse_upstream, upstreams_from_resolv_conf
    out, files = [], []
    for arg in args:
        text = arg[len("dns://"):] if arg.startswith("dns://") else arg
        try:
            out.append(parse_upstream(text))
            continue
        except ValueError:
            pass
        if arg.startswith(("tls://", "grpc://", "https://")):
            raise CorefileError(f"'{arg.split(':')[0]}' is not supported as a destination protocol in forward: {arg}")
        if not os.path.isfile(text):
            raise CorefileError(f'not an IP address or file: "{arg}"')
        with open(text, encoding="utf-8", errors="replace") as f:
            if not any(line.split()[:1] == ["nameserver"] for line in f):
                raise CorefileError("no nameservers found")
        found = (read or upstreams_from_resolv_conf)(text)   # loopback stubs skipped, with a log line
        files.append(text)
        out += found
    return out, files


def setup_forward(c: Dispenser) -> list[ForwardOptions]:
    out = []
    while c.next():
        try:
            f = _forward_stanza(c)
        except CorefileError as exc:
            raise plugin_error("forward", exc) from None
        if len(f.to) > MAX_UPSTREAMS:
            raise plugin_error("forward", f"more than {MAX_UPSTREAMS} TOs configured: {len(f.to)}")
        out.append(f)
    return out


def _forward_stanza(c: Dispenser) -> ForwardOptions:
    if not c.next_arg():
        raise c.arg_err()
    try:
        from_zone = normalize_host(c.val())[0]
    except ZoneError:
        raise CorefileError(f"unable to normalize '{c.val()}'") from None
    to_args = c.remaining_args()
    if not to_args:
        raise c.arg_err()
    to, files = host_port_or_file(to_args)
    opts: dict = {}
    while c.next_block():
        prop = c.val()
        if prop == "except":
            names = c.remaining_args()
            if not names:
                raise c.arg_err()
            opts["ignored"] = opts.get("ignored", ()) + tuple(z for n in names for z in normalize_host(n))
            continue
        if prop in ("force_tcp", "prefer_udp"):
            if c.next_arg():
                raise c.arg_err()
            opts[prop] = True
            continue
        if prop not in ("max_fails", "health_check", "expire", "policy", "max_concurrent", "tls",
                        "tls_servername"):
            raise c.errf(f"unknown property '{prop}'")
        if not c.next_arg():
            raise c.arg_err()
        val = c.val()
        try:
            _forward_value(c, opts, prop, val)
        except ValueError as exc:
            raise CorefileError(str(exc)) from None
    return ForwardOptions(from_zone, tuple(to), tuple(files), **opts)


def _forward_value(c: Dispenser, opts: dict, prop: str, val: str) -> None:
    if prop == "policy":
        if val not in ("random", "round_robin", "sequential"):
            raise c.errf(f"unknown policy '{val}'")
        opts["policy"] = val
    elif prop == "max_concurrent":
        n = atoi(val)
        if n < 0:
            raise ValueError(f"max_concurrent can't be negative: {n}")
        opts["max_concurrent"] = n
    elif prop == "max_fails":
        if not val.isdigit():
            raise ValueError(f'strconv.ParseUint: parsing "{val}": invalid syntax')
        opts["max_fails"] = int(val)
    elif prop in ("health_check", "expire"):
        d = parse_duration(val)
        if d < 0:
            raise ValueError(f"{prop} can't be negative: {val}")
        opts[prop] = d
        c.remaining_args()         # health_check's no_rec / domain
    else:
        raise c.errf(f"'{prop}' is not supported by nsplane: it forwards over plain DNS (UDP, TCP)")
    if prop in ("max_fails", "health_check", "expire"):
        c.warnings.append(f"[WARNING] plugin/forward: '{prop}' has no effect in nsplane: it does not health-check "
                          f"upstreams (a timed-out query is retried on the next upstream)")


# -- cache --------------------------------------------------------------------

@dataclass(frozen=True)
class CacheOptions:
    zones: tuple[str, ...] = (".",)
    success: tuple[int, int, int] = (9984, 3600, 5)    # capacity, max TTL, min TTL
    denial: tuple[int, int, int] = (9984, 1800, 5)
    prefetch: tuple[int, float, int] = (0, 60.0, 10)     # amount (0: off), duration, percentage
    serve_stale: float = 0.0                            # seconds (0: off)
    disable_success: tuple[str, ...] = ()
    disable_denial: tuple[str, ...] = ()
    keepttl: bool = False


def setup_cache(c: Dispenser) -> CacheOptions:
    n, out = 0, CacheOptions()
    while c.next():
        if n:
            raise plugin_error("cache", ERR_ONCE)
        n += 1
        try:
            out = _cache_stanza(c)
        except (CorefileError, ValueError) as exc:
            raise plugin_error("cache", exc) from None
    return out


def _ttls(c: Dispenser, args: list[str], default: tuple[int, int, int]) -> tuple[int, int, int]:
    cap, ttl, minttl = default
    if not args:
        raise c.arg_err()
    cap = atoi(args[0])
    if cap <= 0:
        raise ValueError(f"cache capacity must be > 0: {cap}")
    if len(args) > 1:
        ttl = atoi(args[1])
        if ttl <= 0:
            raise ValueError(f"cache TTL can not be zero or negative: {ttl}")
    if len(args) > 2:
        minttl = atoi(args[2])
        if minttl < 0 or minttl > ttl:
            raise ValueError(f"cache min TTL can not be negative or larger than the max TTL: {minttl}")
    if len(args) > 3:
        raise c.arg_err()
    return cap, ttl, minttl


def _cache_stanza(c: Dispenser) -> CacheOptions:
    args = c.remaining_args()
    opts: dict = {}
    if args and args[0].isdigit():
        ttl = atoi(args.pop(0))
        if ttl <= 0:
            raise ValueError(f"cache TTL can not be zero or negative: {ttl}")
        opts["success"] = (9984, ttl, min(5, ttl))
        opts["denial"] = (9984, ttl, min(5, ttl))
    opts["zones"] = tuple(zones_from_args_or_keys(args, c.keys))
    while c.next_block():
        prop, args = c.val(), c.remaining_args()
        if prop in ("success", "denial"):
            opts[prop] = _ttls(c, args, opts.get(prop, getattr(CacheOptions, prop)))
        elif prop == "prefetch":
            if not args:
                raise c.arg_err()
            amount = atoi(args[0])
            if amount < 0:
                raise ValueError(f"prefetch amount should be positive: {amount}")
            dur = parse_duration(args[1]) if len(args) > 1 else 60.0
            pct = 10
            if len(args) > 2:
                if not args[2].endswith("%"):
                    raise ValueError(f"last character of percentage should be `%`, but is: `{args[2][-1]}`")
                pct = atoi(args[2][:-1])
            opts["prefetch"] = (amount, dur, pct)
        elif prop == "serve_stale":
            dur = parse_duration(args[0]) if args else 3600.0
            if dur < 0:
                raise ValueError(f"invalid negative duration for serve_stale: {args[0]}")
            if len(args) > 1 and args[1] not in ("immediate", "verify"):
                raise ValueError(f"invalid value for serve_stale refresh mode: {args[1]}")
            if len(args) > 1 and args[1] == "verify":
                raise ValueError("serve_stale verify is not supported by nsplane: use immediate (the default)")
            opts["serve_stale"] = dur
        elif prop == "disable":
            if not args or args[0] not in ("success", "denial"):
                raise c.arg_err()
            zones = tuple(z for a in args[1:] for z in normalize_host(a)) or (".",)
            opts["disable_" + args[0]] = opts.get("disable_" + args[0], ()) + zones
        elif prop == "keepttl":
            opts["keepttl"] = True
        else:
            raise c.arg_err()
    return CacheOptions(**opts)


@dataclass(frozen=True)
class Address:
    host: str
    port: int


def http_address(text: str | None, default_port: int) -> Address:
    """health/ready/prometheus address: ':8080', 'localhost:9153', '0.0.0.0:9153'."""
    if not text:
        return Address("", default_port)
    host, _, port = text.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"address {text}: missing port in address")
    if host not in ("", "localhost"):
        ipaddress.ip_address(host.strip("[]"))
    return Address(host, int(port))


__all__ = ["ORDER", "KNOWN", "setup_kubernetes", "setup_forward", "setup_cache", "ForwardOptions",
           "CacheOptions", "parse_duration", "plugin_error"]
