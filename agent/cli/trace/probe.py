"""The edge of `nsplane trace`: one real connection from a pod, and what the
kernel recorded about it. Resolves the name with real DNS queries from the
pod's namespace (its resolv.conf, its search list, in the resolver's
order), snapshots the pod's node's per-rule packet counters
(`iptables-save -c`, nat and filter), connects with curl from the pod,
snapshots again, and reads the connection's conntrack entry on that node
(by the pod's IP and curl's source port). On a node in kube-proxy's
nftables mode (it holds `table ip kube-proxy`), which has no counters, the
table is read instead and the packet walked through it (trace/nftpath.py).
Reads only; adds no rule.
"""
from __future__ import annotations

import random
import subprocess
import sys

from agent.api.client import Client
from agent.api.config import ClusterConfig
from agent.cli.doctor.facts import node_namespace, read_nft
from agent.cli.doctor.rules import service_rules
from agent.cli.trace import nftpath, path
from dataplane import names, netns

TIMEOUT = 8.0
NOTES = [("packet counters are the node's: a connection through the same rules at the same moment would be "
          "counted too"),
         ("the DNS search walk is repeated by nsplane with real queries from the pod's namespace (dig), in the "
          "resolver's order; the client's own lookup is not observed")]


class TraceError(Exception):
    """The trace cannot start (the pod, the target); the message names the fix."""


