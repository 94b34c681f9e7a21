"""Validation rules and messages, compared with kube-apiserver's exact text."""
import copy

import pytest

from agent.apiserver import validation as V

DNS1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
           "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
           "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
DNS1123_LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
                 "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used "
                 "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS1123_SUB = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
               "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
               "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")


def svc(**spec):
    base = {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
            "spec": base}


def msgs(kind, obj, old=None, **kw):
    return [str(c) for c in V.validate(kind, obj, old, **kw)]


def test_valid_service_has_no_causes():
    assert V.validate("Service", svc()) == []


def test_status_message_matches_kube_apiserver():
    causes = V.validate("Service", svc(ports=[{"port": 70000}]))
    assert V.format_invalid("Service", "web", causes) == (
        'Service "web" is invalid: spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive')
    assert causes == [V.Cause("spec.ports[0].port", "FieldValueInvalid",
                              "Invalid value: 70000: must be between 1 and 65535, inclusive")]


def test_multiple_causes_are_bracketed_and_group_qualified():
    c = [V.Cause("a", "FieldValueRequired", "Required value"), V.Cause("b", "FieldValueRequired", "Required value")]
    assert V.format_invalid("Deployment", "web", c) == 'Deployment.apps "web" is invalid: [a: Required value, b: Required value]'
    st = V.invalid_status("EndpointSlice", "s", c[:1])
    assert st["code"] == 422 and st["reason"] == "Invalid"
    assert st["message"] == 'EndpointSlice.discovery.k8s.io "s" is invalid: a: Required value'
    assert st["details"]["causes"] == [{"reason": "FieldValueRequired", "message": "Required value", "field": "a"}]


@pytest.mark.parametrize("kind, name, rule", [
    ("Service", "Web_1", DNS1035),
    ("Service", "1web", DNS1035),
    ("Namespace", "My.ns", DNS1123_LABEL),
    ("Pod", "Web", DNS1123_SUB),
    ("Deployment", "web_app", DNS1123_SUB),
])
def test_name_rules(kind, name, rule):
    obj = {"metadata": {"name": name, "namespace": "default"}}
    assert f'metadata.name: Invalid value: "{name}": {rule}' in msgs(kind, obj)


