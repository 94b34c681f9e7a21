"""`agnhost test-webserver`: the container's file system over HTTP, on --port 80.

Mirrors test/images/agnhost/test-webserver/test-webserver.go: Go's
`http.FileServer(http.Dir("/"))` behind CORS headers. The DNS conformance
tests read their probes' results through it (GET /results/<file>, via the
API server's pod proxy), and the StatefulSet and dual-stack tests use it as
a plain web server. What a client sees:

- every answer carries Access-Control-Allow-{Origin,Credentials,Methods,Headers};
  files and listings also `Cache-Control: private` (Go 1.23 drops it from errors);
- a file: its bytes, `Content-Type` from its extension (Go's built-in table)
  or sniffed, `Last-Modified`, `Accept-Ranges: bytes`, one `Range` honoured
  (206 with Content-Range, 416 when unsatisfiable); If-Modified-Since is
  ignored (test-webserver deletes it);
- a directory: its index.html, else Go's listing (<pre> of links, sorted,
  "/" after subdirectories); a directory without its trailing slash, or a
  file with one, or ".../index.html" gets a 301 to the canonical name;
- missing: "404 page not found", unreadable: "403 Forbidden".

NSPLANE_TESTWEBSERVER_ROOT replaces "/" (tests); NSPLANE_AGNHOST_BIND limits
where it listens.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import sys
from email.utils import formatdate
from urllib.parse import quote

from agent.node.workloads.agnhost import flags, gofmt, gohttp
from agent.node.workloads.agnhost.flags import Flag
from agent.node.workloads.agnhost.gohttp import Request, ResponseWriter, http_error

ROOT = os.environ.get("NSPLANE_TESTWEBSERVER_ROOT", "/")
BIND = os.environ.get("NSPLANE_AGNHOST_BIND", "")
FLAGS = [Flag("port", "int", 80, "Port number.")]

# mime.TypeByExtension's built-in table (the agnhost image has no /etc/mime.types).
MIME = {".avif": "image/avif", ".css": "text/css; charset=utf-8", ".gif": "image/gif",
        ".htm": "text/html; charset=utf-8", ".html": "text/html; charset=utf-8",
        ".jpeg": "image/jpeg", ".jpg": "image/jpeg", ".js": "text/javascript; charset=utf-8",
        ".json": "application/json", ".mjs": "text/javascript; charset=utf-8",
        ".pdf": "application/pdf", ".png": "image/png", ".svg": "image/svg+xml",
        ".wasm": "application/wasm", ".webp": "image/webp", ".xml": "text/xml; charset=utf-8"}


def handler(w: ResponseWriter, r: Request) -> None:
    """test-webserver.go's "/" handler: CORS headers, then the file server."""
    w.set("Cache-Control", "private")
    w.set("Access-Control-Allow-Origin", "*")
    w.set("Access-Control-Allow-Credentials", "true")
    w.set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
    w.set("Access-Control-Allow-Headers",
          "DNT,X-Mx-ReqToken,Keep-Alive,User-Agent,X-Requested-With,Cache-Control,Content-Type")
    file_server(w, r, ROOT)


def file_server(w: ResponseWriter, r: Request, root: str) -> None:
    """http.FileServer(http.Dir(root)).ServeHTTP."""
    url = r.path if r.path.startswith("/") else "/" + r.path
    if url.endswith("/index.html"):
        local_redirect(w, r, "./")
        return
    name = gofmt.clean_path(url)
    local = os.path.join(root, name.lstrip("/"))
    try:
        info = os.stat(local)
        if not os.access(local, os.R_OK):
            raise PermissionError
    except OSError as exc:
        serve_error(w, exc)
        return
    if stat.S_ISDIR(info.st_mode):
        if not url.endswith("/"):
            local_redirect(w, r, os.path.basename(url.rstrip("/")) + "/")
            return
        index = os.path.join(local, "index.html")
        if os.path.isfile(index):
            serve_file(w, r, index, os.stat(index))
            return
        serve_listing(w, r, local, info)
        return
    if url.endswith("/"):
        base = os.path.basename(url.rstrip("/"))
        local_redirect(w, r, "../" + ("" if base in ("", ".") else base))
        return
    serve_file(w, r, local, info)


