"""Pod IPs of one node (the host-local IPAM plugin's job): a /32 from the
node's pod CIDR for each pod, round-robin from .2 (.1 is the gateway on the
node's side of every veth), a pod keeping the address it had (its status,
or its state file after an agent restart) while no other pod holds it."""
from __future__ import annotations

import ipaddress
import threading
from typing import Callable, Iterable


class PodIPs:
    def __init__(self, pod_cidr: str, node: str):
        self.net = ipaddress.ip_network(pod_cidr)
        self.gateway = str(self.net.network_address + 1)
        self.node = node
        self._lock = threading.Lock()
        self._last = 1

    def assign(self, uid: str, wanted: str | None, others: Callable[[], Iterable[tuple[str, str | None]]]) -> str:
        """`wanted` when it is in the CIDR and free, else the next free one;
        `others` gives every pod's (uid, ip) on the node."""
        with self._lock:
            used = {ip for other, ip in others() if other != uid and ip}
            if wanted and ipaddress.ip_address(wanted) in self.net and wanted not in used:
                return wanted
            size = self.net.num_addresses
            for step in range(1, size - 2):
                n = (self._last - 2 + step) % (size - 3) + 2
                ip = str(self.net.network_address + n)
                if ip not in used:
                    self._last = n
                    return ip
            raise RuntimeError(f"node {self.node}: no pod IP left in {self.net}")
