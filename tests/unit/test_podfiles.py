"""What the kubelet writes for pods: resolv.conf by dnsPolicy, hosts, and the
Service-link environment."""
from agent.node.kubelet import podfiles


def pod(**spec):
    return {"metadata": {"name": "tmp", "namespace": "default"}, "spec": spec}


HOST = "nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n"


def test_cluster_first_is_the_default():
    assert podfiles.resolv_conf(pod(), "10.96.0.10", "cluster.local", HOST) == (
        "search default.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 10.96.0.10\noptions ndots:5\n")


def test_default_policy_copies_the_node_and_dns_config_merges():
    text = podfiles.resolv_conf(pod(dnsPolicy="Default", dnsConfig={
        "nameservers": ["192.0.2.1"], "searches": ["x.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}), "10.96.0.10", "cluster.local", HOST)
    assert text == "search corp.example x.example\nnameserver 192.0.2.53\nnameserver 192.0.2.1\noptions edns0 ndots:2\n"


def test_none_policy_uses_only_dns_config():
    text = podfiles.resolv_conf(pod(dnsPolicy="None", dnsConfig={"nameservers": ["1.2.3.4"]}),
                                "10.96.0.10", "cluster.local", HOST)
    assert text == "nameserver 1.2.3.4\n"


def test_hosts_file_with_subdomain_and_aliases():
    text = podfiles.hosts_file(pod(hostname="db-0", subdomain="db", hostAliases=[
        {"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]}]), "10.244.0.9", "cluster.local")
    assert "10.244.0.9\tdb-0.db.default.svc.cluster.local\tdb-0\n" in text
    assert text.endswith("# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n")
    assert text.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")


def svc(name, ip, ports, stype="ClusterIP"):
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"type": stype, "clusterIP": ip, "ports": ports}}


def test_service_links_like_docker_links():
    env = podfiles.service_links([
        svc("web-api", "10.96.5.5", [{"name": "http", "port": 80, "protocol": "TCP"},
                                     {"name": "dns", "port": 53, "protocol": "UDP"}]),
        svc("headless", "None", [{"port": 80}]),
        svc("ext", None, [], "ExternalName")])
    assert env == {
        "WEB_API_SERVICE_HOST": "10.96.5.5", "WEB_API_SERVICE_PORT": "80",
        "WEB_API_SERVICE_PORT_HTTP": "80", "WEB_API_SERVICE_PORT_DNS": "53",
        "WEB_API_PORT": "tcp://10.96.5.5:80",
        "WEB_API_PORT_80_TCP": "tcp://10.96.5.5:80", "WEB_API_PORT_80_TCP_PROTO": "tcp",
        "WEB_API_PORT_80_TCP_PORT": "80", "WEB_API_PORT_80_TCP_ADDR": "10.96.5.5",
        "WEB_API_PORT_53_UDP": "udp://10.96.5.5:53", "WEB_API_PORT_53_UDP_PROTO": "udp",
        "WEB_API_PORT_53_UDP_PORT": "53", "WEB_API_PORT_53_UDP_ADDR": "10.96.5.5"}


def test_container_env_links_then_own_env_and_field_refs():
    p = pod(nodeName="node-1", enableServiceLinks=False)
    p["metadata"]["uid"] = "u1"
    kube = svc("kubernetes", "10.96.0.1", [{"name": "https", "port": 443, "protocol": "TCP"}])
    env = podfiles.container_env(p, {"env": [
        {"name": "A", "value": "x"}, {"name": "B", "value": "$(A)-y"},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]},
        [svc("web", "10.96.1.1", [{"port": 80}])], kube, "10.244.0.7", {"PATH": "/bin"})
    assert "WEB_SERVICE_HOST" not in env          # enableServiceLinks: false
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert (env["B"], env["IP"], env["NODE"], env["PATH"]) == ("x-y", "10.244.0.7", "node-1", "/bin")
