"""The part of nginx's configuration the nginx stand-in honours: the
`server` blocks of /etc/nginx/conf.d/*.conf (where a ConfigMap volume puts
them), so a Deployment that mounts its own site config gets it served.
Only files a volume brings are read (the directory or the file is a mount
point): a stand-in views the machine's root, and an nginx installed there
is not the image's.

Understood, per server: `listen [ADDR:]PORT [default_server]`, `root`,
`index`, `add_header NAME VALUE [always]`, and `location [=] PREFIX { ... }`
blocks with `return CODE [TEXT|URL]`, `root`, `index`, `add_header`.
Directives a static site needs nothing from (`server_name`, `access_log`,
`error_log`, `charset`, `gzip*`, `sendfile`, `keepalive_timeout`,
`try_files` ...) are accepted without effect; any other directive is named
in a warning on stderr (nginx's error-log format), so a config the stand-in
does not serve the way nginx would is never silently half-served.
Parsing is nginx's token grammar: words, quoted strings, `;`, `{`, `}`, `#`
comments. An unparsable file is nginx's `[emerg]` and exit 1.
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field

CONF_DIR = "/etc/nginx/conf.d"
HARMLESS = {"server_name", "access_log", "error_log", "charset", "gzip", "gzip_types", "sendfile",
            "keepalive_timeout", "try_files", "expires", "autoindex", "types", "default_type",
            "client_max_body_size", "tcp_nopush", "error_page"}


class ConfigError(Exception):
    """nginx: [emerg] ..."""


@dataclass
class Location:
    prefix: str
    exact: bool = False
    ret: tuple[int, str] | None = None
    root: str | None = None
    index: list[str] | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Server:
    listen: tuple[str, int] = ("0.0.0.0", 80)
    root: str = "/usr/share/nginx/html"      # STOCK_ROOT
    index: list[str] = field(default_factory=lambda: ["index.html"])
    headers: list[tuple[str, str]] = field(default_factory=list)
    locations: list[Location] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def location(self, uri: str) -> Location | None:
        exact = [loc for loc in self.locations if loc.exact and loc.prefix == uri]
        if exact:
            return exact[0]
        found = [loc for loc in self.locations if not loc.exact and uri.startswith(loc.prefix)]
        return max(found, key=lambda loc: len(loc.prefix)) if found else None


_TOKEN = re.compile(r'\s+|#[^\n]*|"((?:\\.|[^"\\])*)"|\'((?:\\.|[^\'\\])*)\'|([;{}])|([^\s;{}"\'#]+)')


def tokens(text: str, name: str) -> list[str | tuple]:
    out: list = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ConfigError(f"unexpected character in {name}")
        pos = m.end()
        if m.group(1) is not None or m.group(2) is not None:
            raw = m.group(1) if m.group(1) is not None else m.group(2)
            out.append(raw.replace('\\"', '"').replace("\\n", "\n").replace("\\'", "'"))
        elif m.group(3):
            out.append((m.group(3),))
        elif m.group(4):
            out.append(m.group(4))
    return out


def _block(toks: list, i: int, name: str, nested: bool = False) -> tuple[list, int]:
    """Parse directives until the matching '}' (or the end); [(name, args, children|None)]."""
    items = []
    args: list[str] = []
    while i < len(toks):
        t = toks[i]
        i += 1
        if t == (";",):
            if not args:
                raise ConfigError(f'unexpected ";" in {name}')
            items.append((args[0], args[1:], None))
            args = []
        elif t == ("{",):
            if not args:
                raise ConfigError(f'unexpected "{{" in {name}')
            children, i = _block(toks, i, name, nested=True)
            items.append((args[0], args[1:], children))
            args = []
        elif t == ("}",):
            if not nested or args:
                raise ConfigError(f'unexpected "}}" in {name}')
            return items, i
        else:
            args.append(t)
    if args or nested:
        raise ConfigError(f'unexpected end of file, expecting "{";" if args else "}"}" in {name}')
    return items, i


def _header(args: list[str]) -> tuple[str, str]:
    return args[0], args[1] if len(args) > 1 else ""


def _location(args: list[str], body: list, name: str, warnings: list[str]) -> Location:
    exact = args[0] == "=" if args else False
    prefix = args[1] if exact and len(args) > 1 else (args[0] if args else "/")
    loc = Location(prefix, exact)
    for d, a, _ in body:
        if d == "return" and a:
            code = int(a[0]) if a[0].isdigit() else 302
            loc.ret = (code, a[1] if len(a) > 1 else ("" if a[0].isdigit() else a[0]))
        elif d == "root" and a:
            loc.root = a[0]
        elif d == "index":
            loc.index = a
        elif d == "add_header" and a:
            loc.headers.append(_header(a))
        elif d not in HARMLESS:
            warnings.append(f'the nsplane nginx stand-in ignores "{d}" in {name}')
    return loc


def _server(body: list, name: str) -> Server:
    srv = Server()
    for d, a, children in body:
        if d == "listen" and a:
            host, _, port = a[0].rpartition(":")
            srv.listen = (host or "0.0.0.0", int(port))
        elif d == "root" and a:
            srv.root = a[0]
        elif d == "index":
            srv.index = a
        elif d == "add_header" and a:
            srv.headers.append(_header(a))
        elif d == "location" and children is not None:
            srv.locations.append(_location(a, children, name, srv.warnings))
        elif d not in HARMLESS:
            srv.warnings.append(f'the nsplane nginx stand-in ignores "{d}" in {name}')
    return srv


def parse(text: str, name: str = "nginx.conf") -> list[Server]:
    items, _ = _block(tokens(text, name), 0, name)
    servers = [_server(children or [], name) for d, _, children in items if d == "server"]
    return servers


def mount_points(mountinfo: str = "/proc/self/mountinfo") -> set[str]:
    try:
        with open(mountinfo) as f:
            return {line.split()[4].replace("\\040", " ") for line in f if len(line.split()) > 4}
    except OSError:
        return set()


def load(conf_dir: str = CONF_DIR, only_mounted: bool = False) -> list[Server]:
    """Every server of conf_dir/*.conf, files in name order (as `include conf.d/*.conf`);
    `only_mounted`: only a volume's files (conf_dir or the file a mount point), never
    the configs of an nginx installed on the machine whose root a stand-in views."""
    servers: list[Server] = []
    mounts = mount_points() if only_mounted else set()
    for path in sorted(glob.glob(os.path.join(conf_dir, "*.conf"))):
        if only_mounted and conf_dir.rstrip("/") not in mounts and path not in mounts:
            continue
        with open(path) as f:
            servers += parse(f.read(), path)
    return servers


_TYPES = {".html": "text/html", ".htm": "text/html", ".css": "text/css", ".js": "application/javascript",
          ".json": "application/json", ".txt": "text/plain", ".png": "image/png", ".jpg": "image/jpeg",
          ".svg": "image/svg+xml", ".xml": "text/xml"}
DEFAULT_TYPE = "application/octet-stream"      # the stock nginx.conf's default_type


STOCK_ROOT = "/usr/share/nginx/html"


def root_for(site: Server, uri: str) -> str:
    loc = site.location(uri)
    return loc.root if loc and loc.root else site.root


@dataclass
class Answer:
    code: int
    body: bytes | None            # None: nginx's own error page for `code`
    content_type: str = "text/html"
    headers: list[tuple[str, str]] = field(default_factory=list)


def answer(site: Server, uri: str) -> Answer:
    """What `site` answers a GET of the normalised `uri`."""
    loc = site.location(uri)
    headers = list(site.headers) + (loc.headers if loc else [])
    if loc and loc.ret:
        code, arg = loc.ret
        if code in (301, 302, 303, 307, 308):
            return Answer(code, None, headers=headers + [("Location", arg)])
        return Answer(code, arg.encode() if arg else None, DEFAULT_TYPE, headers)
    root = root_for(site, uri)
    path = os.path.join(root, uri.lstrip("/"))
    if uri.endswith("/"):
        for index in (loc.index if loc and loc.index else site.index):
            if os.path.isfile(os.path.join(path, index)):
                path = os.path.join(path, index)
                break
        else:
            return Answer(403 if os.path.isdir(path) else 404, None, headers=headers)
    if not os.path.isfile(path):
        return Answer(404, None, headers=headers)
    try:
        with open(path, "rb") as f:
            body = f.read()
    except OSError:
        return Answer(403, None, headers=headers)
    return Answer(200, body, _TYPES.get(os.path.splitext(path)[1], DEFAULT_TYPE), headers)
