"""What configMap, secret, downwardAPI and projected volumes hold
(agent/node/kubelet/volumes/payload.py), with the kubelet's error texts, and
the projected writer end to end: the default kube-api-access volume written
through the atomic writer."""
import base64
import os

import pytest

from agent.apiserver.admission import api_access_volume
from agent.node.kubelet.volumes.atomicwriter import AtomicWriter, FileProjection
from agent.node.kubelet.volumes.payload import (
    VolumeSetupError,
    configmap_payload,
    downward_payload,
    projected_payload,
    resource_value,
    secret_payload,
)

CM = {"data": {"nginx.conf": "server {}", "b": "2"}, "binaryData": {"bin": base64.b64encode(b"\x00\x01").decode()}}
SECRET = {"data": {"password": base64.b64encode(b"s3cret").decode(), "user": base64.b64encode(b"admin").decode()}}
POD = {"metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1", "labels": {"app": "web", "tier": "a b"},
                    "annotations": {"note": 'say "hi"'}},
       "spec": {"nodeName": "node-1", "serviceAccountName": "default",
                "containers": [{"name": "c", "resources": {"limits": {"cpu": "250m", "memory": "64Mi"},
                                                           "requests": {"cpu": "100m"}}}]}}
ALLOC = {"cpu": "2", "memory": "8Gi", "ephemeral-storage": "10Gi"}


def objects(kind, name):
    return {("configmap", "web"): CM, ("secret", "db"): SECRET,
            ("configmap", "kube-root-ca.crt"): {"data": {"ca.crt": "CA PEM"}}}.get((kind, name))


def test_configmap_without_items_projects_every_key_with_the_default_mode():
    out = configmap_payload({"name": "web", "defaultMode": 0o640}, objects)
    assert out == {"nginx.conf": FileProjection(b"server {}", 0o640), "b": FileProjection(b"2", 0o640),
                   "bin": FileProjection(b"\x00\x01", 0o640)}


def test_items_choose_keys_paths_and_modes():
    src = {"name": "web", "items": [{"key": "nginx.conf", "path": "conf/site.conf", "mode": 0o600}, {"key": "b",
                                                                                                   "path": "b.txt"}]}
    assert configmap_payload(src, objects) == {"conf/site.conf": FileProjection(b"server {}", 0o600),
                                               "b.txt": FileProjection(b"2", 0o644)}


def test_missing_objects_and_keys_in_the_kubelet_words():
    with pytest.raises(VolumeSetupError, match='^configmap "gone" not found$'):
        configmap_payload({"name": "gone"}, objects)
    assert configmap_payload({"name": "gone", "optional": True}, objects) == {}
    with pytest.raises(VolumeSetupError, match="^configmap references non-existent config key: nope$"):
        configmap_payload({"name": "web", "items": [{"key": "nope", "path": "x"}]}, objects)
    assert configmap_payload({"name": "web", "optional": True, "items": [{"key": "nope", "path": "x"}]},
                             objects) == {}
    with pytest.raises(VolumeSetupError, match='^secret "gone" not found$'):
        secret_payload({"secretName": "gone"}, objects)
    with pytest.raises(VolumeSetupError, match="^references non-existent secret key: nope$"):
        secret_payload({"secretName": "db", "items": [{"key": "nope", "path": "x"}]}, objects)


def test_secret_values_are_decoded():
    assert secret_payload({"secretName": "db", "defaultMode": 0o400}, objects) == {
        "password": FileProjection(b"s3cret", 0o400), "user": FileProjection(b"admin", 0o400)}


def test_downward_api_fields_maps_and_resources():
    items = [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
             {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
             {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
             {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}, "mode": 0o600},
             {"path": "cpu", "resourceFieldRef": {"containerName": "c", "resource": "limits.cpu", "divisor": "1m"}},
             {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}},
             {"path": "req", "resourceFieldRef": {"containerName": "c", "resource": "requests.cpu"}}]
    out = downward_payload({"items": items}, POD, ALLOC)
    assert out["labels"].data == b'app="web"\ntier="a b"'
    assert out["annotations"].data == b'note="say \\"hi\\""'
    assert out["app"].data == b"web" and out["name"] == FileProjection(b"web-1", 0o600)
    assert out["cpu"].data == b"250" and out["mem"].data == b"64" and out["req"].data == b"1"


def test_unset_limits_are_the_node_allocatable():
    pod = {"spec": {"containers": [{"name": "c"}]}}
    assert resource_value(pod, {"containerName": "c", "resource": "limits.memory", "divisor": "1Gi"}, ALLOC) == "8"
    assert resource_value(pod, {"containerName": "c", "resource": "limits.cpu"}, ALLOC) == "2"
    with pytest.raises(VolumeSetupError, match="cannot find container: x"):
        resource_value(pod, {"containerName": "x", "resource": "limits.cpu"}, ALLOC)


def test_projected_sources_in_order_with_one_mode_and_tokens():
    asked = []

    def token(audience, seconds):
        asked.append((audience, seconds))
        return "TOKEN"
    src = {"defaultMode": 0o440, "sources": [
        {"serviceAccountToken": {"path": "vault-token", "audience": "vault", "expirationSeconds": 7200}},
        {"secret": {"name": "db", "items": [{"key": "user", "path": "user"}]}},
        {"configMap": {"name": "web", "items": [{"key": "b", "path": "b", "mode": 0o444}]}},
        {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}
    out = projected_payload(src, POD, objects, token, ALLOC)
    assert out == {"vault-token": FileProjection(b"TOKEN", 0o440), "user": FileProjection(b"admin", 0o440),
                   "b": FileProjection(b"2", 0o444), "ns": FileProjection(b"shop", 0o440)}
    assert asked == [("vault", 7200)]


def test_projected_errors_are_reported_together():
    src = {"sources": [{"configMap": {"name": "gone"}}, {"secret": {"name": "nope"}}]}
    with pytest.raises(VolumeSetupError) as e:
        projected_payload(src, POD, objects, lambda a, s: "", ALLOC)
    assert str(e.value) == '[configmap "gone" not found, secret "nope" not found]'


def test_kube_api_access_volume_written_as_the_kubelet_writes_it(tmp_path):
    vol = api_access_volume("kube-api-access-abcde")
    out = projected_payload(vol["projected"], POD, objects, lambda aud, sec: f"jwt-{aud or 'api'}-{sec}", ALLOC)
    AtomicWriter(str(tmp_path)).write(out)
    assert sorted(n for n in os.listdir(tmp_path) if not n.startswith("..")) == ["ca.crt", "namespace", "token"]
    assert (tmp_path / "token").read_text() == "jwt-api-3607"
    assert (tmp_path / "ca.crt").read_text() == "CA PEM"
    assert (tmp_path / "namespace").read_text() == "shop"
    assert all(os.stat(tmp_path / n).st_mode & 0o777 == 0o644 for n in ("ca.crt", "namespace", "token"))
