"""Setups of the Corefile's other plugins: hosts, rewrite, log, errors, health, ready,
prometheus, loop, reload, loadbalance, autopath.

Each returns plain options (frozen dataclasses) or raises CorefileError in
the plugin's own wording; the behaviour lives in dns/hosts.py,
dns/rewrite.py, dns/querylog.py and dns/chain.py.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from dns.corefile.parser import CorefileError, Dispenser
from dns.corefile.plugins import (ERR_ONCE, atoi, http_address, parse_duration, plugin_error,
                                  zones_from_args_or_keys)
from dns.corefile.zones import normalize_host


def _once(c: Dispenser, name: str, stanza):
    n, out = 0, None
    while c.next():
        if n:
            raise plugin_error(name, ERR_ONCE)
        n += 1
        try:
            out = stanza(c)
        except (CorefileError, ValueError) as exc:
            raise plugin_error(name, exc) from None
    return out


# -- hosts ----------------------------------------------------------------------

@dataclass(frozen=True)
class HostsOptions:
    path: str = "/etc/hosts"
    zones: tuple[str, ...] = (".",)
    inline: tuple[str, ...] = ()          # lines in hosts-file syntax
    ttl: int = 3600
    no_reverse: bool = False
    reload: float = 5.0
    fallthrough: tuple[str, ...] | None = None


def setup_hosts(c: Dispenser) -> HostsOptions:
    return _once(c, "hosts", _hosts_stanza)


def _hosts_stanza(c: Dispenser) -> HostsOptions:
    args = c.remaining_args()
    opts: dict = {}
    if args:
        opts["path"] = args.pop(0)
    opts["zones"] = tuple(zones_from_args_or_keys(args, c.keys))
    inline = []
    while c.next_block():
        prop = c.val()
        if prop == "fallthrough":
            opts["fallthrough"] = tuple(z for a in c.remaining_args() for z in normalize_host(a))
        elif prop == "no_reverse":
            opts["no_reverse"] = True
        elif prop == "ttl":
            rest = c.remaining_args()
            if not rest:
                raise c.arg_err()
            ttl = atoi(rest[0])
            if not 0 <= ttl <= 2**31 - 1:
                raise c.errf(f"ttl provided is invalid: {ttl}")
            opts["ttl"] = ttl
        elif prop == "reload":
            rest = c.remaining_args()
            if len(rest) != 1:
                raise c.arg_err()
            d = parse_duration(rest[0])
            if d < 0:
                raise c.errf(f"invalid negative duration for reload '{rest[0]}'")
            opts["reload"] = d
        else:
            line = " ".join([prop] + c.remaining_args())
            try:
                ipaddress.ip_address(prop.split("%")[0])
            except ValueError:
                raise c.errf(f"unknown property '{prop}'") from None
            inline.append(line)
    opts["inline"] = tuple(inline)
    return HostsOptions(**opts)


# -- rewrite --------------------------------------------------------------------

NAME_MATCH = ("exact", "prefix", "suffix", "substring", "regex")


@dataclass(frozen=True)
class RewriteRule:
    stop: bool
    match: str                 # exact | prefix | suffix | substring | regex
    source: str
    target: str
    answer_auto: bool = False
    answer_name: tuple[str, str] | None = None     # regex, replacement
    answer_value: tuple[str, str] | None = None


def setup_rewrite(c: Dispenser) -> tuple[RewriteRule, ...]:
    rules = []
    while c.next():
        args = c.remaining_args()
        try:
            if args:
                rules.append(_rewrite_rule(c, args))
            else:
                while c.next_block():      # rewrite { name ... } is rare; each line is one rule
                    rules.append(_rewrite_rule(c, [c.val()] + c.remaining_args()))
        except (CorefileError, ValueError, re.error) as exc:
            raise plugin_error("rewrite", exc) from None
    return tuple(rules)


def _rewrite_rule(c: Dispenser, args: list[str]) -> RewriteRule:
    stop = True
    if args and args[0] in ("stop", "continue"):
        stop = args.pop(0) == "stop"
    if not args:
        raise c.arg_err()
    field = args.pop(0)
    if field != "name":
        if field in ("type", "class", "edns0", "ttl", "cname", "rcode"):
            raise CorefileError(f"nsplane's rewrite supports `name` rules only, not '{field}'")
        raise CorefileError(f"invalid rule type {field}")
    match = "exact"
    if args and args[0] in NAME_MATCH:
        match = args.pop(0)
    if len(args) < 2:
        raise CorefileError("too few arguments for name rule")
    source, target, rest = args[0], args[1], args[2:]
    if match == "regex":
        re.compile(source)
    elif match in ("exact", "prefix", "suffix") and match != "prefix":
        source, target = source.lower(), target.lower()
    opts: dict = {}
    while rest:
        if rest[0] != "answer" or len(rest) < 2:
            raise CorefileError(f"unknown argument: {rest[0]}" if rest[0] != "answer"
                                else "the answer rewrite rule needs a type: auto, name or value")
        if rest[1] == "auto":
            opts["answer_auto"], rest = True, rest[2:]
        elif rest[1] in ("name", "value") and len(rest) >= 4:
            re.compile(rest[2])
            opts["answer_" + rest[1]], rest = (rest[2], rest[3]), rest[4:]
        else:
            raise CorefileError(f"invalid answer rewrite rule: {' '.join(rest)}")
    return RewriteRule(stop, match, source, target, **opts)


# -- log, errors ---------------------------------------------------------------

DEFAULT_LOG_FORMAT = ('{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" '
                      '{rcode} {>rflags} {rsize} {duration}')
COMBINED_LOG_FORMAT = DEFAULT_LOG_FORMAT + ' "{>opcode}"'


@dataclass(frozen=True)
class LogRule:
    zone: str = "."
    format: str = DEFAULT_LOG_FORMAT
    classes: frozenset = frozenset({"all"})


def setup_log(c: Dispenser) -> tuple[LogRule, ...]:
    rules = []
    while c.next():
        args = c.remaining_args()
        fmt = DEFAULT_LOG_FORMAT
        if args and ("{" in args[-1] or args[-1] in ("{common}", "{combined}")):
            fmt = args.pop()
            fmt = {"{common}": DEFAULT_LOG_FORMAT, "{combined}": COMBINED_LOG_FORMAT}.get(fmt, fmt)
        zones = [z for a in args for z in normalize_host(a)] or ["."]
        classes: set = set()
        while c.next_block():
            if c.val() != "class":
                raise plugin_error("log", c.errf(f"unknown property '{c.val()}'"))
            for cls in c.remaining_args():
                if cls not in ("all", "denial", "error", "success"):
                    raise plugin_error("log", c.errf(f"invalid class {cls}"))
                classes.add(cls)
        rules += [LogRule(z, fmt, frozenset(classes or {"all"})) for z in zones]
    return tuple(rules)


@dataclass(frozen=True)
class ErrorsOptions:
    consolidate: tuple[tuple[float, str], ...] = ()


def setup_errors(c: Dispenser) -> ErrorsOptions:
    def stanza(c):
        if c.remaining_args():
            raise c.arg_err()
        rules = []
        while c.next_block():
            if c.val() not in ("consolidate", "stacktrace"):
                raise c.errf(f"unknown property '{c.val()}'")
            if c.val() == "consolidate":
                args = c.remaining_args()
                if len(args) < 2:
                    raise c.arg_err()
                rules.append((parse_duration(args[0]), re.compile(args[1]).pattern))
        return ErrorsOptions(tuple(rules))
    return _once(c, "errors", stanza)


# -- health, ready, prometheus, reload, loop, loadbalance, autopath --------------

@dataclass(frozen=True)
class HealthOptions:
    host: str = ""
    port: int = 8080
    lameduck: float = 0.0


def setup_health(c: Dispenser) -> HealthOptions:
    def stanza(c):
        args = c.remaining_args()
        if len(args) > 1:
            raise c.arg_err()
        addr = http_address(args[0] if args else None, 8080)
        lameduck = 0.0
        while c.next_block():
            if c.val() != "lameduck":
                raise c.errf(f"unknown property '{c.val()}'")
            rest = c.remaining_args()
            if len(rest) != 1:
                raise c.arg_err()
            try:
                lameduck = parse_duration(rest[0])
            except ValueError:
                raise CorefileError(f"unable to parse lameduck duration value: '{rest[0]}'") from None
        return HealthOptions(addr.host, addr.port, lameduck)
    return _once(c, "health", stanza)


def setup_address(name: str, default_port: int):
    def setup(c: Dispenser):
        def stanza(c):
            args = c.remaining_args()
            if len(args) > 1:
                raise c.arg_err()
            return http_address(args[0] if args else None, default_port)
        return _once(c, name, stanza)
    return setup


@dataclass(frozen=True)
class ReloadOptions:
    interval: float = 30.0
    jitter: float = 15.0


def setup_reload(c: Dispenser) -> ReloadOptions:
    def stanza(c):
        args = c.remaining_args()
        if len(args) > 2:
            raise c.arg_err()
        interval = parse_duration(args[0]) if args else 30.0
        if interval < 2:
            raise CorefileError("interval value must be greater or equal to 2s")
        jitter = parse_duration(args[1]) if len(args) > 1 else 15.0
        if jitter < 1:
            raise CorefileError("jitter value must be greater or equal to 1s")
        return ReloadOptions(interval, min(jitter, interval / 2))
    return _once(c, "reload", stanza)


def setup_no_args(name: str):
    def setup(c: Dispenser) -> bool:
        def stanza(c):
            if c.remaining_args():
                raise c.arg_err()
            return True
        return _once(c, name, stanza)
    return setup


def setup_loadbalance(c: Dispenser) -> str:
    def stanza(c):
        args = c.remaining_args()
        if len(args) > 1 or (args and args[0] != "round_robin"):
            raise CorefileError(f"unknown policy: {args[0]}" if args else "")
        return "round_robin"
    return _once(c, "loadbalance", stanza)


@dataclass(frozen=True)
class AutopathOptions:
    zones: tuple[str, ...]
    source: str                      # "@kubernetes" or a resolv.conf path
    search: tuple[str, ...] = ()     # from the file, when source is one


def setup_autopath(c: Dispenser) -> AutopathOptions:
    def stanza(c):
        args = c.remaining_args()
        if not args:
            raise c.arg_err()
        source = args.pop()
        zones = tuple(zones_from_args_or_keys(args, c.keys))
        if source.startswith("@"):
            if source != "@kubernetes":
                raise CorefileError(f"unknown plugin {source[1:]} for autopath: only @kubernetes")
            return AutopathOptions(zones, source)
        try:
            with open(source, encoding="utf-8") as f:
                search = [w for line in f if line.split()[:1] == ["search"] for w in line.split()[1:]]
        except OSError as exc:
            raise CorefileError(f"failed to parse {source!r}: {exc}") from None
        return AutopathOptions(zones, source, tuple(s.lower().rstrip(".") + "." for s in search))
    return _once(c, "autopath", stanza)


@dataclass(frozen=True)
class FileOptions:
    path: str
    zones: tuple[str, ...]
    reload: float = 60.0


def setup_file(c: Dispenser) -> tuple[FileOptions, ...]:
    out = []
    while c.next():
        try:
            args = c.remaining_args()
            if not args:
                raise c.arg_err()
            path = args.pop(0)
            zones = tuple(zones_from_args_or_keys(args, c.keys))
            reload = 60.0
            while c.next_block():
                if c.val() == "reload":
                    rest = c.remaining_args()
                    if len(rest) != 1:
                        raise c.arg_err()
                    reload = parse_duration(rest[0])
                elif c.val() == "upstream":
                    c.remaining_args()          # deprecated in CoreDNS, ignored there too
                else:
                    raise c.errf(f"unknown property '{c.val()}'")
            out.append(FileOptions(path, zones, reload))
        except (CorefileError, ValueError) as exc:
            raise plugin_error("file", exc) from None
    return tuple(out)
