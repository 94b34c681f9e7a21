"""ConfigMaps, Secrets, ServiceAccounts and ServiceAccount tokens with real
kubectl against a throwaway cluster: every `kubectl create` subcommand for
them (protobuf), what `get`, `-o yaml` and `describe` show, a TLS Secret from
an openssl certificate read back byte for byte, stringData never echoed, bad
input refused in kube-apiserver's words, the `default` ServiceAccount and
`kube-root-ca.crt` in a new namespace, and `kubectl create token`: the token
authenticates (`auth whoami`), reads once bound to `view`, is refused writes with kube's 403, dies
with its bound pod, and verifies against the issuer's published JWKS."""
import base64
import json
import shutil
import subprocess

import pytest

from agent.apiserver.authn import jwt
from tests.integration.cluster import ThrowawayCluster

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed on this machine")]

SA_USER = "system:serviceaccount:default:default"


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("config")), dns=False) as tc:
        yield tc


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "tls.key"),
                    "-out", str(d / "tls.crt"), "-days", "1", "-subj", "/CN=web.example"],
                   check=True, capture_output=True)
    (d / "app.env").write_text("# settings\nMODE=prod\nGREETING=hello world\n")
    (d / "game.properties").write_text("lives=3\n")
    return d


def jget(c, *args) -> dict:
    return json.loads(c.kubectl("get", *args, "-o", "json").stdout)


def b64d(text: str) -> bytes:
    return base64.b64decode(text)


def refused(c, *args, input: str | None = None, env: dict | None = None) -> str:
    r = c.kubectl(*args, check=False, input=input, env=env)
    assert r.returncode != 0, r.stdout
    return r.stderr.strip()


def test_new_namespaces_get_a_default_service_account_and_the_root_ca(c):
    c.kubectl("create", "namespace", "team")
    sa = c.wait(lambda: jget(c, "-n", "team", "serviceaccount", "default"), what="default ServiceAccount")
    assert "secrets" not in sa
    ca = c.wait(lambda: jget(c, "-n", "team", "configmap", "kube-root-ca.crt"), what="kube-root-ca.crt")
    with open(c.cfg.ca_file) as f:
        assert ca["data"] == {"ca.crt": f.read()}
    c.kubectl("-n", "team", "delete", "serviceaccount", "default")
    again = c.wait(lambda: jget(c, "-n", "team", "serviceaccount", "default"), what="default made again")
    assert again["metadata"]["uid"] != sa["metadata"]["uid"]
    out = c.kubectl("-n", "team", "get", "sa").stdout.splitlines()
    assert out[0].split() == ["NAME", "SECRETS", "AGE"] and out[1].split()[:2] == ["default", "0"]


def test_create_configmap_from_literals_files_and_env_files(c, files):
    assert c.kubectl("create", "configmap", "literal", "--from-literal=a=b", "--from-literal=c=d").stdout.strip() \
        == "configmap/literal created"
    c.kubectl("create", "configmap", "fromfile", f"--from-file={files / 'game.properties'}",
              f"--from-file=renamed={files / 'app.env'}")
    c.kubectl("create", "configmap", "fromenv", f"--from-env-file={files / 'app.env'}")
    assert jget(c, "cm", "literal")["data"] == {"a": "b", "c": "d"}
    assert jget(c, "cm", "fromfile")["data"] == {"game.properties": "lives=3\n",
                                                 "renamed": (files / "app.env").read_text()}
    assert jget(c, "cm", "fromenv")["data"] == {"MODE": "prod", "GREETING": "hello world"}
    lines = c.kubectl("get", "cm", "literal", "fromenv").stdout.splitlines()
    assert lines[0].split() == ["NAME", "DATA", "AGE"]
    assert [ln.split()[:2] for ln in lines[1:]] == [["literal", "2"], ["fromenv", "2"]]
    yaml_out = c.kubectl("get", "cm", "literal", "-o", "yaml").stdout
    assert yaml_out.startswith("apiVersion: v1\ndata:\n  a: b\n  c: d\nkind: ConfigMap\nmetadata:\n")
    described = c.kubectl("describe", "cm", "literal").stdout
    assert "Data\n====\n" in described and "Events:  <none>" in described
    assert "a:\n----\nb\n" in described and "c:\n----\nd\n" in described     # in Go's map order


