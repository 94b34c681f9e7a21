"""Rules, set elements and set declarations of the per-Service chains, as
the nf_tables expressions nft 1.0.6 makes of them (pure).

`dataplane.nft.service` writes a Service port's chains in a small part of
nft's language; this compiles exactly that part, expression for expression
as `nft --debug=netlink` shows nft compiling it (tests/kernel/test_nft_netlink
holds the two side by side), so the kernel holds, and `nft list` prints,
the same table whichever wrote it:

    ip saddr|daddr [!=] <ip>|<ip>/<len>|@<set>    payload [bitwise] cmp | lookup
    tcp|udp|sctp dport <port>                     meta l4proto, cmp, payload, cmp
    meta l4proto <proto>                          meta, cmp
    iifname [!=] <prefix>*                        meta iifname, cmp of the prefix
    fib saddr type local                          fib, cmp
    jump|goto <chain>, drop, accept, return       immediate verdict
    ip saddr [!=] { <prefix>, <ip>, ... }         payload, lookup in an anonymous interval set
    numgen random mod N vmap { 0 : goto <c>, ... }  numgen + lookup in an anonymous map
    update @<set> { ip saddr }                    payload, dynset
    dnat to <ip>:<port>                           immediate x2, nat
    comment "<text>"                              the rule's user data

Anything else (the fixed chains' rules; an address set nft would merge,
or of single addresses only) raises `Unsupported`; the caller then writes
the transaction through nft.
"""
from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass

from dataplane.nft import nlmsg as m

PROTOCOLS = {"tcp": 6, "udp": 17, "sctp": 132}
_COMMENT = re.compile(r'\s+comment\s+"([^"]*)"\s*$')
_KEY_COMMENT = re.compile(r'\s+comment\s+"([^"]*)"')
_NETWORK, _TRANSPORT = 1, 2
_VERDICTS = {"drop": m.NF_DROP, "accept": m.NF_ACCEPT, "return": m.NFT_RETURN}
_RTN_LOCAL = struct.pack("=I", 2)  # fib's address type, in host byte order as nft compares it


