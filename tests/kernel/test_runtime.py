"""The runtime layer on the real kernel: images, root filesystems, crun/runc.

A busybox image is built offline (umoci + busybox-static), saved as a
docker-archive and loaded into a throwaway store; containers run from it
inside throwaway network namespaces (`nsplane-t-rt*`) with cgroups under
`/nsplane-t-rt*`. Each test's `pods` fixture deletes its containers, unmounts
and removes their root filesystems and deletes its namespace on every exit
path, then checks nothing is left. Slow tests (OOM, registry) carry the
`slow` marker so CI can run them apart; tests share no state but the
module's read-only image.
"""
from __future__ import annotations

import base64
import gzip
import json
import os
import secrets
import shutil
import subprocess
import time

import pytest

from agent.node.runtime import cgroups, images, kernel, oci, rootfs
from agent.node.runtime.errors import (ContainerStartError, ImageInUse, ImagePullError,
                                       RuntimeLayerError)
from agent.node.runtime.spec import NodeInfo, PodNamespaces, container_spec
from tests.oci_image import build_layout, local_registry, push, save_docker_archive

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and mounts"),
]

IMAGE_TAG = "nsplane-busybox:t"
IMAGE = "docker.io/library/nsplane-busybox:t"
DEFAULT_CAP_EFF = "00000000a80425fb"
VENV_PYTHON = "/opt/nsplane/venv/bin/python"
RUNTIMES = [name for name in oci.RUNTIMES if shutil.which(name)]


def _pod(name: str, **spec) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
            "spec": spec}


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """(store, lower dir, archive path) for the busybox image, loaded once."""
    work = str(tmp_path_factory.mktemp("nsplane-rt-image"))
    layout = build_layout(work, "busybox")
    archive = save_docker_archive(layout, "busybox", os.path.join(work, "busybox.tar"), IMAGE_TAG)
    store = images.ImageStore(os.path.join(work, "store"))
    store.load(archive)
    yield store, store.unpack(IMAGE), archive


class Pods:
    """One test's containers in one throwaway netns; `close` removes it all."""

    def __init__(self, runtime: oci.OCIRuntime, base: str):
        self.runtime = runtime
        self.base = base
        self.token = secrets.token_hex(3)
        self.netns = f"nsplane-t-rt{self.token}"
        self.cgroup_parent = f"/nsplane-t-rt{self.token}"
        self.cids: list[str] = []
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)

    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.netns}"

    def container_dir(self, cid: str) -> str:
        return os.path.join(self.base, cid)

    def log_path(self, cid: str) -> str:
        return os.path.join(self.base, f"{cid}.log")

    def run(self, name: str, container: dict, *, pod: dict | None = None, lower: str | None = None,
            image_config: dict | None = None, namespaces: PodNamespaces | None = None,
            hide: tuple = (), mounts: tuple = (), start: bool = True,
            readonly_root: bool = False, one_call: bool = False) -> str:
        cid = oci.container_id(self.token, name)
        cdir = self.container_dir(cid)
        self.cids.append(cid)
        root = rootfs.overlay(cdir, lower) if lower else rootfs.host_view(cdir, hide)
        container = {"name": name, **container}
        node = NodeInfo(memory_capacity=2 << 30,
                        cgroup_v2=self.runtime.cgroup_layout == cgroups.V2,
                        swap_accounting=cgroups.swap_accounting())
        config = container_spec(pod or _pod("web"), container, rootfs=root,
                                namespaces=namespaces or PodNamespaces(network=self.netns_path),
                                cgroups_path=f"{self.cgroup_parent}/{cid}",
                                image_config=image_config or {}, node=node,
                                mounts=mounts, image=IMAGE if lower else "",
                                readonly_root=readonly_root)
        with open(os.path.join(cdir, "config.json"), "w") as fh:
            json.dump(config, fh)
        if one_call:
            self.runtime.run(cid, cdir, self.log_path(cid))
            return cid
        self.runtime.create(cid, cdir, self.log_path(cid))
        if start:
            self.runtime.start(cid)
        return cid

    def logs(self, cid: str) -> str:
        with open(self.log_path(cid)) as fh:
            return fh.read()

    def finish(self, cid: str, timeout: float = 20.0) -> oci.ContainerStatus:
        status = self.runtime.wait(cid, timeout)
        assert status.state == "exited", f"{cid} still {status.state}: {self.logs(cid)}"
        return status

    def close(self) -> None:
        errors = []
        for cid in reversed(self.cids):
            try:
                self.runtime.delete(cid, force=True)
            except Exception as err:  # noqa: BLE001 - keep cleaning, report after
                errors.append(f"delete {cid}: {err}")
            try:
                rootfs.remove(self.container_dir(cid))
            except Exception as err:  # noqa: BLE001
                errors.append(f"rootfs {cid}: {err}")
        subprocess.run(["ip", "netns", "del", self.netns], check=False)
        cgroups.remove(self.cgroup_parent)
        assert not errors, errors
        assert not [c for c in self.runtime.list() if self.token in c.id]
        assert not rootfs.mounted(self.base)
        assert not [p for p in cgroups.leftovers() if self.token in p]
        assert self.netns not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                text=True).stdout


