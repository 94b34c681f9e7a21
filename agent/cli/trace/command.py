"""The `trace` verb: `nsplane trace POD URL [-n NS] [--json]`; prints the
hops of one real connection (exit 0 when it was answered, 1 when not)."""
from __future__ import annotations

import json
import sys

from agent.api.client import Client
from agent.cli.errors import die
from agent.cli.trace.origin import trace_from
from agent.cli.trace.probe import TraceError, trace


def add_parser(sub) -> None:
    p = sub.add_parser("trace", help="follow one real connection from a pod through DNS, the node's rules "
                                     "and conntrack")
    p.add_argument("pod", nargs="?", help="the pod the connection starts in (omit with --from)")
    p.add_argument("url", help="http://NAME[:PORT][/path], NAME:PORT or IP:PORT (TCP), or udp://NAME:PORT (one datagram)")
    p.add_argument("--from", dest="origin", metavar="outside|NODE",
                   help="start outside the cluster (the underlay's host namespace: LoadBalancer and NodePort "
                        "clients) or in a node's namespace, instead of a pod")
    p.add_argument("-n", "--namespace")
    p.add_argument("--json", action="store_true")


def render(rep: dict) -> str:
    lines = []
    dns = rep.get("dns")
    if dns:
        for t in dns["tries"]:
            got = ", ".join(t["answers"]) or (t["error"] or "no answer (NXDOMAIN)")
            lines.append(f"  dns   {t['name']} -> {got}")
        lines.append(f"  dns   nameserver {', '.join(dns['nameservers']) or '?'}")
        by = dns.get("answeredBy")
        if by:
            lines.append(f"  dns   kube-dns DNAT {by['service']} -> {by['endpoint']}: answered by pod {by['pod'] or '?'}")
    svc = rep.get("service")
    if svc:
        p = svc["port"]
        lines.append(f"  svc   {svc['name']} port {p.get('name') or p['port']} ({p['port']}/{p.get('protocol', 'TCP')}"
                     f" -> targetPort {p.get('targetPort', p['port'])})")
    elif "service" in rep:
        lines.append("  svc   no Service has this address and port")
    if rep.get("nodeEvidence"):
        lines.append(f"  node  {rep['node'] or '?'}: {rep['nodeEvidence']}")
    for h in rep.get("hops") or []:
        if h["packets"] is None:  # nftables mode: walked, the rule as nft lists it
            lines.append(f"  {h.get('node', rep['node'])} {h['table']} {h['chain']}  {h['rule']}  => {h['meaning']}")
        else:
            lines.append(f"  {h.get('node', rep['node'])} {h['table']} {h['chain']}  +{h['packets']} pkt  "
                         f"{h['meaning']}")
    ct = rep.get("conntrack")
    if ct:
        lines.append(f"  conntrack  {ct['line']}")
        if rep.get("dnat"):
            lines.append(f"  DNAT  {ct['orig'].get('dst')}:{ct['orig'].get('dport')} -> {rep['endpoint']}"
                         f"   {rep.get('masqueradeWhy') or ('masquerade' if rep['masquerade'] else 'no masquerade')}"
                         f" (source {rep.get('podIP') or rep.get('sourceIP')})")
    if rep.get("route"):
        lines.append(f"  route  on {rep['node']}: {rep['route']}")
    a = rep.get("answer") or {}
    if rep.get("reached"):
        by = f" by pod {rep['answeredBy']}" if rep.get("answeredBy") else ""
        what = f"UDP reply {a.get('body')!r}" if "sent" in a else f"HTTP {a.get('httpCode')}"
        lines.append(f"  answered: {what}{by} in {a.get('seconds')} s")
    lines.append(f"verdict: {rep['verdict']}")
    head = (f"trace from {rep['origin']} to {rep['url']}" if rep.get("origin") else
            f"trace from pod {rep['from']} (node {rep['node']}) to {rep['url']}")
    notes = [f"note: {n}" for n in rep.get("notes") or []]
    return "\n".join([head, *lines, *notes]) + "\n"


def cmd_trace(cfg, args) -> int:
    if bool(args.origin) == bool(args.pod):
        die("error: nsplane trace: give a pod (nsplane trace POD URL) or --from outside|NODE (nsplane trace "
            "--from outside URL), not both and not neither")
    try:
        if args.origin:
            rep = trace_from(cfg, Client(cfg.local_api_url), args.origin, args.url)
        else:
            rep = trace(cfg, Client(cfg.local_api_url), args.pod, args.namespace or "default", args.url)
    except TraceError as e:
        die(f"error: nsplane trace: {e}")
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        sys.stdout.write(render(rep))
    return 0 if rep.get("reached") else 1
