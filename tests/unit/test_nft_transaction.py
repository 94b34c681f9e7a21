"""dataplane.nft.transaction: the nft text of full and partial syncs (pure)."""
from __future__ import annotations

from dataclasses import replace

from dataplane.nft import transaction
from dataplane.nft.transaction import Existing, compose_full, compose_partial, element_key
from tests import nft_sample

EPS = {0: [("10.244.0.5", 8080), ("10.244.1.5", 8080)], 1: [("10.244.0.7", 8080)], 2: []}


def lines(text: str) -> list[str]:
    return text.splitlines()


def test_full_declares_flushes_and_fills_everything_in_order():
    rs = nft_sample.ruleset(EPS, affinity=True)
    out = lines(compose_full(rs).text)
    assert out[0] == 'add table ip kube-proxy { comment "rules for kube-proxy" ; }'
    assert "add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority dstnat ; }" in out
    first_rule = next(i for i, l in enumerate(out) if l.startswith("add rule"))
    first_element = next(i for i, l in enumerate(out) if l.startswith("add element"))
    last_decl = max(i for i, l in enumerate(out) if l.startswith(("add chain", "add map", "add set")))
    assert last_decl < first_element < first_rule  # everything referred to exists before use
    for chain in rs.chains:
        assert f"flush chain ip kube-proxy {chain}" in out
    assert "flush map ip kube-proxy service-ips" in out
    assert "flush set ip kube-proxy cluster-ips" in out
    affinity = [s for s in rs.sets if s.startswith("affinity-")]
    assert affinity and not any(l.startswith(f"flush set ip kube-proxy {affinity[0]}") for l in out)
    assert sum(l.startswith("add rule") for l in out) == rs.rules()
    assert not any(l.startswith("delete") for l in out)


def test_full_deletes_what_the_kernel_holds_and_the_ruleset_does_not():
    rs = nft_sample.ruleset(EPS)
    old = nft_sample.service_chain(9)
    tx = compose_full(rs, Existing(frozenset({*rs.chains, old}), frozenset({"old-map", "service-ips"}),
                                   frozenset({"old-set"})))
    out = lines(tx.text)
    assert out[-4:] == [f"flush chain ip kube-proxy {old}", f"delete chain ip kube-proxy {old}",
                        "delete map ip kube-proxy old-map", "delete set ip kube-proxy old-set"]
    assert tx.deleted == [old, "old-map", "old-set"]


def test_partial_of_an_unchanged_ruleset_is_empty():
    rs = nft_sample.ruleset(EPS)
    tx = compose_partial(nft_sample.ruleset(EPS), rs)
    assert tx is not None and tx.text == "" and tx.changed == 0


def test_partial_writes_only_the_changed_chains_and_elements():
    before = nft_sample.ruleset(EPS)
    after = nft_sample.ruleset({**EPS, 0: [("10.244.0.5", 8080), ("10.244.2.9", 8080)], 2: [("10.244.0.8", 80)]})
    tx = compose_partial(after, before)
    out = lines(tx.text)
    svc0, svc2 = nft_sample.service_chain(0), nft_sample.service_chain(2)
    gone = nft_sample.endpoint_chain(0, "10.244.1.5", 8080)
    new = nft_sample.endpoint_chain(0, "10.244.2.9", 8080)
    assert f"add chain ip kube-proxy {new}" in out and f"add chain ip kube-proxy {svc2}" in out
    assert f"flush chain ip kube-proxy {svc0}" in out
    assert not any(nft_sample.service_chain(1) in l for l in out)  # untouched Service
    # Service 2 got its first endpoint: its no-endpoints element goes (by key, no comment), its service-ips one comes
    assert "delete element ip kube-proxy no-endpoint-services { 10.96.0.3 . tcp . 80 }" in out
    assert f"add element ip kube-proxy service-ips {{ 10.96.0.3 . tcp . 80 : goto {svc2} }}" in out
    assert out[-2:] == [f"flush chain ip kube-proxy {gone}", f"delete chain ip kube-proxy {gone}"]
    assert tx.chains_deleted == 1 and tx.elements_added == 1 and tx.elements_deleted == 1
    # deletions of elements come before additions: a changed value is delete + add
    assert out.index("delete element ip kube-proxy no-endpoint-services { 10.96.0.3 . tcp . 80 }") < \
        out.index(f"add element ip kube-proxy service-ips {{ 10.96.0.3 . tcp . 80 : goto {svc2} }}")


def test_partial_replaces_an_element_whose_value_changed():
    before = nft_sample.ruleset(EPS)
    maps = dict(before.maps)
    decl, items = maps["service-ips"]
    maps["service-ips"] = (decl, {**items, "10.96.0.1 . tcp . 80": "goto reject-chain"})
    out = lines(compose_partial(replace(before, maps=maps), before).text)
    assert out == ["delete element ip kube-proxy service-ips { 10.96.0.1 . tcp . 80 }",
                   "add element ip kube-proxy service-ips { 10.96.0.1 . tcp . 80 : goto reject-chain }"]


def test_partial_updates_set_elements_but_never_a_dynamic_sets():
    before = nft_sample.ruleset(EPS, affinity=True)
    after = nft_sample.ruleset({**EPS, 3: [("10.244.0.9", 80)]}, affinity=True)
    out = lines(compose_partial(after, before).text)
    assert "add element ip kube-proxy cluster-ips { 10.96.0.4 }" in out
    new_affinity = [s for s in after.sets if s not in before.sets]
    assert new_affinity and f"add set ip kube-proxy {new_affinity[0]} {{ {after.sets[new_affinity[0]][0]} }}" in out
    assert not any(l.startswith("add element") and "affinity-" in l for l in out)


def test_partial_gives_up_when_only_a_full_sync_can_express_the_change():
    rs = nft_sample.ruleset(EPS)
    assert compose_partial(replace(rs, base_chains={**rs.base_chains, "x": "type filter hook input priority 0 ;"}),
                           rs) is None
    maps = {**rs.maps, "service-ips": ("type ipv4_addr : verdict ;", rs.maps["service-ips"][1])}
    assert compose_partial(replace(rs, maps=maps), rs) is None


def test_element_key_drops_the_comment():
    assert element_key('10.96.0.10 . udp . 53 comment "kube-system/kube-dns:dns"') == "10.96.0.10 . udp . 53"
    assert transaction.is_dynamic("type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ;")
