"""What a new cluster has before the user applies anything: the namespaces
default, kube-system, kube-public and kube-node-lease, and the `kubernetes`
Service (default, 10.96.0.1:443) whose endpoints are the API server itself,
and the cluster DNS (kube-system/kube-dns and the coredns Deployment), and
kube-proxy's configuration (ConfigMap kube-system/kube-proxy, as kubeadm
writes it: `agent.api.kubeproxyconfig`).

The `BootstrapController` keeps the first two alive as kube-apiserver's
bootstrap controller does: deleted (`kubectl delete svc --all` takes
`kubernetes` too), they are made again at once, so in-cluster clients never
lose the API."""
from __future__ import annotations

from agent.api import kubeproxyconfig
from agent.api.kinds import BY_RESOURCE
from agent.apiserver.registry import APIError, Registry
from agent.controllers.base import Controller

NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def ensure(registry: Registry, resource: str, obj: dict) -> dict:
    """`obj` as stored: created if missing, left as it is if present."""
    kind = BY_RESOURCE[resource]
    md = obj["metadata"]
    try:
        return registry.get(kind, md.get("namespace"), md["name"])
    except APIError as e:
        if e.code != 404:
            raise
    return registry.create(kind, md.get("namespace"), obj)


def bootstrap(registry: Registry, api_ip: str, api_port: int) -> None:
    for ns in NAMESPACES:
        ensure(registry, "namespaces", {"metadata": {"name": ns}})
    svc_ip = registry.allocation.cluster_ips.nth(1)
    ensure(registry, "services", {
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": svc_ip,
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api_port}]}})
    endpoints(registry, api_ip, api_port)


def kube_proxy_config(registry: Registry, cluster_cidr: str, mode: str = "") -> None:
    """ConfigMap kube-system/kube-proxy holding config.conf, in proxy `mode`
    (left alone if present: a user's edits survive a restart)."""
    ensure(registry, "configmaps", {
        "metadata": {"name": kubeproxyconfig.NAME, "namespace": kubeproxyconfig.NAMESPACE,
                     "labels": {"app": "kube-proxy"}},
        "data": {kubeproxyconfig.KEY: kubeproxyconfig.default_config_text(cluster_cidr, mode)}})


def endpoints(registry: Registry, api_ip: str, api_port: int) -> None:
    """(Re)write the kubernetes Service's EndpointSlice and Endpoints as
    kube-apiserver's endpoint reconciler does (the API's address may change
    between runs: a different underlay). The Endpoints say
    `endpointslice.kubernetes.io/skip-mirror: "true"`, so the mirroring
    controller leaves them to this slice."""
    want_sl = {"addressType": "IPv4",
               "endpoints": [{"addresses": [api_ip], "conditions": {"ready": True}}],
               "ports": [{"name": "https", "port": api_port, "protocol": "TCP"}]}
    want_ep = [{"addresses": [{"ip": api_ip}], "ports": [{"name": "https", "port": api_port, "protocol": "TCP"}]}]
    for resource, body, labels in (
            ("endpointslices", want_sl, {"kubernetes.io/service-name": "kubernetes"}),
            ("endpoints", {"subsets": want_ep}, {"endpointslice.kubernetes.io/skip-mirror": "true"})):
        md = {"name": "kubernetes", "namespace": "default", "labels": labels}
        cur = ensure(registry, resource, {"metadata": md, **body})
        if any(cur.get(k) != v for k, v in body.items()) or (cur["metadata"].get("labels") or {}) != labels:
            registry.update(BY_RESOURCE[resource], "default", "kubernetes",
                            {**cur, **body, "metadata": {**cur["metadata"], "labels": labels}})


def _kubernetes_service(self, obj: dict) -> list:
    md = obj["metadata"]
    return ["kubernetes"] if (md.get("namespace"), md["name"]) == ("default", "kubernetes") else []


class BootstrapController(Controller):
    """Recreates the system namespaces and the `kubernetes` Service, its
    EndpointSlice and Endpoints when any of them is deleted or changed."""
    name = "bootstrap-controller"
    watches = {"namespaces": lambda self, o: ["kubernetes"] if o["metadata"]["name"] in NAMESPACES else [],
               "services": _kubernetes_service, "endpointslices": _kubernetes_service,
               "endpoints": _kubernetes_service}

    def __init__(self, store, registry: Registry, api_ip: str, api_port: int):
        super().__init__(store, registry)
        self.api_ip, self.api_port = api_ip, api_port

    def sync(self, key) -> None:
        bootstrap(self.registry, self.api_ip, self.api_port)


DNS_IMAGE = "registry.k8s.io/coredns/coredns:v1.11.3"

# kubeadm 1.32's Corefile (cmd/kubeadm/app/phases/addons/dns), with the
# cluster's domain and upstreams filled in as kubeadm fills them.
COREFILE = """.:53 {{
    errors
    health {{
       lameduck 5s
    }}
    ready
    kubernetes {domain} in-addr.arpa ip6.arpa {{
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }}
    prometheus :9153
    forward . {upstream} {{
       max_concurrent 1000
    }}
    cache 30 {{
       disable success {domain}
       disable denial {domain}
    }}
    loop
    reload
    loadbalance
}}
"""


def corefile(cfg) -> str:
    """kubeadm's Corefile for this cluster (`nsplane up --upstream-dns` replaces /etc/resolv.conf)."""
    return COREFILE.format(domain=cfg.cluster_domain,
                           upstream=" ".join(cfg.upstream_dns) if cfg.upstream_dns else "/etc/resolv.conf")
DNS_LABELS = {"k8s-app": "kube-dns"}


def cluster_dns(registry: Registry, cfg) -> None:
    """kube-system/kube-dns (10.96.0.10: 53/UDP, 53/TCP, 9153/TCP) and the
    coredns Deployment behind it, as kubeadm creates them."""
    ensure(registry, "services", {
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {**DNS_LABELS, "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
                     "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}},
        "spec": {"type": "ClusterIP", "clusterIP": cfg.dns_ip, "selector": DNS_LABELS,
                 "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                           {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                           {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}})
    env = [{"name": "NSPLANE_API_CA_FILE", "value": cfg.ca_file},          # its service account's
           {"name": "NSPLANE_API_TOKEN_FILE", "value": cfg.token_file("coredns")}]   # ca.crt and token
    ensure(registry, "configmaps", {"metadata": {"name": "coredns", "namespace": "kube-system"},
                                    "data": {"Corefile": corefile(cfg)}})
    ensure(registry, "deployments", {
        "metadata": {"name": "coredns", "namespace": "kube-system", "labels": DNS_LABELS},
        "spec": {"replicas": 2, "selector": {"matchLabels": DNS_LABELS},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}},
                 "template": {"metadata": {"labels": DNS_LABELS}, "spec": {
                     "dnsPolicy": "Default",
                     # its token and CA are the cluster's coredns files, mounted where a
                     # service account's are (kuberuntime.py), not a kube-api-access volume
                     "automountServiceAccountToken": False,
                     "containers": [{
                         "name": "coredns", "image": DNS_IMAGE, "args": ["-conf", "/etc/coredns/Corefile"],
                         "env": env,
                         "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns",
                                           "readOnly": True}],
                         "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                   {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                                   {"name": "metrics", "containerPort": 9153, "protocol": "TCP"}],
                         "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}, "initialDelaySeconds": 60,
                                           "timeoutSeconds": 5, "failureThreshold": 5},
                         "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 1}}],
                     "volumes": [{"name": "config-volume", "configMap": {
                         "name": "coredns", "items": [{"key": "Corefile", "path": "Corefile"}]}}]}}}})
