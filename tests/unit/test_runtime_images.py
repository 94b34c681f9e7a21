"""Image references, pull policy, archive detection and the runtime layer's
/proc parsing, without root or network: tables against kubelet/containerd."""
from __future__ import annotations

import io
import json
import tarfile

import pytest

from agent.node.runtime import cgroups, images, kernel, oci, reference
from agent.node.runtime.errors import ImageLoadError, ImageNeverPull, InvalidImageName

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("image, name, repository, tag, digest", [
    ("busybox", "docker.io/library/busybox:latest", "docker.io/library/busybox", "latest", ""),
    ("myapp:dev", "docker.io/library/myapp:dev", "docker.io/library/myapp", "dev", ""),
    ("user/app:1", "docker.io/user/app:1", "docker.io/user/app", "1", ""),
    ("index.docker.io/foo", "docker.io/library/foo:latest", "docker.io/library/foo", "latest", ""),
    ("localhost/app", "localhost/app:latest", "localhost/app", "latest", ""),
    ("localhost:5000/a/b:v2", "localhost:5000/a/b:v2", "localhost:5000/a/b", "v2", ""),
    ("127.0.0.1:5000/busybox:t", "127.0.0.1:5000/busybox:t", "127.0.0.1:5000/busybox", "t", ""),
    ("registry.k8s.io/e2e-test-images/agnhost:2.43",
     "registry.k8s.io/e2e-test-images/agnhost:2.43",
     "registry.k8s.io/e2e-test-images/agnhost", "2.43", ""),
    (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}", "docker.io/library/busybox",
     "", DIGEST),
    (f"busybox:1.36@{DIGEST}", f"docker.io/library/busybox:1.36@{DIGEST}",
     "docker.io/library/busybox", "1.36", DIGEST),
    ("Registry.Example.com/app", "Registry.Example.com/app:latest",
     "Registry.Example.com/app", "latest", ""),
])
def test_parse_and_normalise(image, name, repository, tag, digest):
    ref = reference.parse(image)
    assert (ref.name, ref.repository, ref.tag, ref.digest) == (name, repository, tag, digest)


@pytest.mark.parametrize("image, why", [
    ("", "repository name must have at least one component"),
    ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
    ("me/App:1", "invalid reference format: repository name (me/App) must be lowercase"),
    ("a b", "invalid reference format"),
    ("busybox:", "invalid reference format"),
    ("busybox:-tag", "invalid reference format"),
    ("busybox@sha256:abc", "invalid reference format"),
    ("busybox@sha256:" + "a" * 63 + "g", "invalid reference format"),
    ("busybox@md5:" + "a" * 32, "unsupported digest algorithm"),
    ("busybox@sha256:" + "a" * 66, "invalid checksum digest length"),
    ("a" * 64, "cannot specify 64-byte hexadecimal strings"),
    ("x" * 300, "must not be more than 255 characters"),
])
def test_invalid_image_names(image, why):
    with pytest.raises(InvalidImageName) as err:
        reference.parse(image)
    assert err.value.reason == "InvalidImageName"
    assert str(err.value).startswith(f'Failed to apply default image tag "{image}": '
                                     f"couldn't parse image name \"{image}\": ")
    assert why in str(err.value)


@pytest.mark.parametrize("image, policy", [
    ("busybox", "Always"), ("busybox:latest", "Always"), ("busybox:1.36", "IfNotPresent"),
    (f"busybox@{DIGEST}", "IfNotPresent"), (f"busybox:latest@{DIGEST}", "Always"),
])
def test_default_pull_policy(image, policy):
    assert reference.default_pull_policy(image) == policy


