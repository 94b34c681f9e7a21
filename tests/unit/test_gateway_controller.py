"""The Gateway controller's edge against a bare registry (no proxy pods: a
fake stands in for the proxy machinery): the statuses it writes, other
controllers' route parents left alone, stale entries of ours removed, a
deleted Gateway's proxy removed, a GatewayClass with parameters refused."""
import pytest

from agent.api.kinds import BY_RESOURCE
from agent.apiserver.crd.definition import served
from agent.apiserver.registry import Registry
from agent.apiserver.store import Store
from agent.controllers import bootstrap
from agent.controllers.gateway import crds
from agent.controllers.gateway.conditions import CONTROLLER_NAME
from agent.controllers.gateway.controller import KEY, GatewayController
from agent.controllers.gateway.proxies import instance_name

G = "gateway.networking.k8s.io"


class FakeProxies:
    def __init__(self):
        self.applied, self.removed, self.refused = {}, [], {}

    def apply(self, ns, name, ports, config, wanted_ip=None):
        self.applied[instance_name(ns, name)] = (ports, config)
        return "172.28.0.200", None

    def ready(self, ns, name):
        return instance_name(ns, name) in self.applied

    def running(self):
        return sorted(self.applied)

    def rejected(self, ns, name):
        return self.refused.get(instance_name(ns, name))

    def remove(self, name):
        self.removed.append(name)
        self.applied.pop(name, None)


@pytest.fixture
def env(tmp_path):
    store = Store(str(tmp_path / "store.db"))
    registry = Registry(store)
    bootstrap.bootstrap(registry, "172.28.0.1", 6443)
    crds.install(registry)
    crds.default_class(registry, store)
    kinds = {k.resource: k for k in served(store) if k.group == G and k.version in ("v1", "v1beta1")}
    fake = FakeProxies()
    ctl = GatewayController(store, registry, fake)
    yield store, registry, kinds, ctl, fake
    store.close()


def conds(entries):
    return {c["type"]: (c["status"], c["reason"]) for c in entries}


