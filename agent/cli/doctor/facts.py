"""The edge of `nsplane doctor` / `explain`: collects the facts the pure
checks judge — objects from the API, listening sockets (`ss`) inside each
selected pod's network namespace, each node's kube-proxy rules inside its
namespace (`nft -j list table ip kube-proxy` when the node holds that
table, kube-proxy's nftables mode; `iptables-save` otherwise), and a DNS
lookup (`dig`, through the pod's resolv.conf and search path) from inside
a pod. Reads only; changes nothing.
"""
from __future__ import annotations

import subprocess

from agent.api.client import APIStatusError, Client
from agent.api.config import ClusterConfig
from agent.cli.doctor.checks import parse_ss, ready_endpoint_ips, selected
from dataplane import iptables, names, netns
from dataplane.nft import listing
from dataplane.nft.ruleset import FAMILY, TABLE, NftRuleset

TIMEOUT = 5.0


def _run(ns: str | None, argv: list[str]) -> subprocess.CompletedProcess | None:
    """`argv` inside network namespace `ns` (None: this one); None when it cannot run."""
    try:
        full = netns.exec_argv(ns, argv) if ns else argv
        return subprocess.run(full, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def node_namespace(cfg: ClusterConfig, node: str) -> str | None:
    """The network namespace holding `node` (None in host mode: this one)."""
    return None if cfg.host_mode else names.node_netns(cfg.name, node)


def node_tables(cfg: ClusterConfig, node: str) -> dict | None:
    """{table: {chain: [rules]}} of nat and filter on `node`, or None."""
    r = _run(node_namespace(cfg, node), ["iptables-save", "-t", "nat"])
    f = _run(node_namespace(cfg, node), ["iptables-save", "-t", "filter"])
    if r is None or f is None or r.returncode or f.returncode:
        return None
    return {**iptables.parse_rules(r.stdout), **iptables.parse_rules(f.stdout)}


def read_nft(ns: str | None) -> NftRuleset | None:
    """kube-proxy's `table ip kube-proxy` in namespace `ns` (`nft -j list
    table`), or None when the node holds none (iptables mode) or nft fails."""
    r = _run(ns, ["nft", "-j", "list", "table", FAMILY, TABLE])
    if r is None or r.returncode:
        return None
    try:
        rs = listing.parse_text(r.stdout)
    except (ValueError, KeyError, TypeError, StopIteration):
        return None
    return rs if "services" in rs.chains else None


def node_rules(cfg: ClusterConfig, node: str) -> tuple[str, dict | NftRuleset | None]:
    """(proxy mode, rules) of `node`, the mode read from what the node holds:
    kube-proxy's nftables table ("nftables", its NftRuleset), else
    ("iptables", node_tables())."""
    rs = read_nft(node_namespace(cfg, node))
    return ("nftables", rs) if rs is not None else ("iptables", node_tables(cfg, node))


def _pod_ns(cfg: ClusterConfig, pod: dict) -> str:
    return names.pod_netns(cfg.name, pod["metadata"]["namespace"], pod["metadata"]["name"])


def _running(pod: dict) -> bool:
    return pod.get("status", {}).get("phase") == "Running" and not pod["spec"].get("hostNetwork") \
        and not pod["metadata"].get("deletionTimestamp")


def listening(cfg: ClusterConfig, pods: list[dict]) -> dict:
    out = {}
    for pod in pods:
        if not _running(pod) or not netns.exists(_pod_ns(cfg, pod)):
            continue
        r = _run(_pod_ns(cfg, pod), ["ss", "-Htuln"])
        if r is not None and r.returncode == 0:
            out[pod["metadata"]["name"]] = parse_ss(r.stdout)
    return out


def resolve(cfg: ClusterConfig, fqdn: str, pods: list[dict]) -> dict:
    """Look `fqdn` up from the first running pod (the selected ones first),
    through its resolv.conf, as `nslookup` in the guide does."""
    for pod in pods:
        if _running(pod) and netns.exists(_pod_ns(cfg, pod)):
            where = f"pod {pod['metadata']['namespace']}/{pod['metadata']['name']}"
            try:
                with open(f"{netns.ETC_NETNS_DIR}/{_pod_ns(cfg, pod)}/resolv.conf") as conf:
                    servers = [ln.split()[1] for ln in conf if ln.startswith("nameserver") and len(ln.split()) > 1]
            except OSError:
                servers = []
            where += f" (nameserver {', '.join(servers) or 'unknown'})"
            r = _run(_pod_ns(cfg, pod), ["dig", "+short", "+time=2", "+tries=2", fqdn, "A"])
            if r is None:
                return {"name": fqdn, "from": where, "error": "dig did not run (is it installed?)", "answers": []}
            answers = [a for a in r.stdout.split() if a[:1].isdigit()]
            err = ""
            if r.returncode:
                err = ((r.stdout + r.stderr).strip().splitlines() or ["dig failed"])[-1]
            return {"name": fqdn, "from": where, "answers": answers, "error": err}
    return {}


def collect(cfg: ClusterConfig, client: Client, ns: str, name: str, client_ip: str | None = None,
            via_node: str | None = None) -> dict:
    facts: dict = {"namespace": ns, "name": name, "client": client_ip, "via_node": via_node}
    try:
        facts["service"] = client.get("services", name, ns)
    except APIStatusError as e:
        if e.code != 404:
            raise
        facts["service"] = None
        return facts
    facts["pods"] = client.list("pods", ns)["items"]
    facts["events"] = [e for e in client.list("events", ns)["items"]
                       if (e.get("involvedObject") or {}).get("kind") == "Pod"]
    facts["slices"] = client.list("endpointslices", ns, label_selector=f"kubernetes.io/service-name={name}")["items"]
    chosen = selected(facts["service"], facts["pods"]) if facts["service"]["spec"].get("selector") else []
    facts["listening"] = listening(cfg, chosen)
    facts["nodes"] = [n["metadata"]["name"] for n in client.list("nodes")["items"]]
    read = {n: node_rules(cfg, n) for n in facts["nodes"]}
    facts["proxy_modes"] = {n: mode for n, (mode, _) in read.items()}
    facts["node_rules"] = {n: rules for n, (_, rules) in read.items()}
    others = [p for p in client.list("pods")["items"] if p not in chosen]
    facts["dns"] = resolve(cfg, f"{name}.{ns}.svc.{cfg.cluster_domain}", chosen + others)
    if facts["dns"]:
        dns_slices = client.list("endpointslices", "kube-system", label_selector="kubernetes.io/service-name=kube-dns")
        facts["dns"]["servers_ready"] = len(ready_endpoint_ips(dns_slices["items"]))
    return facts