class Unsupported(ValueError):
    """Text outside the part of nft's language compiled here."""


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled rule: its expressions, in two parts around the lookup in an
    anonymous map or set (which needs the name it is given in the batch):
    a `numgen ... vmap`'s (key, chain) gotos, or an `ip saddr [!=] { ... }`
    interval set's elements ((key, is an interval's end), as nft sends
    them); and its comment."""

    exprs: bytes
    vmap: tuple[tuple[int, str], ...] | None = None
    comment: str | None = None
    interval: tuple[tuple[bytes, bool], ...] | None = None
    negate: bool = False  # the interval set's lookup is `!=`
    after: bytes = b""  # the expressions after the anonymous lookup


def _payload(base: int, offset: int, length: int, reg: int = m.REG_1) -> bytes:
    return m.expr("payload", m.u32(1, reg), m.u32(2, base), m.u32(3, offset), m.u32(4, length))


def _cmp(negate: bool, data: bytes, reg: int = m.REG_1) -> bytes:
    return m.expr("cmp", m.u32(1, reg), m.u32(2, 1 if negate else 0), m.value(3, data))


def _meta(key: int) -> bytes:
    return m.expr("meta", m.u32(2, key), m.u32(1, m.REG_1))


def _immediate_verdict(code: int, chain: str | None = None) -> bytes:
    return m.expr("immediate", m.u32(1, m.REG_VERDICT), m.verdict(2, code, chain))


def _immediate_value(reg: int, data: bytes) -> bytes:
    return m.expr("immediate", m.u32(1, reg), m.value(2, data))


def lookup(set_name: str, set_id: int | None = None, verdict_map: bool = False, negate: bool = False) -> bytes:
    """The lookup expression (in a named set, or in a map giving the verdict)."""
    parts = [m.u32(2, m.REG_1)]
    if verdict_map:
        parts.append(m.u32(3, m.REG_VERDICT))
    parts.append(m.string(1, set_name))
    if set_id is not None:
        parts.append(m.u32(4, set_id))
    if negate:
        parts.append(m.u32(5, 1))  # NFT_LOOKUP_F_INV
    return m.expr("lookup", *parts)


def _address(offset: int, negate: bool, text: str) -> bytes:
    """`ip saddr|daddr [!=] <ip or prefix>` as nft compiles it: whole bytes
    of a prefix are compared directly, any other prefix through a mask."""
    try:
        net = ipaddress.IPv4Network(text, strict=False)
    except ValueError as err:
        raise Unsupported(f"not an IPv4 address or prefix: {text!r}") from err
    plen, raw = net.prefixlen, net.network_address.packed
    if plen and plen % 8 == 0:
        return _payload(_NETWORK, offset, plen // 8) + _cmp(negate, raw[:plen // 8])
    mask = net.netmask.packed
    return (_payload(_NETWORK, offset, 4)
            + m.expr("bitwise", m.u32(1, m.REG_1), m.u32(2, m.REG_1), m.u32(3, 4), m.value(4, mask),
                     m.value(5, b"\0\0\0\0"))
            + _cmp(negate, raw))


def _verdict_code(word: str) -> int:
    return m.NFT_JUMP if word == "jump" else m.NFT_GOTO


def rule(text: str) -> Rule:
    """Compile one rule (see the module docstring); Unsupported otherwise."""
    comment = None
    found = _COMMENT.search(text)
    if found:
        comment, text = found.group(1), text[:found.start()]
    tokens = text.split()
    out: list[bytes] = []
    i, n = 0, len(tokens)

    def need(count: int) -> list[str]:
        if i + count > n:
            raise Unsupported(f"rule ends early: {text!r}")
        return tokens[i:i + count]

    while i < n:
        word = tokens[i]
        if word == "ip":
            _, field, *rest = need(3)
            if field not in ("saddr", "daddr"):
                raise Unsupported(f"ip {field}")
            offset = 12 if field == "saddr" else 16
            negate = rest[0] == "!="
            i += 3 if negate else 2
            target = need(1)[0]
            i += 1
            if target == "{":
                close = tokens.index("}", i) if "}" in tokens[i:] else -1
                if close < 0:
                    raise Unsupported(text)
                items = " ".join(tokens[i:close]).replace(",", " ").split()
                i = close + 1
                if len(items) == 1:  # nft compares a one-element set directly
                    out.append(_address(offset, negate, items[0]))
                    continue
                if field != "saddr":
                    raise Unsupported(f"ip {field} {{ ... }}")
                rest_rule = rule(" ".join(tokens[i:]))
                if rest_rule.vmap is not None or rest_rule.interval is not None:
                    raise Unsupported(text)
                return Rule(b"".join(out) + _payload(_NETWORK, offset, 4), None, comment, _intervals(items, text),
                            negate, rest_rule.exprs)
            if target.startswith("@"):
                out.append(_payload(_NETWORK, offset, 4) + lookup(target[1:], negate=negate))
            else:
                out.append(_address(offset, negate, target))
        elif word in PROTOCOLS and i + 1 < n and tokens[i + 1] == "dport":
            port = int(need(3)[2])
            out.append(_meta(16) + _cmp(False, bytes((PROTOCOLS[word],)))
                       + _payload(_TRANSPORT, 2, 2) + _cmp(False, struct.pack(">H", port)))
            i += 3
        elif word == "meta" and i + 1 < n and tokens[i + 1] == "l4proto":
            proto = need(3)[2]
            if proto not in PROTOCOLS:
                raise Unsupported(f"meta l4proto {proto}")
            out.append(_meta(16) + _cmp(False, bytes((PROTOCOLS[proto],))))
            i += 3
        elif word == "iifname":
            negate = need(2)[1] == "!="
            i += 2 if negate else 1
            name = need(1)[0].strip('"')
            i += 1
            if not name.endswith("*") or len(name) < 2:
                raise Unsupported(f"iifname {name} (only a prefix with * is compiled)")
            out.append(_meta(6) + _cmp(negate, name[:-1].encode()))
        elif word == "fib":
            if need(4)[1:] != ["saddr", "type", "local"]:
                raise Unsupported(" ".join(tokens[i:i + 4]))
            out.append(m.expr("fib", m.u32(3, 1), m.u32(2, 3), m.u32(1, m.REG_1)) + _cmp(False, _RTN_LOCAL))
            i += 4
        elif word in ("jump", "goto"):
            out.append(_immediate_verdict(_verdict_code(word), need(2)[1]))
            i += 2
        elif word in _VERDICTS:
            out.append(_immediate_verdict(_VERDICTS[word]))
            i += 1
        elif word == "numgen":
            return Rule(b"".join(out) + _numgen(tokens[i:], text), _vmap(tokens[i:], text), comment)
        elif word == "update":
            _, target, brace, ip, field, close = need(6)
            if (brace, ip, field, close) != ("{", "ip", "saddr", "}") or not target.startswith("@"):
                raise Unsupported(" ".join(tokens[i:i + 6]))
            out.append(_payload(_NETWORK, 12, 4)
                       + m.expr("dynset", m.u32(4, m.REG_1), m.u32(3, 1), m.string(1, target[1:])))
            i += 6
        elif word == "dnat":
            to, where = need(3)[1:]
            address, _, port = where.rpartition(":")
            if to != "to" or not address or not port.isdigit():
                raise Unsupported(f"dnat {to} {where}")
            out.append(_immediate_value(m.REG_1, ipaddress.IPv4Address(address).packed)
                       + _immediate_value(m.REG_2, struct.pack(">H", int(port)))
                       + m.expr("nat", m.u32(1, 1), m.u32(2, m.NFPROTO_IPV4), m.u32(3, m.REG_1), m.u32(5, m.REG_2),
                                m.u32(7, 0x2)))
            i += 3
        else:
            raise Unsupported(f"{word!r} in {text!r}")
    return Rule(b"".join(out), None, comment)


def _intervals(items: list[str], text: str) -> tuple[tuple[bytes, bool], ...]:
    """An interval set's elements as nft 1.0.6 sends them: sorted ranges,
    each its first address and, flagged as an end, the address after its
    last; a leading end at 0.0.0.0 when the first range does not start
    there. Sets without a prefix (nft makes those plain sets), ranges that
    touch or overlap (nft merges them) and a range ending at
    255.255.255.255 are left to nft."""
    try:
        nets = sorted(ipaddress.IPv4Network(item, strict=False) for item in items)
    except ValueError as err:
        raise Unsupported(text) from err
    if all("/" not in item for item in items):
        raise Unsupported(f"a set of single addresses: {text!r}")
    out: list[tuple[bytes, bool]] = []
    previous_end = None
    for net in nets:
        start, end = int(net.network_address), int(net.broadcast_address) + 1
        if previous_end is not None and start <= previous_end or end > 0xFFFFFFFF:
            raise Unsupported(f"ranges nft would merge or end at the top: {text!r}")
        if not out and start != 0:
            out.append((b"\0\0\0\0", True))
        out += [(start.to_bytes(4, "big"), False), (end.to_bytes(4, "big"), True)]
        previous_end = end
    return tuple(out)


def _numgen(tokens: list[str], text: str) -> bytes:
    if len(tokens) < 6 or tokens[1:3] != ["random", "mod"] or tokens[4] != "vmap" or not tokens[3].isdigit():
        raise Unsupported(text)
    return m.expr("numgen", m.u32(1, m.REG_1), m.u32(2, int(tokens[3])), m.u32(3, 1), m.u32(4, 0))


def _vmap(tokens: list[str], text: str) -> tuple[tuple[int, str], ...]:
    """`{ 0 : goto a , 1 : goto b }` -> ((0, "a"), (1, "b"))."""
    body = " ".join(tokens[5:])
    if not (body.startswith("{") and body.endswith("}")):
        raise Unsupported(text)
    out = []
    for item in body[1:-1].split(","):
        key, _, verdict = item.partition(":")
        words = verdict.split()
        if not key.strip().isdigit() or len(words) != 2 or words[0] != "goto":
            raise Unsupported(text)
        out.append((int(key), words[1]))
    if len(out) != int(tokens[3]):
        raise Unsupported(text)
    return tuple(out)


# ---------------------------------------------------------------- sets and elements


_FIELDS = {"ipv4_addr": 4, "inet_proto": 1, "inet_service": 2}


def key_fields(declaration: str) -> tuple[str, ...]:
    """The key's types of a set or map declaration (`type a . b : verdict ;`)."""
    found = re.search(r"type\s+([a-z0-9_ .]+?)\s*(?::\s*(\w+)\s*)?;", declaration)
    if not found:
        raise Unsupported(f"no key type in {declaration!r}")
    fields = tuple(f.strip() for f in found.group(1).split("."))
    if any(f not in _FIELDS for f in fields) or (found.group(2) not in (None, "verdict")):
        raise Unsupported(f"key type {found.group(0)!r}")
    return fields


