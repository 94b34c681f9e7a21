"""dataplane.nft.render's patched rulesets equal whole renders, and their
Delta gives compose_partial the same transaction as a full comparison.

A seeded random walk over Service ports (endpoints added, removed, moved
to this node, ports added and deleted, affinity and policies toggled,
ClusterIPs shared by the ports of one Service) renders each step twice:
with the cache, patching the last ruleset, and from scratch. Both must be
equal, and the transaction from the Delta must hold the same operations as
the one compose_partial computes by comparing everything.
"""
from __future__ import annotations

import random

import pytest

from dataplane.model import Endpoint, NodeInfo, ServicePort
from dataplane.nft.render import NftRenderCache, render
from dataplane.nft.ruleset import NftRuleset
from dataplane.nft.transaction import compose_partial

NODE = NodeInfo("test-node", "10.0.0.0/8", ("192.168.0.2",))


def port(i: int, j: int, rng: random.Random) -> ServicePort:
    kind = rng.choice(["cluster", "nodeport", "lb", "local"])
    return ServicePort(
        "ns", f"svc{i}", f"p{j}", rng.choice(["TCP", "UDP"]), f"172.30.{i // 250}.{i % 250 + 1}", 80 + j,
        node_port=30000 + i * 4 + j if kind != "cluster" else 0,
        load_balancer_ips=(f"1.2.{i // 250}.{i % 250 + 1}",) if kind == "lb" else (),
        external_policy_local=kind == "local", internal_policy_local=rng.random() < 0.1,
        affinity_timeout=10800 if rng.random() < 0.2 else 0)


def endpoints(rng: random.Random) -> list[Endpoint]:
    return [Endpoint(f"10.180.{rng.randrange(4)}.{rng.randrange(1, 250)}", 8080,
                     node_name=rng.choice(["test-node", "other"]), ready=rng.random() < 0.9)
            for _ in range(rng.randrange(0, 4))]


def unpatched(ruleset: NftRuleset) -> NftRuleset:
    return NftRuleset(ruleset.base_chains, ruleset.chains, ruleset.maps, ruleset.sets)


def lines(tx) -> list[str]:
    """The transaction's operations, element lists sorted, in sorted order."""
    return sorted(repr((op[0], op[1], sorted(op[2]))) if op[0] in ("elements", "delete elements") else repr(op)
                  for op in tx.ops)


@pytest.mark.parametrize("seed", range(6))
def test_patched_renders_equal_whole_renders(seed):
    rng = random.Random(seed)
    services: dict[ServicePort, list[Endpoint]] = {}
    for i in range(40):
        for j in range(rng.randrange(1, 3)):
            services[port(i, j, rng)] = endpoints(rng)
    cache = NftRenderCache()
    previous = render(services, NODE, cache)
    patched_steps = 0
    for step in range(60):
        services = dict(services)
        action = rng.random()
        keys = list(services)
        if action < 0.6:
            sp = rng.choice(keys)
            services[sp] = endpoints(rng)
        elif action < 0.8:
            del services[rng.choice(keys)]
        else:
            i = 100 + step
            services[port(i, 0, rng)] = endpoints(rng)
        current = render(services, NODE, cache)
        whole = render(services, NODE)
        assert dict(current.chains) == dict(whole.chains), f"step {step}"
        assert {k: dict(v[1]) for k, v in current.maps.items()} == {k: dict(v[1]) for k, v in whole.maps.items()}
        assert dict(current.sets) == dict(whole.sets), f"step {step}"
        if current.delta is not None and current.delta.base is previous:
            patched_steps += 1
            assert lines(compose_partial(current, previous)) == lines(compose_partial(unpatched(current), previous))
        previous = current
    assert patched_steps > 50


def test_a_ruleset_does_not_keep_the_ones_before_it_alive():
    import gc
    import weakref

    sp = ServicePort("ns", "a", "http", "TCP", "172.30.0.1", 80)
    cache = NftRenderCache()
    first = weakref.ref(render({sp: [Endpoint("10.180.0.1", 8080)]}, NODE, cache))
    second = render({sp: [Endpoint("10.180.0.2", 8080)]}, NODE, cache)
    third = render({sp: [Endpoint("10.180.0.3", 8080)]}, NODE, cache)
    gc.collect()
    assert first() is None and second.delta.base is None and third.delta.base is second


def test_a_map_key_two_ports_name_turns_patching_off():
    a = ServicePort("ns", "a", "http", "TCP", "172.30.0.1", 80, external_ips=("192.168.99.1",))
    b = ServicePort("ns", "b", "http", "TCP", "172.30.0.2", 80, external_ips=("192.168.99.1",))
    eps = [Endpoint("10.180.0.1", 8080, node_name="other")]
    cache = NftRenderCache()
    first = render({a: eps}, NODE, cache)
    second = render({a: eps, b: eps}, NODE, cache)  # b names a's external IP key: the whole render's answer
    assert second.delta is not None and not second.delta.patchable
    third = render({a: eps, b: [Endpoint("10.180.0.2", 8080, node_name="other")]}, NODE, cache)
    assert dict(third.chains) == dict(render({a: eps, b: [Endpoint("10.180.0.2", 8080, node_name="other")]},
                                             NODE).chains)
    assert first.delta is None
