"""The OCI spec builder and its pure helpers, without root: tables of
Kubernetes inputs against what containerd + the kubelet would produce."""
from __future__ import annotations

import os

import pytest

from agent.node.runtime import process as proc_mod
from agent.node.runtime import resources, spec
from agent.node.runtime.errors import ContainerConfigError, ContainerCreateError
from agent.node.runtime.spec import Mount, NodeInfo, PodNamespaces

NETNS = "/run/netns/nsplane-t-pod"
DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
                "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
                "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
IMAGE = {"Entrypoint": ["/docker-entrypoint.sh"], "Cmd": ["nginx", "-g", "daemon off;"],
         "Env": ["PATH=/usr/sbin:/usr/bin", "NGINX_VERSION=1.25"], "WorkingDir": "/srv"}


@pytest.fixture
def rootfs(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                "app:x:1000:1000::/home/app:/bin/sh\n"
                                "nginx:x:101:101::/var/cache/nginx:/sbin/nologin\n")
    (etc / "group").write_text("root:x:0:\nwheel:x:10:root\napp:x:1000:\n"
                               "staff:x:50:app,nginx\nnginx:x:101:\n")
    return str(tmp_path)


def pod(name="web", containers=None, **spec_fields) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "uid": "1234"},
            "spec": {"containers": containers or [{"name": "c"}], **spec_fields}}


def build(rootfs, container=None, p=None, image=IMAGE, **kwargs):
    container = container or {"name": "c"}
    p = p or pod(containers=[container])
    kwargs.setdefault("namespaces", PodNamespaces(network=NETNS))
    return spec.container_spec(p, container, rootfs=rootfs, cgroups_path="/nsplane/1234/c",
                               image_config=image, **kwargs)


# ---- command, args, env, cwd ------------------------------------------------------

@pytest.mark.parametrize("container, argv", [
    ({}, ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]),
    ({"command": ["sleep"]}, ["sleep"]),                          # command drops CMD
    ({"command": ["sleep"], "args": ["10"]}, ["sleep", "10"]),
    ({"args": ["nginx-debug"]}, ["/docker-entrypoint.sh", "nginx-debug"]),  # args replace CMD
    ({"command": ["echo", "$(GREETING) $(MISSING) $$(GREETING) $$ $x"],
      "env": [{"name": "GREETING", "value": "hi"}]},
     ["echo", "hi $(MISSING) $(GREETING) $ $x"]),
])
def test_command_and_args(rootfs, container, argv):
    assert build(rootfs, {"name": "c", **container})["process"]["args"] == argv


def test_no_command_anywhere_is_an_error(rootfs):
    with pytest.raises(ContainerCreateError, match="no command specified"):
        build(rootfs, image={})


@pytest.mark.parametrize("text, env, want", [
    ("$(A)", {"A": "1"}, "1"),
    ("$(A", {"A": "1"}, "$(A"),
    ("$$(A)", {"A": "1"}, "$(A)"),
    ("a$", {}, "a$"),
    ("$(B)-$(A)", {"A": "x", "B": "y"}, "y-x"),
    ("$(UNSET)", {}, "$(UNSET)"),
    ("$B", {"B": "1"}, "$B"),
])
def test_expansion(text, env, want):
    assert proc_mod.expand(text, env) == want


def test_env_image_first_then_container_overrides_in_place(rootfs):
    container = {"name": "c", "env": [{"name": "NGINX_VERSION", "value": "2"},
                                      {"name": "A", "value": "a"},
                                      {"name": "B", "value": "$(A)b"}]}
    assert build(rootfs, container)["process"]["env"] == [
        "PATH=/usr/sbin:/usr/bin", "NGINX_VERSION=2", "A=a", "B=ab"]


def test_env_gets_a_path_when_nobody_gives_one(rootfs):
    env = build(rootfs, image={"Cmd": ["x"]})["process"]["env"]
    assert env == [proc_mod.DEFAULT_PATH]


def test_env_value_from_needs_resolution(rootfs):
    container = {"name": "c", "env": [{"name": "IP", "valueFrom": {"fieldRef": {}}}]}
    with pytest.raises(ContainerConfigError, match="valueFrom"):
        build(rootfs, container)
    done = build(rootfs, container, env=[("IP", "10.244.0.5")])
    assert done["process"]["env"][-1] == "IP=10.244.0.5"