def test_dotted_names_allowed_where_subdomains_are():
    pod = {"metadata": {"name": "web.v1", "namespace": "default"},
           "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    assert msgs("Pod", pod) == []
    assert any(m.startswith("metadata.name:") for m in msgs("Service", {**svc(), "metadata": {"name": "web.v1", "namespace": "d"}}))


def test_name_required_and_too_long():
    assert "metadata.name: Required value: name or generateName is required" in msgs("Service", {"metadata": {"namespace": "d"}, "spec": {}})
    long = "a" * 64
    assert f'metadata.name: Invalid value: "{long}": must be no more than 63 characters' in msgs(
        "Service", {**svc(), "metadata": {"name": long, "namespace": "d"}})


def test_namespace_forbidden_on_cluster_scoped():
    assert "metadata.namespace: Forbidden: not allowed on this type" in msgs(
        "Namespace", {"metadata": {"name": "x", "namespace": "default"}})


def test_labels():
    obj = svc()
    obj["metadata"]["labels"] = {"bad key!": "ok", "k": "bad value!"}
    out = msgs("Service", obj)
    assert any(m.startswith('metadata.labels: Invalid value: "bad key!": name part must consist') for m in out)
    assert any(m.startswith('metadata.labels: Invalid value: "bad value!": a valid label must be') for m in out)


@pytest.mark.parametrize("spec, expected", [
    ({"ports": []}, "spec.ports: Required value"),
    ({"ports": [{"port": 0}]}, "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"),
    ({"ports": [{"port": 80, "targetPort": 70000}]},
     "spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive"),
    ({"ports": [{"port": 80, "targetPort": "8080"}]},
     'spec.ports[0].targetPort: Invalid value: "8080": must contain at least one letter (a-z)'),
    ({"ports": [{"port": 80, "targetPort": "http_port"}]},
     'spec.ports[0].targetPort: Invalid value: "http_port": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)'),
    ({"ports": [{"port": 80, "protocol": "HTTP"}]},
     'spec.ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"'),
    ({"ports": [{"name": "http", "port": 80}, {"name": "http", "port": 81}]},
     'spec.ports[1].name: Duplicate value: "http"'),
    ({"ports": [{"port": 80}, {"name": "b", "port": 81}]}, "spec.ports[0].name: Required value"),
    ({"ports": [{"name": "HTTP", "port": 80}]}, f'spec.ports[0].name: Invalid value: "HTTP": {DNS1123_LABEL}'),
    ({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]},
     'spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", AppProtocol:(*string)(nil), '
     'Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}'),
    ({"type": "Foo"},
     'spec.type: Unsupported value: "Foo": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'),
    ({"ports": [{"port": 80, "nodePort": 30080}]},
     "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"),
    ({"type": "NodePort", "ports": [{"port": 80, "nodePort": 40000}]},
     "spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the valid range. "
     "The range of valid ports is 30000-32767"),
    ({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30080}, {"name": "b", "port": 81, "nodePort": 30080}]},
     "spec.ports[1].nodePort: Duplicate value: 30080"),
    ({"clusterIP": "abc"},
     'spec.clusterIPs[0]: Invalid value: "abc": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'),
    ({"type": "NodePort", "clusterIP": "None"},
     "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services"),
    ({"sessionAffinity": "Sticky"},
     'spec.sessionAffinity: Unsupported value: "Sticky": supported values: "ClientIP", "None"'),
    ({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 90000}}},
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 90000: must be greater than 0 and less than 86400"),
    ({"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10}}},
     "spec.sessionAffinityConfig: Forbidden: must not be set when session affinity is None"),
    ({"externalTrafficPolicy": "Local"},
     'spec.externalTrafficPolicy: Invalid value: "Local": may only be set for externally-accessible services'),
    ({"type": "NodePort", "externalTrafficPolicy": "Nearest"},
     'spec.externalTrafficPolicy: Unsupported value: "Nearest": supported values: "Cluster", "Local"'),
    ({"type": "LoadBalancer", "loadBalancerSourceRanges": ["10.0.0.0/8", "bogus"]},
     'spec.LoadBalancerSourceRanges[1]: Invalid value: "bogus": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)'),
    ({"loadBalancerSourceRanges": ["10.0.0.0/8"]},
     "spec.LoadBalancerSourceRanges: Forbidden: may only be used when `type` is 'LoadBalancer'"),
    ({"externalIPs": ["127.0.0.1"]},
     'spec.externalIPs[0]: Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)'),
    ({"selector": {"app": 1}},
     'spec.selector.app: Invalid value: "integer": spec.selector.app in body must be of type string: "integer"'),
    ({"selector": ["app=web"]},
     'spec.selector: Invalid value: "array": spec.selector in body must be of type object: "array"'),
    ({"selector": {"app": "web!"}}, 'spec.selector: Invalid value: "web!": a valid label must be an empty string'),
])
def test_service_rules(spec, expected):
    out = msgs("Service", svc(**spec))
    assert any(m.startswith(expected) for m in out), out


def test_node_port_range_is_a_parameter():
    s = svc(type="NodePort", ports=[{"port": 80, "nodePort": 20080}])
    assert msgs("Service", s, node_port_range=(20000, 20999)) == []
    assert msgs("Service", s)[0].endswith("The range of valid ports is 30000-32767")


@pytest.mark.parametrize("spec", [
    {"clusterIP": "None", "ports": []},
    {"type": "ExternalName", "externalName": "db.example.com", "ports": [], "selector": None},
    {"type": "ExternalName", "externalName": "db.example.com.", "selector": None},
    {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}], "externalTrafficPolicy": "Local"},
    {"type": "LoadBalancer", "ports": [{"port": 80}], "loadBalancerSourceRanges": ["10.0.0.0/8"]},
    {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}}},
    {"ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]},
    {"ports": [{"port": 80, "targetPort": "http"}]},
])
def test_valid_service_shapes(spec):
    assert msgs("Service", svc(**spec)) == []


def test_external_name_rules():
    out = msgs("Service", svc(type="ExternalName", ports=[]))
    assert "spec.externalName: Required value" in out
    out = msgs("Service", svc(type="ExternalName", externalName="Not_A_Host"))
    assert f'spec.externalName: Invalid value: "Not_A_Host": {DNS1123_SUB}' in out
    out = msgs("Service", svc(type="ExternalName", externalName="db.example.com", clusterIP="10.96.0.9"))
    assert "spec.clusterIPs: Forbidden: may not be set for ExternalName services" in out


