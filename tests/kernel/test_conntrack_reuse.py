"""The rollout's "Network is unreachable", on the real kernel in a
throwaway namespace: a connection the server resets leaves a conntrack
entry in CLOSE that keeps its DNAT; a new connection from the same source
port (a reset leaves the client no TIME_WAIT, so the port is free at once)
follows that entry to the old endpoint instead of the rules' new one, and
once the old endpoint's address is gone it fails with ENETUNREACH. Clearing
the endpoint's closed entries (dataplane/conntrack.py, what the proxier does
when an endpoint leaves its Service) sends it by the rules again."""
from __future__ import annotations

import errno
import os
import socket
import struct
import subprocess
import threading
from contextlib import contextmanager

import pytest

from dataplane import conntrack, netns

pytestmark = pytest.mark.kernel

if os.geteuid() != 0:
    pytest.skip("kernel tests need root", allow_module_level=True)

NS = f"nsplane-ctr{os.getpid() % 10000}"
SERVICE, OLD, NEW, CLIENT, PORT = "10.96.0.1", "10.244.0.5", "10.244.0.6", "10.244.0.9", 40123


def sh(*argv: str) -> None:
    subprocess.run(["ip", "netns", "exec", NS, *argv], check=True, capture_output=True, timeout=30)


@contextmanager
def namespace():
    subprocess.run(["ip", "netns", "add", NS], check=True, timeout=30)
    try:
        sh("ip", "link", "set", "lo", "up")
        sh("ip", "link", "add", "nsplane-ct0", "type", "veth", "peer", "name", "nsplane-ct1")   # no dummy module here
        sh("ip", "link", "set", "nsplane-ct0", "up")
        sh("ip", "link", "set", "nsplane-ct1", "up")
        for ip in (OLD, NEW, CLIENT):
            sh("ip", "addr", "add", f"{ip}/32", "dev", "nsplane-ct0")
        sh("ip", "route", "add", "10.96.0.0/12", "dev", "nsplane-ct0")     # the Service CIDR, as on a node
        yield
    finally:
        subprocess.run(["ip", "netns", "del", NS], check=False, timeout=30)


def dnat_to(ip: str, replace: bool) -> None:
    rule = ["-d", SERVICE, "-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", f"{ip}:8080"]
    sh("iptables-legacy", "-t", "nat", *(["-R", "OUTPUT", "1"] if replace else ["-A", "OUTPUT"]), *rule)


def listen(ip: str) -> socket.socket:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((ip, 8080))
    srv.listen(8)
    return srv


def connect_from_port(timeout: float = 5) -> socket.socket:
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c.bind((CLIENT, PORT))
    c.settimeout(timeout)
    try:
        c.connect((SERVICE, 80))
    except OSError:
        c.close()                      # frees the source port for the next attempt
        raise
    return c


def test_a_reset_connections_entry_steers_a_reused_port_until_cleared():
    with namespace(), netns.entered(NS):
        dnat_to(OLD, replace=False)
        old = listen(OLD)
        c = connect_from_port()
        conn, _ = old.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()                                         # the old server exits: RST
        with pytest.raises(OSError):
            c.recv(1)
        c.close()
        old.close()
        dnat_to(NEW, replace=True)                           # the rules now send the Service elsewhere
        new = listen(NEW)
        threading.Thread(target=lambda: new.accept(), daemon=True).start()
        sh("ip", "addr", "del", f"{OLD}/32", "dev", "nsplane-ct0")   # and the old pod is gone
        with pytest.raises(OSError) as err:
            connect_from_port(timeout=2)                     # same source port: follows the CLOSE entry
        # Across namespaces the node answers ICMP "net unreachable" (ENETUNREACH); inside this one
        # namespace the rerouted SYN is dropped: either way it never reaches the rules' new endpoint.
        assert isinstance(err.value, TimeoutError) or err.value.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH), \
            err.value
        assert conntrack.clear_closed_tcp(OLD, SERVICE, 80) >= 1     # (now in SYN_SENT: the new SYN reused it)
        c = connect_from_port()                              # NATed afresh, by the rules
        assert c.getpeername() == (SERVICE, 80)
        c.close()
        new.close()
