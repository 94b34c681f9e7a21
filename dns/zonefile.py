"""CoreDNS's `file` plugin: authoritative answers from an RFC 1035 zone file.

`file DBFILE [ZONES...] { reload DURATION }`. For a name in the zone: the
records of the asked type (AA set); a CNAME is answered and followed inside
the zone; a name that exists with other types (or only has names below it)
is NODATA, and a name that does not exist NXDOMAIN, both with the SOA in the
authority section; `*.` wildcards stand in for missing names. The file is
parsed with dnslib and re-read when its mtime changes, checked every
`reload` (default 1 m; 0 turns it off). Placed after `kubernetes`, names the
kubernetes plugin falls through on (its `fallthrough`) are answered here.
"""

from __future__ import annotations

import os
import threading
import time

from dnslib import QTYPE, RCODE, RR, DNSRecord

from dns.corefile.zones import is_subdomain

MAX_CNAME = 8


class ZoneFile:
    def __init__(self, path: str, origin: str, reload: float = 60.0, clock=time.monotonic) -> None:
        self.path, self.origin, self.reload, self.clock = path, origin, reload, clock
        self.records: dict[str, list[RR]] = {}
        self._stamp = None
        self._checked = clock()
        self._lock = threading.Lock()
        self.load()

    def load(self) -> None:
        """(Re)reads the file; raises ValueError with the file's name when it does not parse."""
        st = os.stat(self.path)
        if (st.st_mtime_ns, st.st_size) == self._stamp:
            return
        with open(self.path, encoding="utf-8") as f:
            text = f.read()
        try:
            rrs = RR.fromZone(text, origin=self.origin)
        except Exception as exc:  # dnslib raises several kinds
            raise ValueError(f"failed to parse zone file {self.path}: {exc}") from None
        records: dict[str, list[RR]] = {}
        for rr in rrs:
            records.setdefault(str(rr.rname).lower(), []).append(rr)
        if not any(rr.rtype == QTYPE.SOA for rr in records.get(self.origin, [])):
            raise ValueError(f"zone file {self.path}: no SOA record for {self.origin}")
        self.records, self._stamp = records, (st.st_mtime_ns, st.st_size)

    def _maybe_reload(self) -> None:
        if self.reload > 0 and self.clock() - self._checked >= self.reload:
            with self._lock:
                self._checked = self.clock()
                try:
                    self.load()
                except (OSError, ValueError) as exc:
                    print(f"[ERROR] plugin/file: {exc}", flush=True)   # the last good zone stays

    def _find(self, name: str) -> list[RR] | None:
        if name in self.records:
            return self.records[name]
        if any(n.endswith("." + name) for n in self.records):
            return []                       # an empty non-terminal
        labels = name.split(".")
        for i in range(1, len(labels)):
            wild = "*." + ".".join(labels[i:])
            if not is_subdomain(self.origin, ".".join(labels[i:]) or "."):
                break
            if wild in self.records:
                return [RR(name, rr.rtype, rr.rclass, rr.ttl, rr.rdata) for rr in self.records[wild]]
        return None

    def answer(self, data: bytes) -> bytes | None:
        """The reply for a query in this zone, or None when the name is outside it."""
        query = DNSRecord.parse(data)
        name, qtype = str(query.q.qname).lower(), query.q.qtype
        if not is_subdomain(self.origin, name):
            return None
        self._maybe_reload()
        reply = query.reply(ra=0, aa=1)
        reply.header.ad = 0
        for _ in range(MAX_CNAME):
            found = self._find(name)
            if found is None:
                if not reply.rr:
                    reply.header.rcode = RCODE.NXDOMAIN
                break
            matching = [rr for rr in found if rr.rtype == qtype or qtype == QTYPE.ANY]
            if matching:
                reply.rr += matching
                break
            cname = [rr for rr in found if rr.rtype == QTYPE.CNAME]
            if not cname:
                break
            reply.rr += cname
            name = str(cname[0].rdata.label).lower()
            if not is_subdomain(self.origin, name):
                break
        if not any(rr.rtype == qtype for rr in reply.rr):
            reply.auth += [rr for rr in self.records.get(self.origin, []) if rr.rtype == QTYPE.SOA]
        return bytes(reply.pack())