def test_cluster_ip_is_immutable():
    old = svc(clusterIP="10.96.0.5", clusterIPs=["10.96.0.5"])
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = "10.96.0.6"
    causes = V.validate("Service", new, old)
    assert V.format_invalid("Service", "web", causes) == (
        'Service "web" is invalid: spec.clusterIPs[0]: Invalid value: []string{"10.96.0.6"}: may not change once set')
    # unchanged, or left empty (kube keeps the allocated one), is fine
    assert msgs("Service", copy.deepcopy(old), old) == []
    unset = copy.deepcopy(old)
    del unset["spec"]["clusterIP"], unset["spec"]["clusterIPs"]
    assert msgs("Service", unset, old) == []
    # becoming headless is a change too
    headless = copy.deepcopy(old)
    headless["spec"]["clusterIP"] = "None"
    assert msgs("Service", headless, old)[0].startswith("spec.clusterIPs[0]: Invalid value: []string{\"None\"}")


def test_to_and_from_external_name_may_change_cluster_ip():
    old = svc(clusterIP="10.96.0.5", clusterIPs=["10.96.0.5"])
    to_ext = copy.deepcopy(old)
    to_ext["spec"].update(type="ExternalName", externalName="db.example.com")
    assert msgs("Service", to_ext, old) == []
    from_ext = svc(clusterIP="10.96.0.7")
    assert msgs("Service", from_ext, svc(type="ExternalName", externalName="db.example.com")) == []


def test_type_change_keeps_allocated_node_ports_valid():
    old = svc(type="NodePort", ports=[{"port": 80, "nodePort": 30080}])
    new = svc(ports=[{"port": 80, "nodePort": 30080}])
    assert msgs("Service", new, old) == []


def test_metadata_name_immutable_on_update():
    old = svc()
    new = copy.deepcopy(old)
    new["metadata"]["name"] = "web2"
    assert 'metadata.name: Invalid value: "web2": field is immutable' in msgs("Service", new, old)


# ---- Pods --------------------------------------------------------------------------------

def pod(**spec):
    base = {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}
    base.update(spec)
    return {"metadata": {"name": "web", "namespace": "default"}, "spec": base}


def test_valid_pod():
    assert msgs("Pod", pod()) == []


@pytest.mark.parametrize("spec, expected", [
    ({"containers": []}, "spec.containers: Required value"),
    ({"containers": [{"image": "nginx"}]}, "spec.containers[0].name: Required value"),
    ({"containers": [{"name": "Web", "image": "nginx"}]}, f'spec.containers[0].name: Invalid value: "Web": {DNS1123_LABEL}'),
    ({"containers": [{"name": "a", "image": "nginx"}, {"name": "a", "image": "x"}]},
     'spec.containers[1].name: Duplicate value: "a"'),
    ({"containers": [{"name": "a"}]}, "spec.containers[0].image: Required value"),
    ({"containers": [{"name": "a", "image": " nginx"}]},
     'spec.containers[0].image: Invalid value: " nginx": must not have leading or trailing whitespace'),
    ({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 0}]}]},
     "spec.containers[0].ports[0].containerPort: Required value"),
    ({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 99999}]}]},
     "spec.containers[0].ports[0].containerPort: Invalid value: 99999: must be between 1 and 65535, inclusive"),
    ({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80, "name": "h", "protocol": "ICMP"}]}]},
     'spec.containers[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"'),
    ({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80, "name": "web"}, {"containerPort": 81, "name": "web"}]}]},
     'spec.containers[0].ports[1].name: Duplicate value: "web"'),
    ({"restartPolicy": "Sometimes"},
     'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'),
    ({"containers": [{"name": "a", "image": "x", "readinessProbe": {"periodSeconds": 5}}]},
     "spec.containers[0].readinessProbe: Required value: must specify a handler type"),
    ({"containers": [{"name": "a", "image": "x", "readinessProbe": {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}}}]},
     "spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type"),
    ({"containers": [{"name": "a", "image": "x", "readinessProbe": {"httpGet": {"path": "/", "port": 0}}}]},
     "spec.containers[0].readinessProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive"),
    ({"containers": [{"name": "a", "image": "x", "livenessProbe": {"tcpSocket": {"port": 80}, "successThreshold": 2}}]},
     "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"),
    ({"containers": [{"name": "a", "image": "x", "env": [{"name": "PORT", "value": 8080}]}]},
     'spec.containers[0].env[0].value: Invalid value: "integer": spec.containers[0].env[0].value in body must be of type string: "integer"'),
    ({"hostname": "Web_1"}, f'spec.hostname: Invalid value: "Web_1": {DNS1123_LABEL}'),
    ({"subdomain": "web.x"}, 'spec.subdomain: Invalid value: "web.x": a lowercase RFC 1123 label'),
    ({"nodeName": "Node_1"}, 'spec.nodeName: Invalid value: "Node_1": a lowercase RFC 1123 subdomain'),
    ({"dnsPolicy": "Sometimes"}, ('spec.dnsPolicy: Unsupported value: "Sometimes": supported values: '
                                  '"ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"')),
    ({"dnsPolicy": "None"}, "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"),
    ({"dnsPolicy": "None", "dnsConfig": {"searches": ["a.local"]}},
     "spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver when `dnsPolicy` is None"),
    ({"dnsConfig": {"nameservers": ["1.1.1.1", "1.0.0.1", "8.8.8.8", "9.9.9.9"]}},
     ('spec.dnsConfig.nameservers: Invalid value: []string{"1.1.1.1", "1.0.0.1", "8.8.8.8", "9.9.9.9"}: '
      "must not have more than 3 nameservers")),
    ({"dnsConfig": {"nameservers": ["dns.local"]}},
     'spec.dnsConfig.nameservers[0]: Invalid value: "dns.local": must be valid IP address'),
    ({"dnsConfig": {"searches": [f"s{i}.local" for i in range(33)]}},
     "spec.dnsConfig.searches: Invalid value: []string{"),
    ({"dnsConfig": {"options": [{"value": "2"}]}}, "spec.dnsConfig.options[0].name: Required value: must not be empty"),
])
def test_pod_rules(spec, expected):
    out = msgs("Pod", pod(**spec))
    assert any(m.startswith(expected) for m in out), out


