"""Dispatch trees (dataplane.dispatch) and partial applies, without root.

Above the threshold KUBE-SERVICES / KUBE-NODEPORTS become trees of chains;
the packet tracer of test_rules walks them and must reach exactly what the
flat kube-proxy layout reaches. Partial applies are checked as the text they
would feed to iptables-restore.
"""
from __future__ import annotations

import random

import pytest

from dataplane import dispatch
from dataplane.chains import is_service_chain, service_chains
from dataplane.iptables import compose_partial
from dataplane.model import Endpoint, NodeInfo, ServicePort
from dataplane.rules import RenderCache, render
from tests.unit.test_rules import Tracer

NODE = NodeInfo(name="test-node", cluster_cidr="10.244.0.0/16", node_ips=("192.168.0.2",))


def cluster(n: int, seed: int = 7, node_ports: bool = True) -> dict[ServicePort, list[Endpoint]]:
    rng = random.Random(seed)
    offsets = rng.sample(range(16, 1 << 20), n)
    services = {}
    for i, off in enumerate(offsets):
        ip = f"10.{96 + off // 65536}.{off // 256 % 256}.{off % 256}"
        kw = {"node_port": 30000 + i} if node_ports and i < 2000 else {}
        if i % 50 == 0:
            kw["external_ips"] = (f"192.168.{i % 200}.{i % 250 + 1}",)
        svc = ServicePort("default", f"s{i}", "", "UDP" if i % 7 == 0 else "TCP", ip, 80 + i % 3, **kw)
        services[svc] = [] if i % 11 == 0 else [Endpoint(f"10.244.{i // 200}.{i % 200 + 1}", 8080)]
    return services


def test_small_clusters_keep_kube_proxys_flat_list():
    services = cluster(200)
    nat = render(services, NODE).tables["nat"]
    assert not any(c.startswith(dispatch.TREE_CHAIN_PREFIXES) for c in nat)
    expected = sum(1 + len(svc.external_ips) for svc, eps in services.items() if eps) + 1  # + the NodePort jump
    assert len(nat["KUBE-SERVICES"]) == expected


def test_tree_shape_and_names():
    services = cluster(3000)
    ruleset = render(services, NODE, tree_threshold=1000)
    nat = ruleset.tables["nat"]
    top = nat["KUBE-SERVICES"]
    assert len(top) <= 2 * 16 + 1 and top[-1].endswith("-j KUBE-NODEPORTS")
    tree = [c for c in nat if c.startswith(dispatch.IP_TREE_PREFIX)]
    assert tree and all(len(c) <= 28 and is_service_chain(c) for c in tree)
    assert all(len(nat[c]) <= max(16, dispatch.LEAF_SIZE) for c in tree)
    ports = [c for c in nat if c.startswith(dispatch.PORT_TREE_PREFIX)]
    assert ports and len(nat["KUBE-NODEPORTS"]) <= 16
    # Every Service rule is somewhere in the tree exactly once.
    svc_rules = [r for c in [*tree, "KUBE-SERVICES"] for r in nat[c] if "cluster IP" in r]
    assert len(svc_rules) == sum(1 for eps in services.values() if eps)
    # The filter REJECT rules of the 273 endpoint-less Services stay a flat list (below the threshold).
    assert len(ruleset.tables["filter"]["KUBE-SERVICES"]) == sum(1 for eps in services.values() if not eps)


@pytest.mark.parametrize("threshold", [100, 3])
def test_tree_reaches_what_the_flat_list_reaches(threshold):
    services = cluster(300)
    flat = Tracer(render(services, NODE, tree_threshold=10**9).text)
    tree = Tracer(render(services, NODE, tree_threshold=threshold).text)
    rng = random.Random(3)
    probes = []
    for svc, eps in rng.sample(sorted(services.items(), key=lambda kv: kv[0].name), 40):
        proto = svc.protocol.lower()
        probes += [("10.244.9.9", svc.cluster_ip, svc.port, proto), ("10.244.9.9", svc.cluster_ip, svc.port + 1, proto)]
        probes += [("203.0.113.9", ip, svc.port, proto) for ip in svc.external_ips]
        if svc.node_port:
            probes.append(("203.0.113.9", "192.168.0.2", svc.node_port, proto))
    probes.append(("10.244.9.9", "10.111.1.1", 80, "tcp"))  # no such Service
    for probe in probes:
        assert tree.trace(*probe) == flat.trace(*probe), probe


def test_one_service_ip_with_many_ports_is_one_leaf():
    many = {ServicePort("default", "wide", f"p{i}", "TCP", "10.96.0.50", 1000 + i): [Endpoint("10.244.0.5", 1000 + i)]
            for i in range(100)}
    nat = render(many, NODE, tree_threshold=10).tables["nat"]
    leaf = nat["KUBE-SVCS-10.96.0.50-32"]
    assert len(leaf) == 100 and leaf[0].split("--dport ")[1].startswith("1000 ")


