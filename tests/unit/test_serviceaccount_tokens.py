"""ServiceAccount tokens without HTTP: the RS256 signer and verifier against
openssl itself, the claims kube issues, and every way the authenticator
refuses a token (signature, tampering, expiry, audience, issuer, the
ServiceAccount or bound object gone or recreated); the TokenRequest API's
defaults and errors; issuer discovery; the read-only authorizer's verbs and
kube's 403 wording."""
import json
import subprocess

import pytest

from agent.api import pki
from agent.api.kinds import BY_KIND
from agent.apiserver import authn
from agent.apiserver.authn import jwt
from agent.apiserver.authn.jwt import InvalidToken
from agent.apiserver.registry import APIError, Registry
from agent.apiserver.store import Store
from agent.apiserver.tokenrequest import ServiceAccountTokens, self_subject_review
from agent.controllers import bootstrap

ISS = "https://kubernetes.default.svc.cluster.local"
NOW = 1_800_000_000


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    p = pki.Paths(str(tmp_path_factory.mktemp("pki")))
    pki.ensure_service_account_key(p)
    return p


@pytest.fixture
def world(tmp_path, keys):
    """A registry with a ServiceAccount, a pod running as it on node-1, a
    secret; the token API and the authenticator over the same store."""
    store = Store(str(tmp_path / "store.db"))
    reg = Registry(store)
    bootstrap.bootstrap(reg, "172.28.0.1", 6443)
    sa = reg.create(BY_KIND["ServiceAccount"], "default", {"metadata": {"name": "robot"}})
    node = reg.create(BY_KIND["Node"], None, {"metadata": {"name": "node-1"}})
    pod = reg.create(BY_KIND["Pod"], "default", {"metadata": {"name": "p"}, "spec": {
        "serviceAccountName": "robot", "nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]}})
    tokens, auth = ServiceAccountTokens.build(store, keys.sa_key, keys.sa_pub, "cluster.local",
                                              "https://172.28.0.1:6443/openid/v1/jwks")
    clock = {"now": NOW}
    tokens.clock = auth.clock = lambda: clock["now"]
    yield {"reg": reg, "sa": sa, "pod": pod, "node": node, "tokens": tokens, "auth": auth, "clock": clock}
    store.close()


def token_for(w, **spec) -> dict:
    return w["tokens"].create_token(w["reg"], "default", "robot", {"spec": spec})


def claims_of(token: str) -> dict:
    return json.loads(jwt.b64url_decode(token.split(".")[1]))


# ---- RS256 against openssl ---------------------------------------------------------------

def test_signatures_are_rs256_that_openssl_verifies_and_vice_versa(keys, tmp_path):
    pub = jwt.PublicKey.load(keys.sa_pub)
    token = jwt.Signer(keys.sa_key, pub).sign({"sub": "x"})
    head, body, sig = token.split(".")
    assert json.loads(jwt.b64url_decode(head)) == {"alg": "RS256", "kid": pub.kid}
    (tmp_path / "msg").write_bytes(f"{head}.{body}".encode())
    (tmp_path / "sig").write_bytes(jwt.b64url_decode(sig))
    r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", keys.sa_pub, "-signature", str(tmp_path / "sig"),
                        str(tmp_path / "msg")], capture_output=True, text=True)
    assert r.stdout.strip() == "Verified OK"
    assert jwt.verify(token, [pub]) == {"sub": "x"}
    der = subprocess.run(["openssl", "pkey", "-pubin", "-in", keys.sa_pub, "-outform", "DER"],
                         capture_output=True, check=True).stdout
    assert pub.der == der and pub.e == 65537 and pub.size == 256
    jwk = pub.jwk()
    assert (jwk["kty"], jwk["alg"], jwk["use"], jwk["e"]) == ("RSA", "RS256", "sig", "AQAB")
    assert int.from_bytes(jwt.b64url_decode(jwk["n"]), "big") == pub.n


def test_tampering_and_foreign_keys_are_refused(keys, tmp_path):
    pub = jwt.PublicKey.load(keys.sa_pub)
    token = jwt.Signer(keys.sa_key, pub).sign({"sub": "x"})
    head, body, sig = token.split(".")
    forged = jwt.b64url(json.dumps({"sub": "admin"}).encode())
    alg_none = jwt.b64url(json.dumps({"alg": "none"}).encode())
    for bad in (f"{head}.{forged}.{sig}", f"{head}.{body}.{sig[:-4]}AAAA", f"{head}.{body}.",
                f"{alg_none}.{body}.{sig}", "a.b", "{}.{}.{}"):
        with pytest.raises(InvalidToken):
            jwt.verify(bad, [pub])
    other = pki.Paths(str(tmp_path))
    pki.ensure_service_account_key(other)
    stranger = jwt.Signer(other.sa_key, jwt.PublicKey.load(other.sa_pub)).sign({"sub": "x"})
    with pytest.raises(InvalidToken, match="no keys found"):
        jwt.verify(stranger, [pub])


# ---- TokenRequest ------------------------------------------------------------------------

def test_token_request_defaults_and_claims(world):
    out = token_for(world)
    assert out["kind"] == "TokenRequest" and out["apiVersion"] == "authentication.k8s.io/v1"
    assert out["metadata"]["name"] == "robot" and out["metadata"]["namespace"] == "default"
    assert out["spec"] == {"audiences": [ISS], "expirationSeconds": 3600, "boundObjectRef": None}
    assert out["status"]["expirationTimestamp"] == "2027-01-15T09:00:00Z"
    c = claims_of(out["status"]["token"])
    sa = world["sa"]["metadata"]
    assert c["iss"] == ISS and c["aud"] == [ISS] and c["sub"] == "system:serviceaccount:default:robot"
    assert (c["iat"], c["nbf"], c["exp"]) == (NOW, NOW, NOW + 3600) and len(c["jti"]) == 36
    assert c["kubernetes.io"] == {"namespace": "default", "serviceaccount": {"name": "robot", "uid": sa["uid"]}}
    assert list(c) == sorted(c)


def test_token_bound_to_a_pod_carries_its_node(world):
    pod, node = world["pod"]["metadata"], world["node"]["metadata"]
    c = claims_of(token_for(world, boundObjectRef={"kind": "Pod", "apiVersion": "v1", "name": "p"})["status"]["token"])
    assert c["kubernetes.io"]["pod"] == {"name": "p", "uid": pod["uid"]}
    assert c["kubernetes.io"]["node"] == {"name": "node-1", "uid": node["uid"]}
    user = world["auth"].authenticate(token_for(world, boundObjectRef={"kind": "Pod", "apiVersion": "v1",
                                                                          "name": "p"})["status"]["token"])
    assert user.extra["authentication.kubernetes.io/pod-name"] == ["p"]
    assert user.extra["authentication.kubernetes.io/node-uid"] == [node["uid"]]


@pytest.mark.parametrize("spec,code,message", [
    ({"expirationSeconds": 599}, 422, 'TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: '
                                      "Invalid value: 599: may not specify a duration less than 10 minutes"),
    ({"expirationSeconds": 2**32 + 1}, 422, "may not specify a duration larger than 2^32 seconds"),
    ({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "nope"}}, 404, 'pods "nope" not found'),
    ({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "x"}}, 409,
     'Operation cannot be fulfilled on Pod "p": the UID in the bound object reference (x) does not match the UID '
     "in record. The object might have been deleted and then recreated"),
    ({"boundObjectRef": {"kind": "Deployment", "apiVersion": "apps/v1", "name": "d"}}, 400,
     "cannot bind token to object of type apps/v1, Kind=Deployment"),
])
def test_token_request_errors(world, spec, code, message):
    with pytest.raises(APIError) as e:
        token_for(world, **spec)
    assert e.value.code == code and message in e.value.message


