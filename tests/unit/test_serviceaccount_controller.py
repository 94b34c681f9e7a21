"""The serviceaccount controller and the root CA publisher over a real store
and registry (no HTTP): `default` and `kube-root-ca.crt` in every
namespace, made when it appears, made again when deleted or changed, and
nothing made in a namespace that is gone."""
import threading
import time

import pytest

from agent.api.kinds import BY_KIND
from agent.apiserver.registry import APIError, Registry
from agent.apiserver.store import Store
from agent.controllers import bootstrap
from agent.controllers.serviceaccounts import DESCRIPTION, RootCACertPublisher, ServiceAccountsController

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
NS, SA, CM = BY_KIND["Namespace"], BY_KIND["ServiceAccount"], BY_KIND["ConfigMap"]


@pytest.fixture
def reg(tmp_path):
    store = Store(str(tmp_path / "store.db"))
    registry = Registry(store)
    bootstrap.bootstrap(registry, "172.28.0.1", 6443)
    stop = threading.Event()
    ServiceAccountsController(store, registry).start(stop)
    RootCACertPublisher(store, registry, CA).start(stop)
    yield registry
    stop.set()
    store.close()


def eventually(fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except APIError:
            pass
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_every_namespace_gets_a_default_service_account(reg):
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        sa = eventually(lambda ns=ns: reg.get(SA, ns, "default"))
        assert set(sa) == {"apiVersion", "kind", "metadata"}
    reg.create(NS, None, {"metadata": {"name": "team"}})
    first = eventually(lambda: reg.get(SA, "team", "default"))
    reg.delete(SA, "team", "default")
    again = eventually(lambda: reg.get(SA, "team", "default"))
    assert again["metadata"]["uid"] != first["metadata"]["uid"]


def test_other_service_accounts_are_left_alone(reg):
    reg.create(SA, "default", {"metadata": {"name": "robot"}})
    eventually(lambda: reg.get(SA, "default", "default"))
    reg.delete(SA, "default", "robot")
    time.sleep(0.3)
    with pytest.raises(APIError):
        reg.get(SA, "default", "robot")


def test_root_ca_config_map_is_published_and_kept(reg):
    reg.create(NS, None, {"metadata": {"name": "team"}})
    cm = eventually(lambda: reg.get(CM, "team", "kube-root-ca.crt"))
    assert cm["data"] == {"ca.crt": CA}
    assert cm["metadata"]["annotations"] == {"kubernetes.io/description": DESCRIPTION}
    reg.update(CM, "team", "kube-root-ca.crt", {**cm, "data": {"ca.crt": "tampered"}})
    eventually(lambda: reg.get(CM, "team", "kube-root-ca.crt")["data"] == {"ca.crt": CA})
    reg.delete(CM, "team", "kube-root-ca.crt")
    eventually(lambda: reg.get(CM, "team", "kube-root-ca.crt"))


def test_a_deleted_namespace_gets_nothing_back(reg):
    reg.create(NS, None, {"metadata": {"name": "gone"}})
    eventually(lambda: reg.get(SA, "gone", "default"))
    reg.delete(NS, None, "gone")
    time.sleep(0.3)
    with pytest.raises(APIError):
        reg.get(SA, "gone", "default")
    with pytest.raises(APIError):
        reg.get(CM, "gone", "kube-root-ca.crt")
