"""nginx -t of a rendered configuration (agent/controllers/proxy/check.py)
with this machine's nginx, in a throwaway prefix: accepted, refused with
nginx's message naming the published file, and deploy.publish writing
nothing when refused."""
import os

import pytest

from agent.apiserver.registry import Registry
from agent.apiserver.store import Store
from agent.controllers.proxy import check, deploy
from agent.controllers.proxy.model import Action, ProxyConfig, Route, Server, Upstream

pytestmark = pytest.mark.skipif(not check.available(), reason="no /usr/sbin/nginx on this machine (provision.sh)")
CONF, CERTS = "/etc/nsplane-proxy/nginx.conf", "/etc/nsplane-proxy-certs"
GOOD = ProxyConfig(servers=(Server(80, ("web.test",), routes=(Route("prefix", "/", Action(upstream="u")),)),
                            Server(443, ("web.test",), tls_cert=None, routes=())),
                   upstreams=(Upstream("u", (("10.96.0.20:80", 1),)),), tls_ports=(443,))
# PCRE2 allows at most 65535 in a {} quantifier; Python's re takes it
BAD = ProxyConfig(servers=(Server(80, ("web.test",), routes=(Route("regex", "^/a{70000}$", Action(status=200)),)),))


@pytest.fixture(scope="module")
def pems():
    return {"default": deploy.fake_certificate()}


def test_accepts_a_good_configuration_and_leaves_nothing_behind(pems, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    assert check.test(GOOD, pems, CONF, CERTS) is None
    long_host = ".".join(c * 63 for c in "abc") + ".test"                 # needs the larger hash bucket
    assert check.test(ProxyConfig(servers=(Server(80, (long_host,)),)), pems, CONF, CERTS) is None
    assert os.listdir(tmp_path) == []


def test_refuses_what_nginx_refuses_with_its_message(pems):
    problem = check.test(BAD, pems, CONF, CERTS)
    assert problem and "pcre2_compile() failed" in problem and "number too big in {} quantifier" in problem
    assert f"in {CONF}:" in problem and "nsplane-nginx-t-" not in problem
    broken = {"default": pems["default"].split("-----BEGIN PRIVATE KEY-----")[0]}     # no key
    assert "cannot load certificate key" in check.test(GOOD, broken, CONF, CERTS) and CERTS in \
        check.test(GOOD, broken, CONF, CERTS)


def test_explain_keeps_the_error_lines():
    err = ("2026/12/02 08:26:58 [emerg] 31744#31744: unknown directive \"bogus\" in /tmp/nsplane-nginx-t-x/nginx.conf:7\n"
           "nginx: configuration file /tmp/nsplane-nginx-t-x/nginx.conf test failed\n")
    assert check.explain(err, "/tmp/nsplane-nginx-t-x", CONF, CERTS) == f'unknown directive "bogus" in {CONF}:7'


def test_publish_writes_nothing_nginx_refuses(tmp_path):
    reg = Registry(Store(str(tmp_path / "store.db")), lb_pool="none")
    inst = deploy.ProxyInstance("nsplane-check-test")
    deploy.ensure(reg, inst)
    assert deploy.publish(reg, inst, GOOD) is True
    before = reg.store.get("configmaps", inst.namespace, inst.name)
    with pytest.raises(deploy.ConfigRejected) as e:
        deploy.publish(reg, inst, BAD)
    assert "number too big" in e.value.message
    after = reg.store.get("configmaps", inst.namespace, inst.name)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert deploy.publish(reg, inst, GOOD) is False                      # the previous one is still there