def local_redirect(w: ResponseWriter, r: Request, target: str) -> None:
    """net/http's localRedirect: a relative Location, 301, no body."""
    if r.raw_query:
        target += "?" + r.raw_query
    w.set("Location", target)
    w.write_header(301)


def serve_error(w: ResponseWriter, exc: OSError) -> None:
    """toHTTPError + serveError (Go 1.23: cache and validator headers dropped)."""
    for key in ("Cache-Control", "Content-Encoding", "Etag", "Last-Modified"):
        w.delete(key)
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        http_error(w, "404 page not found", 404)
    elif isinstance(exc, PermissionError):
        http_error(w, "403 Forbidden", 403)
    else:
        http_error(w, "500 Internal Server Error", 500)


def serve_listing(w: ResponseWriter, r: Request, local: str, info: os.stat_result) -> None:
    """dirList: entries sorted by name, links path-escaped, text HTML-escaped."""
    try:
        entries = sorted(os.scandir(local), key=lambda e: e.name)
    except OSError:
        http_error(w, "Error reading directory", 500)
        return
    w.set("Last-Modified", formatdate(info.st_mtime, usegmt=True))
    w.set("Content-Type", "text/html; charset=utf-8")
    lines = ["<!doctype html>", '<meta name="viewport" content="width=device-width">', "<pre>"]
    for entry in entries:
        name = entry.name + ("/" if entry.is_dir() else "")
        href = quote(name, safe="/!$&'()*+,;=:@-._~")
        if ":" in name.split("/", 1)[0]:
            href = "./" + href
        lines.append(f'<a href="{href}">{gofmt.html_escape(name)}</a>')
    lines.append("</pre>")
    w.write("\n".join(lines) + "\n")


def serve_file(w: ResponseWriter, r: Request, local: str, info: os.stat_result) -> None:
    """serveContent: type, validators, one byte range."""
    try:
        with open(local, "rb") as f:
            data = f.read()
    except OSError as exc:
        serve_error(w, exc)
        return
    ctype = MIME.get(os.path.splitext(local)[1].lower()) or gofmt.detect_content_type(data)
    w.set("Last-Modified", formatdate(info.st_mtime, usegmt=True))
    w.set("Accept-Ranges", "bytes")
    w.set("Content-Type", ctype)
    span = byte_range(r.header("Range"), len(data))
    if span == "unsatisfiable":
        w.set("Content-Range", f"bytes */{len(data)}")
        http_error(w, "invalid range: failed to overlap", 416)
        return
    if span is not None:
        start, end = span
        w.set("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        w.write_header(206)
        data = data[start:end]
    w.set("Content-Length", str(len(data)))
    w.write(data)


def byte_range(header: str, size: int):
    """One "bytes=a-b" range -> (start, end) with end exclusive; None to send
    it all; "unsatisfiable" for a range wholly past the end."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        length = min(int(last), size)
        return (size - length, size) if length else "unsatisfiable"
    start = int(first)
    if start >= size:
        return "unsatisfiable"
    end = min(int(last) + 1, size) if last else size
    return (start, end) if end > start else None


def main(argv: list[str]) -> int:
    opts = flags.parse_or_exit("test-webserver", FLAGS, argv, "Starts a simple HTTP fileserver")
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    mux = gohttp.ServeMux()
    mux.handle("/", handler)
    try:
        server = gohttp.GoServer(opts["port"], mux, bind=BIND)
    except OSError as exc:
        gofmt.fatal(f"listen tcp :{opts['port']}: bind: {exc.strerror.lower()}")
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