def _run(ns: str | None, argv: list[str]) -> subprocess.CompletedProcess:
    full = netns.exec_argv(ns, argv) if ns else argv
    try:
        return subprocess.run(full, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(full, 124, "", "timed out")


def _counters(ns: str | None) -> dict:
    out = {}
    for table in ("nat", "filter"):
        r = _run(ns, ["iptables-save", "-c", "-t", table])
        if r.returncode:
            raise TraceError(f"cannot read the node's {table} counters: {r.stderr.strip()}")
        out.update(path.parse_counters(r.stdout, table))
    return out


def curl(ns: str | None, host: str, port: int, url: str, ip: str) -> tuple[dict, str, str]:
    """One request with curl from namespace `ns` to `url` (at `ip`) ->
    (answer, curl's local IP, its local port)."""
    argv = ["curl", "-sS", "-w", "\n%{http_code} %{local_port} %{time_total} %{local_ip}", "--max-time", "3", "-k"]
    if not path.is_ip(host):
        argv += ["--resolve", f"{host}:{port}:{ip}"]
    r = _run(ns, [*argv, url])
    body, _, tail = r.stdout.rpartition("\n")
    code, local_port, seconds, local_ip = (tail.split() + ["", "", "", ""])[:4]
    reached = r.returncode == 0 and code not in ("", "000")
    return ({"httpCode": code, "seconds": seconds, "body": body[:200], "error": r.stderr.strip(),
             "reached": reached}, local_ip, local_port)


# One datagram from a known source port; prints "<local ip> <local port> <seconds>" and the reply.
_UDP = ("import socket,sys,time\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(3);s.connect((sys.argv[1],int(sys.argv[2])))\n"
        "ip,port=s.getsockname();t=time.monotonic();s.send(sys.argv[3].encode())\n"
        "try:\n  data=s.recv(2048);print(ip,port,round(time.monotonic()-t,6));print(data.decode(errors='replace'))\n"
        "except OSError as e:\n  print(ip,port,'-');print(e,file=sys.stderr);sys.exit(1)\n")


def udp(ns: str | None, ip: str, port: int, payload: str = "hostname") -> tuple[dict, str, str]:
    """One UDP datagram from namespace `ns` to ip:port and its answer ->
    (answer, local IP, local port). agnhost netexec answers "hostname"
    with its pod's name; serve-hostname --udp answers anything with it."""
    r = _run(ns, [sys.executable, "-c", _UDP, ip, str(port), payload])
    head, _, body = r.stdout.partition("\n")
    local_ip, local_port, seconds = (head.split() + ["", "", ""])[:3]
    return ({"sent": payload, "seconds": seconds, "body": body.strip()[:200], "error": r.stderr.strip(),
             "reached": r.returncode == 0}, local_ip, local_port)


def send(ns: str | None, host: str, port: int, url: str, ip: str) -> tuple[dict, str, str]:
    """One connection (TCP, with curl) or one datagram (UDP) to the target."""
    return udp(ns, ip, port) if path.protocol(url) == "udp" else curl(ns, host, port, url, ip)


def conntrack(node_ns: str | None, src: str, sport: str, proto: str = "tcp") -> dict | None:
    """The conntrack entry on a node of the connection from src:sport, or None."""
    if not (sport.isdigit() and sport != "0" and src):
        return None
    ct = _run(node_ns, ["conntrack", "-L", "-p", proto, "--src", src, "--sport", sport])
    line = next((ln for ln in ct.stdout.splitlines() if ln.strip()), "")
    if not line:
        return None
    entry = path.parse_conntrack(line)
    entry["line"] = line
    return entry


def find_service(client: Client, ip: str, port: int) -> tuple[tuple | None, dict | None]:
    """((Service, port) that ip:port addresses or None, its summary for the report)."""
    nodes = client.list("nodes")["items"]
    node_ips = {a["address"] for n in nodes for a in n.get("status", {}).get("addresses") or []}
    found = path.service_for(client.list("services")["items"], ip, port, node_ips)
    return found, None if not found else {
        "name": f"{found[0]['metadata']['namespace']}/{found[0]['metadata']['name']}", "port": found[1],
        "type": found[0]["spec"].get("type", "ClusterIP"),
        "externalTrafficPolicy": found[0]["spec"].get("externalTrafficPolicy")}


def local_addresses(ns: str | None) -> list[str]:
    """The IPv4 addresses of namespace `ns` (`ip -j -4 addr`): what `fib
    saddr/daddr type local` matches there, for the nftables walk."""
    r = _run(ns, ["ip", "-j", "-4", "addr", "show"])
    return path.local_addresses(r.stdout) if r.returncode == 0 else []


def keeper(after: dict, found: tuple | None):
    """keep(table, chain, rule) for path.hit: the Service's own rules and the
    SNAT; without a Service only what stops a packet (other rules' counters
    move with other traffic)."""
    if not found:
        return lambda t, c, rule: t == "filter" and c.startswith("KUBE-") and " -j ACCEPT" not in rule
    tables: dict = {}
    for (table, chain, rule) in after:
        tables.setdefault(table, {}).setdefault(chain, []).append(rule)
    mine = service_rules(tables, found[0]["metadata"]["namespace"], found[0]["metadata"]["name"])
    wanted = {(t, c, rule) for t, chains in mine.items() for c, rules in chains.items() for rule in rules}
    return lambda t, c, rule: (t, c, rule) in wanted or c == "KUBE-POSTROUTING"


def endpoint_facts(client: Client, entry: dict | None) -> dict:
    """What a conntrack entry says: the endpoint, DNAT, masquerade, the pod that answered."""
    if not entry:
        return {}
    endpoint = entry["reply"].get("src")
    owners = [p["metadata"]["name"] for p in client.list("pods")["items"]
              if p.get("status", {}).get("podIP") == endpoint and not p["spec"].get("hostNetwork")]
    return {"endpoint": f"{endpoint}:{entry['reply'].get('sport', '')}",
            "dnat": endpoint != entry["orig"].get("dst"),
            "masquerade": path.source_nat(entry),
            "answeredBy": owners[0] if owners else None}


def route(ns: str | None, ip: str) -> str:
    """The first line of `ip route get IP` in namespace `ns` (or the kernel's error)."""
    r = _run(ns, ["ip", "route", "get", ip])
    return r.stdout.strip().splitlines()[0] if r.stdout.strip() else r.stderr.strip()


def dns_server(client: Client, node_ns: str | None, pod_ip: str, sport: int) -> dict:
    """Which DNS pod answered the query sent from pod_ip:sport: the reply side
    of the UDP conntrack entry on the pod's node (kube-dns's DNAT)."""
    entry = conntrack(node_ns, pod_ip, str(sport), "udp")
    if not entry:
        return {}
    facts = endpoint_facts(client, entry)
    return {"service": f"{entry['orig'].get('dst')}:{entry['orig'].get('dport')}", "endpoint": facts["endpoint"],
            "pod": facts["answeredBy"], "conntrack": entry["line"]}


def _resolve(pod_ns: str, host: str, pod_ip: str = "") -> dict:
    try:
        with open(f"{netns.ETC_NETNS_DIR}/{pod_ns}/resolv.conf") as f:
            servers, search, ndots = path.parse_resolv(f.read())
    except OSError:
        servers, search, ndots = [], [], 1
    tries = []
    for name in path.candidates(host, search, ndots):
        sport = random.randint(32768, 60999)   # a known source port finds the query's conntrack entry
        bind = ["-b", f"{pod_ip}#{sport}"] if pod_ip else []
        r = _run(pod_ns, ["dig", *bind, "+short", "+nosearch", "+time=2", "+tries=1", name, "A"])
        answers = [w for w in r.stdout.split() if path.is_ip(w)]
        error = "" if r.returncode == 0 else "; ".join(ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip())
        tries.append({"name": name, "answers": answers, "error": error, "sport": sport})
        if answers:
            return {"host": host, "nameservers": servers, "tries": tries, "name": name, "address": answers[0]}
    return {"host": host, "nameservers": servers, "tries": tries, "name": None, "address": None}


def trace(cfg: ClusterConfig, client: Client, pod_name: str, ns: str, target: str) -> dict:
    try:
        host, port, url = path.parse_target(target)
    except ValueError as e:
        raise TraceError(str(e)) from None
    pod = client.get("pods", pod_name, ns)
    if pod.get("status", {}).get("phase") != "Running" or pod["spec"].get("hostNetwork"):
        raise TraceError(f"pod {ns}/{pod_name} is not a Running pod with its own network namespace "
                         f"(phase {pod.get('status', {}).get('phase')}); trace from another pod")
    pod_ns, node = names.pod_netns(cfg.name, ns, pod_name), pod["spec"]["nodeName"]
    node_ns = node_namespace(cfg, node)
    report: dict = {"from": f"{ns}/{pod_name}", "podIP": pod["status"].get("podIP"), "node": node, "url": url,
                    "notes": NOTES}
    ip = host
    if not path.is_ip(host):
        report["dns"] = _resolve(pod_ns, host, report["podIP"])
        last = report["dns"]["tries"][-1] if report["dns"]["tries"] else {}
        report["dns"]["answeredBy"] = dns_server(client, node_ns, report["podIP"], last.get("sport", 0)) or None
        ip = report["dns"]["address"]
        if not ip:
            report["verdict"] = f"{host} does not resolve (NXDOMAIN through the search path)"
            report["reached"] = False
            return report
    found, report["service"] = find_service(client, ip, port)
    table = read_nft(node_ns)  # the node's mode, from what it holds
    before = _counters(node_ns) if table is None else {}
    report["answer"], _, local_port = send(pod_ns, host, port, url, ip)
    after = _counters(node_ns) if table is None else {}
    reached = report["reached"] = report["answer"]["reached"]
    entry = conntrack(node_ns, report["podIP"], local_port, path.protocol(url))
    report["conntrack"] = entry
    report.update(endpoint_facts(client, entry))
    if table is None:
        report["mode"], report["hops"] = "iptables", path.hit(before, after, keeper(after, found))
    else:
        report["mode"] = "nftables"
        report["hops"], _, note = nftpath.hops(table, report["podIP"], ip, port, path.protocol(url),
                                               local_addresses(node_ns), report.get("endpoint"))
        report["notes"] = [nftpath.NOTE, *NOTES[1:], *([note] if note else [])]
    if entry:
        report["masqueradeWhy"] = path.masquerade_why(report["masquerade"], None, "pod")
    report["route"] = route(node_ns, report["endpoint"].rpartition(":")[0] if entry else ip)
    report["verdict"] = path.verdict(report["hops"], entry, reached, "" if found else f"{ip}:{port}",
                                     report["answer"]["error"], "" if found else report["route"], report["mode"])
    return report
