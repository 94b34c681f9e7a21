"""CoreDNS's `autopath @kubernetes`: the client's search path walked on the server.

A pod with ndots:5 asks `name.<its namespace>.svc.<zone>` first. When the
query comes from a pod we know (by source IP; the kubernetes plugin must run
`pods verified`, as CoreDNS requires) and its name ends with the first
element of that pod's search path, the server tries `name` + each search
domain (`<ns>.svc.<zone>`, `svc.<zone>`, `<zone>`, then the DNS pod's own
resolv.conf search domains) and finally `name.` itself, and answers the
first that is not NXDOMAIN with a CNAME from the asked name to it — one
query instead of up to six. Nothing found: the query goes on as asked.
"""

from __future__ import annotations

import struct

from dnslib import CNAME, QTYPE, RR, DNSLabel, DNSRecord

from dns import wire


def resolv_search(path: str = "/etc/resolv.conf") -> tuple[str, ...]:
    try:
        with open(path, encoding="utf-8") as f:
            words = [w for line in f if line.split()[:1] == ["search"] for w in line.split()[1:]]
    except OSError:
        return ()
    return tuple(w.lower().rstrip(".") + "." for w in words)


class Autopath:
    def __init__(self, opts, state, cfg, own_search: tuple[str, ...] | None = None) -> None:
        self.opts = opts
        self.state = state
        self.cfg = cfg
        self.own_search = resolv_search() if own_search is None else own_search

    def search_path(self, addr) -> list[str]:
        if self.opts.source != "@kubernetes":
            return list(self.opts.search) + [""]
        if self.cfg.pods != "verified" or addr is None:
            return []
        ns = self.state.view().pod_namespace(addr[0])
        if ns is None:
            return []
        zone = ".".join(self.cfg.domain) + "."
        return [f"{ns}.svc.{zone}", f"svc.{zone}", zone, *self.own_search, ""]

    def plan(self, q, name: str, addr) -> tuple[str, list[str]] | None:
        """(base name, search domains to try) when autopath applies to this query."""
        if q.qclass != 1 or not any(name == z or name.endswith("." + z) or z == "." for z in self.opts.zones):
            return None
        path = self.search_path(addr)
        if not path or not name.endswith("." + path[0]):
            return None
        return name[:-len(path[0]) - 1], path

    def resolve(self, q, name: str, addr, lookup) -> bytes | None:
        """A CNAME answer found in the cluster zones; None to go on (the bare name is the caller's)."""
        planned = self.plan(q, name, addr)
        if planned is None:
            return None
        base, path = planned
        for domain in path[:-1]:
            data = query_for(q, f"{base}.{domain}")
            reply = lookup(data)
            if reply is not None and reply[3] & 0xF != 3:
                return cnamed(reply, q)
        return None


def query_for(q, name: str) -> bytes:
    return (wire.HEADER.pack(q.qid, q.flags & 0x0110, 1, 0, 0, 0) + wire.encode_name(name)
            + struct.pack("!HH", q.qtype, q.qclass))


def cnamed(reply: bytes, q) -> bytes:
    """CoreDNS's cnamer: the asked name back in the question, and a CNAME to the found name first."""
    msg = DNSRecord.parse(reply)
    found = msg.q.qname
    asked = DNSLabel(wire.question_name(q.question))
    ttl = msg.rr[0].ttl if msg.rr else 5
    msg.q.qname = asked
    if str(found).lower() != str(asked).lower():
        msg.rr = [RR(asked, QTYPE.CNAME, ttl=ttl, rdata=CNAME(found))] + msg.rr
    return bytes(msg.pack())
