"""Named network namespaces, and the few kernel helpers that span them.

Nodes and pods are named network namespaces (files under /run/netns, the ones
`ip netns list` shows). This module creates, lists and deletes them, builds the
argument list that runs a program inside one (`ip netns exec`, so the
/etc/netns/<name>/resolv.conf bind mount applies), writes per-namespace
sysctls, and owns the one tricky shared operation: a veth pair whose two ends
live in two namespaces (node<->host, pod<->node), created with the peer
already inside its target namespace and checked for correct pairing so a
half-made pair can be repaired and a foreign link is never taken over.

Namespaces are made and sysctls read and written in-process (dataplane/nspin.py:
no `ip netns add`, no `nsenter`); links, addresses and routes go through
pyroute2; netlink errors come back as `NetworkSetupError` naming the object
and the fix.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import subprocess
from contextlib import contextmanager
from typing import Iterator

from pyroute2 import IPRoute, NetlinkError
from pyroute2 import netns as _pyroute2_netns

from . import nspin

NETNS_RUN_DIR = "/run/netns"
ETC_NETNS_DIR = "/etc/netns"
_SUBPROCESS_TIMEOUT = 10


class NetworkSetupError(Exception):
    """A namespace, link, address or route could not be set up as asked."""


def path(name: str) -> str:
    """Filesystem path of named network namespace `name`."""
    return os.path.join(NETNS_RUN_DIR, name)


def exists(name: str) -> bool:
    """True if a named network namespace `name` exists."""
    return os.path.exists(path(name))


def create(name: str) -> bool:
    """Create named network namespace `name`; return False if it existed.

    In-process (dataplane/nspin.py), as `ip netns add` does it but without
    forking the agent: /run/netns made a shared mount once, then a new
    namespace bind-mounted on /run/netns/<name>.
    """
    return create_with(name) is not None


def create_with(name: str, others: dict[int, str] | None = None,
                hostname: str | None = None) -> dict[int, str] | None:
    """Create named network namespace `name` together with new namespaces of
    the kinds in `others` (nspin.CLONE_NEWUTS / CLONE_NEWIPC -> file), in one
    step; None if `name` existed (then nothing is made)."""
    if exists(name):
        return None
    global _run_dir_shared
    paths = {nspin.CLONE_NEWNET: path(name), **(others or {})}
    try:
        if not _run_dir_shared:
            nspin.shared_dir(NETNS_RUN_DIR)
            _run_dir_shared = True
        nspin.pin_new(paths, hostname)
    except OSError as exc:
        if exists(name) and not others:
            return None        # made meanwhile by someone else
        raise NetworkSetupError(
            f"network namespace {name}: cannot create it ({exc}); "
            f"check that you are root and {NETNS_RUN_DIR} is writable"
        ) from exc
    return paths


_run_dir_shared = False


def delete(name: str) -> bool:
    """Delete named network namespace `name`; return False if it was absent.

    The kernel frees the namespace (and the veth ends inside it) once no
    process runs in it any more.
    """
    if not exists(name):
        return False
    try:
        _pyroute2_netns.remove(name)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise NetworkSetupError(
            f"network namespace {name}: cannot delete it ({exc}); "
            f"try `ip netns delete {name}`"
        ) from exc
    return True


def list_names(prefix: str = "") -> list[str]:
    """Sorted names of named network namespaces starting with `prefix`."""
    try:
        names = os.listdir(NETNS_RUN_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(prefix))


def exec_argv(netns: str, argv: list[str], uts: str | None = None) -> list[str]:
    """Argument list that runs `argv` inside `netns` (and UTS file `uts`).

    `ip netns exec` bind-mounts /etc/netns/<netns>/* (resolv.conf, hosts)
    over /etc in a private mount namespace, which pod DNS relies on.
    """
    base = ["ip", "netns", "exec", netns]
    if uts is None:
        return [*base, *argv]
    return [*base, "nsenter", f"--uts={uts}", "--", *argv]


def run(netns: str, argv: list[str], uts: str | None = None,
        timeout: float = _SUBPROCESS_TIMEOUT) -> subprocess.CompletedProcess:
    """Run `argv` inside `netns` to completion, capturing text output."""
    return subprocess.run(exec_argv(netns, argv, uts), capture_output=True,
                          text=True, timeout=timeout, check=False)


@contextmanager
def ipr(netns: str | None) -> Iterator[IPRoute]:
    """An IPRoute socket in `netns` (None: the caller's own namespace)."""
    if netns is not None and not exists(netns):
        raise NetworkSetupError(
            f"network namespace {netns} does not exist; create it first"
        )
    if netns is None:
        sock = IPRoute()
    else:
        with entered(netns):   # the socket is bound to the namespace it is opened in
            sock = IPRoute()
    try:
        yield sock
    finally:
        sock.close()


_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetworkSetupError(f"setns into {what}: {os.strerror(err)}")


@contextmanager
def entered(netns: str) -> Iterator[None]:
    """Run the block with the calling *thread* inside `netns`, then return.

    A network namespace belongs to a thread, not a process, so this switches
    only the caller, with setns(2) both ways, instead of forking a helper
    process per socket as pyroute2's `IPRoute(netns=...)` does: cheaper, and
    never a fork of a multi-threaded agent (which can deadlock on a lock
    another thread holds)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(path(netns), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        os.close(own)
        raise
    try:
        _setns(target, f"network namespace {netns}")
        try:
            yield
        finally:
            _setns(own, "this thread's own network namespace")
    finally:
        os.close(target)
        os.close(own)


def socket_in(netns: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket of `netns` (a socket keeps the namespace it was made in, so
    it may then connect from anywhere): the kubelet's port-forward reaches
    a pod's localhost with it."""
    with entered(netns):
        return socket.socket(family, kind)


def current_name() -> str | None:
    """Name of the named namespace the calling thread runs in (`entered`
    moves one thread only, so /proc/thread-self, not /proc/self), if it has one."""
    try:
        mine = os.stat("/proc/thread-self/ns/net")
    except OSError:
        return None
    for name in list_names():
        try:
            st = os.stat(path(name))
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
            return name
    return None


def where(netns: str | None) -> str:
    """How to name a namespace in messages (None: the caller's own)."""
    if netns is not None:
        return netns
    return current_name() or "the current network namespace"


# ---- sysctls (always per namespace; never the root one unless it is ours) --

def sysctl_path(key: str) -> str:
    """/proc/sys path of a dotted sysctl key (interface names keep dots)."""
    return "/proc/sys/" + key.replace(".", "/")


def sysctl_get(netns: str | None, key: str) -> str:
    """Read sysctl `key` as seen from inside `netns`."""
    def read() -> str:
        with open(sysctl_path(key)) as fh:
            return fh.read().strip()
    return read() if netns is None else _in_netns(netns, read, f"read {key}")


def sysctl_set(netns: str | None, key: str, value: str) -> None:
    """Write sysctl `key` = `value` inside `netns` (None: current namespace)."""
    def write() -> None:
        with open(sysctl_path(key), "w") as fh:
            fh.write(value)
    if netns is None:
        write()
    else:
        _in_netns(netns, write, f"set {key}={value}")


def _in_netns(netns: str, fn, what: str):
    """`fn()` on a thread inside `netns` (/proc/sys/net is the calling
    thread's namespace's): no `nsenter` process."""
    if not exists(netns):
        raise NetworkSetupError(f"network namespace {netns} does not exist; create it first")
    try:
        return nspin.in_namespace(nspin.CLONE_NEWNET, path(netns), fn)
    except OSError as exc:
        raise NetworkSetupError(f"network namespace {netns}: {what} failed: {exc}") from exc


# ---- links ---------------------------------------------------------------

def link_index(sock: IPRoute, name: str) -> int | None:
    """Index of link `name` in `sock`'s namespace, or None."""
    found = sock.link_lookup(ifname=name)
    return found[0] if found else None


def link_info(sock: IPRoute, name: str):
    """The RTM_NEWLINK message of link `name`, or None."""
    index = link_index(sock, name)
    return sock.get_links(index)[0] if index is not None else None


def link_kind(msg) -> str | None:
    """"veth", "bridge", ... of a link message (None for plain devices)."""
    info = msg.get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info is not None else None


def delete_link(netns: str | None, name: str) -> bool:
    """Delete link `name` in `netns` if present; True if it was deleted."""
    if netns is not None and not exists(netns):
        return False
    with ipr(netns) as sock:
        index = link_index(sock, name)
        if index is None:
            return False
        try:
            sock.link("del", index=index)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return False
            raise NetworkSetupError(
                f"link {name} in {where(netns)}: cannot delete it ({exc})"
            ) from exc
    return True


def _paired(near, far) -> bool:
    """True if veth messages `near` and `far` point at each other."""
    if link_kind(near) != "veth" or link_kind(far) != "veth":
        return False
    return (near.get_attr("IFLA_LINK") == far["index"]
            and far.get_attr("IFLA_LINK") == near["index"])


def ensure_veth_pair(near_netns: str | None, near_if: str,
                     far_netns: str, far_if: str, what: str,
                     mtu: int | None = None) -> bool:
    """Make `near_if` (in `near_netns`) and `far_if` (in `far_netns`) a veth pair.

    Returns True if the pair was created, False if it already existed.
    A stray `far_if` in `far_netns` (whose peer is gone or elsewhere) is
    replaced, because `far_netns` belongs to `what`; an existing `near_if`
    that is not paired with it is someone else's and raises.
    """
    with ipr(near_netns) as near, ipr(far_netns) as far:
        return veth_pair_on(near, near_netns, near_if, far, far_netns, far_if, what, mtu)


def veth_pair_on(near: IPRoute, near_netns: str | None, near_if: str,
                 far: IPRoute, far_netns: str, far_if: str, what: str,
                 mtu: int | None = None) -> bool:
    """`ensure_veth_pair` on sockets already open in the two namespaces."""
    near_msg, far_msg = link_info(near, near_if), link_info(far, far_if)
    if near_msg is not None and far_msg is not None and _paired(near_msg, far_msg):
        return False
    if near_msg is not None:
        raise NetworkSetupError(
            f"{what}: link {near_if} already exists in {where(near_netns)} "
            f"and is not paired with {far_if} in {far_netns}; delete it "
            f"(ip link del {near_if}) if it is a leftover, or rename the clash"
        )
    if far_msg is not None:
        far.link("del", index=far_msg["index"])
    _add_veth(near, near_netns, near_if, far_netns, far_if, what, mtu)
    return True


def _add_veth(sock: IPRoute, near_netns: str | None, near_if: str,
              far_netns: str, far_if: str, what: str, mtu: int | None) -> None:
    peer: dict = {"ifname": far_if, "net_ns_fd": far_netns}
    extra: dict = {}
    if mtu is not None:
        peer["mtu"] = mtu
        extra["mtu"] = mtu
    try:
        sock.link("add", ifname=near_if, kind="veth", peer=peer, **extra)
    except NetlinkError as exc:
        raise NetworkSetupError(
            f"{what}: cannot create veth {near_if} in {where(near_netns)} "
            f"with peer {far_if} in {far_netns} ({exc})"
        ) from exc


def ensure_address(sock: IPRoute, index: int, address: str, prefixlen: int,
                   what: str) -> None:
    """Add `address`/`prefixlen` to link `index` unless it is there already
    (one request: the kernel's EEXIST says it was)."""
    try:
        sock.addr("add", index=index, address=address, prefixlen=prefixlen)
    except NetlinkError as exc:
        if exc.code != errno.EEXIST:
            raise NetworkSetupError(
                f"{what}: cannot add address {address}/{prefixlen} ({exc})"
            ) from exc


def ensure_up(sock: IPRoute, index: int, **attrs) -> None:
    """Bring link `index` up (setting any extra link attributes)."""
    sock.link("set", index=index, state="up", **attrs)


def ipv4_addresses(sock: IPRoute, index: int) -> list[tuple[str, int]]:
    """(address, prefixlen) of every IPv4 address on link `index`."""
    return [(m.get_attr("IFA_ADDRESS"), m["prefixlen"])
            for m in sock.get_addr(index=index, family=2)]
