"""The ranges Services take from: ClusterIPs, NodePorts (as kube-apiserver
allocates them) and the load-balancer pool (as MetalLB does).

Pure: the caller (agent/apiserver/allocation.py, the load-balancer
controller) passes what is in use. Dynamic picks are random from the upper
band of the range, leaving the lower band to explicit requests (the
ServiceIPStaticSubrange / ServiceNodePortStaticSubrange behaviour), so a
user's `clusterIP: 10.96.0.20` rarely collides with an automatic one.
"""
from __future__ import annotations

import ipaddress
import random


class AllocationError(ValueError):
    pass


def _static_band(size: int) -> int:
    return min(max(16, size // 16), 256)


class ClusterIPRange:
    def __init__(self, cidr: str):
        self.net = ipaddress.ip_network(cidr)

    def contains(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return addr in self.net and addr not in (self.net.network_address, self.net.broadcast_address)

    def nth(self, n: int) -> str:
        return str(self.net.network_address + n)

    def allocate(self, used: set[str], requested: str | None = None, rng: random.Random | None = None) -> str:
        if requested:
            if not self.contains(requested):
                raise AllocationError(
                    f"failed to allocate IP {requested}: the provided IP ({requested}) is not in "
                    f"the valid range. The range of valid IPs is {self.net}")
            if requested in used:
                raise AllocationError(
                    f"failed to allocate IP {requested}: provided IP is already allocated")
            return requested
        rng = rng or random
        size = self.net.num_addresses
        lo, hi = _static_band(size), size - 2
        for _ in range(64):
            ip = self.nth(rng.randint(lo, hi))
            if ip not in used:
                return ip
        for n in range(1, size - 1):   # nearly full: scan
            ip = self.nth(n)
            if ip not in used:
                return ip
        raise AllocationError(f"failed to allocate a serviceIP: range is full ({self.net})")


class NodePortRange:
    def __init__(self, first: int = 30000, last: int = 32767):
        self.first, self.last = first, last

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    def allocate(self, used: set[int], requested: int | None = None, rng: random.Random | None = None) -> int:
        if requested:
            if not self.first <= requested <= self.last:
                raise AllocationError(
                    f"Invalid value: {requested}: provided port is not in the valid range. "
                    f"The range of valid ports is {self}")
            if requested in used:
                raise AllocationError(f"Invalid value: {requested}: provided port is already allocated")
            return requested
        rng = rng or random
        size = self.last - self.first + 1
        lo = self.first + _static_band(size)
        for _ in range(64):
            port = rng.randint(lo, self.last)
            if port not in used:
                return port
        for port in range(self.first, self.last + 1):
            if port not in used:
                return port
        raise AllocationError(f"failed to allocate a nodePort: range is full ({self})")


class LoadBalancerPool:
    """A range of LoadBalancer addresses ("first-last" or a CIDR; "none" = no pool),
    handed out lowest-free-first like MetalLB's allocator."""

    def __init__(self, spec: str):
        self.spec = spec.strip()
        self.first = self.last = None
        if self.spec and self.spec != "none":
            try:
                if "/" in self.spec:
                    net = ipaddress.ip_network(self.spec, strict=False)
                    self.first, self.last = net.network_address, net.broadcast_address
                else:
                    first, _, last = self.spec.partition("-")
                    self.first = ipaddress.IPv4Address(first.strip())
                    self.last = ipaddress.IPv4Address((last or first).strip())
            except ValueError as e:
                raise ValueError(f"load-balancer pool {spec!r}: {e}; use first-last "
                                 "(e.g. 172.28.0.200-172.28.0.250), a CIDR, or none") from None
            if self.last < self.first:
                raise ValueError(f"load-balancer pool {spec!r}: the last address is before the first")

    def __str__(self) -> str:
        return self.spec if self.first is None else f"{self.first}-{self.last}"

    @property
    def enabled(self) -> bool:
        return self.first is not None

    @property
    def size(self) -> int:
        return int(self.last) - int(self.first) + 1 if self.enabled else 0

    def contains(self, ip: str) -> bool:
        try:
            return self.enabled and self.first <= ipaddress.IPv4Address(ip) <= self.last
        except ValueError:
            return False

    def check(self, requested: str, used, owner: str) -> None:
        """Raise AllocationError unless `owner` may have `requested` (used.get(ip) -> its holder)."""
        if not self.enabled:
            raise AllocationError("no load-balancer pool is configured (nsplane up --lb-pool)")
        if not self.contains(requested):
            raise AllocationError(f"not in the load-balancer pool {self}; "
                                  "pick an address from the pool or leave it empty")
        holder = used.get(requested, owner)
        if holder != owner:
            raise AllocationError(f"address already allocated to service {holder}")

    def allocate(self, used: set[str]) -> str | None:
        """The lowest free address, or None when the pool is exhausted or disabled."""
        for n in range(self.size):
            ip = str(self.first + n)
            if ip not in used:
                return ip
        return None
