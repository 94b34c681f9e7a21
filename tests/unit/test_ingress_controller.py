"""The Ingress controller's sync against a bare registry (no pods run): the
proxy's objects appear with the first Ingress of the class, the rendered
configuration follows the Ingresses, statuses carry the proxy's address,
Events are written once per cause; deploy.remove takes an instance away."""
import base64

from agent.api.kinds import BY_RESOURCE
from agent.apiserver.registry import Registry
from agent.apiserver.store import Store
from agent.controllers.ingress.controller import INSTANCE, IngressController, ensure_default_class, \
    usable_certificate
from agent.controllers.proxy import deploy


def ingress(name, host, service="web", cls=None):
    spec = {"rules": [{"host": host, "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]}
    if cls:
        spec["ingressClassName"] = cls
    return {"metadata": {"name": name}, "spec": spec}


def events(reg, reason):
    return [e for e in reg.store.list("events")[0] if e["reason"] == reason]


def test_sync_deploys_publishes_and_reports(tmp_path):
    reg = Registry(Store(str(tmp_path / "store.db")), lb_pool="172.28.0.200-172.28.0.201")
    reg.create(BY_RESOURCE["namespaces"], None, {"metadata": {"name": "default"}})
    ensure_default_class(reg)
    ctl = IngressController(reg.store, reg)
    ctl.sync("ingresses")
    assert reg.store.list("deployments")[0] == []                     # no Ingress: no proxy
    reg.create(BY_RESOURCE["ingresses"], "default", ingress("other", "o.test", cls="not-ours"))
    ctl.sync("ingresses")
    assert reg.store.list("deployments")[0] == []
    reg.create(BY_RESOURCE["services"], "default", {"metadata": {"name": "web"},
                                                    "spec": {"ports": [{"port": 80}], "selector": {"a": "b"}}})
    reg.create(BY_RESOURCE["ingresses"], "default", ingress("site", "web.test"))
    ctl.sync("ingresses")
    dep = reg.store.get("deployments", INSTANCE.namespace, INSTANCE.name)
    assert dep["spec"]["template"]["spec"]["containers"][0]["command"][:2] == ["/bin/sh", "-c"]
    svc = reg.store.get("services", INSTANCE.namespace, INSTANCE.name)
    assert svc["spec"]["type"] == "LoadBalancer"
    conf = reg.store.get("configmaps", INSTANCE.namespace, INSTANCE.name)["data"]["nginx.conf"]
    web_ip = reg.store.get("services", "default", "web")["spec"]["clusterIP"]
    assert 'server_name "web.test";' in conf and f"server {web_ip}:80 " in conf and "o.test" not in conf
    certs = reg.store.get("secrets", INSTANCE.namespace, INSTANCE.certs_secret)["data"]
    assert "BEGIN CERTIFICATE" in base64.b64decode(certs["default.pem"]).decode()     # the default certificate
    assert usable_certificate({"data": {"tls.crt": certs["default.pem"], "tls.key": certs["default.pem"]}})
    assert [e["message"] for e in events(reg, "Sync")] == ["Scheduled for sync"]
    # the LB controller's address reaches the Ingress (and only ours)
    reg.guaranteed_update(BY_RESOURCE["services"], INSTANCE.namespace, INSTANCE.name,
                          lambda s: {**s, "status": {"loadBalancer": {"ingress": [{"ip": "172.28.0.200"}]}}},
                          subresource="status")
    reg.create(BY_RESOURCE["ingresses"], "default", ingress("broken", "b.test", service="nosuch"))
    ctl.sync("ingresses")
    ctl.sync("ingresses")
    assert reg.store.get("ingresses", "default", "site")["status"] == {
        "loadBalancer": {"ingress": [{"ip": "172.28.0.200"}]}}
    assert not reg.store.get("ingresses", "default", "other").get("status", {}).get("loadBalancer")
    assert [e["count"] for e in events(reg, "ServiceNotFound")] == [1]          # once per cause
    conf = reg.store.get("configmaps", INSTANCE.namespace, INSTANCE.name)["data"]["nginx.conf"]
    assert 'server_name "b.test";' in conf and "return 503;" in conf
    deploy.remove(reg, INSTANCE)
    assert reg.store.list("deployments", INSTANCE.namespace)[0] == []
    assert reg.store.list("configmaps", INSTANCE.namespace)[0] == []


def test_usable_certificate_refuses_junk():
    junk = base64.b64encode(b"not a certificate").decode()
    assert usable_certificate({"data": {"tls.crt": junk, "tls.key": junk}}) is None
    assert usable_certificate({"data": {}}) is None
    pem = deploy.fake_certificate()
    crt, key = pem.split("-----BEGIN PRIVATE KEY-----")
    secret = {"data": {"tls.crt": base64.b64encode(crt.encode()).decode(),
                       "tls.key": base64.b64encode(("-----BEGIN PRIVATE KEY-----" + key).encode()).decode()}}
    assert "BEGIN CERTIFICATE" in usable_certificate(secret)


def test_a_configuration_nginx_refuses_is_a_warning_event_and_not_published(tmp_path, monkeypatch):
    reg = Registry(Store(str(tmp_path / "store.db")), lb_pool="172.28.0.200-172.28.0.201")
    reg.create(BY_RESOURCE["namespaces"], None, {"metadata": {"name": "default"}})
    ensure_default_class(reg)
    ctl = IngressController(reg.store, reg)
    reg.create(BY_RESOURCE["ingresses"], "default", ingress("site", "web.test"))
    ctl.sync("ingresses")
    before = reg.store.get("configmaps", INSTANCE.namespace, INSTANCE.name)
    assert "web.test" in before["data"]["nginx.conf"]
    told = []
    monkeypatch.setattr(deploy.check, "test", lambda config, *a, **k: told.append(config) or
                        'unknown directive "x" in /etc/nsplane-proxy/nginx.conf:9')
    reg.create(BY_RESOURCE["ingresses"], "default", ingress("more", "more.test"))
    ctl.sync("ingresses")
    ctl.sync("ingresses")
    assert told                                                            # the new configuration was tested
    after = reg.store.get("configmaps", INSTANCE.namespace, INSTANCE.name)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]     # not published
    reloads = events(reg, "RELOAD")
    assert sorted(e["involvedObject"]["name"] for e in reloads) == ["more", "site"]          # once each
    assert all(e["type"] == "Warning" and e["message"] == "Error reloading NGINX: the new configuration fails "
               'nginx -t, the previous one keeps serving: unknown directive "x" in /etc/nsplane-proxy/nginx.conf:9'
               for e in reloads)
    monkeypatch.undo()
    ctl.sync("ingresses")
    assert "more.test" in reg.store.get("configmaps", INSTANCE.namespace, INSTANCE.name)["data"]["nginx.conf"]
