"""Hand-made `NftRuleset`s in kube-proxy's nftables layout, for the applier's
unit and kernel tests and the bench, independent of the render: a table with
nat base chains, a `services` chain dispatching through the `service-ips`
verdict map, per Service `service-...` chains choosing an `endpoint-...`
chain with `numgen random mod N vmap`, endpoint chains DNATing, a
`cluster-ips` set, a `no-endpoint-services` map and an affinity set (a
`timeout` set the datapath fills). Not collected by pytest (no test_ prefix).
"""
from __future__ import annotations

from dataplane.nft.ruleset import NftRuleset

BASE = {
    "nat-prerouting": "type nat hook prerouting priority dstnat ;",
    "nat-output": "type nat hook output priority -100 ;",
    "nat-postrouting": "type nat hook postrouting priority srcnat ;",
    "filter-output": "type filter hook output priority -110 ;",
    "filter-forward": "type filter hook forward priority -110 ;",
}
ADDR = "type ipv4_addr . inet_proto . inet_service : verdict ;"


def service_chain(i: int) -> str:
    return f"service-{i:08X}-default/svc{i}/tcp/http"


def endpoint_chain(i: int, ip: str, port: int) -> str:
    return f"endpoint-{i:08X}-default/svc{i}/tcp/http__{ip}/{port}"


def cluster_ip(i: int) -> str:
    return f"10.96.{i // 250}.{i % 250 + 1}"


def ruleset(endpoints: dict[int, list[tuple[str, int]]], affinity: bool = False) -> NftRuleset:
    """Services 0..n-1 on port 80 at `cluster_ip(i)`, each with its endpoints
    (ip, port); a Service without endpoints is rejected via
    `no-endpoint-services`."""
    chains: dict[str, tuple[str, ...]] = {
        "nat-prerouting": ("jump services",),
        "nat-output": ("jump services",),
        "nat-postrouting": ("jump masquerading",),
        "filter-output": ("ct state new jump endpoints-check",),
        "filter-forward": ("ct state new jump endpoints-check",),
        "services": ("ip daddr . meta l4proto . th dport vmap @service-ips",),
        "endpoints-check": ("ip daddr . meta l4proto . th dport vmap @no-endpoint-services",),
        "masquerading": ("meta mark & 0x00004000 == 0 return", "meta mark set meta mark ^ 0x00004000",
                         "masquerade fully-random"),
        "mark-for-masquerade": ("meta mark set meta mark | 0x00004000",),
        "reject-chain": ("reject",),
    }
    service_ips: dict[str, str] = {}
    no_endpoints: dict[str, str] = {}
    sets: dict[str, tuple[str, frozenset[str]]] = {}
    total = 0
    for i, eps in sorted(endpoints.items()):
        key = f"{cluster_ip(i)} . tcp . 80"
        if not eps:
            no_endpoints[f'{key} comment "default/svc{i}:http"'] = "goto reject-chain"
            continue
        total += len(eps)
        svc = service_chain(i)
        service_ips[key] = f"goto {svc}"
        vmap = ", ".join(f"{n} : goto {endpoint_chain(i, ip, port)}" for n, (ip, port) in enumerate(eps))
        chains[svc] = (f"ip daddr {cluster_ip(i)} tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
                       f"numgen random mod {len(eps)} vmap {{ {vmap} }}")
        for ip, port in eps:
            rules = [f"ip saddr {ip} jump mark-for-masquerade"]
            if affinity:
                name = f"affinity-{i:08X}-{ip}-{port}".replace(".", "-")
                sets[name] = ("type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ;", frozenset())
                rules.append(f"update @{name} {{ ip saddr }}")
            rules.append(f"meta l4proto tcp dnat to {ip}:{port}")
            chains[endpoint_chain(i, ip, port)] = tuple(rules)
    sets["cluster-ips"] = ("type ipv4_addr ; comment \"Active ClusterIPs\" ;",
                           frozenset(cluster_ip(i) for i in endpoints))
    return NftRuleset(
        base_chains=dict(BASE), chains=chains,
        maps={"service-ips": (ADDR + ' comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ;', service_ips),
              "no-endpoint-services": (ADDR, no_endpoints)},
        sets=sets, service_ports=len(endpoints), endpoints=total)


def endpoints_for(n: int, per_service: int = 3, base: str = "10.244") -> dict[int, list[tuple[str, int]]]:
    """n Services with `per_service` distinct endpoints each."""
    out = {}
    for i in range(n):
        out[i] = [(f"{base}.{(i * per_service + k) // 250 % 250}.{(i * per_service + k) % 250 + 1}", 8080)
                  for k in range(per_service)]
    return out
