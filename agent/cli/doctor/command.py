"""The `doctor` and `explain` verbs: arguments, output (text or --json),
exit codes. doctor exits 1 when a check fails (✗), 0 otherwise."""
from __future__ import annotations

import json
import sys

from agent.api.client import Client
from agent.cli.doctor import facts, nftrules, rules
from agent.cli.doctor.checks import FAIL, MARKS, diagnose, first_broken
from agent.cli.errors import die

KINDS = ("svc", "service", "services")


def service_name(arg: str, verb: str) -> str:
    """"svc/web" or "service/web" -> "web"; anything else is an error naming the fix."""
    kind, sep, name = arg.partition("/")
    if not sep or kind.lower() not in KINDS or not name:
        die(f'error: nsplane {verb}: "{arg}": give a Service as svc/NAME (e.g. svc/web); '
            "other kinds are not supported yet")
    return name


def add_parsers(sub) -> None:
    p = sub.add_parser("doctor", help="check a Service the way Kubernetes' 'Debug Services' guide does")
    p.add_argument("target", metavar="svc/NAME")
    p.add_argument("-n", "--namespace")
    p.add_argument("--client", help="the client's IP, checked against loadBalancerSourceRanges")
    p.add_argument("--node", dest="via_node",
                   help="the node the client's external traffic arrives at (nodePort, LB), checked against "
                        "externalTrafficPolicy Local")
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p = sub.add_parser("explain", help="a Service's kube-proxy rules on a node (iptables or nftables mode), annotated")
    p.add_argument("target", metavar="svc/NAME")
    p.add_argument("-n", "--namespace")
    p.add_argument("--node", help="which node's rules (default: the first node)")
    p.add_argument("--json", action="store_true")


def render(checks) -> str:
    broken = first_broken(checks)
    lines = [f"first broken link: {broken.name}: {broken.evidence}" if broken else "no broken link found"]
    for c in checks:
        lines.append(f"{MARKS[c.status]} {c.name:<24} {c.evidence}")
        if c.fix and c.status != "ok":
            lines.append(f"  {'':<24} fix: {c.fix}")
    return "\n".join(lines) + "\n"


def cmd_doctor(cfg, args) -> int:
    name, ns = service_name(args.target, "doctor"), args.namespace or "default"
    client = Client(cfg.local_api_url)
    if args.via_node:
        nodes = [n["metadata"]["name"] for n in client.list("nodes")["items"]]
        if args.via_node not in nodes:
            die(f'error: node "{args.via_node}" not found; the nodes are {", ".join(nodes) or "none"}')
    found = facts.collect(cfg, client, ns, name, args.client, args.via_node)
    checks = diagnose(found)
    broken = first_broken(checks)
    if args.json:
        print(json.dumps({"service": f"{ns}/{name}", "firstBroken": broken.name if broken else None,
                          "checks": [c.to_dict() for c in checks]}, indent=2))
    else:
        sys.stdout.write(render(checks))
    return 1 if any(c.status == FAIL for c in checks) else 0


def cmd_explain(cfg, args) -> int:
    name, ns = service_name(args.target, "explain"), args.namespace or "default"
    client = Client(cfg.local_api_url)
    svc = client.get("services", name, ns)   # a missing Service is the API's NotFound
    nodes = [n["metadata"]["name"] for n in client.list("nodes")["items"]]
    node = args.node or (nodes[0] if nodes else "")
    if node not in nodes:
        die(f'error: node "{node}" not found; the nodes are {", ".join(nodes) or "none"}')
    mode, tables = facts.node_rules(cfg, node)
    if mode == "nftables":
        groups = nftrules.explain(tables, svc)
        if args.json:
            print(json.dumps({"service": f"{ns}/{name}", "node": node, "mode": mode, "chains": groups}, indent=2))
        else:
            sys.stdout.write(nftrules.render_explain(groups, node, ns, name))
        return 0
    if tables is None:
        die(f"error: cannot read the iptables rules of node {node} (iptables-save in its namespace failed)")
    groups = rules.explain(tables, ns, name)
    if args.json:
        print(json.dumps({"service": f"{ns}/{name}", "node": node, "chains": groups}, indent=2))
    else:
        sys.stdout.write(rules.render_explain(groups, node, ns, name))
    return 0
