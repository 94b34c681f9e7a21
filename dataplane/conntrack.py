"""Delete stale UDP conntrack entries, as kube-proxy does after a sync.

UDP has no connection teardown, so a conntrack entry created while a Service
had no endpoints (or pointed at an endpoint that is now gone) keeps steering
the client's packets to nowhere until it times out. kube-proxy therefore
deletes, after each successful sync:
- entries to a Service IP:port that just got its first endpoint, and to its
  NodePort;
- entries DNATed to an endpoint that was removed, for each Service IP and the
  NodePort.

TCP has the same trap in the states that outlive a connection's socket,
which keep their NAT binding when a new connection reuses the client's
source port: CLOSE (the server reset the connection; a reset leaves the
client no TIME_WAIT, so its kernel hands the port out again at once;
nf_conntrack_tcp_timeout_close, 10 s), TIME_WAIT when the client closed
first (120 s), and SYN_SENT (a SYN that met no pod, 120 s). A new SYN from
the same port matches the entry instead of being NATed afresh and goes to
the old endpoint: once that pod is gone, "Network is unreachable". So when
an endpoint leaves a Service, its TCP entries in those states go too
(connections with data in flight stay: a slice rewrite must not cut them).

This module is the thin kernel edge for that: the `conntrack` tool (from
conntrack-tools) called with argument lists, in the network namespace of the
calling process. Deciding *what* to clear is the proxier's job.
"""
from __future__ import annotations

import logging
import re
import subprocess

log = logging.getLogger(__name__)

CONNTRACK = "conntrack"
TIMEOUT = 30.0


class ConntrackError(RuntimeError):
    """The conntrack tool failed for a reason other than "nothing to delete"."""


def clear_udp(service_ip: str, port: int | None = None, endpoint_ip: str | None = None) -> int:
    """Delete UDP entries whose original destination is `service_ip`[:`port`]
    (only those DNATed to `endpoint_ip` when given). Returns how many went."""
    args = ["-p", "udp", "--orig-dst", service_ip]
    if port:
        args += ["--orig-port-dst", str(port)]
    if endpoint_ip:
        args += ["--reply-src", endpoint_ip]
    return _delete(args)


def clear_udp_node_port(node_port: int, endpoint_ip: str | None = None) -> int:
    """Delete UDP entries to NodePort `node_port` on any local address (only
    those DNATed to `endpoint_ip` when given). Returns how many went."""
    args = ["-p", "udp", "--orig-port-dst", str(node_port)]
    if endpoint_ip:
        args += ["--reply-src", endpoint_ip]
    return _delete(args)


CLOSED_TCP_STATES = ("CLOSE", "TIME_WAIT", "SYN_SENT")


def clear_closed_tcp(endpoint_ip: str, service_ip: str | None = None, port: int | None = None,
                     node_port: int | None = None) -> int:
    """Delete TCP entries in CLOSED_TCP_STATES DNATed to `endpoint_ip`
    (reply source) for `service_ip`:`port`, or for NodePort `node_port` on
    any local address. Returns how many went."""
    if node_port:
        target = ["--orig-port-dst", str(node_port)]
    else:
        target = ["--orig-dst", service_ip or "", *(["--orig-port-dst", str(port)] if port else [])]
    return sum(_delete(["-p", "tcp", *target, "--reply-src", endpoint_ip, "--state", state])
               for state in CLOSED_TCP_STATES)


def clear_endpoint(endpoint_ip: str, netns: str | None = None) -> int:
    """Delete every entry DNATed to (or answered by) `endpoint_ip`, any
    protocol and state: its pod is gone, so nothing of it is alive, and no
    reused source port may follow one of them there. In `netns` (a named
    network namespace, the node's) when given. Returns how many went."""
    return _delete(["--reply-src", endpoint_ip], netns)


def _delete(filter_args: list[str], netns: str | None = None) -> int:
    argv = [CONNTRACK, "-D", *filter_args]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=TIMEOUT, check=False)
    except FileNotFoundError as err:
        raise ConntrackError("the conntrack tool is not installed; install conntrack (conntrack-tools)") from err
    output = (proc.stdout + proc.stderr).decode(errors="replace")
    match = re.search(r"(\d+) flow entries have been deleted", output)
    deleted = int(match.group(1)) if match else 0
    # conntrack exits 1 when nothing matched ("0 flow entries have been deleted").
    if proc.returncode != 0 and deleted == 0 and not match:
        raise ConntrackError(f"{' '.join(argv)} failed (exit {proc.returncode}): {output.strip()}")
    if deleted:
        log.debug("conntrack %s: deleted %d entries", " ".join(filter_args), deleted)
    return deleted


SYSCTL_DIR = "/proc/sys/net/netfilter"


def in_initial_netns() -> bool:
    """True when this process is known to share PID 1's network namespace
    (the machine's own); False when it is not, or PID 1's cannot be read
    (the caller must know it runs in a node namespace)."""
    import os
    try:
        return os.stat("/proc/self/ns/net").st_ino == os.stat("/proc/1/ns/net").st_ino
    except PermissionError:
        return False


def set_sysctls(values: dict[str, int]) -> list[str]:
    """Write the per-network-namespace conntrack sysctls (`nf_conntrack_*`
    names under /proc/sys/net/netfilter) of this process's namespace, as
    kube-proxy's conntrack setup does; returns what was written. Refuses to
    touch the machine's own namespace (nodes here are namespaces)."""
    if values and in_initial_netns():
        raise PermissionError("refusing to set conntrack sysctls in the initial network namespace")
    written = []
    for name, value in values.items():
        path = f"{SYSCTL_DIR}/{name}"
        with open(path) as f:
            if f.read().strip() == str(value):
                continue
        with open(path, "w") as f:
            f.write(str(value))
        written.append(f"net.netfilter.{name}={value}")
    return written
