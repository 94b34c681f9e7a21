"""The volume manager without a cluster (agent/node/kubelet/volumes/manager.py):
service account tokens re-requested at 80% of their lifetime or after 24 h,
bound to the pod; volumeMounts as bind mounts (API-data volumes read-only,
subPath and subPathExpr inside the volume, never out of it); hostPath type
checks with the kubelet's messages; FailedMount text for a missing object."""
import os

import pytest

from agent.api.client import APIStatusError
from agent.node.kubelet.volumes import hostpath, manager
from agent.node.kubelet.volumes.manager import VolumeManager
from agent.node.kubelet.volumes.payload import VolumeSetupError
from agent.node.runtime.errors import ContainerConfigError
from agent.node.runtime.spec import Mount


class FakeClient:
    def __init__(self):
        self.requests = []
        self.objects = {}

    def request(self, method, path, body=None, query=None):
        self.requests.append((method, path, body))
        return {"spec": {"expirationSeconds": body["spec"]["expirationSeconds"]},
                "status": {"token": f"token-{len(self.requests)}"}}

    def get(self, resource, name, namespace=None):
        if (resource, namespace, name) in self.objects:
            return self.objects[(resource, namespace, name)]
        raise APIStatusError({"code": 404, "message": "not found"})


POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
       "spec": {"serviceAccountName": "robot", "containers": [{"name": "c"}]}}


@pytest.fixture
def vm(tmp_path_factory):
    return VolumeManager(FakeClient(), lambda pod: None, {"cpu": "2", "memory": "1Gi"},
                         os.path.join(str(tmp_path_factory.mktemp("node")), "claims"))