def test_statuses_written_and_foreign_parents_kept(env):
    _, registry, kinds, ctl, fake = env
    registry.create(BY_RESOURCE["services"], "default", {"metadata": {"name": "web"},
                                                         "spec": {"ports": [{"port": 80}], "selector": {"a": "b"}}})
    registry.create(kinds["gateways"], "default", {"metadata": {"name": "gw"}, "spec": {
        "gatewayClassName": "nsplane", "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]}})
    route = registry.create(kinds["httproutes"], "default", {"metadata": {"name": "r"}, "spec": {
        "parentRefs": [{"name": "gw"}, {"name": "theirs"}], "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}})
    foreign = {"parentRef": {"group": G, "kind": "Gateway", "name": "theirs"}, "controllerName": "example.com/gw",
               "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                               "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}]}
    stale = {"parentRef": {"group": G, "kind": "Gateway", "name": "gone"}, "controllerName": CONTROLLER_NAME,
             "conditions": foreign["conditions"]}
    registry.update(kinds["httproutes"], "default", "r", {**route, "status": {"parents": [foreign, stale]}},
                    subresource="status")
    ctl.sync(KEY)
    gc = registry.get(kinds["gatewayclasses"], None, "nsplane")
    assert conds(gc["status"]["conditions"]) == {"Accepted": ("True", "Accepted")}
    gw = registry.get(kinds["gateways"], "default", "gw")
    assert gw["status"]["addresses"] == [{"type": "IPAddress", "value": "172.28.0.200"}]
    assert conds(gw["status"]["conditions"]) == {"Accepted": ("True", "Accepted"), "Programmed": ("True", "Programmed")}
    parents = registry.get(kinds["httproutes"], "default", "r")["status"]["parents"]
    assert [p["controllerName"] for p in parents] == ["example.com/gw", CONTROLLER_NAME]
    assert parents[0] == foreign
    assert parents[1]["parentRef"]["name"] == "gw" and conds(parents[1]["conditions"])["Accepted"] == \
        ("True", "Accepted")
    assert list(fake.applied) == ["nsplane-gw-default-gw"]
    rv = registry.get(kinds["gateways"], "default", "gw")["metadata"]["resourceVersion"]
    ctl.sync(KEY)                                                  # nothing changed: nothing written
    assert registry.get(kinds["gateways"], "default", "gw")["metadata"]["resourceVersion"] == rv
    registry.delete(kinds["gateways"], "default", "gw")
    ctl.sync(KEY)
    assert fake.removed == ["nsplane-gw-default-gw"]
    assert [p["controllerName"] for p in registry.get(kinds["httproutes"], "default", "r")["status"]["parents"]] \
        == ["example.com/gw"]


def test_gateway_class_with_parameters_is_refused(env):
    _, registry, kinds, ctl, fake = env
    registry.create(kinds["gatewayclasses"], None, {"metadata": {"name": "tuned"}, "spec": {
        "controllerName": CONTROLLER_NAME, "parametersRef": {"group": "", "kind": "ConfigMap", "name": "x",
                                                             "namespace": "default"}}})
    registry.create(kinds["gateways"], "default", {"metadata": {"name": "gw"}, "spec": {
        "gatewayClassName": "tuned", "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]}})
    ctl.sync(KEY)
    gc = registry.get(kinds["gatewayclasses"], None, "tuned")
    assert conds(gc["status"]["conditions"]) == {"Accepted": ("False", "InvalidParameters")}
    assert fake.applied == {}                                       # no proxy for its Gateways


def test_a_configuration_nginx_refuses_leaves_the_gateway_not_programmed(env):
    _, registry, kinds, ctl, fake = env
    registry.create(kinds["gateways"], "default", {"metadata": {"name": "gw"}, "spec": {
        "gatewayClassName": "nsplane", "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]}})
    fake.refused["nsplane-gw-default-gw"] = "pcre2_compile() failed: ... in /etc/nsplane-proxy/nginx.conf:40"
    ctl.sync(KEY)
    st = registry.get(kinds["gateways"], "default", "gw")["status"]
    assert conds(st["conditions"]) == {"Accepted": ("True", "Accepted"), "Programmed": ("False", "Invalid")}
    prog = [c for c in st["conditions"] if c["type"] == "Programmed"][0]
    assert "nginx -t refused" in prog["message"] and "nginx.conf:40" in prog["message"]
    assert conds(st["listeners"][0]["conditions"])["Programmed"] == ("False", "Invalid")
    fake.refused.clear()
    ctl.sync(KEY)
    st = registry.get(kinds["gateways"], "default", "gw")["status"]
    assert conds(st["conditions"])["Programmed"] == ("True", "Programmed")


@pytest.mark.parametrize("spec", [
    {"gatewayClassName": "nsplane", "addresses": [{"type": "Hostname", "value": "gw.example.test"}],
     "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
    {"gatewayClassName": "nsplane", "listeners": [{"name": "tcp", "protocol": "TCP", "port": 9000}]}])
def test_routes_of_a_gateway_that_is_not_accepted_are_not_accepted(env, spec):
    _, registry, kinds, ctl, fake = env
    registry.create(kinds["gateways"], "default", {"metadata": {"name": "gw"}, "spec": spec})
    registry.create(kinds["httproutes"], "default", {"metadata": {"name": "r"}, "spec": {
        "parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}})
    ctl.sync(KEY)
    gw = registry.get(kinds["gateways"], "default", "gw")["status"]
    assert conds(gw["conditions"])["Accepted"][0] == "False"
    parent = registry.get(kinds["httproutes"], "default", "r")["status"]["parents"][0]
    accepted = [c for c in parent["conditions"] if c["type"] == "Accepted"][0]
    assert (accepted["status"], accepted["reason"]) == ("False", "NotAllowedByListeners")
    assert "Gateway default/gw is not accepted" in accepted["message"]
    assert all(x["attachedRoutes"] == 0 for x in gw["listeners"])