@pytest.fixture(params=RUNTIMES)
def runtime(request, tmp_path_factory):
    state = str(tmp_path_factory.mktemp(f"nsplane-rt-state-{request.param}"))
    rt = oci.OCIRuntime(state, runtime=request.param)
    try:
        yield rt
    finally:
        rt.sweep()
        rt.close()


@pytest.fixture
def pods(runtime, tmp_path_factory):
    p = Pods(runtime, str(tmp_path_factory.mktemp("nsplane-rt-pods")))
    try:
        yield p
    finally:
        p.close()


def test_load_keeps_normalised_names_and_config(image):
    store, lower, _ = image
    found = store.resolve(IMAGE_TAG)
    assert found is not None and IMAGE in found.names
    assert found.digest.startswith("sha256:") and found.size > 1_000_000
    assert store.config(IMAGE_TAG) == {"Entrypoint": ["/bin/sh"],
                                       "Cmd": ["-c", "echo hello from the image"],
                                       "Env": ["PATH=/bin"], "WorkingDir": "/"}
    assert os.path.isfile(os.path.join(lower, "bin", "busybox"))
    assert store.unpack(IMAGE_TAG) == lower


def test_load_gzipped_archive_with_a_colon_in_its_path(image, tmp_path_factory):
    store, _, archive = image
    work = tmp_path_factory.mktemp("nsplane-rt-gz")
    packed = str(work / "saved:today.tar.gz")
    with open(archive, "rb") as src, gzip.open(packed, "wb") as dst:
        shutil.copyfileobj(src, dst)
    other = images.ImageStore(str(work / "store"))
    loaded = other.load(packed)
    assert [i.names for i in loaded] == [[IMAGE]]
    assert loaded[0].digest == store.resolve(IMAGE).digest      # same content, same digest
    assert os.listdir(other.tmp) == []


def test_image_entrypoint_and_exit_code(pods, image):
    store, lower, _ = image
    cid = pods.run("plain", {}, lower=lower, image_config=store.config(IMAGE))
    status = pods.finish(cid)
    assert (status.exit_code, status.reason) == (0, "Completed")
    assert pods.logs(cid) == "hello from the image\n"
    cid = pods.run("fails", {"command": ["sh", "-c", "echo bye; exit 7"]}, lower=lower,
                   one_call=True)                     # `run --detach`: create + start
    status = pods.finish(cid)
    assert (status.exit_code, status.reason) == (7, "Error")
    assert status.started_at is not None and pods.logs(cid) == "bye\n"