def key(fields: tuple[str, ...], text: str) -> bytes:
    """An element's key (its comment left out) as the kernel holds it; each
    field of a concatenation takes a whole number of 4-byte registers."""
    parts = [p.strip() for p in _KEY_COMMENT.sub("", text).split(" . ")]
    if len(parts) != len(fields):
        raise Unsupported(f"key {text!r} does not match the type {' . '.join(fields)}")
    out = b""
    for kind, part in zip(fields, parts):
        if kind == "ipv4_addr":
            raw = ipaddress.IPv4Address(part).packed
        elif kind == "inet_proto":
            if part not in PROTOCOLS:
                raise Unsupported(f"protocol {part!r}")
            raw = bytes((PROTOCOLS[part],))
        else:
            raw = struct.pack(">H", int(part))
        out += raw + (b"\0" * (-len(raw) % 4) if len(fields) > 1 else b"")
    return out


def key_comment(text: str) -> str | None:
    found = _KEY_COMMENT.search(text)
    return found.group(1) if found else None


def element_verdict(text: str) -> tuple[int, str | None]:
    """A verdict map element's value (`goto <chain>`, `jump <chain>`, `drop`, ...)."""
    words = text.split()
    if len(words) == 2 and words[0] in ("goto", "jump"):
        return _verdict_code(words[0]), words[1]
    if len(words) == 1 and words[0] in _VERDICTS:
        return _VERDICTS[words[0]], None
    raise Unsupported(f"element value {text!r}")


