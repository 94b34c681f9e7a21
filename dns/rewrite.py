"""CoreDNS's `rewrite name` rules: the question's name changed on the way in, put back on the way out.

`rewrite [stop|continue] name [exact|prefix|suffix|substring|regex] FROM TO
[answer auto | answer name FROM TO | answer value FROM TO]`. Rules run in
order; a matching `stop` rule ends the list. The reply always carries the
client's original question; with `answer auto` (or `answer name`) the
records' owner names are mapped back too, and `answer value` rewrites
CNAME/SRV/MX/NS/PTR targets. Regex replacements use `{1}`, `{2}`... as
CoreDNS does. Pure functions over names and dnslib records.
"""

from __future__ import annotations

import re

from dnslib import QTYPE, DNSLabel, DNSRecord

from dns import wire


def _regex_target(target: str) -> str:
    return re.sub(r"\{(\d+)\}", r"\\g<\1>", target)


def rewrite_name(rule, name: str) -> str | None:
    """The new name (fully qualified, lower case) if `rule` matches `name`, else None."""
    src, dst = rule.source, rule.target
    if rule.match == "regex":
        m = re.match(src, name) or re.match(src, name.rstrip("."))
        if m is None:
            return None
        return _fq(m.expand(_regex_target(dst)))
    if rule.match == "exact":
        return _fq(dst) if name == _fq(src.lower()) else None
    if rule.match == "prefix":
        return dst.lower() + name[len(src):] if name.startswith(src.lower()) else None
    if rule.match == "suffix":
        tail = src.lower() if src.endswith(".") else src.lower() + "."
        return name[:-len(tail)] + _fq(dst.lower()) if name.endswith(tail) else None
    if rule.match == "substring":
        return name.replace(src.lower(), dst.lower(), 1) if src.lower() in name else None
    return None


def _fq(name: str) -> str:
    return name if name.endswith(".") else name + "."


def apply(rules, name: str) -> tuple[str, list]:
    """Run the rules over a query name: (the name to look up, the rules that matched)."""
    hit = []
    for rule in rules:
        new = rewrite_name(rule, name)
        if new is None:
            continue
        hit.append((rule, name, new))
        name = new
        if rule.stop:
            break
    return name, hit


def _reverse_name(hit, owner: str) -> str:
    for rule, before, after in reversed(hit):
        if rule.answer_auto and owner == after:
            owner = before
        elif rule.answer_name is not None:
            m = re.match(rule.answer_name[0], owner)
            if m:
                owner = _fq(m.expand(_regex_target(rule.answer_name[1])))
    return owner


def _value(hit, value: str) -> str:
    for rule, _, _ in reversed(hit):
        if rule.answer_value is not None:
            m = re.match(rule.answer_value[0], value)
            if m:
                value = _fq(m.expand(_regex_target(rule.answer_value[1])))
    return value


def revert(reply: bytes, original_question: bytes, hit) -> bytes:
    """The reply with the client's question back, and owner names / values rewritten as configured."""
    msg = DNSRecord.parse(reply)
    for q in msg.questions:
        q.qname = DNSLabel(wire.question_name(original_question))
    for rr in msg.rr + msg.auth + msg.ar:
        owner = str(rr.rname).lower()
        new = _reverse_name(hit, owner)
        if new != owner:
            rr.rname = DNSLabel(new)
        if rr.rtype in (QTYPE.CNAME, QTYPE.NS, QTYPE.PTR) and any(r.answer_value for r, _, _ in hit):
            rr.rdata.label = DNSLabel(_value(hit, str(rr.rdata.label).lower()))
    return bytes(msg.pack())