@pytest.mark.parametrize("container, image, cwd", [
    ({}, IMAGE, "/srv"),
    ({"workingDir": "/data"}, IMAGE, "/data"),
    ({}, {"Cmd": ["x"]}, "/"),
])
def test_working_dir(rootfs, container, image, cwd):
    assert build(rootfs, {"name": "c", **container}, image=image)["process"]["cwd"] == cwd


# ---- users and groups ---------------------------------------------------------------

@pytest.mark.parametrize("image_user, pod_sc, container_sc, uid, gid, gids", [
    ("", {}, {}, 0, 0, [0, 10]),
    ("nginx", {}, {}, 101, 101, [101, 50]),
    ("1000", {}, {}, 1000, 1000, [1000, 50]),
    ("1000:50", {}, {}, 1000, 50, [50]),
    ("app:wheel", {}, {}, 1000, 10, [10, 50]),
    ("4242", {}, {}, 4242, 0, [0]),                        # not in passwd: gid 0
    ("nginx", {"runAsUser": 1000}, {}, 1000, 1000, [1000, 50]),
    ("nginx", {"runAsUser": 1000}, {"runAsUser": 101}, 101, 101, [101, 50]),
    ("", {"runAsUser": 1000, "runAsGroup": 3000}, {}, 1000, 3000, [3000, 50]),
    ("", {"runAsGroup": 3000}, {}, 0, 3000, [3000, 10]),
    ("", {"runAsUser": 1000, "supplementalGroups": [4000, 50], "fsGroup": 2000}, {},
     1000, 1000, [1000, 50, 4000, 2000]),
])
def test_user(rootfs, image_user, pod_sc, container_sc, uid, gid, gids):
    container = {"name": "c", "securityContext": container_sc}
    p = pod(containers=[container], securityContext=pod_sc)
    user = build(rootfs, container, p, image=dict(IMAGE, User=image_user))["process"]["user"]
    assert (user["uid"], user["gid"], user["additionalGids"]) == (uid, gid, gids)


@pytest.mark.parametrize("image_user, message", [
    ("nobody", "unable to find user nobody: no matching entries in passwd file"),
    ("app:nogroup", "unable to find group nogroup: no matching entries in group file"),
])
def test_unknown_user_or_group(rootfs, image_user, message):
    with pytest.raises(ContainerCreateError, match=message):
        build(rootfs, image=dict(IMAGE, User=image_user))


