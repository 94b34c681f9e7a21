"""Server blocks -> one ServerConfig each: the zones it answers, its port, and its plugins' options.

The plugins of a block run in plugin.cfg's order (plugins.ORDER), not the
order they are written in. A plugin CoreDNS has but nsplane does not
implement is refused by name (a Corefile that would silently do less than
it says is worse than one that fails), as is a zone served twice on a port.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from dns.corefile import plugins_more as more
from dns.corefile.parser import CorefileError, Dispenser, ServerBlock, parse, parse_error
from dns.corefile.plugins import KNOWN, ORDER, CacheOptions, ForwardOptions, setup_cache, setup_forward, \
    setup_kubernetes
from dns.corefile.zones import ZoneError, server_key
from dns.records import Config

SETUPS = {
    "kubernetes": setup_kubernetes, "forward": setup_forward, "cache": setup_cache,
    "hosts": more.setup_hosts, "rewrite": more.setup_rewrite, "log": more.setup_log,
    "errors": more.setup_errors, "health": more.setup_health,
    "ready": more.setup_address("ready", 8181), "prometheus": more.setup_address("prometheus", 9153),
    "reload": more.setup_reload, "loop": more.setup_no_args("loop"), "loadbalance": more.setup_loadbalance,
    "autopath": more.setup_autopath, "file": more.setup_file,
}


@dataclass
class ServerConfig:
    zones: tuple[str, ...]
    port: int
    plugins: tuple[str, ...] = ()                 # present, in plugin.cfg order
    kubernetes: Config | None = None
    forward: list[ForwardOptions] = field(default_factory=list)
    cache: CacheOptions | None = None
    hosts: more.HostsOptions | None = None
    rewrite: tuple = ()
    log: tuple = ()
    errors: more.ErrorsOptions | None = None
    health: more.HealthOptions | None = None
    ready: object = None
    prometheus: object = None
    reload: more.ReloadOptions | None = None
    loop: bool = False
    loadbalance: str | None = None
    autopath: more.AutopathOptions | None = None
    file: tuple = ()


@dataclass
class Corefile:
    servers: list[ServerConfig]
    text: str
    sha512: str
    warnings: list = field(default_factory=list)

    @property
    def reload(self) -> more.ReloadOptions | None:
        """reload is process-wide in effect: any block that has it turns it on."""
        return next((s.reload for s in self.servers if s.reload is not None), None)

    def first(self, attr: str):
        return next((getattr(s, attr) for s in self.servers if getattr(s, attr) is not None), None)


def load(text: str, file: str = "Corefile", env: dict | None = None) -> Corefile:
    """A Corefile's text -> its servers; raises CorefileError as CoreDNS words it."""
    blocks = parse(text, file, KNOWN, dict(os.environ) if env is None else env)
    warnings: list = []
    servers = [server for block in blocks for server in _servers(block, warnings)]
    if not servers:
        raise CorefileError(f"{file}: no server blocks to serve (an empty Corefile?)")
    seen: dict[tuple[str, int], bool] = {}
    for s in servers:
        for z in s.zones:
            if (z, s.port) in seen:
                raise CorefileError(f"cannot serve dns://{z}:{s.port} - it is already defined")
            seen[(z, s.port)] = True
    return Corefile(servers, text, hashlib.sha512(text.encode()).hexdigest(), warnings)


def _servers(block: ServerBlock, warnings: list) -> list[ServerConfig]:
    by_port: dict[int, list[str]] = {}
    for key in block.keys:
        try:
            _, zones, port = server_key(key.text)
        except ZoneError as exc:
            raise parse_error(key, str(exc)) from None
        by_port.setdefault(port, []).extend(zones)
    out = []
    for port, zones in by_port.items():
        out.append(_server(block, tuple(zones), port, warnings))
    return out


def _server(block: ServerBlock, zones: tuple[str, ...], port: int, warnings: list) -> ServerConfig:
    grouped: dict[str, list] = {}
    for d in block.directives:
        grouped.setdefault(d.name, []).append(d)
    s = ServerConfig(zones, port, tuple(name for name in ORDER if name in grouped))
    for name in s.plugins:
        setup = SETUPS.get(name)
        if setup is None:
            raise CorefileError(f"plugin/{name}: not supported by nsplane's DNS server; it serves "
                                f"{', '.join(sorted(SETUPS))}: remove or replace the '{name}' line "
                                f"({grouped[name][0].tokens[0].file}:{grouped[name][0].tokens[0].line})")
        setattr(s, name, setup(Dispenser(name, grouped[name], list(zones), warnings)))
    return s