SECURITY_PROBE = (
    "id; grep CapEff /proc/self/status; ps -o pid,comm; "
    "ip link add x type dummy; echo ip=$?; "
    "ls /var/lib/nsplane; ls {state}; hostname; "
    "echo timer_list=$(wc -c < /proc/timer_list) firmware=$(ls /sys/firmware | wc -l); "
    "echo x > /proc/sys/kernel/hostname; echo proc_sys=$?"
)


def test_default_security(pods, image):
    """containerd's defaults: root with the 14 capabilities, its own PIDs,
    no network admin, no host files, masked and read-only /proc paths."""
    _, lower, _ = image
    cid = pods.run("sec", {"command": ["sh", "-c", SECURITY_PROBE.format(
        state=pods.runtime.state_dir)]}, lower=lower)
    assert pods.finish(cid).exit_code == 0
    out = pods.logs(cid).splitlines()
    assert out[0] == "uid=0(root) gid=0(root) groups=0(root),10(wheel)"
    assert out[1] == f"CapEff:\t{DEFAULT_CAP_EFF}"
    assert [line.split()[1] for line in out[3:5]] == ["sh", "ps"] and out[2].split()[0] == "PID"
    assert out[5:7] == ["ip: RTNETLINK answers: Operation not permitted", "ip=2"]
    assert out[7] == "ls: /var/lib/nsplane: No such file or directory"
    assert out[8] == f"ls: {pods.runtime.state_dir}: No such file or directory"
    assert out[9] == "web"                                   # the pod's hostname
    assert out[10] == "timer_list=0 firmware=0"              # masked paths
    assert out[11:] == ["sh: can't create /proc/sys/kernel/hostname: Read-only file system",
                        "proc_sys=1"]


def test_run_as_user_and_groups(pods, image):
    _, lower, _ = image
    pod = _pod("web", securityContext={"runAsUser": 1000, "supplementalGroups": [4000],
                                       "fsGroup": 2000})
    cid = pods.run("user", {"command": ["sh", "-c", "id; grep CapEff /proc/self/status"]},
                   pod=pod, lower=lower)
    pods.finish(cid)
    out = pods.logs(cid)
    # the kernel lists the groups sorted
    assert "uid=1000(app) gid=1000(app) groups=50(staff),1000(app),2000,4000" in out
    assert "CapEff:\t0000000000000000" in out       # non-root: no effective capabilities


def test_read_only_root_filesystem(pods, image):
    _, lower, _ = image
    cid = pods.run("ro", {"command": ["sh", "-c", "touch /x 2>&1; echo rc=$?; touch /tmp/y"],
                          "securityContext": {"readOnlyRootFilesystem": True}}, lower=lower)
    status = pods.finish(cid)
    assert "Read-only file system" in pods.logs(cid) and "rc=1" in pods.logs(cid)
    assert status.exit_code == 1


@pytest.mark.slow
def test_memory_limit_oom_killed(pods, image):
    _, lower, _ = image
    hog = "x=aaaaaaaa; while :; do x=$x$x; done"
    cid = pods.run("hog", {"command": ["sh", "-c", hog],
                           "resources": {"limits": {"memory": "32Mi"}}}, lower=lower)
    status = pods.finish(cid, timeout=60)
    assert (status.exit_code, status.reason) == (137, "OOMKilled")


def test_second_container_shares_network_ipc_uts(pods, image):
    _, lower, _ = image
    server = pods.run("server", {"command": ["httpd", "-f", "-p", "8080", "-h", "/www"]},
                      lower=lower)
    pid = pods.runtime.status(server).pid
    rc, ipc_a, _ = pods.runtime.exec_sync(server, ["readlink", "/proc/self/ns/ipc"])
    assert rc == 0
    joined = PodNamespaces(network=pods.netns_path, ipc=f"/proc/{pid}/ns/ipc",
                           uts=f"/proc/{pid}/ns/uts")
    probe = ("for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - http://127.0.0.1:8080/ && break; "
             "sleep 0.2; done; hostname; readlink /proc/self/ns/ipc")
    client = pods.run("client", {"command": ["sh", "-c", probe]}, lower=lower,
                      namespaces=joined)
    pods.finish(client)
    out = pods.logs(client).splitlines()
    assert out[0] == "hello from nsplane"
    assert out[1] == "web"
    assert out[2] == ipc_a.decode().strip()