def test_passwd_symlink_cannot_escape_the_rootfs(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    outside = tmp_path / "passwd"
    outside.write_text("evil:x:4321:4321::/:/bin/sh\n")
    (root / "etc" / "passwd").symlink_to("/../../passwd")
    assert proc_mod.secure_join(str(root), "/etc/passwd") == str(root / "passwd")
    with pytest.raises(ContainerCreateError):
        proc_mod.resolve_user(str(root), "evil")


POD_LABEL = 'pod: "web_default(1234)", container: c'


@pytest.mark.parametrize("image_user, pod_sc, container_sc, message", [
    ("", {"runAsNonRoot": True}, {},
     f"container has runAsNonRoot and image will run as root ({POD_LABEL})"),
    ("0:0", {}, {"runAsNonRoot": True},
     f"container has runAsNonRoot and image will run as root ({POD_LABEL})"),
    ("nginx", {"runAsNonRoot": True}, {},
     "container has runAsNonRoot and image has non-numeric user (nginx), cannot verify user "
     f"is non-root ({POD_LABEL})"),
    ("1000", {"runAsNonRoot": True}, {"runAsUser": 0},
     f"container's runAsUser breaks non-root policy ({POD_LABEL})"),
    ("", {"runAsNonRoot": True, "runAsUser": 1000}, {}, None),
    ("1000", {"runAsNonRoot": True}, {}, None),
    ("", {"runAsNonRoot": True}, {"runAsNonRoot": False}, None),
])
def test_run_as_non_root(rootfs, image_user, pod_sc, container_sc, message):
    container = {"name": "c", "securityContext": container_sc}
    p = pod(containers=[container], securityContext=pod_sc)
    if message is None:
        build(rootfs, container, p, image=dict(IMAGE, User=image_user))
        return
    with pytest.raises(ContainerConfigError) as err:
        build(rootfs, container, p, image=dict(IMAGE, User=image_user))
    assert str(err.value) == message
    assert err.value.reason == "CreateContainerConfigError"


# ---- capabilities and privilege -------------------------------------------------------

@pytest.mark.parametrize("caps, want", [
    (None, DEFAULT_CAPS),
    ({"add": ["NET_ADMIN"]}, DEFAULT_CAPS + ["CAP_NET_ADMIN"]),
    ({"drop": ["NET_RAW", "MKNOD"]}, [c for c in DEFAULT_CAPS if c not in
                                      ("CAP_NET_RAW", "CAP_MKNOD")]),
    ({"drop": ["ALL"]}, []),
    ({"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}, ["CAP_NET_BIND_SERVICE"]),
    ({"add": ["ALL"], "drop": ["SYS_ADMIN"]},
     [c for c in spec.ALL_CAPABILITIES if c != "CAP_SYS_ADMIN"]),
    ({"add": ["net_admin"]}, DEFAULT_CAPS + ["CAP_NET_ADMIN"]),
])
def test_capabilities(rootfs, caps, want):
    container = {"name": "c", "securityContext": {"capabilities": caps} if caps else {}}
    got = build(rootfs, container)["process"]["capabilities"]
    assert got == {"bounding": want, "effective": want, "permitted": want}


def test_unknown_capability_names_the_fix(rootfs):
    container = {"name": "c", "securityContext": {"capabilities": {"add": ["CAP_NET_ADMIN"]}}}
    with pytest.raises(ContainerCreateError, match='unknown capability "CAP_CAP_NET_ADMIN"; '
                       'write "NET_ADMIN" without the CAP_ prefix'):
        build(rootfs, container)


def test_default_security_shape(rootfs):
    s = build(rootfs)
    assert s["linux"]["maskedPaths"] == [
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
        "/sys/devices/virtual/powercap", "/proc/scsi"]
    assert s["linux"]["readonlyPaths"] == ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                           "/proc/sysrq-trigger"]
    assert s["process"]["noNewPrivileges"] is False
    assert s["process"]["terminal"] is False and "rlimits" not in s["process"]
    assert s["root"] == {"path": rootfs, "readonly": False}
    assert s["linux"]["resources"]["devices"] == [{"allow": False, "access": "rwm"}]
    mounts = {m["destination"]: m for m in s["mounts"]}
    assert list(mounts) == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys",
                            "/sys/fs/cgroup"]
    assert "ro" in mounts["/sys"]["options"] and "ro" in mounts["/sys/fs/cgroup"]["options"]
    assert s["annotations"]["io.kubernetes.cri.sandbox-name"] == "web"


def test_privileged(rootfs):
    s = build(rootfs, {"name": "c", "securityContext": {"privileged": True}})
    assert s["process"]["capabilities"]["bounding"] == list(spec.ALL_CAPABILITIES)
    assert len(spec.ALL_CAPABILITIES) == 41
    assert "maskedPaths" not in s["linux"] and "readonlyPaths" not in s["linux"]
    mounts = {m["destination"]: m for m in s["mounts"]}
    assert "rw" in mounts["/sys"]["options"] and "rw" in mounts["/sys/fs/cgroup"]["options"]
    assert s["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]


@pytest.mark.parametrize("sc, field, want", [
    ({"readOnlyRootFilesystem": True}, ("root", "readonly"), True),
    ({"allowPrivilegeEscalation": False}, ("process", "noNewPrivileges"), True),
    ({"allowPrivilegeEscalation": True}, ("process", "noNewPrivileges"), False),
])
def test_security_flags(rootfs, sc, field, want):
    s = build(rootfs, {"name": "c", "securityContext": sc})
    assert s[field[0]][field[1]] is want


def test_readonly_root_for_a_host_view(rootfs):
    assert build(rootfs, readonly_root=True)["root"]["readonly"] is True


def test_proc_mount_unmasked(rootfs):
    s = build(rootfs, {"name": "c", "securityContext": {"procMount": "Unmasked"}})
    assert "maskedPaths" not in s["linux"]


def test_sysctls(rootfs):
    p = pod(securityContext={"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start",
                                          "value": "0"}]})
    assert build(rootfs, p=p)["linux"]["sysctl"] == {"net.ipv4.ip_unprivileged_port_start": "0"}


# ---- namespaces, hostname, mounts ---------------------------------------------------------

