"""Namespaces pinned on files in-process (dataplane/nspin.py), on the real
kernel: what `ip netns add` and `unshare --uts= --ipc=` made before, seen
through the same tools (`ip netns exec`, `nsenter`), from a multi-threaded
process, with every mount and file removed afterwards."""

import os
import secrets
import subprocess
import threading

import pytest

from dataplane import netns, nspin, uts

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces"),
]


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


@pytest.fixture
def pinned(tmp_path):
    name = f"nsplane-pin-{secrets.token_hex(3)}"
    files = {nspin.CLONE_NEWUTS: str(tmp_path / "uts"), nspin.CLONE_NEWIPC: str(tmp_path / "ipc")}
    idle = threading.Event()
    helper = threading.Thread(target=idle.wait, args=(30,), daemon=True)
    helper.start()       # the agent is multi-threaded: so is this process while pinning
    try:
        yield name, files, netns.create_with(name, files, "pod-a")
    finally:
        idle.set()
        for path in files.values():
            nspin.unpin(path)
            if os.path.exists(path):
                os.unlink(path)
        netns.delete(name)


def test_one_step_makes_network_uts_and_ipc(pinned):
    name, files, made = pinned
    assert made == {nspin.CLONE_NEWNET: netns.path(name), **files}
    assert netns.exists(name) and all(_mounted(p) for p in files.values())
    links = subprocess.run(["ip", "netns", "exec", name, "ip", "-o", "link"], capture_output=True,
                           text=True, check=True).stdout
    assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"]
    out = subprocess.run(["nsenter", f"--uts={files[nspin.CLONE_NEWUTS]}", "hostname"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "pod-a" and os.uname().nodename != "pod-a"
    own_ipc = os.readlink("/proc/self/ns/ipc")
    ipc = subprocess.run(["nsenter", f"--ipc={files[nspin.CLONE_NEWIPC]}", "readlink", "/proc/self/ns/ipc"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert ipc.startswith("ipc:[") and ipc != own_ipc
    assert netns.create_with(name, files) is None        # exists: nothing made


def test_hostname_read_and_set_and_sysctls_inside(pinned):
    name, files, _ = pinned
    path = files[nspin.CLONE_NEWUTS]
    assert uts.hostname_of(path) == "pod-a"
    assert not uts.ensure(path, "pod-b")          # the same namespace, renamed
    assert uts.hostname_of(path) == "pod-b" and os.uname().nodename != "pod-b"
    netns.sysctl_set(name, "net.ipv4.ip_forward", "1")
    assert netns.sysctl_get(name, "net.ipv4.ip_forward") == "1"
    inside = subprocess.run(["ip", "netns", "exec", name, "cat", "/proc/sys/net/ipv4/ip_forward"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert inside == "1"


def test_remove_leaves_no_mount(tmp_path):
    path = str(tmp_path / "uts-only")
    assert uts.ensure(path, "solo")
    assert _mounted(path)
    assert uts.remove(path)
    assert not _mounted(path) and not os.path.exists(path)


def test_failure_undoes_everything(tmp_path):
    files = {nspin.CLONE_NEWUTS: str(tmp_path / "uts"), nspin.CLONE_NEWIPC: str(tmp_path / "ipc")}
    with pytest.raises(OSError, match="sethostname"):
        nspin.pin_new(files, "x" * 100)       # longer than HOST_NAME_MAX: fails after unshare
    assert not any(_mounted(p) or os.path.exists(p) for p in files.values())