_AFFINITY = re.compile(r"^type ipv4_addr ; flags dynamic,timeout ; timeout (\d+)s ;$")
# libnftnl set user data nft 1.0.6 sends for a set of ipv4_addr: key byte order big endian
_IPV4_SET_UDATA = bytes((0, 4)) + struct.pack("<I", 2)


def affinity_set(declaration: str) -> int:
    """The timeout (ms) of a session-affinity set's declaration; Unsupported
    for any other declaration."""
    found = _AFFINITY.match(declaration.strip())
    if not found:
        raise Unsupported(f"set declaration {declaration!r}")
    return int(found.group(1)) * 1000


def affinity_set_attrs(name: str, timeout_ms: int, set_id: int, table: str) -> bytes:
    return (m.string(m.SET_TABLE, table) + m.string(m.SET_NAME, name)
            + m.u32(m.SET_FLAGS, m.SET_TIMEOUT_FLAG | m.SET_EVAL) + m.u32(m.SET_KEY_TYPE, 7)
            + m.u32(m.SET_KEY_LEN, 4) + m.u32(m.SET_ID, set_id) + m.u64(m.SET_TIMEOUT, timeout_ms)
            + m.attr(m.SET_USERDATA, _IPV4_SET_UDATA))


# libnftnl set user data nft 1.0.6 sends for an `ip saddr { ... }` interval set:
# key byte order big endian, merge elements, key typeof `ip saddr`
_SADDR_INTERVAL_UDATA = bytes.fromhex("000402000000" "020401000000" "0314" "000407000000" "010c" "00040c000000"
                                      "01040b000000")


def interval_set_attrs(name: str, size: int, set_id: int, table: str) -> bytes:
    return (m.string(m.SET_TABLE, table) + m.string(m.SET_NAME, name)
            + m.u32(m.SET_FLAGS, m.SET_ANONYMOUS | m.SET_CONSTANT | m.SET_INTERVAL) + m.u32(m.SET_KEY_TYPE, 7)
            + m.u32(m.SET_KEY_LEN, 4) + m.u32(m.SET_ID, set_id) + m.nest(m.SET_DESC, m.u32(m.SET_DESC_SIZE, size))
            + m.attr(m.SET_USERDATA, _SADDR_INTERVAL_UDATA))


# libnftnl set user data nft 1.0.6 sends for numgen's anonymous verdict map
_VMAP_UDATA = bytes.fromhex("000401000000" "010400000000" "04080004010000000100" "060400000000")


def anonymous_vmap_attrs(name: str, size: int, set_id: int, table: str) -> bytes:
    return (m.string(m.SET_TABLE, table) + m.string(m.SET_NAME, name)
            + m.u32(m.SET_FLAGS, m.SET_ANONYMOUS | m.SET_CONSTANT | m.SET_MAP) + m.u32(m.SET_KEY_TYPE, 4)
            + m.u32(m.SET_KEY_LEN, 4) + m.u32(m.SET_DATA_TYPE, 0xFFFFFF00) + m.u32(m.SET_DATA_LEN, 0)
            + m.u32(m.SET_ID, set_id) + m.nest(m.SET_DESC, m.u32(m.SET_DESC_SIZE, size))
            + m.attr(m.SET_USERDATA, _VMAP_UDATA))


def vmap_key(index: int) -> bytes:
    """numgen's value as the anonymous map's key: a 32-bit integer in host order."""
    return struct.pack("=I", index)
