"""What a Go program prints, for the agnhost stand-ins: pure functions only.

agnhost is a Go program, and the e2e tests read its output byte for byte:
JSON from `encoding/json` (sorted keys, `<>&` escaped), strings quoted by
`%q`, durations as `time.Duration.String()` ("1m30s"), `time.Now()` as
"2006-01-02 15:04:05.999999999 -0700 MST m=+0.5", log lines in the `log`
package's "2006/01/02 15:04:05 " format, query strings parsed as
`net/url.ParseQuery` does, paths cleaned as `path.Clean`, header keys
canonicalised as `textproto.CanonicalMIMEHeaderKey`, and a body's type guessed
as `http.DetectContentType` does. Each function here mirrors one of those.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
import unicodedata
from datetime import datetime
from urllib.parse import unquote_to_bytes

_STARTED = time.monotonic()


# ---- log ------------------------------------------------------------------

def log(message: str) -> None:
    """log.Printf: "2006/01/02 15:04:05 message", one newline, on stderr."""
    if not message.endswith("\n"):
        message += "\n"
    sys.stderr.write(f"{time.strftime('%Y/%m/%d %H:%M:%S')} {message}")
    sys.stderr.flush()


def fatal(message: str) -> None:
    """log.Fatalf: the line, then exit status 1 (deferred calls do not run)."""
    log(message)
    os._exit(1)


def hostname() -> str:
    """os.Hostname(): the UTS namespace's name (the pod's name)."""
    return socket.gethostname()


# ---- strings ----------------------------------------------------------------

_QUOTE_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r",
                  "\t": r"\t", "\v": r"\v", "\\": r"\\", '"': r"\""}


def quote(text: str) -> str:
    """strconv.Quote (what %q prints): printable runes kept, the rest escaped."""
    out = []
    for ch in text:
        if ch in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[ch])
        elif ch == "\ufffd" or _printable(ch):
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def _printable(ch: str) -> bool:
    if ch == " ":
        return True
    return unicodedata.category(ch)[0] in "LMNPS"


def json_string(text: str) -> str:
    """A JSON string as encoding/json writes it: UTF-8 kept, `<>&` and
    U+2028/U+2029 escaped, control characters as \\n, \\t, \\b, \\f or \\u00XX."""
    out = json.dumps(text, ensure_ascii=False)
    return (out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def json_marshal(value) -> str:
    """json.Marshal of maps (keys sorted), slices, strings, ints and bools."""
    if isinstance(value, dict):
        items = sorted(value.items())
        return "{" + ",".join(f"{json_string(k)}:{json_marshal(v)}" for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(json_marshal(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    return json_string(str(value))


def json_struct(fields: list[tuple[str, object]]) -> str:
    """json.Marshal of a struct: fields in declaration order, not sorted."""
    return "{" + ",".join(f"{json_string(k)}:{json_marshal(v)}" for k, v in fields) + "}"


def map_string(value: dict[str, str]) -> str:
    """fmt's %s of a map[string]string: "map[k1:v1 k2:v2]", keys sorted."""
    return "map[" + " ".join(f"{k}:{v}" for k, v in sorted(value.items())) + "]"


def html_escape(text: str) -> str:
    """net/http's htmlReplacer (Redirect bodies, directory listings)."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("'", "&#39;"))


def hex_escape_non_ascii(text: str) -> str:
    """net/http's hexEscapeNonASCII, for a Location header."""
    return "".join(ch if ord(ch) < 0x80 else "".join(f"%{b:02X}" for b in ch.encode())
                   for ch in text)


# ---- numbers ----------------------------------------------------------------

def atoi(text: str) -> int:
    """strconv.Atoi: optional sign, decimal digits only; ValueError otherwise."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(f'strconv.Atoi: parsing {quote(text)}: invalid syntax')
    return int(text)


def parse_int(text: str) -> int:
    """strconv.ParseInt(s, 0, 64), as pflag's int flags: 0x, 0o, 0b, 0-octal."""
    body = text.lstrip("+-")
    try:
        if re.fullmatch(r"0[0-7_]+", body):
            value = int(body.replace("_", ""), 8)
        else:
            value = int(body, 0)
    except ValueError:
        raise ValueError(f"strconv.ParseInt: parsing {quote(text)}: invalid syntax") from None
    return -value if text.startswith("-") else value


def parse_bool(text: str) -> bool:
    """strconv.ParseBool."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f"strconv.ParseBool: parsing {quote(text)}: invalid syntax")


_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
          "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration(text: str) -> int:
    """time.ParseDuration, in nanoseconds; ValueError with Go's message."""
    error = ValueError(f"time: invalid duration {quote(text)}")
    rest, sign = text, 1
    if rest[:1] in "+-" and rest:
        sign, rest = (-1 if rest[0] == "-" else 1), rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise error
    total = 0
    for number, unit in re.findall(r"([0-9]*\.?[0-9]*)([^0-9.]+)", rest):
        if number in ("", ".") or unit not in _UNITS:
            raise error
        whole, _, frac = number.partition(".")
        value = int(whole or "0") * _UNITS[unit]
        if frac:
            value += int(frac) * _UNITS[unit] // 10 ** len(frac)
        total += value
    if re.sub(r"([0-9]*\.?[0-9]*)([^0-9.]+)", "", rest):
        raise error
    return sign * total