def test_create_secrets_generic_tls_and_docker_registry(c, files):
    assert c.kubectl("create", "secret", "generic", "creds", "--from-literal=user=admin",
                     f"--from-file=key={files / 'tls.key'}").stdout.strip() == "secret/creds created"
    c.kubectl("create", "secret", "generic", "envsecret", f"--from-env-file={files / 'app.env'}")
    c.kubectl("create", "secret", "tls", "web-tls", f"--cert={files / 'tls.crt'}", f"--key={files / 'tls.key'}")
    c.kubectl("create", "secret", "docker-registry", "regcred", "--docker-server=registry.example",
              "--docker-username=u", "--docker-password=p", "--docker-email=u@example.com")
    creds = jget(c, "secret", "creds")
    assert creds["type"] == "Opaque" and b64d(creds["data"]["user"]) == b"admin"
    assert b64d(creds["data"]["key"]) == (files / "tls.key").read_bytes()
    assert {k: b64d(v) for k, v in jget(c, "secret", "envsecret")["data"].items()} == \
        {"MODE": b"prod", "GREETING": b"hello world"}
    tls = jget(c, "secret", "web-tls")
    assert tls["type"] == "kubernetes.io/tls"
    assert b64d(tls["data"]["tls.crt"]) == (files / "tls.crt").read_bytes()
    assert b64d(tls["data"]["tls.key"]) == (files / "tls.key").read_bytes()
    reg = jget(c, "secret", "regcred")
    assert reg["type"] == "kubernetes.io/dockerconfigjson"
    auth = json.loads(b64d(reg["data"][".dockerconfigjson"]))["auths"]["registry.example"]
    assert (auth["username"], auth["password"], b64d(auth["auth"])) == ("u", "p", b"u:p")
    lines = c.kubectl("get", "secrets", "creds", "web-tls", "regcred").stdout.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "DATA", "AGE"]
    assert [ln.split()[:3] for ln in lines[1:]] == [["creds", "Opaque", "2"], ["web-tls", "kubernetes.io/tls", "2"],
                                                    ["regcred", "kubernetes.io/dockerconfigjson", "1"]]
    described = c.kubectl("describe", "secret", "web-tls").stdout
    size = len((files / "tls.crt").read_bytes())
    assert "Type:  kubernetes.io/tls" in described and f"tls.crt:  {size} bytes" in described


def test_create_serviceaccount_and_read_back(c):
    assert c.kubectl("create", "serviceaccount", "robot").stdout.strip() == "serviceaccount/robot created"
    sa = jget(c, "sa", "robot")
    assert set(sa) == {"apiVersion", "kind", "metadata"} and sa["kind"] == "ServiceAccount"
    described = c.kubectl("describe", "sa", "robot").stdout
    for line in ("Name:                robot", "Image pull secrets:  <none>", "Mountable secrets:   <none>",
                 "Tokens:              <none>", "Events:              <none>"):
        assert line in described
    assert c.nsplane("get", "sa", "robot").stdout.split()[:5] == ["NAME", "SECRETS", "AGE", "robot", "0"]
    listed = c.kubectl("get", "cm,secret,sa", "-o", "yaml").stdout
    assert "kind: List" in listed and "stringData" not in listed and "name: robot" in listed


def test_string_data_is_merged_and_never_echoed(c):
    manifest = ("apiVersion: v1\nkind: Secret\nmetadata:\n  name: sd\ntype: Opaque\n"
                "data:\n  a: b2xk\nstringData:\n  a: new\n  password: hunter2\n")
    created = json.loads(c.kubectl("create", "-f", "-", "-o", "json", input=manifest).stdout)
    assert "stringData" not in created
    assert {k: b64d(v) for k, v in created["data"].items()} == {"a": b"new", "password": b"hunter2"}
    assert "stringData" not in jget(c, "secret", "sd") and "hunter2" not in c.kubectl("get", "secret", "sd",
                                                                                        "-o", "yaml").stdout


def test_bad_input_in_kube_apiservers_words(c):
    err = refused(c, "apply", "-f", "-", input="apiVersion: v1\nkind: Secret\nmetadata:\n  name: bad\n"
                                              "data:\n  password: not base64!\n")
    assert err == ('Error from server (BadRequest): error when creating "STDIN": Secret in version "v1" cannot be '
                   "handled as a Secret: illegal base64 data at input byte 3")
    err = refused(c, "apply", "-f", "-", input='apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\n'
                                              'data:\n  "a b": c\n')
    assert err == ('The ConfigMap "bad" is invalid: data[a b]: Invalid value: "a b": a valid config key must '
                   "consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or "
                   "'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")
    err = refused(c, "create", "secret", "generic", "half-tls", "--type=kubernetes.io/tls", "--from-literal=tls.crt=x")
    assert err.endswith('Secret "half-tls" is invalid: data[tls.key]: Required value')
    assert "not found" in refused(c, "get", "cm", "bad")

    c.kubectl("apply", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: frozen\n"
                                        "immutable: true\ndata:\n  a: b\n")
    err = refused(c, "patch", "cm", "frozen", "-p", '{"data":{"a":"c"}}')
    assert err == ('The ConfigMap "frozen" is invalid: data: Forbidden: field is immutable when `immutable` is set')
    err = refused(c, "patch", "cm", "frozen", "--type=merge", "-p", '{"immutable":false}')
    assert err == ('The ConfigMap "frozen" is invalid: immutable: Forbidden: field is immutable when `immutable` '
                   "is set")
    assert jget(c, "cm", "frozen")["data"] == {"a": "b"}

    assert refused(c, "create", "token", "default", "--duration=5m") == (
        'error: failed to create token: TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: '
        "Invalid value: 300: may not specify a duration less than 10 minutes")
    assert refused(c, "create", "token", "ghost") == 'error: failed to create token: serviceaccounts "ghost" not found'


