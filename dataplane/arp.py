"""Answering ARP for addresses no interface holds: layer-2 load-balancer IPs.

MetalLB's layer-2 mode does not put a LoadBalancer address on any interface;
the elected node's speaker answers ARP requests for it from userspace and
sends gratuitous ARP when it takes the address over, so the LAN's caches
move to its MAC at once. `Responder` does the same on one interface of the
namespace it is created in: a raw AF_PACKET socket that sees every ARP frame,
answers requests for the addresses in its set, and `announce` broadcasts the
gratuitous form (a request whose sender and target are the address).

Packet building and parsing are pure functions, unit-tested without root.
"""
from __future__ import annotations

import ipaddress
import logging
import select
import socket
import struct
import threading

log = logging.getLogger("nsplane.arp")

ETH_P_ARP = 0x0806
BROADCAST = b"\xff" * 6
_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
REQUEST, REPLY = 1, 2


def mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def frame(op: int, src_mac: bytes, dst_mac: bytes, sender_mac: bytes, sender_ip: str,
          target_mac: bytes, target_ip: str) -> bytes:
    """An Ethernet frame carrying one IPv4-over-Ethernet ARP packet."""
    return _ETH.pack(dst_mac, src_mac, ETH_P_ARP) + _ARP.pack(
        1, 0x0800, 6, 4, op, sender_mac, socket.inet_aton(sender_ip), target_mac, socket.inet_aton(target_ip))


def parse(data: bytes) -> tuple[int, bytes, str, bytes, str] | None:
    """(op, sender MAC, sender IP, target MAC, target IP) of an IPv4 ARP frame, else None."""
    if len(data) < _ETH.size + _ARP.size:
        return None
    if _ETH.unpack_from(data)[2] != ETH_P_ARP:
        return None
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(data, _ETH.size)
    if (htype, ptype, hlen, plen) != (1, 0x0800, 6, 4):
        return None
    return op, sha, socket.inet_ntoa(spa), tha, socket.inet_ntoa(tpa)


def reply_for(request: bytes, own_mac: bytes, addresses) -> bytes | None:
    """The reply `own_mac` sends to `request`, if it asks for one of `addresses`."""
    p = parse(request)
    if p is None or p[0] != REQUEST:
        return None
    _, sha, spa, _, tpa = p
    if tpa not in addresses or spa == tpa:   # spa == tpa: someone else's gratuitous ARP
        return None
    return frame(REPLY, own_mac, sha, own_mac, tpa, sha, spa)


def gratuitous(own_mac: bytes, ip: str) -> bytes:
    return frame(REQUEST, own_mac, BROADCAST, own_mac, ip, b"\0" * 6, ip)


class Responder:
    """Answers ARP on `ifname` (of the calling namespace) for `addresses`."""

    def __init__(self, ifname: str):
        self.ifname = ifname
        self._addresses: frozenset[str] = frozenset()
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        self.sock.bind((ifname, ETH_P_ARP))
        # The bound address carries the interface's MAC (/sys/class/net would
        # show the mount namespace's view, not this network namespace's).
        self.mac = self.sock.getsockname()[4]

    @property
    def addresses(self) -> frozenset[str]:
        return self._addresses

    def set_addresses(self, addresses) -> list[str]:
        """Answer for exactly `addresses`; announce the new ones. Returns the new ones."""
        new = frozenset(str(ipaddress.IPv4Address(a)) for a in addresses)
        added = sorted(new - self._addresses)
        self._addresses = new
        for ip in added:
            self.announce(ip)
        return added

    def announce(self, ip: str, count: int = 2) -> None:
        for _ in range(count):
            self.sock.send(gratuitous(self.mac, ip))

    def serve(self, stop: threading.Event) -> None:
        try:
            self._serve(stop)
        finally:
            self.sock.close()

    def _serve(self, stop: threading.Event) -> None:
        while not stop.is_set():
            ready, _, _ = select.select([self.sock], [], [], 0.5)
            if not ready:
                continue
            try:
                data, addr = self.sock.recvfrom(128)
            except OSError as e:
                log.warning("arp on %s: %s", self.ifname, e)
                continue
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            answer = reply_for(data, self.mac, self._addresses)
            if answer:
                try:
                    self.sock.send(answer)
                except OSError as e:
                    log.warning("arp reply on %s: %s", self.ifname, e)

    def start(self, stop: threading.Event) -> threading.Thread:
        t = threading.Thread(target=self.serve, args=(stop,), name=f"arp-{self.ifname}", daemon=True)
        t.start()
        return t