def test_pod_dns_config_the_dns_specs_use_is_valid():
    """dnsPolicy None with a nameserver and search path; ClusterFirst with six
    long search paths and ndots; a single dot and an underscore (dns.go)."""
    for extra in ({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["resolv.conf.local"]}},
                  {"dnsPolicy": "ClusterFirst", "dnsConfig": {"searches": [f"{i:038d}.k8s.io" for i in range(1, 7)],
                                                              "options": [{"name": "ndots", "value": "5"}]}},
                  {"dnsPolicy": "ClusterFirst", "dnsConfig": {"searches": [".", "_sip._tcp.abc_d.example.com"]}},
                  {"dnsPolicy": "Default"}):
        assert msgs("Pod", pod(**extra)) == []


def test_pod_spec_is_mostly_immutable():
    old = pod()
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:1.27"
    assert msgs("Pod", new, old) == []
    new["spec"]["containers"][0]["ports"] = []
    assert msgs("Pod", new, old)[0].startswith("spec: Forbidden: pod updates may not change fields other than")
    bound = copy.deepcopy(old)
    bound["spec"]["nodeName"] = "node-1"    # binding is the pods/binding subresource's, not an update's
    assert msgs("Pod", bound, old)[0].startswith("spec: Forbidden: pod updates may not change fields other than")


# ---- Deployments and ReplicaSets ------------------------------------------------------

