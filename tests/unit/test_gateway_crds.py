"""`nsplane up` installs the Gateway API standard channel CRDs and the
GatewayClass `nsplane` (agent/controllers/gateway/crds.py), once."""
from agent.apiserver.crd.definition import served
from agent.apiserver.registry import Registry
from agent.apiserver.store import Store
from agent.controllers import bootstrap
from agent.controllers.gateway import crds
from agent.controllers.gateway.conditions import CONTROLLER_NAME


def test_install_is_idempotent_and_serves_the_kinds(tmp_path):
    store = Store(str(tmp_path / "store.db"))
    try:
        registry = Registry(store)
        bootstrap.bootstrap(registry, "172.28.0.1", 6443)
        made = crds.install(registry)
        assert sorted(made) == [f"{r}.gateway.networking.k8s.io" for r in
                                ("gatewayclasses", "gateways", "grpcroutes", "httproutes", "referencegrants")]
        assert crds.install(registry) == []
        kinds = {(k.resource, k.version) for k in served(store) if k.group == "gateway.networking.k8s.io"}
        assert {("httproutes", "v1"), ("gateways", "v1"), ("gatewayclasses", "v1"),
                ("referencegrants", "v1beta1"), ("grpcroutes", "v1")} <= kinds
        crds.default_class(registry, store)
        crds.default_class(registry, store)
        [gc] = store.list("gatewayclasses")[0]
        assert gc["metadata"]["name"] == "nsplane" and gc["spec"]["controllerName"] == CONTROLLER_NAME
    finally:
        store.close()
