"""The ServiceAccount admission plugin's kube-api-access volume
(agent/apiserver/admission.py) and kube-apiserver's validation of volumes
and volumeMounts (agent/apiserver/validation/volumes.py), through the
registry as a client's create goes."""
import random

import pytest

from agent.api.kinds import BY_RESOURCE
from agent.apiserver.admission import SA_MOUNT_PATH, Forbidden, admit_pod
from agent.apiserver.registry import APIError, Registry
from agent.apiserver.store import Store

POD = BY_RESOURCE["pods"]


def pod(**spec):
    return {"metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def admitted(p, sa=None):
    admit_pod(lambda ns, name: sa if sa is not None or name != "default" else None, p, random.Random(1))
    return p


def test_every_container_gets_the_api_access_volume():
    p = admitted(pod(initContainers=[{"name": "i", "image": "busybox"}]))
    vols = p["spec"]["volumes"]
    assert len(vols) == 1 and vols[0]["name"].startswith("kube-api-access-") and len(vols[0]["name"]) == 21
    sources = vols[0]["projected"]["sources"]
    assert sources[0] == {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
    assert sources[1]["configMap"] == {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    assert vols[0]["projected"]["defaultMode"] == 420
    mount = {"name": vols[0]["name"], "readOnly": True, "mountPath": SA_MOUNT_PATH}
    assert p["spec"]["containers"][0]["volumeMounts"] == [mount]
    assert p["spec"]["initContainers"][0]["volumeMounts"] == [mount]


def test_automount_false_on_the_pod_or_its_service_account():
    assert "volumes" not in admitted(pod(automountServiceAccountToken=False))["spec"]
    assert "volumes" not in admitted(pod(), sa={"automountServiceAccountToken": False})["spec"]
    assert admitted(pod(automountServiceAccountToken=True), sa={"automountServiceAccountToken": False}
                    )["spec"]["volumes"]


def test_a_container_with_its_own_mount_there_is_left_alone():
    p = pod(volumes=[{"name": "mine", "secret": {"secretName": "s"}}])
    p["spec"]["containers"][0]["volumeMounts"] = [{"name": "mine", "mountPath": SA_MOUNT_PATH}]
    assert [v["name"] for v in admitted(p)["spec"]["volumes"]] == ["mine"]


def test_unknown_service_account_is_forbidden():
    with pytest.raises(Forbidden, match=r'^pods "p" is forbidden: error looking up service account '
                                        r'default/robot: serviceaccount "robot" not found$'):
        admit_pod(lambda ns, name: None, pod(serviceAccountName="robot"))


@pytest.fixture
def reg(tmp_path):
    r = Registry(Store(str(tmp_path / "s.db")))
    r.create(BY_RESOURCE["namespaces"], None, {"metadata": {"name": "default"}})
    return r


def refused(reg, p) -> str:
    with pytest.raises(APIError) as e:
        reg.create(POD, "default", p)
    return str(e.value)


def test_created_pods_are_defaulted_and_admitted(reg):
    p = pod(volumes=[{"name": "cfg", "configMap": {"name": "web"}}, {"name": "plain"},
                     {"name": "h", "hostPath": {"path": "/srv"}}])
    p["spec"]["containers"][0]["volumeMounts"] = [{"name": "cfg", "mountPath": "/cfg"}]
    out = reg.create(POD, "default", p)
    vols = {v["name"]: v for v in out["spec"]["volumes"]}
    assert vols["cfg"]["configMap"]["defaultMode"] == 420 and vols["plain"]["emptyDir"] == {}
    assert vols["h"]["hostPath"]["type"] == ""
    assert any(n.startswith("kube-api-access-") for n in vols)
    assert [m["mountPath"] for m in out["spec"]["containers"][0]["volumeMounts"]] == ["/cfg", SA_MOUNT_PATH]


@pytest.mark.parametrize("volumes, mounts, message", [
    ([], [{"name": "nope", "mountPath": "/x"}], 'spec.containers[0].volumeMounts[0].name: Not found: "nope"'),
    ([{"name": "v", "emptyDir": {}}], [{"name": "v", "mountPath": "/x"}, {"name": "v", "mountPath": "/x"}],
     'spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/x": must be unique'),
    ([{"name": "v", "emptyDir": {}}], [{"name": "v", "mountPath": ""}],
     "spec.containers[0].volumeMounts[0].mountPath: Required value"),
    ([{"name": "v", "emptyDir": {}}], [{"name": "v", "mountPath": "/x", "subPath": "a", "subPathExpr": "b"}],
     'spec.containers[0].volumeMounts[0].subPathExpr: Invalid value: "b": subPathExpr and subPath are mutually '
     "exclusive"),
    ([{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}], [], 'spec.volumes[1].name: Duplicate value: "v"'),
    ([{"name": "v", "emptyDir": {}, "configMap": {"name": "c"}}], [],
     "spec.volumes[0].configMap: Forbidden: may not specify more than 1 volume type"),
    ([{"name": "v", "secret": {}}], [], "spec.volumes[0].secret.secretName: Required value"),
    ([{"name": "v", "configMap": {"name": "c", "items": [{"key": "k", "path": "../x"}]}}], [],
     "spec.volumes[0].configMap.items[0].path: Invalid value: \"../x\": must not contain '..'"),
    ([{"name": "v", "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "spec.nodeName"}}]}}], [],
     'spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath: Unsupported value: "spec.nodeName": supported '
     'values: "metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid"'),
    ([{"name": "v", "projected": {"sources": [{"serviceAccountToken": {"path": "t", "expirationSeconds": 60}}]}}], [],
     "spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds: Invalid value: 60: may not "
     "specify a duration less than 10 minutes"),
    ([{"name": "v", "hostPath": {"path": "/x", "type": "dir"}}], [],
     'spec.volumes[0].hostPath.type: Unsupported value: "dir"'),
])
def test_bad_volumes_are_refused_and_nothing_stored(reg, volumes, mounts, message):
    p = pod(volumes=volumes)
    p["spec"]["containers"][0]["volumeMounts"] = mounts
    assert message in refused(reg, p)
    with pytest.raises(APIError):
        reg.get(POD, "default", "p")
