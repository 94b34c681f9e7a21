"""What the kubelet writes for a pod's processes, as pure functions:
/etc/resolv.conf by dnsPolicy and dnsConfig and the kubelet-managed
/etc/hosts (each container's environment is envvars.py's).

The files land in /etc/netns/<pod netns>/ (sandbox.py writes them): each
container gets them bind-mounted at /etc/resolv.conf, /etc/hosts and
/etc/hostname, as containerd mounts the sandbox's files, and `ip netns exec`
in the pod's namespace shows them too.
"""
from __future__ import annotations

HOSTS_HEADER = """# Kubernetes-managed hosts file.
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
fe00::0\tip6-mcastprefix
fe00::1\tip6-allnodes
fe00::2\tip6-allrouters
"""


def parse_resolv_conf(text: str) -> dict:
    conf = {"nameservers": [], "searches": [], "options": []}
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        if parts[0] == "nameserver" and len(parts) > 1:
            conf["nameservers"].append(parts[1])
        elif parts[0] in ("search", "domain"):
            conf["searches"] = parts[1:]
        elif parts[0] == "options":
            conf["options"].extend(parts[1:])
    return conf


def resolv_conf(pod: dict, dns_ip: str, domain: str, host_resolv: str = "") -> str:
    """The pod's /etc/resolv.conf, as the kubelet builds it."""
    spec = pod.get("spec", {})
    policy = spec.get("dnsPolicy", "ClusterFirst")
    ns = pod["metadata"].get("namespace", "default")
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        conf = {"nameservers": [dns_ip],
                "searches": [f"{ns}.svc.{domain}", f"svc.{domain}", domain],
                "options": ["ndots:5"]}
    elif policy == "Default":
        conf = parse_resolv_conf(host_resolv)
    else:   # None: only what dnsConfig says
        conf = {"nameservers": [], "searches": [], "options": []}
    extra = spec.get("dnsConfig") or {}
    for server in extra.get("nameservers", []) or []:
        if server not in conf["nameservers"]:
            conf["nameservers"].append(server)
    for s in extra.get("searches", []) or []:
        if s not in conf["searches"]:
            conf["searches"].append(s)
    opts = {o.split(":", 1)[0]: o for o in conf["options"]}
    for o in extra.get("options", []) or []:
        opts[o["name"]] = f"{o['name']}:{o['value']}" if o.get("value") is not None else o["name"]
    lines = []
    if conf["searches"]:
        lines.append("search " + " ".join(conf["searches"][:32]))
    lines += [f"nameserver {s}" for s in conf["nameservers"][:3]]
    if opts:
        lines.append("options " + " ".join(opts.values()))
    return "\n".join(lines) + "\n"


def hosts_file(pod: dict, pod_ip: str, domain: str) -> str:
    spec = pod.get("spec", {})
    name = spec.get("hostname") or pod["metadata"]["name"]
    ns = pod["metadata"].get("namespace", "default")
    if spec.get("subdomain"):
        line = f"{pod_ip}\t{name}.{spec['subdomain']}.{ns}.svc.{domain}\t{name}\n"
    else:
        line = f"{pod_ip}\t{name}\n"
    out = HOSTS_HEADER + line
    aliases = spec.get("hostAliases") or []
    if aliases:
        out += "\n# Entries added by HostAliases.\n"
        for a in aliases:
            out += f"{a['ip']}\t" + "\t".join(a.get("hostnames", [])) + "\n"
    return out
