"""The pure half of `nsplane trace`: parse the target, walk the resolver's
search list, read per-rule packet counters and a conntrack entry, and turn
the counter deltas of one real connection into the hops it took.

The nat table sees only the first packet of a connection, so a rule whose
counter grew across our one connection is a rule that connection hit (or a
connection that happened at the same moment: the report says so).
"""
from __future__ import annotations

import ipaddress
import json
import re
from urllib.parse import urlsplit

from agent.cli.doctor.rules import annotate, rank

_COUNTED = re.compile(r"^\[(\d+):(\d+)\] (-A (\S+) .*)$")


def parse_target(target: str) -> tuple[str, int, str]:
    """"http://web", "web:8080", "10.96.0.10:53", "http://web:81/x",
    "udp://10.96.0.10:53" -> (host, port, url). Raises ValueError naming the fix."""
    text = target if "://" in target else f"http://{target}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https", "udp"):
        raise ValueError(f'"{target}": only http://, https:// and udp:// URLs (or HOST:PORT) can be traced')
    if not parts.hostname:
        raise ValueError(f'"{target}": no host; give a URL such as http://web or web:80')
    try:
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        raise ValueError(f'"{target}": the port must be a number 1-65535') from None
    if not port:
        raise ValueError(f'"{target}": a UDP target needs its port, e.g. udp://10.96.0.10:53')
    return parts.hostname, port, text


def protocol(url: str) -> str:
    """The L4 protocol of a parsed target: "udp" or "tcp"."""
    return "udp" if url.startswith("udp://") else "tcp"


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def parse_resolv(text: str) -> tuple[list[str], list[str], int]:
    """resolv.conf -> (nameservers, search domains, ndots)."""
    servers, search, ndots = [], [], 1
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "nameserver" and len(words) > 1:
            servers.append(words[1])
        elif words[0] == "search":
            search = words[1:]
        elif words[0] == "options":
            for o in words[1:]:
                if o.startswith("ndots:") and o[6:].isdigit():
                    ndots = int(o[6:])
    return servers, search, ndots


def candidates(name: str, search: list[str], ndots: int) -> list[str]:
    """The names a glibc/musl resolver tries, in order, for `name`."""
    if name.endswith("."):
        return [name.rstrip(".")]
    listed = [f"{name}.{d}" for d in search]
    return [name, *listed] if name.count(".") >= ndots else [*listed, name]


def parse_counters(text: str, table_hint: str = "") -> dict[tuple[str, str, str], int]:
    """`iptables-save -c` -> {(table, chain, rule): packets}."""
    out, table = {}, table_hint
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            continue
        m = _COUNTED.match(line)
        if m:
            key = (table, m.group(4), m.group(3))
            out[key] = out.get(key, 0) + int(m.group(1))
    return out


def hit(before: dict, after: dict, keep) -> list[dict]:
    """Rules whose packet counter grew, for which keep(table, chain, rule)
    is true, in a packet's order: nat entry chains, the Service's chains,
    filter, then KUBE-POSTROUTING (iptables-save's order within a chain)."""
    rows = []
    for i, ((table, chain, rule), n) in enumerate(after.items()):
        delta = n - before.get((table, chain, rule), 0)
        if delta > 0 and keep(table, chain, rule):
            rows.append((rank(chain) if chain != "KUBE-POSTROUTING" else 99, table != "nat", i,
                         {"table": table, "chain": chain, "rule": rule, "packets": delta, "meaning": annotate(rule)}))
    return [row[-1] for row in sorted(rows, key=lambda r: r[:3])]


_KV = re.compile(r"(\w+)=(\S+)")


def parse_conntrack(line: str) -> dict:
    """One `conntrack -L` line -> {proto, state, orig: {src,dst,sport,dport}, reply: {...}, mark}."""
    words = line.split()
    out: dict = {"proto": words[0] if words else "", "state": "", "orig": {}, "reply": {}}
    side = "orig"
    for w in words:
        if w.isupper() and not w.startswith("[") and "=" not in w and not out["state"]:
            out["state"] = w
        m = _KV.fullmatch(w)
        if not m:
            continue
        k, v = m.groups()
        if k == "src" and "src" in out[side]:
            side = "reply"
        if k in ("src", "dst", "sport", "dport"):
            out[side][k] = v
        elif k == "mark":
            out["mark"] = v
    return out


def service_for(services: list[dict], ip: str, port: int, node_ips: set[str]) -> tuple[dict, dict] | None:
    """(Service, its port) that `ip:port` addresses: a cluster IP, external or
    load-balancer IP and port, or a node's IP and a nodePort."""
    for svc in services:
        spec, status = svc["spec"], svc.get("status") or {}
        ips = set(spec.get("clusterIPs") or [spec.get("clusterIP")]) | set(spec.get("externalIPs") or [])
        ips |= {i.get("ip") for i in (status.get("loadBalancer") or {}).get("ingress") or []}
        for p in spec.get("ports") or []:
            if (ip in ips and p["port"] == port) or (ip in node_ips and p.get("nodePort") == port):
                return svc, p
    return None


