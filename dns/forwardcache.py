"""The forward plugin's answer cache (CoreDNS's `cache` in front of `forward`).

Forwarded answers only (cluster answers are always live): NOERROR and
NXDOMAIN, not truncated, kept by (name, type, class, EDNS-or-not) for
min(smallest TTL, the max TTL) and at least the min TTL, served with aged
TTLs. Success and denial (NXDOMAIN / NODATA) have their own capacity and
TTLs; `disable` zones are not stored; `serve_stale` and `prefetch` ask the
forwarder to refresh an entry in the background.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from dns import wire


@dataclass(slots=True)
class CacheEntry:
    data: bytes
    offsets: list
    ttls: list
    stored: float
    expires: float
    denial: bool = False
    hits: int = 0


class ForwardCache:
    """Forwarded answers by (name, type, class, EDNS-or-not), aged on the way out.

    With the Corefile's `cache`: success and denial (NXDOMAIN / NODATA) each
    have a capacity and a max and min TTL, zones under `disable` are not
    stored, and `serve_stale` keeps serving an expired entry (TTL 0) for that
    many seconds while a refresh goes upstream.
    """

    def __init__(self, max_entries: int = 10_000, max_ttl: int = 30, *, min_ttl: int = 0,
                 denial_entries: int | None = None, denial_max_ttl: int | None = None, denial_min_ttl: int = 0,
                 stale: float = 0.0, disable_success: tuple = (), disable_denial: tuple = (),
                 prefetch: tuple = (0, 60.0, 10), keepttl: bool = False) -> None:
        self.max_entries = max_entries
        self.max_ttl = max_ttl
        self.min_ttl = min_ttl
        self.denial_entries = max_entries if denial_entries is None else denial_entries
        self.denial_max_ttl = max_ttl if denial_max_ttl is None else denial_max_ttl
        self.denial_min_ttl = denial_min_ttl
        self.stale = stale
        self.disable = {False: tuple(_zone_wire(z) for z in disable_success),
                        True: tuple(_zone_wire(z) for z in disable_denial)}
        self.keepttl = keepttl           # serve the TTLs as received, not aged
        self.prefetch = prefetch         # (amount: 0 is off, duration, percentage of TTL left)
        self._entries: dict[bytes, CacheEntry] = {}
        self._counts = {False: 0, True: 0}

    def __len__(self) -> int:
        return len(self._entries)

    def store(self, key: bytes, data: bytes, now: float) -> None:
        flags = struct.unpack_from("!H", data, 2)[0]
        if flags & wire.FLAG_TC or (flags & 0xF) not in (0, 3):
            return
        denial = (flags & 0xF) == 3 or struct.unpack_from("!H", data, 6)[0] == 0
        cap = self.denial_entries if denial else self.max_entries
        if cap <= 0 or any(_under(key, z) for z in self.disable[denial]):
            return
        try:
            offsets, smallest = wire.ttl_offsets(data)
        except (ValueError, struct.error, IndexError):
            return
        hi, lo = (self.denial_max_ttl, self.denial_min_ttl) if denial else (self.max_ttl, self.min_ttl)
        ttl = max(min(smallest, hi), lo)
        if not offsets or ttl <= 0:
            return
        ttls = [struct.unpack_from("!I", data, o)[0] for o in offsets]
        if key not in self._entries and self._counts[denial] >= cap:
            for old_key, old in self._entries.items():
                if old.denial == denial:
                    del self._entries[old_key]
                    self._counts[denial] -= 1
                    break
        if self._entries.get(key) is None:
            self._counts[denial] += 1
        else:
            self._counts[self._entries[key].denial] -= 1
            self._counts[denial] += 1
        self._entries[key] = CacheEntry(data, offsets, [min(t, ttl) for t in ttls], now, now + ttl, denial)

    def lookup(self, key: bytes, qid: int, question: bytes, now: float) -> bytes | None:
        return self.lookup_stale(key, qid, question, now)[0]

    def lookup_stale(self, key: bytes, qid: int, question: bytes, now: float) -> tuple[bytes | None, bool]:
        """(the cached reply or None, whether it wants a refresh upstream: it is stale, or
        popular and near its end, as `prefetch AMOUNT DURATION PERCENTAGE%` says)."""
        entry = self._entries.get(key)
        if entry is None:
            return None, False
        if now < entry.expires and not self.prefetch[0]:        # the common case: a fresh hit
            buf = bytearray(entry.data)
            age = 0 if self.keepttl else int(now - entry.stored)
            for off, ttl in zip(entry.offsets, entry.ttls):
                struct.pack_into("!I", buf, off, max(0, ttl - age))
            struct.pack_into("!H", buf, 0, qid)
            buf[12:12 + len(question)] = question
            return bytes(buf), False
        stale = now >= entry.expires
        refresh = stale
        amount = self.prefetch[0]
        if amount and not stale:
            entry.hits += 1
            ttl = entry.expires - entry.stored
            if entry.hits >= amount and now - entry.stored <= self.prefetch[1] + ttl \
                    and entry.expires - now <= ttl * self.prefetch[2] / 100:
                entry.hits, refresh = 0, True
        if stale and now >= entry.expires + self.stale:
            self._entries.pop(key, None)
            self._counts[entry.denial] -= 1
            return None, False
        buf = bytearray(entry.data)
        age = 0 if self.keepttl else int(now - entry.stored)
        for off, ttl in zip(entry.offsets, entry.ttls):
            struct.pack_into("!I", buf, off, 0 if stale else max(0, ttl - age))
        struct.pack_into("!H", buf, 0, qid)
        buf[12:12 + len(question)] = question
        return bytes(buf), refresh


def _zone_wire(zone: str) -> bytes:
    labels = [p for p in zone.lower().rstrip(".").split(".") if p]
    return b"".join(bytes([len(p)]) + p.encode() for p in labels) + b"\x00"


def _under(key: bytes, zone: bytes) -> bool:
    """Is the cache key's name (wire form, lower case) at or below `zone` (wire form)?"""
    name_end = key.index(b"\x00") + 1 if b"\x00" in key else len(key)
    name, i = key[:name_end], 0
    while i < len(name):
        if name[i:] == zone:
            return True
        if name[i] == 0:
            return False
        i += name[i] + 1
    return False
