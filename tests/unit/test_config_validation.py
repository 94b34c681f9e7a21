"""ConfigMaps, Secrets and ServiceAccounts through the registry (no HTTP):
kube's decoding (base64 with Go's error offsets, stringData merged and
dropped), defaulting, validation messages, immutability; the Go JSON
errors of docker config Secrets."""
import base64

import pytest

from agent.api.kinds import BY_KIND
from agent.apiserver import configdata
from agent.apiserver.registry import APIError, Registry
from agent.apiserver.store import Store
from agent.apiserver.validation.config import config_key_errors
from agent.apiserver.validation.gojson import unmarshal_object_error
from agent.controllers import bootstrap

CM, SECRET, SA = BY_KIND["ConfigMap"], BY_KIND["Secret"], BY_KIND["ServiceAccount"]


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


@pytest.fixture
def reg(tmp_path):
    store = Store(str(tmp_path / "store.db"))
    registry = Registry(store)
    bootstrap.bootstrap(registry, "172.28.0.1", 6443)
    yield registry
    store.close()


def refused(fn, *args) -> APIError:
    with pytest.raises(APIError) as e:
        fn(*args)
    return e.value


# ---- Go's base64 ---------------------------------------------------------------------

@pytest.mark.parametrize("text,offset", [
    ("not base64!", 3), ("hello", 4), ("abc", 0), ("aGk=x", 4), ("a===", 1), ("aG==x", 4), ("aGk", 0),
    ("aG=", 3), ("aGVsbG8=aGk=", 8),
])
def test_go_base64_errors_name_the_offset_go_does(text, offset):
    with pytest.raises(configdata.CorruptInput) as e:
        configdata.go_b64decode(text)
    assert str(e.value) == f"illegal base64 data at input byte {offset}"


@pytest.mark.parametrize("text,raw", [("", b""), ("aGk=", b"hi"), ("aGVs\nbG8=", b"hello"), ("aGl=", b"hi"),
                                      ("aGVsbG8=\r\n", b"hello"), ("YQ==", b"a")])
def test_go_base64_accepts_what_go_accepts(text, raw):
    assert configdata.go_b64decode(text) == raw


# ---- Secrets -------------------------------------------------------------------------

def test_secret_defaults_and_string_data_is_merged_never_stored(reg):
    s = reg.create(SECRET, "default", {"metadata": {"name": "s"}, "data": {"a": b64("1"), "b": b64("old")},
                                       "stringData": {"b": "new", "c": "3"}})
    assert s["type"] == "Opaque" and "stringData" not in s
    assert s["data"] == {"a": b64("1"), "b": b64("new"), "c": b64("3")}
    assert "stringData" not in reg.get(SECRET, "default", "s")
    s2 = reg.update(SECRET, "default", "s", {**s, "stringData": {"a": "changed"}})
    assert s2["data"]["a"] == b64("changed") and "stringData" not in s2


def test_secret_data_is_stored_canonical(reg):
    s = reg.create(SECRET, "default", {"metadata": {"name": "nl"}, "data": {"k": "aGVs\nbG8="}})
    assert s["data"]["k"] == "aGVsbG8="
    empty = reg.create(SECRET, "default", {"metadata": {"name": "e"}, "data": {}, "stringData": {},
                                           "immutable": None})
    assert set(empty) == {"apiVersion", "kind", "metadata", "type"}
    cm = reg.create(CM, "default", {"metadata": {"name": "e"}, "data": {}, "binaryData": None})
    assert set(cm) == {"apiVersion", "kind", "metadata"}


def test_a_value_that_is_not_base64_is_a_400(reg):
    e = refused(reg.create, SECRET, "default", {"metadata": {"name": "bad"}, "data": {"pw": "not base64!"}})
    assert (e.code, e.reason) == (400, "BadRequest")
    assert e.message == 'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 3'
    e = refused(reg.create, CM, "default", {"metadata": {"name": "bad"}, "binaryData": {"b": "hello"}})
    assert e.message == 'ConfigMap in version "v1" cannot be handled as a ConfigMap: illegal base64 data at input byte 4'
    e = refused(reg.create, SECRET, "default", {"metadata": {"name": "bad"}, "data": {"n": 5}})
    assert e.code == 400 and e.message.endswith("json: cannot unmarshal number into Go struct field Secret.data "
                                                "of type []uint8")
    for body, err in (({"type": 5}, "number into Go struct field Secret.type of type v1.SecretType"),
                      ({"immutable": "yes"}, "string into Go struct field Secret.immutable of type bool"),
                      ({"stringData": {"a": True}}, "bool into Go struct field Secret.stringData of type string"),
                      ({"data": []}, "array into Go struct field Secret.data of type map[string][]uint8")):
        e = refused(reg.create, SECRET, "default", {"metadata": {"name": "bad"}, **body})
        assert (e.code, e.message.split("json: cannot unmarshal ")[1]) == (400, err)
    assert reg.create(CM, "default", {"metadata": {"name": "nulls"}, "data": {"a": None}})["data"] == {"a": ""}
    with pytest.raises(APIError):
        reg.get(SECRET, "default", "bad")


