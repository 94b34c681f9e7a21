"""dataplane.nft.compile, nlmsg and netlink.encode: rules, keys and batches as bytes.

The kernel test tests/kernel/test_nft_netlink.py holds whole tables written
this way against nft's; these pin the pieces: which text is compiled and
which is left to nft, nft's choices for prefixes, element keys padded to
registers, and long element lists split so no attribute overflows.
"""
from __future__ import annotations

import struct

import pytest

from dataplane.nft import compile as c
from dataplane.nft import netlink
from dataplane.nft import nlmsg as m


def walk(data: bytes) -> list[tuple[int, bytes]]:
    """Top-level attributes of `data`: (type without flags, payload)."""
    out, offset = [], 0
    while offset < len(data):
        size, kind = struct.unpack_from("<HH", data, offset)
        out.append((kind & 0x3FFF, data[offset + 4:offset + size]))
        offset += (size + 3) & ~3
    return out


def expr_names(exprs: bytes) -> list[str]:
    names = []
    for _, elem in walk(exprs):
        name = dict(walk(elem))[m.EXPR_NAME]
        names.append(name.rstrip(b"\0").decode())
    return names


@pytest.mark.parametrize("text, names", [
    ("ip daddr 172.30.0.41 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade",
     ["payload", "cmp", "meta", "cmp", "payload", "cmp", "payload", "cmp", "immediate"]),
    ("ip saddr != 10.96.0.0/12 jump mark-for-masquerade", ["payload", "bitwise", "cmp", "immediate"]),
    ("ip saddr 10.180.0.1 jump mark-for-masquerade", ["payload", "cmp", "immediate"]),
    ("meta l4proto udp dnat to 10.180.0.1:53", ["meta", "cmp", "immediate", "immediate", "nat"]),
    ("update @affinity-x { ip saddr }", ["payload", "dynset"]),
    ("ip saddr @affinity-x goto endpoint-x", ["payload", "lookup", "immediate"]),
    ('fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"', ["fib", "cmp", "immediate"]),
    ('iifname veth* goto service-x comment "short-circuit pod traffic"', ["meta", "cmp", "immediate"]),
    ("goto service-x", ["immediate"]),
    ("drop", ["immediate"]),
])
def test_compiled_shapes(text, names):
    assert expr_names(c.rule(text).exprs) == names


def test_whole_bytes_of_a_prefix_are_compared_directly():
    exprs = [dict(walk(dict(walk(e))[m.EXPR_DATA])) for _, e in walk(c.rule("ip saddr 10.0.0.0/8 drop").exprs)]
    assert exprs[0][4] == struct.pack(">I", 1)  # payload length: one byte
    assert dict(walk(exprs[1][3]))[m.DATA_VALUE] == b"\x0a"


def test_numgen_vmap_keeps_its_gotos_for_the_anonymous_map():
    rule = c.rule("numgen random mod 2 vmap { 0 : goto endpoint-a , 1 : goto endpoint-b }")
    assert rule.vmap == ((0, "endpoint-a"), (1, "endpoint-b"))
    assert expr_names(rule.exprs) == ["numgen"]


def test_an_address_set_is_sent_as_nft_sends_its_intervals():
    rule = c.rule("ip saddr != { 1.2.3.4 , 192.168.0.0/24 , 203.0.113.0/25 } drop")
    assert rule.negate and expr_names(rule.exprs) == ["payload"] and expr_names(rule.after) == ["immediate"]
    assert [(k.hex(), end) for k, end in rule.interval] == [
        ("00000000", True), ("01020304", False), ("01020305", True), ("c0a80000", False), ("c0a80100", True),
        ("cb007100", False), ("cb007180", True)]
    assert c.rule("ip saddr != { 203.0.113.0/25 } drop").interval is None  # one element: compared directly


def test_comment_is_kept():
    assert c.rule('goto x comment "short-circuit local traffic"').comment == "short-circuit local traffic"


@pytest.mark.parametrize("text", [
    "ip saddr != { 1.2.3.4 , 1.2.3.5 } drop",  # nft makes a plain set of these
    "ip saddr != { 10.0.0.0/8 , 10.1.0.0/16 } drop",  # nft merges these
    "ip daddr != { 10.0.0.0/8 , 192.168.0.0/16 } drop",
    "ct state new jump firewall-check",
    "iif lo goto services",
    "iifname eth0 goto services",
    "meta l4proto tcp dnat to 10.1.2.3",
    "numgen random mod 3 vmap { 0 : goto a , 1 : goto b }",
    "masquerade fully-random",
])
def test_everything_else_is_left_to_nft(text):
    with pytest.raises(c.Unsupported):
        c.rule(text)


def test_text_compile_does_not_read_is_left_to_nft():
    for ops in ([("rule", "x", "tcp dport http drop")], [("elements", "s", [("10.0.0.300", None)])]):
        with pytest.raises(netlink.Unsupported):
            netlink.encode(ops, {"s": "type ipv4_addr ;"}, netlink.Names())


def test_keys_are_padded_to_registers_and_comments_left_out():
    fields = c.key_fields("type ipv4_addr . inet_proto . inet_service : verdict ;")
    assert c.key(fields, '10.96.0.10 . udp . 53 comment "kube-system/kube-dns:dns"') == \
        bytes([10, 96, 0, 10, 17, 0, 0, 0, 0, 53, 0, 0])
    assert c.key(c.key_fields('type ipv4_addr ; comment "Active ClusterIPs" ;'), "10.96.0.1") == bytes([10, 96, 0, 1])
    assert c.key_comment('tcp . 3001 comment "ns2/svc2:p80"') == "ns2/svc2:p80"
    with pytest.raises(c.Unsupported):
        c.key_fields("type ipv6_addr ;")


def test_element_values():
    assert c.element_verdict("goto reject-chain") == (m.NFT_GOTO, "reject-chain")
    assert c.element_verdict("drop") == (m.NF_DROP, None)
    with pytest.raises(c.Unsupported):
        c.element_verdict("counter")


def test_anonymous_map_names_stay_out_of_the_kernels_numbering():
    names = netlink.Names()
    first, second = names.next(), names.next()
    assert first != second and first.startswith("__map.") and second.startswith("__map.")


def test_long_element_lists_take_several_messages():
    decl = "type ipv4_addr ;"
    ops = [("elements", "cluster-ips", [(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", None) for i in range(20000)])]
    batch = netlink.encode(ops, {"cluster-ips": decl}, netlink.Names())
    data, sizes, offset = batch.data(), [], 0
    while offset < len(data):
        (size,) = struct.unpack_from("<I", data, offset)
        sizes.append(size)
        offset += size
    assert len(sizes) > 3  # begin, several element messages, end
    assert all(size < 65536 for size in sizes)
    assert {batch.op_of(seq) for seq in range(1, batch.seq + 1)} == {0}


def test_refusals_are_read_from_the_kernels_replies():
    original = struct.pack("<IHHII", 40, (10 << 8) | m.NEWRULE, 1, 7, 0)
    reply = struct.pack("<IHHII", 36, m.NLMSG_ERROR, 0, 7, 0) + struct.pack("<i", -2) + original
    ack = struct.pack("<IHHII", 36, m.NLMSG_ERROR, 0, 8, 0) + struct.pack("<i", 0) + original
    assert m.errors(ack + reply) == [(2, 7)]