def test_exec_streams_and_exit_code(pods, image):
    _, lower, _ = image
    cid = pods.run("sleeper", {"command": ["sleep", "30"]}, lower=lower)
    proc = pods.runtime.exec(cid, ["sh", "-c", "cat; echo err >&2; exit 3"], env={"A": "1"})
    out, err = proc.communicate(b"piped in\n", timeout=10)
    assert (proc.returncode, out, err) == (3, b"piped in\n", b"err\n")
    rc, out, _ = pods.runtime.exec_sync(cid, ["sh", "-c", "echo $A; id -u"], env={"A": "2"})
    assert (rc, out) == (0, b"2\n0\n")
    # `sleep` is PID 1 of its namespace: it has no SIGTERM handler, so the
    # kernel ignores TERM and the grace period ends in SIGKILL (as on a cluster).
    status = pods.runtime.stop(cid, grace=0.5)
    assert status.state == "exited" and status.exit_code == 137
    with pytest.raises(RuntimeLayerError) as err:
        pods.runtime.exec(cid, ["true"])
    assert err.value.reason == "ContainerNotRunning"


def test_exec_with_a_terminal(pods, image):
    _, lower, _ = image
    cid = pods.run("shell", {"command": ["sleep", "30"]}, lower=lower)
    proc = pods.runtime.exec(cid, ["sh"], tty=True)
    pods.runtime.resize(proc, 40, 120)
    out, _ = proc.communicate(b"tty; echo in-shell $((6*7))\nexit 3\n", timeout=10)
    assert proc.returncode == 3
    assert b"/dev/pts/0\r\n" in out and b"in-shell 42\r\n" in out


def test_status_survives_a_new_driver(pods, image):
    """A restarted agent (a new OCIRuntime on the same state) still learns exit codes."""
    _, lower, _ = image
    cid = pods.run("later", {"command": ["sh", "-c", "sleep 0.5; exit 4"]}, lower=lower)
    again = oci.OCIRuntime(pods.runtime.state_dir)
    assert again.name == pods.runtime.name
    assert cid in [c.id for c in again.list()]
    assert again.status(cid).state == "running"
    status = again.wait(cid, 10)
    assert (status.state, status.exit_code) == ("exited", 4)


def test_killed_monitor_means_unknown_exit(pods, image):
    """Without its monitor a container still runs, but its exit status is lost."""
    _, lower, _ = image
    cid = pods.run("orphan", {"command": ["sleep", "30"]}, lower=lower)
    info = json.load(open(os.path.join(pods.runtime.containers_dir, cid, "monitor.json")))
    os.kill(info["pid"], 9)
    deadline = time.monotonic() + 5
    while kernel.process_alive(info["pid"], info["startTicks"]) and time.monotonic() < deadline:
        time.sleep(0.01)
    status = pods.runtime.status(cid)
    assert (status.state, status.pid) == ("running", info["containerPid"])
    assert "monitor is gone" in status.message
    pods.runtime.kill(cid, 9)
    deadline = time.monotonic() + 5
    while pods.runtime.status(cid).state == "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    status = pods.runtime.status(cid)
    assert (status.state, status.exit_code, status.reason) == ("unknown", 255, "Unknown")


@pytest.mark.parametrize("one_call", [False, True])
def test_create_failure_leaves_nothing(pods, image, one_call):
    _, lower, _ = image
    with pytest.raises(ContainerStartError) as err:
        pods.run("missing", {"command": ["/no/such/program"]}, lower=lower, one_call=one_call)
    assert "/no/such/program" in str(err.value) and "ENTRYPOINT" in str(err.value)
    cid = pods.cids[-1]
    assert cid not in [c.id for c in pods.runtime.list()]
    assert not os.path.exists(os.path.join(pods.runtime.containers_dir, cid))


