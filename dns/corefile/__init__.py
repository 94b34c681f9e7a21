"""The Corefile: CoreDNS's configuration, parsed as CoreDNS parses it (pure; no sockets).

    corefile = dns.corefile.load(text, "/etc/coredns/Corefile")   # or CorefileError
    corefile.servers    # one ServerConfig per (server block, port): zones, plugins' options

lexer (tokens, env), parser (server blocks, snippets, import, the
Dispenser), zones (keys and CIDR reverse zones), plugins / plugins_more (each
plugin's setup, plugin.cfg order), config (ServerConfig, load). What the
options do lives in the `dns` modules that serve queries (dns/chain.py).
"""

from dns.corefile.config import Corefile, ServerConfig, load
from dns.corefile.parser import CorefileError

__all__ = ["Corefile", "CorefileError", "ServerConfig", "load"]
