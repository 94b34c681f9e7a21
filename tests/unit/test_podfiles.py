"""What the kubelet writes for pods: resolv.conf by dnsPolicy and hosts
(the environment is tests/unit/test_envvars.py's)."""
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