@pytest.mark.parametrize("image, policy, present, pull", [
    ("busybox:1.36", "IfNotPresent", True, False),
    ("busybox:1.36", "IfNotPresent", False, True),
    ("busybox:1.36", "Always", True, True),
    ("busybox:1.36", "Never", True, False),
    ("busybox", None, True, True),              # :latest defaults to Always
    ("busybox:1.36", None, True, False),
    ("busybox:1.36", "", False, True),
])
def test_pull_needed(image, policy, present, pull):
    assert reference.pull_needed(image, policy, present) is pull


def test_never_pull_missing_image():
    with pytest.raises(ImageNeverPull) as err:
        reference.pull_needed("myapp:dev", "Never", present=False)
    assert err.value.reason == "ErrImageNeverPull"
    assert str(err.value).startswith('Container image "myapp:dev" is not present with pull '
                                     'policy of Never')


def test_bad_policy_and_bad_name():
    with pytest.raises(InvalidImageName):
        reference.pull_needed("Bad", "Always", True)
    with pytest.raises(InvalidImageName, match="imagePullPolicy"):
        reference.pull_needed("busybox", "Sometimes", True)


@pytest.mark.parametrize("domain, listed, insecure", [
    ("127.0.0.1:5000", ["127.0.0.1:5000"], True),
    ("127.0.0.1:5000", ["127.0.0.1"], True),
    ("127.0.0.1:5000", ["127.0.0.0/8"], True),
    ("10.1.2.3:5000", ["127.0.0.0/8"], False),
    ("registry.local:5000", ["registry.local"], True),
    ("docker.io", ["127.0.0.1"], False),
    ("docker.io", [], False),
])
def test_insecure_registries(domain, listed, insecure):
    assert images.is_insecure(domain, listed) is insecure


def test_skopeo_message():
    stderr = ('time="2026-01-01T00:00:00Z" level=fatal msg="initializing source '
              'docker://x: pinging container registry x: Get \\"https://x/v2/\\": http: '
              'server gave HTTP response to HTTPS client"\n')
    msg = images.skopeo_message(stderr)
    assert msg.endswith('Get "https://x/v2/": http: server gave HTTP response to HTTPS client')
    assert "insecure" in images._pull_hint(msg, "x")


def _tar(path, files: dict) -> str:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def test_archive_kinds(tmp_path):
    manifest = [{"Config": "c.json", "RepoTags": ["myapp:dev"], "Layers": []}]
    docker = _tar(tmp_path / "d.tar", {"manifest.json": json.dumps(manifest).encode()})
    assert images._archive_kind(docker) == ("docker", manifest)
    index = {"schemaVersion": 2, "manifests": []}
    oci_tar = _tar(tmp_path / "o.tar", {"oci-layout": b"{}", "index.json":
                                         json.dumps(index).encode()})
    assert images._archive_kind(oci_tar) == ("oci", index)
    with pytest.raises(ImageLoadError, match="neither a docker-archive"):
        images._archive_kind(_tar(tmp_path / "x.tar", {"hello": b"x"}))
    (tmp_path / "junk.tar").write_bytes(b"not a tar")
    with pytest.raises(ImageLoadError, match="cannot read it"):
        images._archive_kind(str(tmp_path / "junk.tar"))


def test_load_plans_name_images_like_containerd(tmp_path):
    store = images.ImageStore(str(tmp_path / "nsplane-store"))
    docker = [{"RepoTags": ["myapp:dev", "reg.local:5000/team/app:1"]}]
    assert store._load_plans("docker", docker, "/a.tar", None) == [
        ("docker-archive:/a.tar:@0", ["docker.io/library/myapp:dev",
                                      "reg.local:5000/team/app:1"])]
    oci_index = {"manifests": [{"annotations": {
        "org.opencontainers.image.ref.name": "latest",
        "io.containerd.image.name": "docker.io/library/web:latest"}}]}
    assert store._load_plans("oci", oci_index, "/o.tar", None) == [
        ("oci-archive:/o.tar:latest", ["docker.io/library/web:latest"])]
    with pytest.raises(ImageLoadError, match="carries no name"):
        store._load_plans("docker", [{"RepoTags": None}], "/a.tar", None)
    assert store._load_plans("docker", [{"RepoTags": None}], "/a.tar", ["x:1"])[0][1] == [
        "docker.io/library/x:1"]


MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
32 31 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
90 22 0:50 / /var/lib/nsplane/c/rootfs rw - overlay overlay rw,lowerdir=/l,upperdir=/u
91 90 0:51 / /var/lib/nsplane/c/rootfs/tmp\\040dir rw - tmpfs tmpfs rw
92 22 0:52 / /var/lib/nsplane/c2/rootfs rw - overlay overlay rw,lowerdir=/l,upperdir=/u2
"""


def test_mountinfo_parsing_and_order():
    records = kernel.parse_mountinfo(MOUNTINFO)
    assert records[4].target == "/var/lib/nsplane/c/rootfs/tmp dir"
    assert records[3].fstype == "overlay" and records[3].super_options.startswith("rw,lowerdir")
    assert kernel.mounts_under("/var/lib/nsplane/c", records) == [
        "/var/lib/nsplane/c/rootfs/tmp dir", "/var/lib/nsplane/c/rootfs"]
    assert cgroups.layout(records) == cgroups.HYBRID


@pytest.mark.parametrize("targets, layout", [
    ([("/sys/fs/cgroup", "cgroup2")], cgroups.V2),
    ([("/sys/fs/cgroup", "tmpfs"), ("/sys/fs/cgroup/unified", "cgroup2")], cgroups.HYBRID),
    ([("/sys/fs/cgroup", "tmpfs"), ("/sys/fs/cgroup/memory", "cgroup")], cgroups.V1),
])
def test_cgroup_layouts(targets, layout):
    records = [kernel.MountRecord(1, 0, "/", t, "rw", f, f, "rw") for t, f in targets]
    assert cgroups.layout(records) == layout


@pytest.mark.parametrize("root, unified, layout", [
    (cgroups.CGROUP2_SUPER_MAGIC, None, cgroups.V2),               # a systemd VM: cgroup2fs
    (0x01021994, cgroups.CGROUP2_SUPER_MAGIC, cgroups.HYBRID),      # tmpfs + unified cgroup2
    (0x01021994, None, cgroups.V1),                                 # tmpfs of v1 hierarchies only
    (None, None, cgroups.V1),
])
def test_cgroup_layout_from_filesystem_types(root, unified, layout):
    assert cgroups.layout_of_magic(root, unified) == layout


def test_cgroup_layout_of_this_machine_agrees_with_its_mount_table():
    assert cgroups.layout() == cgroups.layout(kernel.mounts())


def test_cgroup_removal_only_touches_our_paths(tmp_path):
    assert cgroups.remove("/kubepods/pod1/c") == []
    assert cgroups.remove("relative/nsplane") == []
    root = tmp_path / "memory"
    (root / "nsplane-x" / "pod" / "c").mkdir(parents=True)
    (root / "nsplane-x" / "other").mkdir()
    records = [kernel.MountRecord(1, 0, "/", str(root), "rw", "cgroup", "cgroup", "rw,memory")]
    removed = cgroups.remove("/nsplane-x/pod/c", records)
    assert removed == [str(root / "nsplane-x" / "pod" / "c"), str(root / "nsplane-x" / "pod")]
    assert (root / "nsplane-x" / "other").is_dir()


@pytest.mark.parametrize("parts, cid", [
    (("uid-1", "web", 0), "nsplane-uid-1-web-0"),
    (("a/b", "c d"), "nsplane-a-b-c-d"),
])
def test_container_ids(parts, cid):
    assert oci.container_id(*parts) == cid


def test_oom_counter_files(tmp_path):
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert cgroups.oom_kills(str(tmp_path)) == 2
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cgroups.oom_kills(str(v2)) == 1
    assert cgroups.oom_kills(None) == 0