@pytest.mark.parametrize("ns, want, hostname", [
    (PodNamespaces(network=NETNS),
     [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
      {"type": "network", "path": NETNS}], "web"),
    (PodNamespaces(network=NETNS, ipc="/proc/42/ns/ipc", uts="/run/nsplane/uts/web"),
     [{"type": "pid"}, {"type": "ipc", "path": "/proc/42/ns/ipc"},
      {"type": "uts", "path": "/run/nsplane/uts/web"}, {"type": "mount"},
      {"type": "network", "path": NETNS}], None),
    (PodNamespaces(network=NETNS, pid="/proc/42/ns/pid"),
     [{"type": "pid", "path": "/proc/42/ns/pid"}, {"type": "ipc"}, {"type": "uts"},
      {"type": "mount"}, {"type": "network", "path": NETNS}], "web"),
])
def test_namespaces_and_hostname(rootfs, ns, want, hostname):
    s = build(rootfs, namespaces=ns)
    assert s["linux"]["namespaces"] == want
    assert s.get("hostname") == hostname


def test_hostname_comes_from_spec_hostname(rootfs):
    p = pod(hostname="db-0")
    assert build(rootfs, p=p)["hostname"] == "db-0"


def test_network_namespace_is_required(rootfs):
    with pytest.raises(ContainerCreateError, match="network namespace"):
        build(rootfs, namespaces=PodNamespaces(network=""))


def test_caller_mounts(rootfs):
    s = build(rootfs, mounts=[
        Mount("/etc/resolv.conf", "/etc/netns/p/resolv.conf", readonly=True),
        Mount("/data", "/var/lib/nsplane/volumes/data"),
        Mount("/dev/shm", "/run/nsplane/pods/1234/shm"),
        Mount("/scratch", kind="tmpfs", options=("size=64m",)),
    ])
    by = {m["destination"]: m for m in s["mounts"]}
    assert [m["destination"] for m in s["mounts"]].count("/dev/shm") == 1
    assert by["/dev/shm"]["type"] == "bind"                     # the pod's shm replaces ours
    assert by["/etc/resolv.conf"] == {"destination": "/etc/resolv.conf", "type": "bind",
                                      "source": "/etc/netns/p/resolv.conf",
                                      "options": ["rbind", "rprivate", "ro"]}
    assert by["/data"]["options"] == ["rbind", "rprivate", "rw"]
    assert by["/scratch"] == {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                              "options": ["nosuid", "nodev", "rw", "size=64m"]}


@pytest.mark.parametrize("mount, message", [
    (Mount("data", "/x"), "absolute path"),
    (Mount("/data", "relative"), "absolute host path"),
    (Mount("/data", "/x", kind="nfs"), "not supported"),
])
def test_bad_mounts(rootfs, mount, message):
    with pytest.raises(ContainerCreateError, match=message):
        build(rootfs, mounts=[mount])


# ---- resources ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, value, milli", [
    ("128Mi", 134217728, 134217728000), ("1Gi", 1073741824, 1073741824000),
    ("500m", 1, 500), ("0.5", 1, 500), ("2", 2, 2000), ("1e3", 1000, 1000000),
    ("129M", 129000000, 129000000000), ("1.5Ki", 1536, 1536000), ("100n", 1, 1),
    (3, 3, 3000),
])
def test_quantities(text, value, milli):
    assert (resources.value(text), resources.milli_value(text)) == (value, milli)


def test_bad_quantity():
    with pytest.raises(ContainerConfigError, match="quantity"):
        resources.parse_quantity("12 apples")


@pytest.mark.parametrize("res, cpu, memory", [
    ({}, {"shares": 2, "period": 100000}, None),
    ({"requests": {"cpu": "250m"}}, {"shares": 256, "period": 100000}, None),
    ({"limits": {"cpu": "500m"}}, {"shares": 512, "period": 100000, "quota": 50000}, None),
    ({"requests": {"cpu": "100m"}, "limits": {"cpu": "2", "memory": "32Mi"}},
     {"shares": 102, "period": 100000, "quota": 200000}, {"limit": 33554432}),
    ({"requests": {"cpu": "1m"}, "limits": {"cpu": "1m"}},
     {"shares": 2, "period": 100000, "quota": 1000}, None),
    ({"requests": {"cpu": "300"}}, {"shares": 262144, "period": 100000}, None),
])
def test_cpu_and_memory(res, cpu, memory):
    out = resources.linux_resources({"resources": res})
    assert out["cpu"] == cpu
    assert out.get("memory") == memory


def test_swap_equals_limit_and_v2_oom_group():
    out = resources.linux_resources({"resources": {"limits": {"memory": "64Mi"}}},
                                    swap_accounting=True, cgroup_v2=True)
    assert out["memory"] == {"limit": 67108864, "swap": 67108864}
    assert out["unified"] == {"memory.oom.group": "1", "cpu.weight": "1"}
    assert "unified" not in resources.linux_resources({"resources": {"limits": {"memory": "64Mi"}}})


