"""What the kubelet writes for a pod's processes, as pure functions:
/etc/resolv.conf by dnsPolicy and dnsConfig, the kubelet-managed /etc/hosts,
and each container's environment (Service links + `env:`).

The files land in /etc/netns/<pod netns>/ (sandbox.py writes them): each
container gets them bind-mounted at /etc/resolv.conf, /etc/hosts and
/etc/hostname, as containerd mounts the sandbox's files, and `ip netns exec`
in the pod's namespace shows them too.
"""
from __future__ import annotations

import re

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


def _env_name(name: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", name.upper())


def service_links(services: list[dict]) -> dict[str, str]:
    """Docker-link style variables for Services with a cluster IP."""
    env: dict[str, str] = {}
    for svc in sorted(services, key=lambda s: s["metadata"]["name"]):
        spec = svc.get("spec", {})
        ip = spec.get("clusterIP")
        ports = spec.get("ports") or []
        if not ip or ip == "None" or spec.get("type") == "ExternalName" or not ports:
            continue
        base = _env_name(svc["metadata"]["name"])
        first = ports[0]
        env[f"{base}_SERVICE_HOST"] = ip
        env[f"{base}_SERVICE_PORT"] = str(first["port"])
        for p in ports:
            if p.get("name"):
                env[f"{base}_SERVICE_PORT_{_env_name(p['name'])}"] = str(p["port"])
        env[f"{base}_PORT"] = f"{first.get('protocol', 'TCP').lower()}://{ip}:{first['port']}"
        for p in ports:
            proto = p.get("protocol", "TCP")
            key = f"{base}_PORT_{p['port']}_{proto}"
            env[key] = f"{proto.lower()}://{ip}:{p['port']}"
            env[key + "_PROTO"] = proto.lower()
            env[key + "_PORT"] = str(p["port"])
            env[key + "_ADDR"] = ip
    return env


def container_env(pod: dict, container: dict, services: list[dict], kubernetes_svc: dict | None,
                  pod_ip: str, base: dict[str, str]) -> dict[str, str]:
    """The container's environment: base (PATH, HOSTNAME), Service links for
    the pod's namespace (unless enableServiceLinks is false), the kubernetes
    Service's variables always, then the container's own `env:`."""
    env = dict(base)
    spec = pod.get("spec", {})
    if spec.get("enableServiceLinks", True):
        env.update(service_links(services))
    if kubernetes_svc is not None:
        links = service_links([kubernetes_svc])
        env.update(links)
        if "KUBERNETES_SERVICE_HOST" in links:
            env["KUBERNETES_SERVICE_PORT_HTTPS"] = links["KUBERNETES_SERVICE_PORT"]
    fields = {"metadata.name": pod["metadata"]["name"], "metadata.namespace": pod["metadata"].get("namespace", ""),
              "metadata.uid": pod["metadata"].get("uid", ""), "spec.nodeName": spec.get("nodeName", ""),
              "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
              "status.podIP": pod_ip, "status.hostIP": pod.get("status", {}).get("hostIP", "")}
    for e in container.get("env", []) or []:
        if "value" in e:
            env[e["name"]] = _expand(str(e["value"]), env)
        elif (e.get("valueFrom") or {}).get("fieldRef"):
            path = e["valueFrom"]["fieldRef"].get("fieldPath", "")
            if path.startswith("metadata.labels['"):
                env[e["name"]] = (pod["metadata"].get("labels") or {}).get(path[17:-2], "")
            elif path.startswith("metadata.annotations['"):    # a Job's JOB_COMPLETION_INDEX
                env[e["name"]] = (pod["metadata"].get("annotations") or {}).get(path[22:-2], "")
            else:
                env[e["name"]] = fields.get(path, "")
        else:
            env[e["name"]] = ""
    return env


def _expand(value: str, env: dict[str, str]) -> str:
    """$(VAR) references to earlier variables, as Kubernetes expands them."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)
