"""Round trips of realistic objects of every kind the protobuf codec serves
(protobuf_objects.yaml: a Deployment with probes, env, volumes, resources,
security contexts and affinity; a Service with every field; a Secret with
binary data; Pod and Node with status; lists...). Nothing may change on the way
through encode -> decode except the zero values Go's JSON leaves out."""
import os
import random

import pytest
import yaml

from agent.apiserver import protobuf as pb
from agent.apiserver.protobuf.schema import registry

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "protobuf_objects.yaml")) as f:
    OBJECTS = list(yaml.safe_load_all(f))


def _zeroish(value) -> bool:
    """What Go's JSON may add or leave out: null, "", 0, false, empty, or objects of those."""
    if isinstance(value, dict):
        return all(_zeroish(v) for v in value.values())
    return value in (None, "", 0, False, [])


def _changes(orig, got, path="") -> list[str]:
    if isinstance(orig, dict) and isinstance(got, dict):
        out = []
        for key in orig.keys() | got.keys():
            where = f"{path}.{key}"
            if key not in got:
                if not _zeroish(orig[key]):
                    out.append(f"{where} lost ({orig[key]!r})")
            elif key not in orig:
                if not _zeroish(got[key]):
                    out.append(f"{where} appeared ({got[key]!r})")
            else:
                out += _changes(orig[key], got[key], where)
        return out
    if isinstance(orig, list) and isinstance(got, list) and len(orig) == len(got):
        return [c for i, (a, b) in enumerate(zip(orig, got)) for c in _changes(a, b, f"{path}[{i}]")]
    if orig == got or (_zeroish(orig) and _zeroish(got)):
        return []
    return [f"{path}: {orig!r} -> {got!r}"]


@pytest.mark.parametrize("obj", OBJECTS, ids=[f"{o['kind']}/{o['metadata'].get('name', '')}" for o in OBJECTS])
def test_round_trip_keeps_every_field(obj):
    data = pb.encode(obj)
    back = pb.decode(data)
    assert _changes(obj, back) == []
    assert back["apiVersion"] == obj["apiVersion"] and back["kind"] == obj["kind"]
    assert pb.encode(back) == data                      # the decoded form is a fixed point
    assert pb.decode(pb.encode(back)) == back


def test_every_served_kind_has_a_realistic_object():
    kinds = {(o["apiVersion"], o["kind"]) for o in OBJECTS}
    singles = {key for key in registry().kinds if not key[1].endswith("List")}
    assert singles <= kinds
    assert {("v1", "PodList"), ("apps/v1", "DeploymentList"), ("v1", "ServiceList")} <= kinds


def _by_kind(kind: str) -> dict:
    return next(o for o in OBJECTS if o["kind"] == kind)


def test_the_deployment_keeps_its_pointers_and_embedded_json():
    back = pb.decode(pb.encode(_by_kind("Deployment")))
    spec = back["spec"]
    assert spec["replicas"] == 0 and spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": "25%"}
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    assert pod["securityContext"]["supplementalGroups"] == [4000, 5000]
    app = pod["containers"][0]
    assert app["livenessProbe"]["httpGet"]["port"] == "http" and app["readinessProbe"]["tcpSocket"]["port"] == 8080
    assert app["env"][1] == {"name": "EMPTY"}                     # value "" is omitempty, as kube-apiserver shows it
    assert app["securityContext"]["privileged"] is False
    assert back["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"] == {"f:replicas": {}}
    assert back["metadata"]["creationTimestamp"] == "2026-01-02T03:04:05Z"


def test_times_keep_their_precision():
    event = pb.decode(pb.encode(_by_kind("Event")))
    assert event["eventTime"] == "2026-01-02T03:04:05.123456Z"          # MicroTime
    assert event["series"]["lastObservedTime"] == "2026-01-02T03:14:05.000001Z"
    assert event["firstTimestamp"] == "2026-01-02T03:04:05Z"           # Time: whole seconds
    pod = dict(_by_kind("Pod"), status={"startTime": "2026-01-02T03:04:05.999+01:00"})
    assert pb.decode(pb.encode(pod))["status"]["startTime"] == "2026-01-02T02:04:05Z"


def test_fuzz_mutated_realistic_bodies_only_raise_protobuf_error():
    rnd = random.Random(99)
    for obj in OBJECTS[:6]:
        body = bytearray(pb.encode(obj))
        for _ in range(150):
            mutated = bytearray(body)
            for _ in range(rnd.randrange(1, 5)):
                i = rnd.randrange(4, len(mutated))
                if rnd.random() < 0.7:
                    mutated[i] = rnd.randrange(256)
                else:
                    del mutated[i]
            try:
                pb.decode(bytes(mutated))
            except pb.ProtobufError:
                pass