@pytest.mark.parametrize("shares, weight", [
    # the kubelet's (and runc's) linear map of [2, 262144] onto [1, 10000]
    (2, 1), (0, 1), (1024, 39), (102, 4), (256, 10), (262144, 10000), (10 ** 9, 10000),
])
def test_cpu_shares_to_weight(shares, weight):
    assert resources.cpu_shares_to_weight(shares) == weight


@pytest.mark.parametrize("res, weight", [
    ({}, "1"), ({"requests": {"cpu": "1"}}, "39"), ({"limits": {"cpu": "250m"}}, "10"),
    ({"requests": {"cpu": "300"}}, "10000"),
])
def test_v2_weight_follows_requests(res, weight):
    out = resources.linux_resources({"resources": res}, cgroup_v2=True)
    assert out["unified"]["cpu.weight"] == weight


GIB = 1 << 30


@pytest.mark.parametrize("containers, extra, qos, adj", [
    ([{"name": "c"}], {}, "BestEffort", 1000),
    ([{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}], {},
     "Guaranteed", -997),
    ([{"name": "c", "resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                                  "limits": {"cpu": "1", "memory": "1Gi"}}}], {},
     "Guaranteed", -997),
    ([{"name": "c", "resources": {"requests": {"memory": "1Gi"}}}], {}, "Burstable", 875),
    ([{"name": "c", "resources": {"requests": {"memory": "8Gi"}}}], {}, "Burstable", 3),
    ([{"name": "c", "resources": {"requests": {"cpu": "100m"}}}], {}, "Burstable", 999),
    ([{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
      {"name": "d"}], {}, "Burstable", 875),
    ([{"name": "c"}], {"priorityClassName": "system-node-critical", "priority": 2000001000},
     "BestEffort", -997),
])
def test_qos_and_oom_score_adj(rootfs, containers, extra, qos, adj):
    p = pod(containers=containers, **extra)
    assert resources.qos_class(p) == qos
    s = build(rootfs, containers[0], p, node=NodeInfo(memory_capacity=8 * GIB))
    assert s["process"]["oomScoreAdj"] == adj


def test_cgroups_path_and_resources_in_spec(rootfs):
    container = {"name": "c", "resources": {"limits": {"memory": "32Mi", "cpu": "250m"}}}
    s = build(rootfs, container, node=NodeInfo(swap_accounting=True))
    assert s["linux"]["cgroupsPath"] == "/nsplane/1234/c"
    assert s["linux"]["resources"]["memory"] == {"limit": 33554432, "swap": 33554432}
    assert s["linux"]["resources"]["cpu"] == {"shares": 256, "period": 100000, "quota": 25000}


def test_spec_is_json_and_pure(rootfs):
    import json
    a = build(rootfs)
    b = build(rootfs)
    assert a == b and json.loads(json.dumps(a)) == a
    assert os.listdir(rootfs) == ["etc"]        # nothing written


@pytest.mark.parametrize("kwargs, field, want", [
    ({}, "args", ["ls", "-l"]),
    ({}, "env", ["PATH=/bin", "A=1"]),
    ({"env": {"A": "2", "B": "3"}}, "env", ["PATH=/bin", "A=2", "B=3"]),
    ({"tty": True}, "env", ["PATH=/bin", "A=1", "TERM=xterm"]),
    ({"tty": True}, "terminal", True),
    ({"cwd": "/tmp"}, "cwd", "/tmp"),
    ({"user": "1000:50"}, "user", {"uid": 1000, "gid": 50}),
    ({"user": "7"}, "user", {"uid": 7, "gid": 0}),
    ({}, "noNewPrivileges", True),
])
def test_exec_process(kwargs, field, want):
    base = {"args": ["sleep", "9"], "env": ["PATH=/bin", "A=1"], "cwd": "/",
            "user": {"uid": 0, "gid": 0}, "noNewPrivileges": True, "terminal": False}
    assert spec.exec_process(base, ["ls", "-l"], **kwargs)[field] == want
    assert base["args"] == ["sleep", "9"]                # the container's spec is untouched


def test_exec_user_must_be_numeric():
    with pytest.raises(ContainerCreateError, match="numeric"):
        spec.exec_process({}, ["id"], user="nobody")
