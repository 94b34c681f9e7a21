"""The stand-ins' read-only host view with the mount points it lacks
(rootfs.host_view mountpoints=...): missing directories and files appear in
its tmpfs top layer, existing directories keep the host's attributes, the view
stays read-only, and removal leaves no mount behind."""
import os

import pytest

from agent.node.runtime import kernel, rootfs

pytestmark = pytest.mark.kernel


@pytest.fixture
def cdir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("nsplane-hv"))
    yield path
    rootfs.remove(path)
    assert not kernel.mounts_under(os.path.realpath(path))


def test_missing_mount_points_appear_in_the_read_only_view(cdir):
    root = rootfs.host_view(cdir, mountpoints=[("/etc/nsplane-t-missing/conf.d", True),
                                                ("/nsplane-t-program", False), ("/tmp/x", True)])
    assert os.path.isdir(os.path.join(root, "etc/nsplane-t-missing/conf.d"))
    assert os.path.isfile(os.path.join(root, "nsplane-t-program"))
    assert not os.path.exists("/nsplane-t-program") and not os.path.exists("/etc/nsplane-t-missing")
    assert os.stat(os.path.join(root, "etc")).st_mode == os.stat("/etc").st_mode
    assert os.path.exists(os.path.join(root, "etc/hostname")) or os.path.exists(os.path.join(root, "etc/passwd"))
    with pytest.raises(OSError):
        open(os.path.join(root, "etc/nsplane-t-write"), "w")


def test_without_mount_points_the_view_is_as_before(cdir):
    root = rootfs.host_view(cdir)
    assert sorted(os.listdir(root)) == sorted(os.listdir("/"))