@pytest.mark.parametrize("readonly_root", [True, False])
def test_host_view_runs_venv_python_without_state(pods, readonly_root):
    """The stand-ins' root: the host's files, read-only whatever the spec says
    (crun would remount a read-only bind writable), without the state dir."""
    state = pods.runtime.state_dir
    probe = f"/nsplane-t-probe-{pods.token}"
    script = ("import os, sys; print(sys.executable); "
              f"print(os.path.exists('/var/lib/nsplane'), os.path.exists({state!r})); "
              f"open({probe!r}, 'w')")
    try:
        cid = pods.run("standin", {"command": [VENV_PYTHON, "-u", "-c", script]},
                       hide=(state,), readonly_root=readonly_root)
        status = pods.finish(cid)
        assert not os.path.exists(probe)
    finally:
        if os.path.exists(probe):
            os.unlink(probe)
    out = pods.logs(cid)
    assert out.startswith(f"{VENV_PYTHON}\nFalse False\n"), out
    assert "Read-only file system" in out and status.exit_code == 1


def _push(store: images.ImageStore, target: str, creds: str = "") -> None:
    push(store.layout, IMAGE, target, creds)


@pytest.fixture
def registry(tmp_path_factory):
    with local_registry(tmp_path_factory.mktemp("nsplane-rt-registry")) as address:
        yield address


@pytest.mark.slow
def test_pull_from_local_registry(image, registry, tmp_path_factory):
    store, _, _ = image
    target = f"{registry}/nsplane/busybox:t"
    _push(store, target)
    fresh = images.ImageStore(str(tmp_path_factory.mktemp("nsplane-rt-pulled")))
    with pytest.raises(ImagePullError) as err:
        fresh.pull(target)
    assert err.value.reason == "ErrImagePull" and "insecure" in str(err.value)
    pulled = fresh.pull(target, insecure_registries=[registry])
    assert pulled.digest == store.resolve(IMAGE).digest
    assert pulled.names == [target]
    assert fresh.config(target)["Entrypoint"] == ["/bin/sh"]


@pytest.mark.slow
def test_pull_with_credentials(image, tmp_path_factory):
    store, _, _ = image
    work = tmp_path_factory.mktemp("nsplane-rt-registry-auth")
    with local_registry(work, users={"alice": "s3cret"}) as address:
        target = f"{address}/private/busybox:1"
        _push(store, target, creds="alice:s3cret")
        fresh = images.ImageStore(str(work / "store"))
        for auth in (None, {"username": "alice", "password": "wrong"}):
            with pytest.raises(ImagePullError, match="unauthorized.*check the registry "
                               "credentials"):
                fresh.pull(target, insecure_registries=[address], auth=auth)
        token = base64.b64encode(b"alice:s3cret").decode()
        pulled = fresh.pull(target, insecure_registries=[address], auth={"auth": token})
        assert pulled.digest == store.resolve(IMAGE).digest
        assert os.listdir(fresh.tmp) == []                 # the auth file is gone


def test_remove_refuses_image_in_use(pods, image, tmp_path_factory):
    _, _, archive = image
    store = images.ImageStore(str(tmp_path_factory.mktemp("nsplane-rt-own-store")))
    store.load(archive)
    lower = store.unpack(IMAGE)
    cid = pods.run("user", {"command": ["sleep", "30"]}, lower=lower)
    with pytest.raises(ImageInUse):
        store.remove(IMAGE)
    pods.runtime.delete(cid, force=True)
    rootfs.remove(pods.container_dir(cid))
    store.remove(IMAGE)
    assert store.list() == [] and not os.path.exists(lower)