@pytest.mark.parametrize("stype,data,ann,message", [
    ("kubernetes.io/tls", {"tls.crt": "Yw=="}, None, "data[tls.key]: Required value"),
    ("kubernetes.io/tls", {}, None, "[data[tls.crt]: Required value, data[tls.key]: Required value]"),
    ("kubernetes.io/dockerconfigjson", {}, None, "data[.dockerconfigjson]: Required value"),
    ("kubernetes.io/dockerconfigjson", {".dockerconfigjson": b64("{nope")}, None,
     'data[.dockerconfigjson]: Invalid value: "<secret contents redacted>": invalid character \'n\' looking for '
     "beginning of object key string"),
    ("kubernetes.io/dockercfg", {".dockercfg": b64("[1]")}, None,
     'data[.dockercfg]: Invalid value: "<secret contents redacted>": json: cannot unmarshal array into Go value '
     "of type map[string]interface {}"),
    ("kubernetes.io/service-account-token", {}, None,
     "metadata.annotations[kubernetes.io/service-account.name]: Required value"),
    ("kubernetes.io/basic-auth", {}, None, "[data[username]: Required value, data[password]: Required value]"),
    ("kubernetes.io/ssh-auth", {"ssh-privatekey": ""}, None, "data[ssh-privatekey]: Required value"),
])
def test_secret_types_and_their_required_keys(reg, stype, data, ann, message):
    md = {"name": "t"} if ann is None else {"name": "t", "annotations": ann}
    e = refused(reg.create, SECRET, "default", {"metadata": md, "type": stype, "data": data})
    assert (e.code, e.message) == (422, f'Secret "t" is invalid: {message}')


def test_secret_types_that_are_complete(reg):
    for name, stype, data, ann in (
            ("tls", "kubernetes.io/tls", {"tls.crt": "", "tls.key": ""}, None),
            ("dcj", "kubernetes.io/dockerconfigjson", {".dockerconfigjson": b64('{"auths":{}}')}, None),
            ("ba", "kubernetes.io/basic-auth", {"password": b64("x")}, None),
            ("sat", "kubernetes.io/service-account-token", {}, {"kubernetes.io/service-account.name": "default"}),
            ("custom", "example.com/anything", {}, None)):
        md = {"name": name, **({"annotations": ann} if ann else {})}
        assert reg.create(SECRET, "default", {"metadata": md, "type": stype, "data": data})["type"] == stype


def test_immutable_secret(reg):
    s = reg.create(SECRET, "default", {"metadata": {"name": "im"}, "data": {"a": b64("1")}, "immutable": True})
    e = refused(reg.update, SECRET, "default", "im", {**s, "data": {"a": b64("2")}})
    assert e.message == 'Secret "im" is invalid: data: Forbidden: field is immutable when `immutable` is set'
    e = refused(reg.update, SECRET, "default", "im", {**s, "stringData": {"a": "2"}})
    assert e.message == 'Secret "im" is invalid: data: Forbidden: field is immutable when `immutable` is set'
    e = refused(reg.update, SECRET, "default", "im", {**s, "immutable": False})
    assert e.message == 'Secret "im" is invalid: immutable: Forbidden: field is immutable when `immutable` is set'
    e = refused(reg.update, SECRET, "default", "im", {**s, "type": "example.com/other"})
    assert e.message.startswith('Secret "im" is invalid: type: Invalid value: "example.com/other": '
                                "field is immutable")
    labelled = reg.update(SECRET, "default", "im", {**s, "metadata": {**s["metadata"], "labels": {"a": "b"}}})
    assert labelled["metadata"]["labels"] == {"a": "b"}


def test_secret_size_limit(reg):
    big = base64.b64encode(b"x" * (1024 * 1024 + 1)).decode()
    e = refused(reg.create, SECRET, "default", {"metadata": {"name": "big"}, "data": {"a": big}})
    assert e.message == 'Secret "big" is invalid: data: Too long: must have at most 1048576 bytes'


