"""Ingress and IngressClass in the API: kube-apiserver's validation messages,
the DefaultIngressClass admission, and kubectl's columns."""
from datetime import datetime, timezone

from agent.api import printers as P
from agent.api.kinds import BY_RESOURCE
from agent.apiserver import validation
from agent.apiserver.registry import APIError, Registry
from agent.apiserver.store import Store
from agent.controllers.ingress.controller import default_class, ensure_default_class

NOW = datetime(2026, 1, 1, 0, 1, 0, tzinfo=timezone.utc)


def ingress(spec, name="web", **md):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z", **md},
            "spec": spec}


def messages(obj, kind="Ingress", old=None):
    return [str(c) for c in validation.validate(kind, obj, old)]


def path(p="/", ptype="Prefix", **backend):
    return {"path": p, "pathType": ptype, "backend": backend or {"service": {"name": "web", "port": {"number": 80}}}}


def test_a_valid_ingress_has_no_causes():
    assert messages(ingress({"rules": [{"host": "*.example.test", "http": {"paths": [path()]}}],
                             "tls": [{"hosts": ["a.example.test"], "secretName": "tls"}]})) == []


def test_rules_or_default_backend_required():
    assert messages(ingress({})) == ["spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` "
                                     "or `rules` must be specified"]


def test_paths_messages():
    rules = [{"host": "a.test", "http": {"paths": [
        {"path": "/x", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
        path("x"), path("/a//b"), path("/a/.."), path("/x", "Regex"), path("rel", "ImplementationSpecific")]}}]
    assert messages(ingress({"rules": rules})) == [
        "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified",
        'spec.rules[0].http.paths[1].path: Invalid value: "x": must be an absolute path',
        "spec.rules[0].http.paths[2].path: Invalid value: \"/a//b\": must not contain '//'",
        "spec.rules[0].http.paths[3].path: Invalid value: \"/a/..\": cannot end with '/..'",
        'spec.rules[0].http.paths[4].pathType: Unsupported value: "Regex": supported values: "Exact", '
        '"ImplementationSpecific", "Prefix"',
        'spec.rules[0].http.paths[5].path: Invalid value: "rel": must be an absolute path']
    assert messages(ingress({"rules": [{"host": "a.test", "http": {"paths": []}}]})) == [
        "spec.rules[0].http.paths: Required value"]


def test_backend_messages():
    def one(**b):
        return messages(ingress({"defaultBackend": b}))
    assert one(service={"name": "web", "port": {"name": "http", "number": 80}}) == [
        'spec.defaultBackend: Invalid value: "": cannot set both port name & port number']
    assert one(service={"name": "web", "port": {}}) == [
        "spec.defaultBackend: Required value: port name or number is required"]
    assert one(service={"name": "web", "port": {"number": 70000}}) == [
        "spec.defaultBackend.service.port.number: Invalid value: 70000: must be between 1 and 65535, inclusive"]
    assert one(service={"name": "Web", "port": {"number": 80}})[0].startswith(
        'spec.defaultBackend.service.name: Invalid value: "Web": a DNS-1035 label must consist of lower case')
    assert one() == ['spec.defaultBackend: Invalid value: "": resource or service backend is required']
    assert one(service={"name": "web", "port": {"number": 80}}, resource={"kind": "X", "name": "y"}) == [
        'spec.defaultBackend: Invalid value: "": cannot set both resource and service backends']


def test_host_and_tls_messages():
    out = messages(ingress({"rules": [{"host": "1.2.3.4"}, {"host": "*.*.a.test"}],
                            "tls": [{"hosts": ["A.test"], "secretName": "Bad_Name"}],
                            "ingressClassName": "x"}, annotations={"kubernetes.io/ingress.class": "y"}))
    assert out[0] == ('annotations.kubernetes.io/ingress.class: Invalid value: "y": must match `ingressClassName` '
                      "when both are specified")
    assert out[1] == 'spec.rules[0].host: Invalid value: "1.2.3.4": must be a DNS name, not an IP address'
    assert out[2].startswith('spec.rules[1].host: Invalid value: "*.*.a.test": a wildcard DNS-1123 subdomain must '
                             "start with '*.', followed by a valid DNS subdomain")
    assert out[3].startswith('spec.tls[0].hosts[0]: Invalid value: "A.test": a lowercase RFC 1123 subdomain')
    assert out[4].startswith('spec.tls[0].secretName: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain')


def test_ingress_class_messages():
    ic = default_class()
    assert messages(ic, "IngressClass") == []
    assert messages({**ic, "spec": {"controller": "nginx"}}, "IngressClass") == [
        'spec.controller: Invalid value: "nginx": must be a domain-prefixed path (such as "acme.io/foo")']
    assert messages({**ic, "spec": {}}, "IngressClass") == ["spec.controller: Required value"]
    assert messages({**ic, "spec": {"controller": "acme.io/x"}}, "IngressClass", old=ic) == [
        'spec.controller: Invalid value: "acme.io/x": field is immutable']


def test_default_class_admission_and_a_refused_ingress_changes_nothing(tmp_path):
    reg = Registry(Store(str(tmp_path / "store.db")))
    reg.create(BY_RESOURCE["namespaces"], None, {"metadata": {"name": "default"}})
    kind = BY_RESOURCE["ingresses"]
    spec = {"rules": [{"host": "a.test", "http": {"paths": [path()]}}]}
    assert "ingressClassName" not in reg.create(kind, "default", ingress(dict(spec), "before"))["spec"]
    ensure_default_class(reg)
    assert reg.create(kind, "default", ingress(dict(spec)))["spec"]["ingressClassName"] == "nsplane"
    legacy = ingress(dict(spec), "legacy", annotations={"kubernetes.io/ingress.class": "other"})
    assert "ingressClassName" not in reg.create(kind, "default", legacy)["spec"]
    try:
        reg.create(kind, "default", ingress({}, "bad"))
        raise AssertionError("created")
    except APIError as e:
        assert e.code == 422 and 'Ingress.networking.k8s.io "bad" is invalid: spec: Invalid value' in str(e)
    assert [i["metadata"]["name"] for i in reg.store.list("ingresses")[0]] == ["before", "legacy", "web"]
    assert reg.get(kind, "default", "web")["metadata"]["generation"] == 1


def test_kubectl_columns():
    assert P.columns("Ingress") == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    rules = [{"host": h} for h in ("a.test", "b.test", "c.test", "d.test", "e.test")]
    ing = ingress({"ingressClassName": "nsplane", "rules": rules, "tls": [{"hosts": ["a.test"]}]})
    ing["status"] = {"loadBalancer": {"ingress": [{"ip": "172.28.0.200"}]}}
    assert P.row("Ingress", ing, wide=False, now=NOW) == ["web", "nsplane", "a.test,b.test,c.test + 2 more...",
                                               "172.28.0.200", "80, 443", "60s"]
    assert P.row("Ingress", ingress({"defaultBackend": {}}), wide=False, now=NOW)[1:5] == ["<none>", "*", "", "80"]
    ic = {**default_class(), "metadata": {"name": "nsplane", "creationTimestamp": "2026-01-01T00:00:00Z"}}
    assert P.row("IngressClass", ic, wide=False, now=NOW) == ["nsplane", "nsplane.io/ingress-nginx", "<none>", "60s"]
    ic["spec"]["parameters"] = {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"}
    assert P.row("IngressClass", ic, wide=False, now=NOW)[2] == "IngressParameters.k8s.example.com/p"


def test_ingress_class_parameters_scope_defaults_to_cluster(tmp_path):
    reg = Registry(Store(str(tmp_path / "store.db")))
    ic = {**default_class(), "metadata": {"name": "p"}}
    ic["spec"] = {"controller": "acme.io/x", "parameters": {"kind": "K", "name": "n"}}
    assert reg.create(BY_RESOURCE["ingressclasses"], None, ic)["spec"]["parameters"]["scope"] == "Cluster"