def deploy(kind="Deployment", labels=None, **spec):
    base = {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": labels if labels is not None else {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}
    base.update(spec)
    return {"kind": kind, "metadata": {"name": "web", "namespace": "default"}, "spec": base}


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet"])
def test_valid_workloads(kind):
    assert msgs(kind, deploy(kind)) == []


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet"])
def test_selector_must_match_template(kind):
    causes = V.validate(kind, deploy(kind, labels={"app": "x"}))
    qualified = "Deployment.apps" if kind == "Deployment" else "ReplicaSet.apps"
    assert V.format_invalid(kind, "web", causes) == (
        f'{qualified} "web" is invalid: spec.template.metadata.labels: Invalid value: '
        'map[string]string{"app":"x"}: `selector` does not match template `labels`')


@pytest.mark.parametrize("spec, expected", [
    ({"replicas": -1}, "spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
    ({"selector": None}, "spec.selector: Required value"),
    ({"selector": {}}, "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
                       "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"),
    ({"selector": {"matchExpressions": [{"key": "app", "operator": "In"}]}},
     "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"),
    ({"selector": {"matchExpressions": [{"key": "app", "operator": "Is", "values": ["web"]}]}},
     'spec.selector.matchExpressions[0].operator: Invalid value: "Is": not a valid selector operator'),
    ({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}},
     "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: "
     "may not be 0 when `maxSurge` is 0"),
    ({"strategy": {"type": "Recreate", "rollingUpdate": {}}},
     "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"),
    ({"template": {"metadata": {"labels": {"app": "web"}},
                   "spec": {"restartPolicy": "Never", "containers": [{"name": "w", "image": "x"}]}}},
     'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"'),
    ({"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "w"}]}}},
     "spec.template.spec.containers[0].image: Required value"),
])
def test_deployment_rules(spec, expected):
    out = msgs("Deployment", deploy(**spec))
    assert any(m.startswith(expected) for m in out), out


def test_deployment_selector_immutable():
    old = deploy()
    new = deploy(selector={"matchLabels": {"app": "web", "v": "2"}}, labels={"app": "web", "v": "2"})
    assert msgs("Deployment", new, old) == [
        'spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web", "v":"2"}, '
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"]


# ---- EndpointSlices, Endpoints, Namespaces ------------------------------------------------

def eps(**kw):
    base = {"metadata": {"name": "web-abc12", "namespace": "default"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": True}}],
            "ports": [{"name": "", "port": 80, "protocol": "TCP"}]}
    base.update(kw)
    return base


@pytest.mark.parametrize("kw, expected", [
    ({"addressType": None}, "addressType: Required value"),
    ({"addressType": "IPv5"}, 'addressType: Unsupported value: "IPv5": supported values: "FQDN", "IPv4", "IPv6"'),
    ({"endpoints": [{"addresses": []}]}, "endpoints[0].addresses: Required value: must contain at least 1 address"),
    ({"endpoints": [{"addresses": ["10.244.0.300"]}]},
     'endpoints[0].addresses[0]: Invalid value: "10.244.0.300": must be a valid IPv4 address'),
    ({"endpoints": [{"addresses": ["127.0.0.1"]}]},
     'endpoints[0].addresses[0]: Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)'),
    ({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}, 'ports[1].name: Duplicate value: "a"'),
    ({"ports": [{"name": "a", "port": 80, "protocol": "X"}]},
     'ports[0].protocol: Unsupported value: "X": supported values: "SCTP", "TCP", "UDP"'),
])
def test_endpoint_slice_rules(kw, expected):
    out = msgs("EndpointSlice", eps(**kw))
    assert any(m.startswith(expected) for m in out), out


def test_endpoint_slice_valid_and_address_type_immutable():
    assert msgs("EndpointSlice", eps()) == []
    new = eps(addressType="IPv6", endpoints=[{"addresses": ["fd00::5"]}])
    assert 'addressType: Invalid value: "IPv6": field is immutable' in msgs("EndpointSlice", new, eps())


def test_endpoints_rules():
    ok = {"metadata": {"name": "web", "namespace": "default"},
          "subsets": [{"addresses": [{"ip": "10.244.0.5"}], "ports": [{"port": 80, "protocol": "TCP"}]}]}
    assert msgs("Endpoints", ok) == []
    bad = copy.deepcopy(ok)
    bad["subsets"][0]["ports"] = [{"port": 80}, {"port": 81}]
    assert "subsets[0].ports[0].name: Required value" in msgs("Endpoints", bad)
    bad["subsets"][0] = {}
    assert "subsets[0]: Required value: must specify `addresses` or `notReadyAddresses`" in msgs("Endpoints", bad)


def test_namespace_names():
    assert msgs("Namespace", {"metadata": {"name": "team-a"}}) == []
    assert msgs("Namespace", {"metadata": {"name": "team.a"}}) == [f'metadata.name: Invalid value: "team.a": {DNS1123_LABEL}']


def test_go_value_rendering():
    assert V.go_value({"b": "2", "a": "1"}) == 'map[string]string{"a":"1", "b":"2"}'
    assert V.go_value(["a", "b"]) == '[]string{"a", "b"}'
    assert V.go_value('say "hi"') == '"say \\"hi\\""'
    assert V.go_value(True) == "true"


def test_defaulting_drops_the_affinity_config_with_affinity_none():
    """SetDefaults_Service: switching sessionAffinity back to None (the
    config still set from ClientIP) clears the config, as kube-apiserver's
    defaulter does, rather than failing validation."""
    from agent.apiserver.defaults import default
    svc = {"metadata": {"name": "web"},
           "spec": {"sessionAffinity": "None", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                    "ports": [{"port": 80}]}}
    default("Service", svc)
    assert "sessionAffinityConfig" not in svc["spec"]
    assert not [c for c in V.validate("Service", svc) if "sessionAffinity" in c.field]
    ext = {"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "a.example.com",
                                                 "sessionAffinity": "ClientIP"}}
    default("Service", ext)
    assert ext["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
