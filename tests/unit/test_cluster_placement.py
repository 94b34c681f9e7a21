"""Several clusters on one machine (agent/cli/clusters.py): the API port and
underlay a new cluster gets, the flags' checks, and `nsplane clusters`'s
table. The machine is left out (`in_use` and the networks are given)."""
import ipaddress

import pytest

from agent.api.config import ClusterConfig
from agent.cli import clusters
from agent.cli.processes import ClusterError


def nets(*cidrs):
    return [ipaddress.ip_network(c) for c in cidrs]


def test_first_cluster_keeps_the_defaults():
    assert clusters.choose_api_port(set()) == 6443
    assert clusters.choose_underlay([]) == "172.28.0.0/24"


def test_the_next_cluster_gets_the_next_free_port_and_24():
    assert clusters.choose_api_port({6443, 6444}) == 6445
    assert clusters.choose_api_port({6443}, in_use=lambda p: p == 6444) == 6445
    assert clusters.choose_underlay(nets("172.28.0.0/24", "172.28.1.0/24")) == "172.28.2.0/24"
    # a test cluster's /24 or a wider network on the machine is skipped too
    assert clusters.choose_underlay(nets("172.28.0.0/23", "10.0.0.0/8")) == "172.28.2.0/24"


def test_nothing_free_says_which_flag_to_give():
    with pytest.raises(ClusterError, match="--api-port"):
        clusters.choose_api_port(set(range(6443, 6543)))
    with pytest.raises(ClusterError, match="--underlay"):
        clusters.choose_underlay(nets("172.28.0.0/16"))


@pytest.mark.parametrize("text,message", [
    ("172.28.5.1/24", "has host bits set"),
    ("fd00::/64", "IPv4 network from /16 to /26"),
    ("172.28.5.0/30", "IPv4 network from /16 to /26"),
    ("nope", "does not appear to be an IPv4 or IPv6 network"),
])
def test_underlay_flag_is_checked(text, message):
    with pytest.raises(ClusterError, match=message):
        clusters.parse_underlay(text)


def saved(tmp_path, name, **kw):
    cfg = ClusterConfig(name=name, state_dir=str(tmp_path), **kw)
    cfg.save()
    return cfg


def test_place_a_new_cluster_beside_a_saved_one(tmp_path):
    saved(tmp_path, "nsplane")
    cfg = ClusterConfig(name="nsplane-b", state_dir=str(tmp_path))
    said = clusters.place(cfg, host_netns="nsplane-b-out")
    assert (cfg.api_port, cfg.underlay_cidr, cfg.host_netns) == (6444, "172.28.1.0/24", "nsplane-b-out")
    assert cfg.load_balancer_pool == "172.28.1.200-172.28.1.250"
    assert said == ["API port 6444", "underlay 172.28.1.0/24", "LoadBalancer range 172.28.1.200-172.28.1.250"]


def test_flags_that_collide_with_another_cluster_are_refused(tmp_path):
    saved(tmp_path, "nsplane", underlay_cidr="172.28.0.0/24", api_port=6443)
    cfg = ClusterConfig(name="nsplane-b", state_dir=str(tmp_path))
    with pytest.raises(ClusterError, match="--api-port 6443 is the API port of cluster nsplane;"):
        clusters.place(cfg, api_port=6443, host_netns="nsplane-b-out")
    with pytest.raises(ClusterError, match="--underlay 172.28.0.0/23 overlaps the underlay of cluster nsplane"):
        clusters.place(cfg, api_port=7000, underlay="172.28.0.0/23", host_netns="nsplane-b-out")
    with pytest.raises(ClusterError, match="must start with 'nsplane'"):
        clusters.place(cfg, host_netns="other")


def test_an_existing_cluster_keeps_what_it_was_created_with(tmp_path):
    cfg = saved(tmp_path, "nsplane-b", api_port=6450, underlay_cidr="172.28.9.0/24")
    assert clusters.place(cfg) == [] and clusters.place(cfg, api_port=6450) == []
    with pytest.raises(ClusterError, match="was created with --underlay 172.28.9.0/24; `nsplane --cluster "
                                           "nsplane-b down --purge` it first"):
        clusters.place(cfg, underlay="172.28.10.0/24")


@pytest.mark.parametrize("name", ["nsplane-node-1", "nsplane-x-host"])
def test_names_that_look_like_a_node_or_host_namespace_are_refused(tmp_path, name):
    with pytest.raises(ClusterError, match="choose another name"):
        clusters.place(ClusterConfig(name=name, state_dir=str(tmp_path)))


def test_clusters_table(tmp_path):
    a = saved(tmp_path, "nsplane")
    b = saved(tmp_path, "nsplane-b", api_port=6444, underlay_cidr="172.28.1.0/24", nodes=2, node_indexes=[1, 2])
    out = clusters.render(clusters.rows([(b, "Stopped"), (a, "Running")]))
    assert out.splitlines() == [
        "NAME        API                      NODES   UNDERLAY        STATE",
        "nsplane     https://127.0.0.1:6443   1       172.28.0.0/24   Running",
        "nsplane-b   https://127.0.0.1:6444   2       172.28.1.0/24   Stopped",
    ]
    assert [c.name for c in clusters.known(str(tmp_path))] == ["nsplane", "nsplane-b"]
