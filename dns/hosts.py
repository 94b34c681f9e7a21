"""CoreDNS's `hosts` plugin: A, AAAA and PTR answers from a hosts file and inline lines.

Entries come from the file (re-read when its size or mtime changed, checked
at most every `reload` seconds; 0 turns that off) and from the lines written
in the Corefile block, inline winning. A name that is in the table is
answered authoritatively (NOERROR with no records for another type); a name
that is not is NXDOMAIN unless `fallthrough` covers it, when the next plugin
answers. Pure parsing and lookup; the file read is the only I/O.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time

from dns.corefile.zones import fqdn, is_subdomain


def parse_hosts(text: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """hosts-file text -> (name -> IPs, reverse name -> names), names fully qualified and lower case."""
    forward: dict[str, list[str]] = {}
    reverse: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].split()
        if len(line) < 2:
            continue
        try:
            ip = ipaddress.ip_address(line[0].split("%")[0])
        except ValueError:
            continue
        for name in line[1:]:
            name = fqdn(name)
            forward.setdefault(name, [])
            if str(ip) not in forward[name]:
                forward[name].append(str(ip))
            reverse.setdefault(ip.reverse_pointer + ".", []).append(name)
    return forward, reverse


class Hosts:
    def __init__(self, opts, clock=time.monotonic) -> None:
        self.opts = opts
        self.clock = clock
        self._inline = parse_hosts("\n".join(opts.inline))
        self._file: tuple[dict, dict] = ({}, {})
        self._stamp: tuple | None = None
        self._checked = -1e18
        self._lock = threading.Lock()
        self._read_file()

    def _read_file(self) -> None:
        try:
            st = os.stat(self.opts.path)
        except OSError:
            self._file, self._stamp = ({}, {}), None
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        try:
            with open(self.opts.path, encoding="utf-8", errors="replace") as f:
                self._file = parse_hosts(f.read())
            self._stamp = stamp
        except OSError:
            self._file = ({}, {})

    def _maybe_reload(self) -> None:
        if self.opts.reload <= 0:
            return
        now = self.clock()
        if now - self._checked >= self.opts.reload:
            with self._lock:
                self._checked = now
                self._read_file()

    def lookup(self, qname: str, qtype: int) -> tuple[str, list] | None:
        """('answer', [(type, value)]) / ('nodata', []) / ('nxdomain', []), or None to fall through."""
        if not any(is_subdomain(z, qname) for z in self.opts.zones):
            return None
        self._maybe_reload()
        fwd = {**self._file[0], **self._inline[0]}
        rev = {**self._file[1], **self._inline[1]}
        if qtype == 12 and not self.opts.no_reverse and qname in rev:
            return "answer", [(12, n) for n in rev[qname]]
        if qname in fwd:
            want = 4 if qtype == 1 else 6 if qtype == 28 else None
            recs = [(qtype, ip) for ip in fwd[qname] if want and ipaddress.ip_address(ip).version == want]
            return ("answer", recs) if recs else ("nodata", [])
        fall = self.opts.fallthrough
        if fall is not None and (not fall or any(is_subdomain(z, qname) for z in fall)):
            return None
        if qtype == 12 and qname not in rev:
            return None if fall is not None else ("nxdomain", [])
        return "nxdomain", []