def test_adding_a_service_rewrites_only_its_path():
    services = cluster(3000)
    cache = RenderCache()
    before = render(services, NODE, cache, tree_threshold=1000)
    assert cache.hits == 0
    new = ServicePort("default", "new", "", "TCP", "10.97.1.2", 80)
    services[new] = [Endpoint("10.244.99.1", 80)]
    after = render(services, NODE, cache, tree_threshold=1000)
    assert cache.hits == 3000
    text, touched = compose_partial(after, before)
    chains = {line[1:].split()[0] for line in text.splitlines() if line.startswith(":")}
    svc = service_chains("default/new", "TCP").svc
    assert svc in chains and any(c.startswith(dispatch.IP_TREE_PREFIX) for c in chains)
    assert touched == len(chains) <= 8  # the Service's chains, its path in the tree, KUBE-SERVICES at most
    # And back: its chains are deleted after the rules that jump to them are gone.
    del services[new]
    text, _ = compose_partial(render(services, NODE, cache, tree_threshold=1000), after)
    lines = text.splitlines()
    assert f"-X {svc}" in lines
    assert not any(f"-j {svc}" in line for line in lines)


def test_partial_apply_of_identical_rulesets_writes_nothing():
    services = cluster(50)
    a, b = render(services, NODE), render(services, NODE)
    assert compose_partial(b, a) == ("", 0)
    services[sorted(services, key=lambda s: s.name)[1]] = [Endpoint("10.244.250.1", 80)]
    text, touched = compose_partial(render(services, NODE), a)
    assert text.startswith("*nat\n") and "*filter" not in text and touched >= 2


def test_first_and_last_endpoint_changes_never_leave_a_service_neither_dnated_nor_rejected():
    web = ServicePort("default", "web", "", "TCP", "10.96.0.20", 80)
    db = ServicePort("default", "db", "", "TCP", "10.96.0.30", 5432)
    before = render({web: [], db: [Endpoint("10.244.0.9", 5432)]}, NODE)
    after = render({web: [Endpoint("10.244.0.5", 80)], db: []}, NODE)  # web gets its first, db loses its last
    text, _ = compose_partial(after, before)
    sections = [s.splitlines() for s in text.split("COMMIT\n") if s]
    assert [s[0] for s in sections] == ["*filter", "*nat", "*filter"]
    web_reject = next(r for r in before.tables["filter"]["KUBE-SERVICES"] if "default/web has no endpoints" in r)
    db_reject = next(r for r in after.tables["filter"]["KUBE-SERVICES"] if "default/db has no endpoints" in r)
    # Before nat changes, filter rejects both; afterwards only what is right.
    assert web_reject in sections[0] and db_reject in sections[0]
    assert web_reject not in sections[2] and db_reject in sections[2]
    # Endpoint changes that do not touch filter stay one nat commit.
    text, _ = compose_partial(render({web: [Endpoint("10.244.0.6", 80)], db: []}, NODE), after)
    assert text.startswith("*nat\n") and "*filter" not in text


def test_full_syncs_bridge_the_filter_and_nat_commits_too():
    from dataplane.iptables import TableState, compose_restore
    web = ServicePort("default", "web", "", "TCP", "10.96.0.20", 80)
    ruleset = render({web: [Endpoint("10.244.0.5", 80)]}, NODE)
    fresh = compose_restore(ruleset, {})
    assert [line for line in fresh.splitlines() if line.startswith("*")] == ["*mangle", "*nat", "*filter"]
    old_reject = '-A KUBE-SERVICES -d 10.96.0.20/32 -p tcp -m comment --comment "default/web has no endpoints" -j REJECT'
    state = {"filter": TableState({"KUBE-SERVICES", "KUBE-FORWARD", "KUBE-FIREWALL"}, [old_reject]), "nat": TableState(set(), [])}
    text = compose_restore(ruleset, state)
    assert [line for line in text.splitlines() if line.startswith("*")] == ["*filter", "*mangle", "*nat", "*filter"]
    union = text.split("COMMIT\n")[0].splitlines()
    # Nothing of the old filter is flushed before nat commits: existing chains are not declared.
    assert not any(line.startswith((":KUBE-SERVICES", ":KUBE-FORWARD", ":KUBE-FIREWALL")) for line in union)
    assert ":KUBE-EXTERNAL-SERVICES - [0:0]" in union  # missing ones are created
    assert text.endswith("COMMIT\n") and text.count("*filter") == 2


def test_port_tree_splits_by_protocol():
    entries = [("tcp" if i % 2 else "udp", 30000 + i, f"-m comment --comment s{i} -j X{i}") for i in range(40)]
    top, chains = dispatch.port_tree(entries, threshold=5)
    assert any(r.startswith("-p tcp -m tcp --dport ") for r in top)
    assert any(r.startswith("-p udp -m udp --dport ") for r in top)
    assert all(n.startswith(("KUBE-NP-TCP-", "KUBE-NP-UDP-")) for n in chains)
    assert dispatch.port_tree(entries, threshold=40) == ([t for _, _, t in entries], {})