def test_token_request_for_a_missing_service_account_or_another_pod(world):
    with pytest.raises(APIError) as e:
        world["tokens"].create_token(world["reg"], "default", "ghost", {"spec": {"expirationSeconds": 10}})
    assert (e.value.code, e.value.message) == (404, 'serviceaccounts "ghost" not found')
    world["reg"].create(BY_KIND["ServiceAccount"], "default", {"metadata": {"name": "other"}})
    with pytest.raises(APIError) as e:
        world["tokens"].create_token(world["reg"], "default", "other",
                                     {"spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p"}}})
    assert e.value.message == ('cannot bind token for serviceaccount "other" to pod running with different '
                               "serviceaccount name.")


# ---- authentication --------------------------------------------------------------------------

def test_a_token_authenticates_as_its_service_account(world):
    user = world["auth"].authenticate(token_for(world)["status"]["token"])
    assert user.name == "system:serviceaccount:default:robot" and user.uid == world["sa"]["metadata"]["uid"]
    assert user.groups == ("system:serviceaccounts", "system:serviceaccounts:default")
    assert list(user.extra) == ["authentication.kubernetes.io/credential-id"]
    assert world["auth"].authenticate("static-token-not-a-jwt") is None


def test_expiry_with_one_minute_of_leeway(world):
    token = token_for(world, expirationSeconds=600)["status"]["token"]
    world["clock"]["now"] = NOW + 660
    assert world["auth"].authenticate(token) is not None
    world["clock"]["now"] = NOW + 661
    with pytest.raises(InvalidToken, match="has expired"):
        world["auth"].authenticate(token)
    world["clock"]["now"] = NOW - 61
    with pytest.raises(InvalidToken, match="not valid yet"):
        world["auth"].authenticate(token)