def test_tokens_are_bound_to_the_pod_and_refreshed_at_80_percent(vm, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(manager.time, "time", lambda: now[0])
    assert vm._token(POD, "", 3600) == "token-1"
    method, path, body = vm.client.requests[0]
    assert (method, path) == ("POST", "/api/v1/namespaces/ns/serviceaccounts/robot/token")
    assert body["spec"]["boundObjectRef"] == {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "u1"}
    assert body["spec"]["audiences"] == [] and body["spec"]["expirationSeconds"] == 3600
    now[0] += 0.79 * 3600
    assert vm._token(POD, "", 3600) == "token-1"
    now[0] += 0.02 * 3600
    assert vm._token(POD, "", 3600) == "token-2"
    assert vm._token(POD, "vault", 3600) == "token-3"          # one token per audience
    assert vm.client.requests[-1][2]["spec"]["audiences"] == ["vault"]


def test_long_tokens_are_refreshed_after_a_day(vm, monkeypatch):
    now = [0.0]
    monkeypatch.setattr(manager.time, "time", lambda: now[0])
    vm._token(POD, "", 30 * 86400)
    now[0] = 86400 + 1
    assert vm._token(POD, "", 30 * 86400) == "token-2"


def test_a_failed_refresh_keeps_the_valid_token(vm, monkeypatch):
    now = [0.0]
    monkeypatch.setattr(manager.time, "time", lambda: now[0])
    vm._token(POD, "", 3600)

    def refuse(*a, **k):
        raise APIStatusError({"code": 500, "message": "etcd down"})
    vm.client.request = refuse
    now[0] = 3000
    assert vm._token(POD, "", 3600) == "token-1"
    now[0] = 3700
    with pytest.raises(VolumeSetupError, match="failed to fetch token: etcd down"):
        vm._token(POD, "", 3600)


def test_missing_configmap_is_the_kubelet_failed_mount(vm, tmp_path):
    pod = {**POD, "spec": {**POD["spec"], "volumes": [{"name": "cfg", "configMap": {"name": "late"}}]}}
    with pytest.raises(VolumeSetupError) as e:
        vm.setup(pod, str(tmp_path))
    assert str(e.value) == 'MountVolume.SetUp failed for volume "cfg" : configmap "late" not found'
    vm.client.objects[("configmaps", "ns", "late")] = {"data": {"k": "v"}}
    vm._pods["u1"].failed = None            # what a change of the ConfigMap does
    vm.setup(pod, str(tmp_path))
    path = manager.volume_dir(str(tmp_path), pod["spec"]["volumes"][0])
    assert path.endswith("volumes/kubernetes.io~configmap/cfg")
    assert open(os.path.join(path, "k")).read() == "v"


def test_mounts_subpaths_and_read_only(vm, tmp_path):
    pod = {**POD, "spec": {**POD["spec"], "volumes": [
        {"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "web"}}]}}
    vm.client.objects[("configmaps", "ns", "web")] = {"data": {"site.conf": "x"}}
    vm.setup(pod, str(tmp_path))
    ctr = {"name": "c", "volumeMounts": [
        {"name": "data", "mountPath": "/data"},
        {"name": "data", "mountPath": "/logs", "subPathExpr": "$(POD_NAME)/logs", "readOnly": True},
        {"name": "cfg", "mountPath": "/etc/nginx/conf.d"},
        {"name": "cfg", "mountPath": "/etc/site.conf", "subPath": "site.conf"}]}
    mounts = vm.mounts(pod, str(tmp_path), ctr, {"POD_NAME": "p"})
    data = manager.volume_dir(str(tmp_path), pod["spec"]["volumes"][0])
    cfg = manager.volume_dir(str(tmp_path), pod["spec"]["volumes"][1])
    assert mounts[0] == Mount("/data", data)
    assert mounts[1] == Mount("/logs", os.path.join(os.path.realpath(data), "p/logs"), readonly=True)
    assert os.path.isdir(mounts[1].source)
    assert mounts[2] == Mount("/etc/nginx/conf.d", cfg, readonly=True)
    assert mounts[3].readonly and mounts[3].source.startswith(os.path.realpath(cfg) + "/..20")   # the file itself


def test_claims_are_node_directories_that_outlive_their_pods(vm, tmp_path):
    pod = {**POD, "spec": {**POD["spec"], "volumes": [
        {"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}},
        {"name": "ro", "persistentVolumeClaim": {"claimName": "shared", "readOnly": True}}]}}
    vm.setup(pod, str(tmp_path / "pod1"))
    ctr = {"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "ro", "mountPath": "/ro"}]}
    data, ro = vm.mounts(pod, str(tmp_path / "pod1"), ctr, {})
    assert data == Mount("/data", os.path.join(vm.claims_dir, "ns", "data-db-0"))
    assert ro.readonly and not data.readonly
    with open(os.path.join(data.source, "row"), "w") as f:
        f.write("kept")
    vm.teardown("u1", str(tmp_path / "pod1"))
    again = {**pod, "metadata": {**pod["metadata"], "uid": "u2"}}      # the StatefulSet's new pod
    vm.setup(again, str(tmp_path / "pod2"))
    with open(os.path.join(vm.mounts(again, str(tmp_path / "pod2"), ctr, {})[0].source, "row")) as f:
        assert f.read() == "kept"
    bad = {**POD, "spec": {**POD["spec"], "volumes": [{"name": "x", "persistentVolumeClaim": {"claimName": "../x"}}]}}
    with pytest.raises(VolumeSetupError, match="invalid claimName"):
        vm.setup(bad, str(tmp_path / "pod3"))


def test_subpath_may_not_leave_the_volume(vm, tmp_path):
    pod = {**POD, "spec": {**POD["spec"], "volumes": [{"name": "data", "emptyDir": {}}]}}
    vm.setup(pod, str(tmp_path))
    data = manager.volume_dir(str(tmp_path), pod["spec"]["volumes"][0])
    os.symlink("/etc", os.path.join(data, "escape"))
    with pytest.raises(ContainerConfigError, match="outside the volume"):
        vm.mounts(pod, str(tmp_path), {"name": "c", "volumeMounts": [
            {"name": "data", "mountPath": "/x", "subPath": "escape"}]}, {})
    with pytest.raises(ContainerConfigError, match="must be a relative path"):
        vm.mounts(pod, str(tmp_path), {"name": "c", "volumeMounts": [
            {"name": "data", "mountPath": "/x", "subPathExpr": "$(UP)/x"}]}, {"UP": ".."})


def test_hostpath_types(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert hostpath.check(str(tmp_path / "new"), "DirectoryOrCreate") and (tmp_path / "new").is_dir()
    assert not hostpath.check(str(tmp_path / "new.txt"), "FileOrCreate")
    assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o644
    assert not hostpath.check(str(f), "File")
    with pytest.raises(VolumeSetupError, match=f"^hostPath type check failed: {f} is not a directory$"):
        hostpath.check(str(f), "Directory")
    with pytest.raises(VolumeSetupError, match="is not a socket file"):
        hostpath.check(str(f), "Socket")
    with pytest.raises(VolumeSetupError, match="is not a block device"):
        hostpath.check(str(tmp_path / "absent"), "BlockDevice")


def test_fs_group_owns_the_files_and_is_not_rewritten(vm, tmp_path):
    pod = {**POD, "spec": {**POD["spec"], "securityContext": {"fsGroup": 4321}, "volumes": [
        {"name": "s", "configMap": {"name": "web", "defaultMode": 0o400}}, {"name": "scratch", "emptyDir": {}}]}}
    vm.client.objects[("configmaps", "ns", "web")] = {"data": {"k": "v"}}
    vm.setup(pod, str(tmp_path))
    cfg = manager.volume_dir(str(tmp_path), pod["spec"]["volumes"][0])
    st = os.stat(os.path.join(cfg, "k"))
    assert (st.st_gid, st.st_mode & 0o7777) == (4321, 0o440)
    scratch = os.stat(manager.volume_dir(str(tmp_path), pod["spec"]["volumes"][1]))
    assert scratch.st_gid == 4321 and scratch.st_mode & 0o2000
    before = os.readlink(os.path.join(cfg, "..data"))
    vm._resync(vm._pods["u1"])
    assert os.readlink(os.path.join(cfg, "..data")) == before