# ---- ConfigMaps ----------------------------------------------------------------------------

def test_config_map_keys(reg):
    e = refused(reg.create, CM, "default", {"metadata": {"name": "c"}, "data": {"a b": "1"}})
    assert e.message == ('ConfigMap "c" is invalid: data[a b]: Invalid value: "a b": a valid config key must '
                         "consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  "
                         "or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")
    assert e.details["causes"] == [{"reason": "FieldValueInvalid", "field": "data[a b]",
                                    "message": e.message.split("data[a b]: ", 1)[1]}]
    assert config_key_errors("..") == ["must not be '..'"]
    assert config_key_errors("..x") == ["must not start with '..'"]
    assert config_key_errors(".") == ["must not be '.'"]
    assert config_key_errors("a" * 254)[0] == "must be no more than 253 characters"
    assert config_key_errors("game.properties") == [] and config_key_errors("KEY_1-x") == []


def test_config_map_key_in_data_and_binary_data(reg):
    e = refused(reg.create, CM, "default", {"metadata": {"name": "c"}, "data": {"k": "1"},
                                           "binaryData": {"k": b64("2")}})
    assert e.message == ('ConfigMap "c" is invalid: [data[k]: Invalid value: "k": duplicate of key present in '
                         'binaryData, binaryData[k]: Invalid value: "k": duplicate of key present in data]')


def test_config_map_size_limit(reg):
    e = refused(reg.create, CM, "default", {"metadata": {"name": "big"}, "data": {"a": "x" * (1024 * 1024),
                                                                                 "b": "y"}})
    assert e.message == 'ConfigMap "big" is invalid: []: Too long: must have at most 1048576 bytes'
    assert e.details["causes"][0]["field"] == "[]"


def test_immutable_config_map(reg):
    cm = reg.create(CM, "default", {"metadata": {"name": "im"}, "data": {"a": "1"}, "immutable": True})
    assert cm["immutable"] is True
    for change, field in (({"data": {"a": "2"}}, "data"), ({"binaryData": {"b": "YQ=="}}, "binaryData"),
                          ({"immutable": False}, "immutable")):
        e = refused(reg.update, CM, "default", "im", {**cm, **change})
        assert f"{field}: Forbidden: field is immutable when `immutable` is set" in e.message
    mutable = reg.create(CM, "default", {"metadata": {"name": "m"}, "data": {"a": "1"}})
    assert reg.update(CM, "default", "m", {**mutable, "immutable": True})["immutable"] is True


def test_service_account(reg):
    sa = reg.create(SA, "default", {"metadata": {"name": "robot"}, "automountServiceAccountToken": False,
                                    "imagePullSecrets": [{"name": "regcred"}]})
    assert sa["automountServiceAccountToken"] is False and "secrets" not in sa
    e = refused(reg.create, SA, "default", {"metadata": {"name": "Bad_Name"}})
    assert e.message.startswith('ServiceAccount "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": '
                                "a lowercase RFC 1123 subdomain")


def test_pods_run_as_the_default_service_account(reg):
    pod = reg.create(BY_KIND["Pod"], "default", {"metadata": {"name": "p"},
                                                 "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    assert (pod["spec"]["serviceAccountName"], pod["spec"]["serviceAccount"]) == ("default", "default")


# ---- Go's JSON errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("text,err", [
    ('{"auths":{}}', None), ("null", None), ("", "unexpected end of JSON input"), ("{", "unexpected end of JSON input"),
    ("x", "invalid character 'x' looking for beginning of value"),
    ('{"a" 1}', "invalid character '1' after object key"),
    ('{"a":1 "b"}', "invalid character '\"' after object key:value pair"),
    ("[1 2]", "invalid character '2' after array element"),
    ("tru", "unexpected end of JSON input"), ("trux", "invalid character 'x' in literal true (expecting 'e')"),
    ("{} x", "invalid character 'x' after top-level value"),
    ('"a\\q"', "invalid character 'q' in string escape code"),
    ("-x", "invalid character 'x' in numeric literal"),
    ("1.x", "invalid character 'x' after decimal point in numeric literal"),
    ('"s"', "json: cannot unmarshal string into Go value of type map[string]interface {}"),
    ("1", "json: cannot unmarshal number into Go value of type map[string]interface {}"),
    ("true", "json: cannot unmarshal bool into Go value of type map[string]interface {}"),
])
def test_go_json_unmarshal_errors(text, err):
    assert unmarshal_object_error(text.encode()) == err