def verdict(hops: list[dict], entry: dict | None, reached: bool, target: str = "", error: str = "",
            route: str = "", mode: str = "iptables") -> str:
    """One sentence: where the connection went or stopped."""
    if entry and entry.get("reply", {}).get("src") and reached:
        return f"answered by {entry['reply']['src']}:{entry['reply'].get('sport', '')}"
    rejects = [h for h in hops if h["rule"].endswith("REJECT") or " -j REJECT" in h["rule"]
               or h.get("stop") == "reject"]
    drops = [h for h in hops if " -j DROP" in h["rule"] or h.get("stop") == "drop"]
    if rejects:
        return f"rejected by {rejects[0]['table']} {rejects[0]['chain']}: {rejects[0]['meaning']}"
    if drops:
        return f"dropped by {drops[0]['table']} {drops[0]['chain']}: {drops[0]['meaning']}"
    if not reached:
        why = f" ({error})" if error else ""
        routed = f"routes it {route_words(route)}" if route else "routes the packet as is"
        where = "no element of @service-ips matches" if mode == "nftables" else "no rule of KUBE-SERVICES matches"
        return (f"no Service has {target}: {where}, the kernel {routed} "
                f"and it gets no answer{why}") if target else f"no answer{why}"
    return "answered"


def local_addresses(ip_json: str) -> list[str]:
    """`ip -j -4 addr show` -> the namespace's IPv4 addresses."""
    try:
        links = json.loads(ip_json or "[]")
    except ValueError:
        return []
    return [a["local"] for link in links for a in link.get("addr_info") or [] if a.get("local")]


_MAC = re.compile(r"\blladdr ([0-9a-f]{2}(?::[0-9a-f]{2}){5})\b")


def neigh_mac(text: str) -> str | None:
    """`ip neigh show IP` -> the MAC the address resolved to (None: no answer, FAILED/INCOMPLETE)."""
    m = _MAC.search(text.lower())
    return m.group(1) if m else None


def macs(link_text: str) -> set[str]:
    """`ip -o link` -> the MAC addresses of the namespace's interfaces."""
    return set(re.findall(r"link/ether ([0-9a-f:]{17})", link_text.lower()))


def node_of(addr: str, nodes: list[dict]) -> str | None:
    """The Node whose status.addresses hold `addr`."""
    return next((n["metadata"]["name"] for n in nodes
                 if any(a.get("address") == addr for a in n.get("status", {}).get("addresses") or [])), None)


def source_nat(entry: dict) -> bool:
    """Whether the conntrack entry's reply goes to another address or port
    than the connection came from: the source was NATed (masquerade)."""
    o, r = entry.get("orig", {}), entry.get("reply", {})
    return r.get("dst") != o.get("src") or (bool(r.get("dport")) and r.get("dport") != o.get("sport"))


def masquerade_why(masq: bool, etp: str | None, origin: str) -> str:
    """Why the source address was (not) rewritten, in Kubernetes terms;
    origin is "pod", "node" or "outside"."""
    if origin == "node":
        return ("masquerade: the source is the node itself, not a pod, so KUBE-MARK-MASQ marked it and it "
                "leaves with the node's address (and a new port)" if masq else
                "no masquerade: the reply comes straight back to the node")
    if origin == "pod":
        return ("masquerade: the pod reached itself through the Service (hairpin), so KUBE-SEP marked it"
                if masq else "no masquerade: the source is a pod and keeps its address")
    if etp == "Local":
        return ("no masquerade: externalTrafficPolicy Local keeps the client's address and serves only "
                "from endpoints on this node" if not masq else
                "masquerade although externalTrafficPolicy is Local")
    return ("masquerade: externalTrafficPolicy Cluster SNATs external traffic to the node's address, so the "
            "endpoint may be on any node and the reply comes back through this one"
            if masq else "no masquerade although externalTrafficPolicy is Cluster")


def route_words(route: str) -> str:
    """`ip route get` output -> "via 172.28.0.1 dev eth0 (from 172.28.0.11)", or the kernel's error."""
    words = route.split()
    if not words or "via" not in words and "dev" not in words:
        return f"nowhere ({route.strip() or 'no route'})"
    got = {k: words[words.index(k) + 1] for k in ("via", "dev", "src") if k in words[:-1]}
    kind = "to the local machine " if words[0] == "local" else ""
    text = " ".join(f"{k} {got[k]}" for k in ("via", "dev") if k in got)
    return f"{kind}{text}" + (f" (from {got['src']})" if "src" in got else "")