def format_duration(ns: int) -> str:
    """time.Duration.String(): "0s", "1.5s", "300ms", "1m30s", "2h0m0s"."""
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _decimal(ns, size) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _decimal(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _decimal(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}." + f"{frac:0{digits}d}".rstrip("0")


def time_now_string() -> str:
    """time.Now().String(): "2025-04-16 12:00:00.123456789 +0000 UTC m=+1.500000001"."""
    now = datetime.now().astimezone()
    frac = f"{now.microsecond:06d}000".rstrip("0")
    stamp = now.strftime("%Y-%m-%d %H:%M:%S") + (f".{frac}" if frac else "")
    mono = f"{time.monotonic() - _STARTED:.9f}"
    return f"{stamp} {now.strftime('%z')} {now.tzname()} m=+{mono}"


# ---- URLs, paths, headers ---------------------------------------------------

def clean_path(path: str) -> str:
    """path.Clean."""
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    out = "/".join(parts)
    return ("/" + out) if rooted else (out or ".")


def mux_clean_path(path: str) -> str:
    """net/http's cleanPath (what ServeMux redirects to): rooted, trailing
    slash kept."""
    if not path:
        return "/"
    if not path.startswith("/"):
        path = "/" + path
    cleaned = clean_path(path)
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def parse_query(raw: str) -> dict[str, list[str]]:
    """url.ParseQuery: '&'-separated; a pair with ';' or a bad escape is dropped."""
    values: dict[str, list[str]] = {}
    for pair in raw.split("&"):
        if not pair or ";" in pair:
            continue
        key, _, value = pair.partition("=")
        if _ESCAPE.search(key) or _ESCAPE.search(value):
            continue
        key = unquote_to_bytes(key.replace("+", " ")).decode(errors="replace")
        value = unquote_to_bytes(value.replace("+", " ")).decode(errors="replace")
        values.setdefault(key, []).append(value)
    return values


def canonical_header_key(key: str) -> str:
    """textproto.CanonicalMIMEHeaderKey: "x-forwarded-for" -> "X-Forwarded-For"."""
    if not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", key):
        return key
    return "-".join(part[:1].upper() + part[1:].lower() for part in key.split("-"))


def join_host_port(host: str, port) -> str:
    """net.JoinHostPort: IPv6 hosts in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def addr_string(address: tuple) -> str:
    """A socket peer as Go's Addr.String(): IPv4-mapped IPv6 shown as IPv4."""
    host, port = address[0], address[1]
    if host.startswith("::ffff:") and "." in host:
        host = host[len("::ffff:"):]
    return join_host_port(host, port)


# ---- http.DetectContentType (the text and markup part of the sniffer) ----

_HTML_TAGS = (b"<!DOCTYPE HTML", b"<HTML", b"<HEAD", b"<SCRIPT", b"<IFRAME", b"<H1", b"<DIV",
              b"<FONT", b"<TABLE", b"<A", b"<STYLE", b"<TITLE", b"<B", b"<BODY", b"<BR", b"<P",
              b"<!--")
_MAGIC = ((b"%PDF-", "application/pdf"), (b"%!PS-Adobe-", "application/postscript"),
          (b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
          (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"), (b"\x1f\x8b\x08", "application/x-gzip"),
          (b"PK\x03\x04", "application/zip"), (b"\x00asm", "application/wasm"))
_BINARY = set(range(0x09)) | {0x0B} | set(range(0x0E, 0x1B)) | set(range(0x1C, 0x20))


def detect_content_type(data: bytes) -> str:
    """http.DetectContentType for what our servers send: markup, text, a few
    magic numbers, else application/octet-stream."""
    data = data[:512]
    if data.startswith((b"\xfe\xff", b"\xff\xfe")):
        return "text/plain; charset=utf-16" + ("be" if data[0] == 0xFE else "le")
    if data.startswith(b"\xef\xbb\xbf"):
        return "text/plain; charset=utf-8"
    body = data.lstrip(b"\t\n\x0c\r ")
    for tag in _HTML_TAGS:
        head = body[:len(tag)].upper()
        if head == tag and len(body) > len(tag) and body[len(tag)] in b" >":
            return "text/html; charset=utf-8"
    if body.startswith(b"<?xml"):
        return "text/xml; charset=utf-8"
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if any(b in _BINARY for b in data):
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


STATUS_TEXT = {
    100: "Continue", 101: "Switching Protocols", 102: "Processing", 103: "Early Hints",
    200: "OK", 201: "Created", 202: "Accepted", 203: "Non-Authoritative Information",
    204: "No Content", 205: "Reset Content", 206: "Partial Content", 207: "Multi-Status",
    208: "Already Reported", 226: "IM Used", 300: "Multiple Choices", 301: "Moved Permanently",
    302: "Found", 303: "See Other", 304: "Not Modified", 305: "Use Proxy",
    307: "Temporary Redirect", 308: "Permanent Redirect", 400: "Bad Request",
    401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required",
    408: "Request Timeout", 409: "Conflict", 410: "Gone", 411: "Length Required",
    412: "Precondition Failed", 413: "Request Entity Too Large", 414: "Request URI Too Long",
    415: "Unsupported Media Type", 416: "Requested Range Not Satisfiable",
    417: "Expectation Failed", 418: "I'm a teapot", 421: "Misdirected Request",
    422: "Unprocessable Entity", 423: "Locked", 424: "Failed Dependency", 425: "Too Early",
    426: "Upgrade Required", 428: "Precondition Required", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 451: "Unavailable For Legal Reasons",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
    506: "Variant Also Negotiates", 507: "Insufficient Storage", 508: "Loop Detected",
    510: "Not Extended", 511: "Network Authentication Required",
}


def status_text(code: int) -> str:
    """http.StatusText ("" for codes Go does not name)."""
    return STATUS_TEXT.get(code, "")