def test_a_service_account_token_reads_but_may_not_write(c):
    token = c.kubectl("create", "token", "default").stdout.strip()
    claims = json.loads(jwt.b64url_decode(token.split(".")[1]))
    assert claims["sub"] == SA_USER and claims["aud"] == ["https://kubernetes.default.svc.cluster.local"]
    assert claims["exp"] - claims["iat"] == 3600
    whoami = c.kubectl("--token", token, "auth", "whoami").stdout.splitlines()
    assert whoami[0].split() == ["ATTRIBUTE", "VALUE"] and whoami[1].split() == ["Username", SA_USER]
    assert whoami[3].split(None, 1) == ["Groups", "[system:serviceaccounts system:serviceaccounts:default "
                                                  "system:authenticated]"]
    assert whoami[4].split() == ["Extra:", "authentication.kubernetes.io/credential-id", f"[JTI={claims['jti']}]"]
    assert refused(c, "--token", token, "get", "pods") == (      # RBAC: a ServiceAccount holds nothing by default
        f'Error from server (Forbidden): pods is forbidden: User "{SA_USER}" cannot list resource "pods" in API '
        'group "" in the namespace "default"')
    c.kubectl("create", "rolebinding", "default-view", "--clusterrole=view", "--serviceaccount=default:default")
    assert c.kubectl("--token", token, "get", "pods").returncode == 0
    assert "kubernetes" in c.kubectl("--token", token, "get", "svc").stdout
    assert refused(c, "--token", token, "create", "configmap", "x", "--from-literal=a=b") == (
        f'error: failed to create configmap: configmaps is forbidden: User "{SA_USER}" cannot create resource '
        '"configmaps" in API group "" in the namespace "default"')
    assert refused(c, "--token", token, "delete", "svc", "kubernetes") == (
        f'Error from server (Forbidden): services "kubernetes" is forbidden: User "{SA_USER}" cannot delete '
        'resource "services" in API group "" in the namespace "default"')
    long_lived = c.kubectl("create", "token", "default", "--duration=2h").stdout.strip()
    claims = json.loads(jwt.b64url_decode(long_lived.split(".")[1]))
    assert claims["exp"] - claims["iat"] == 7200


def test_tokens_for_other_audiences_or_dead_pods_are_unauthorized(c):
    other = c.kubectl("create", "token", "default", "--audience=vault").stdout.strip()
    assert "Unauthorized" in refused(c, "--token", other, "get", "pods")
    c.kubectl("apply", "-f", "-", input="apiVersion: v1\nkind: Pod\nmetadata:\n  name: holder\nspec:\n"
                                        "  containers:\n  - name: c\n    image: busybox\n"
                                        "    command: [sleep, '3600']\n")
    pod = jget(c, "pod", "holder")
    assert pod["spec"]["serviceAccountName"] == "default"
    bound = c.kubectl("create", "token", "default", "--bound-object-kind=Pod", "--bound-object-name=holder",
                      f"--bound-object-uid={pod['metadata']['uid']}").stdout.strip()
    claims = json.loads(jwt.b64url_decode(bound.split(".")[1]))
    assert claims["kubernetes.io"]["pod"] == {"name": "holder", "uid": pod["metadata"]["uid"]}
    who = c.kubectl("--token", bound, "auth", "whoami").stdout
    assert "authentication.kubernetes.io/pod-name" in who and "[holder]" in who
    c.kubectl("delete", "pod", "holder", "--grace-period=0", "--force")
    c.wait(lambda: c.kubectl("get", "pod", "holder", check=False).returncode != 0, what="pod gone")
    assert "Unauthorized" in refused(c, "--token", bound, "get", "pods")


def test_issuer_discovery_publishes_the_key_tokens_verify_with(c):
    config = json.loads(c.kubectl("get", "--raw", "/.well-known/openid-configuration").stdout)
    assert config["issuer"] == "https://kubernetes.default.svc.cluster.local"
    assert config["jwks_uri"] == f"https://{c.cfg.host_ip}:{c.cfg.api_port}/openid/v1/jwks"
    assert config["id_token_signing_alg_values_supported"] == ["RS256"]
    token = c.kubectl("create", "token", "default").stdout.strip()
    keys = json.loads(c.kubectl("--token", token, "get", "--raw", "/openid/v1/jwks").stdout)["keys"]
    head_b64, body_b64, sig_b64 = token.split(".")
    kid = json.loads(jwt.b64url_decode(head_b64))["kid"]
    jwk = next(k for k in keys if k["kid"] == kid)
    assert (jwk["kty"], jwk["alg"], jwk["use"]) == ("RSA", "RS256", "sig")
    pub = jwt.PublicKey(int.from_bytes(jwt.b64url_decode(jwk["n"]), "big"),
                        int.from_bytes(jwt.b64url_decode(jwk["e"]), "big"), b"")
    assert pub.verify(f"{head_b64}.{body_b64}".encode(), jwt.b64url_decode(sig_b64))
    assert not pub.verify(f"{head_b64}.{body_b64}x".encode(), jwt.b64url_decode(sig_b64))