def test_audience_must_be_the_api_servers(world):
    token = token_for(world, audiences=["vault"])["status"]["token"]
    assert claims_of(token)["aud"] == ["vault"]
    with pytest.raises(InvalidToken, match="token audiences"):
        world["auth"].authenticate(token)
    assert world["auth"].authenticate(token_for(world, audiences=["vault", ISS])["status"]["token"])


def test_tokens_die_with_their_service_account_and_bound_objects(world):
    reg = world["reg"]
    pod_token = token_for(world, boundObjectRef={"kind": "Pod", "apiVersion": "v1", "name": "p"})["status"]["token"]
    sa_token = token_for(world)["status"]["token"]
    reg.delete(BY_KIND["Pod"], "default", "p", grace=0)
    with pytest.raises(InvalidToken, match="has been invalidated"):
        world["auth"].authenticate(pod_token)
    reg.create(BY_KIND["Pod"], "default", {"metadata": {"name": "p"}, "spec": {
        "serviceAccountName": "robot", "containers": [{"name": "c", "image": "busybox"}]}})
    with pytest.raises(InvalidToken, match="pod UID"):
        world["auth"].authenticate(pod_token)
    assert world["auth"].authenticate(sa_token) is not None
    reg.delete(BY_KIND["ServiceAccount"], "default", "robot")
    with pytest.raises(InvalidToken, match="not found"):
        world["auth"].authenticate(sa_token)
    reg.create(BY_KIND["ServiceAccount"], "default", {"metadata": {"name": "robot"}})
    with pytest.raises(InvalidToken, match="service account UID"):
        world["auth"].authenticate(sa_token)


def test_the_union_adds_system_authenticated_and_static_tokens_win(world, tmp_path):
    p = pki.Paths(str(tmp_path))
    static = pki.ensure_tokens(p)
    union = authn.Authenticator(pki.Authenticator(p.tokens), world["auth"])
    admin = union.authenticate(f"Bearer {static['admin']}")
    assert admin.name == "kubernetes-admin" and admin.groups == ("system:masters", "system:authenticated")
    sa = union.authenticate(f"Bearer {token_for(world)['status']['token']}")
    assert sa.groups[-1] == "system:authenticated" and sa.is_service_account
    for header in (None, "Basic x", "Bearer ", "Bearer nope", "Bearer é", "Bearer a.b.c"):
        assert union.authenticate(header) is None


def test_issuer_discovery_documents(world):
    doc, ctype = world["tokens"].discovery("/.well-known/openid-configuration")
    assert doc == {"issuer": ISS, "jwks_uri": "https://172.28.0.1:6443/openid/v1/jwks",
                   "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
                   "id_token_signing_alg_values_supported": ["RS256"]}
    jwks, ctype = world["tokens"].discovery("/openid/v1/jwks")
    assert ctype == "application/jwk-set+json" and jwks["keys"][0]["kid"] == world["tokens"].keys[0].kid
    assert world["tokens"].discovery("/openid/v1/other") is None


SA_USER = authn.UserInfo("system:serviceaccount:default:default", "u",
                         ("system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"))


def test_self_subject_review():
    review = self_subject_review(SA_USER, NOW)
    assert review == {"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                      "metadata": {"creationTimestamp": "2027-01-15T08:00:00Z"},
                      "status": {"userInfo": {"username": SA_USER.name, "uid": "u", "groups": list(SA_USER.groups)}}}
    assert self_subject_review(None)["status"]["userInfo"]["groups"] == ["system:masters", "system:authenticated"]
