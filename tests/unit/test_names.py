"""dataplane.names: the names creation and cleanup agree on."""

import pytest

from dataplane import names


def test_node_netns():
    assert names.node_netns("nsplane", "node-1") == "nsplane-node-1"
    assert names.node_netns("nsplane-t1a2b", "node-2") == "nsplane-t1a2b-node-2"


def test_pod_netns():
    assert names.pod_netns("nsplane", "default", "web-abc12-xyz") == "nsplane-default-web-abc12-xyz"


def test_long_pod_netns_is_bounded_and_distinct():
    pod_a, pod_b = "a" * 253, "a" * 252 + "b"
    ns_a = names.pod_netns("nsplane", "default", pod_a)
    ns_b = names.pod_netns("nsplane", "default", pod_b)
    assert len(ns_a) <= names.NETNS_MAX and len(ns_b) <= names.NETNS_MAX
    assert ns_a != ns_b
    assert ns_a.startswith("nsplane-default-aaaa")
    assert names.owns_netns("nsplane", ns_a)


def test_ifname_is_15_chars_stable_and_keyed():
    a = names.ifname("nsplane", "pod/default/web-1")
    assert len(a) == 15 and a.startswith("nsplane")
    assert int(a[len("nsplane"):], 16) >= 0
    assert a == names.ifname("nsplane", "pod/default/web-1")
    assert a != names.ifname("nsplane", "pod/default/web-2")
    assert a != names.ifname("nsplane-t1", "pod/default/web-1")
    assert names.pod_ifname("nsplane", "default", "web-1") == names.ifname("nsplane", "pod/default/web-1")
    assert names.node_ifname("nsplane", "node-1") != names.pod_ifname("nsplane", "node", "1")


def test_bridge_name():
    assert names.bridge_name("nsplane") == "nsplane0"
    other = names.bridge_name("nsplane-t1a2b")
    assert other != "nsplane0" and len(other) == 15 and other.startswith("nsplane")


@pytest.mark.parametrize("bad", ["kube", "", "nsplane/x", "nsplane" + "x" * 64])
def test_cluster_must_carry_prefix(bad):
    with pytest.raises(ValueError, match="cluster name"):
        names.node_netns(bad, "node-1")


def test_owns_netns_is_by_prefix():
    assert names.owns_netns("nsplane-t1", "nsplane-t1-node-1")
    assert not names.owns_netns("nsplane-t1", "nsplane-t10-node-1")
    assert not names.owns_netns("nsplane-t1", "other-node-1")


def test_node_netns_is_exact_so_a_cluster_never_claims_another_clusters_namespaces():
    assert names.is_node_netns("nsplane", names.node_netns("nsplane", "node-3"))
    assert not names.is_node_netns("nsplane", names.node_netns("nsplane-t1234", "node-1"))
    assert not names.is_node_netns("nsplane", "nsplane-default-web")
    assert not names.is_node_netns("nsplane", "nsplane-node-")
