"""`nft -j list table ip kube-proxy` -> an `NftRuleset`, rules as `nft list` prints them.

The thin edge between what the kernel holds and the pure walker
(`dataplane.nft.trace`): nft's JSON is structured, so chains, map and set
elements are read from it exactly (an element's comment is kept the way
the render writes it, `<key> comment "<ns>/<name>"`), and each rule's
expressions are printed back in nft's own text syntax (`nft list table`),
for the vocabulary kube-proxy's nftables proxier writes: payload, meta, ct,
fib and numgen matches, sets, prefixes, verdict maps, jump/goto/return,
drop/reject/accept, dnat, masquerade, mark arithmetic, set updates,
counters and comments. An expression outside it is kept as its JSON, so
a reader sees it and the walker refuses it by name. Pure.
"""
from __future__ import annotations

import json
from typing import Any

from dataplane.nft.ruleset import FAMILY, TABLE, NftRuleset

_VERDICTS = ("accept", "drop", "return", "continue")


def parse(doc: dict) -> NftRuleset:
    """One `nft -j list table ip kube-proxy` document -> NftRuleset (base
    chains declared as the render declares them: `type T hook H priority P ;`)."""
    base: dict[str, str] = {}
    chains: dict[str, list[str]] = {}
    maps: dict[str, tuple[str, dict[str, str]]] = {}
    sets: dict[str, tuple[str, frozenset[str]]] = {}
    for item in doc.get("nftables", ()):
        kind, obj = next(iter(item.items()))
        if not isinstance(obj, dict) or obj.get("table", TABLE) != TABLE or obj.get("family", FAMILY) != FAMILY:
            continue
        if kind == "chain":
            chains.setdefault(obj["name"], [])
            if "hook" in obj:
                base[obj["name"]] = f"type {obj.get('type', 'filter')} hook {obj['hook']} priority {obj.get('prio', 0)} ;"
        elif kind == "rule":
            chains.setdefault(obj["chain"], []).append(rule_text(obj))
        elif kind == "map":
            maps[obj["name"]] = (_decl(obj), {_element(k): _expr(v) for k, v in obj.get("elem", ())})
        elif kind == "set":
            sets[obj["name"]] = (_decl(obj), frozenset(_element(e) for e in obj.get("elem", ())))
    return NftRuleset(base_chains=base, chains={n: tuple(r) for n, r in chains.items()}, maps=maps, sets=sets)


def parse_text(text: str) -> NftRuleset:
    """`nft -j list table ...` output (one JSON document) -> NftRuleset."""
    return parse(json.loads(text))


def rule_text(rule: dict) -> str:
    """One JSON rule -> its line in `nft list table` (without the handle)."""
    words = [_statement(e) for e in rule.get("expr", ())]
    if rule.get("comment"):
        words.append(f'comment "{rule["comment"]}"')
    return " ".join(w for w in words if w)


def _decl(obj: dict) -> str:
    kind = obj.get("type")
    key = " . ".join(kind) if isinstance(kind, list) else str(kind)
    return f"type {key} : {obj['map']} ;" if "map" in obj else f"type {key} ;"


def _element(e: Any) -> str:
    if isinstance(e, dict) and "elem" in e:
        inner = e["elem"]
        comment = f' comment "{inner["comment"]}"' if inner.get("comment") else ""
        return _expr(inner.get("val")) + comment
    return _expr(e)


def _is_mark(e: Any) -> bool:
    return isinstance(e, dict) and (e.get("meta") or {}).get("key") == "mark"


def _binop(e: dict) -> tuple[str, list] | None:
    for op in ("&", "|", "^", "<<", ">>"):
        if op in e:
            return op, e[op]
    return None


def _expr(e: Any, hexa: bool = False) -> str:
    """An nft JSON expression -> its text."""
    if isinstance(e, bool):
        return str(e).lower()
    if isinstance(e, int):
        return f"0x{e:08x}" if hexa else str(e)
    if isinstance(e, str):
        return e
    if isinstance(e, list):
        return ", ".join(_expr(x, hexa) for x in e)
    if not isinstance(e, dict):
        return json.dumps(e)
    if "payload" in e:
        return f"{e['payload']['protocol']} {e['payload']['field']}"
    if "meta" in e:
        return f"meta {e['meta']['key']}"
    if "ct" in e:
        return f"ct {e['ct']['key']}"
    if "fib" in e:
        return f"fib {' . '.join(e['fib'].get('flags', []))} {e['fib']['result']}"
    if "numgen" in e:
        ng = e["numgen"]
        return f"numgen {ng['mode']} mod {ng['mod']}" + (f" offset {ng['offset']}" if ng.get("offset") else "")
    if "concat" in e:
        return " . ".join(_expr(x, hexa) for x in e["concat"])
    if "prefix" in e:
        return f"{e['prefix']['addr']}/{e['prefix']['len']}"
    if "range" in e:
        return "-".join(_expr(x, hexa) for x in e["range"])
    if "set" in e:
        items = e["set"] if isinstance(e["set"], list) else [e["set"]]
        return "{ " + ", ".join(_expr(x, hexa) for x in items) + " }"
    if "elem" in e:
        return _element(e)
    for v in ("jump", "goto"):
        if v in e:
            return f"{v} {e[v]['target']}"
    for v in _VERDICTS:
        if v in e:
            return v
    op = _binop(e)
    if op:
        left, right = op[1]
        mark = _is_mark(left)
        return f"{_expr(left)} {op[0]} {_expr(right, mark or hexa)}"
    return json.dumps(e)


def _match(m: dict) -> str:
    left, right, op = m["left"], m["right"], m.get("op", "==")
    hexa = _is_mark(left) or (isinstance(left, dict) and _binop(left) is not None and _is_mark(_binop(left)[1][0]))
    text_right = _expr(right, hexa)
    if isinstance(right, list):  # ct state { new, established }
        text_right = "{ " + text_right + " }" if len(right) > 1 else text_right
    shown_op = op if op not in ("==", "in") or (isinstance(left, dict) and _binop(left) is not None) else ""
    return " ".join(w for w in (_expr(left), shown_op, text_right) if w)


def _statement(s: dict) -> str:
    """One statement of a rule's `expr` list -> its text."""
    kind, body = next(iter(s.items()))
    if kind == "match":
        return _match(body)
    if kind in ("jump", "goto"):
        return f"{kind} {body['target']}"
    if kind in _VERDICTS:
        return kind
    if kind == "reject":
        if not body or body.get("expr") in (None, "port-unreachable"):
            return "reject"
        return f"reject with {body.get('type', 'icmp')} {body['expr']}"
    if kind == "vmap":
        data = body["data"]
        if isinstance(data, dict) and "set" in data:
            data = "{ " + ", ".join(f"{_expr(k)} : {_expr(v)}" for k, v in data["set"]) + " }"
        return f"{_expr(body['key'])} vmap {_expr(data)}"
    if kind == "mangle":
        key, value = body["key"], body["value"]
        return f"{_expr(key)} set {_expr(value, _is_mark(key))}"
    if kind in ("dnat", "snat"):
        addr = body.get("addr", "")
        port = f":{body['port']}" if "port" in body else ""
        return f"{kind} to {_expr(addr)}{port}"
    if kind == "masquerade":
        flags = (body or {}).get("flags") or []
        flags = [flags] if isinstance(flags, str) else flags
        return " ".join(["masquerade", *flags])
    if kind == "set":
        return f"{body['op']} {body['set']} {{ {_expr(body['elem'])} }}"
    if kind == "counter":
        return f"counter packets {body.get('packets', 0)} bytes {body.get('bytes', 0)}"
    return json.dumps(s)
