"""The node agent process: registers the Node, heart-beats, and runs the
kubelet (pods, and its HTTPS port for the API server), the proxier (Service
rules) and the routes to other nodes' pod CIDRs. It runs inside its node's
network namespace and talks to the API over TCP, like a kubelet and
kube-proxy on a real node.

Run by `nsplane up` as
`nsenter --net=/run/netns/<node netns> python -m agent.node --config ... --node node-1`.
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import signal
import threading
import time

from agent.api import kubeproxyconfig
from agent.api.certificates import CertificateError
from agent.api.client import APIStatusError, Client, Informer, compact
from agent.api.config import ClusterConfig
from agent.api.objects import now_iso, pod_cidr_routes
from agent.node import hostnode, kubeletserver
from agent.node.certificates import CertificateBootstrapError, ensure_serving_certificate
from agent.node.kubelet.kubelet import Kubelet
from agent.node.kubelet.kuberuntime import memory_capacity
from agent.node.runtime.resources import node_resources
from dataplane import conntrack
from dataplane import node as nodenet
from dataplane.model import NodeInfo

log = logging.getLogger("nsplane.node")
HEARTBEAT = 10.0
PROXIER_SYNC_PERIOD = 30.0  # kube-proxy's syncPeriod: the longest retry backoff; /healthz allows twice that
VERSION = "v1.32.0-nsplane"


def os_image() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def node_object(name: str, ip: str, kubelet_port: int) -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                                  "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                                                  "beta.kubernetes.io/arch": "amd64"}},
            "spec": {}, "status": node_status(name, ip, kubelet_port)}


def node_status(name: str, ip: str, kubelet_port: int, since: str | None = None) -> dict:
    now = now_iso()
    capacity, allocatable = node_resources(os.cpu_count() or 1, memory_capacity())
    return {
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
        "capacity": capacity, "allocatable": allocatable,
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "kubelet is posting ready status", "lastHeartbeatTime": now,
                        "lastTransitionTime": since or now}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
        "nodeInfo": {"kubeletVersion": VERSION, "kubeProxyVersion": VERSION, "osImage": os_image(),
                     "kernelVersion": platform.release(), "containerRuntimeVersion": "nsplane://0.1.0",
                     "operatingSystem": "linux", "architecture": "amd64"},
    }


class NodeAgent:
    def __init__(self, cfg: ClusterConfig, name: str, ip: str, api_url: str | None = None,
                 iface: str = nodenet.NODE_IFNAME, verify_iptables: bool = False):
        self.cfg, self.name, self.ip, self.iface = cfg, name, ip, iface   # iface: where LB addresses are ARPed
        self.verify_iptables = verify_iptables  # read the rules back after every sync, log what differs
        self.client = Client(api_url or cfg.api_url, **cfg.node_auth(name),
                             user_agent="kubelet/v1.32.0 (linux/amd64) nsplane")
        self.stop = threading.Event()
        self.pod_cidr = ""  # from the Node once registered (detectLocalMode NodeCIDR)

    def register(self) -> dict:
        """Create or refresh our Node; wait until the controller gave it a pod CIDR."""
        deadline = time.monotonic() + 60
        while True:
            try:
                try:
                    cur = self.client.get("nodes", self.name)
                    cur["status"] = node_status(self.name, self.ip, self.cfg.kubelet_port)
                    cur["metadata"].pop("resourceVersion", None)
                    cur = self.client.update("nodes", cur, subresource="status")
                except APIStatusError as e:
                    if e.code != 404:
                        raise
                    cur = self.client.create("nodes", node_object(self.name, self.ip, self.cfg.kubelet_port))
                if cur.get("spec", {}).get("podCIDR"):
                    return cur
            except (OSError, APIStatusError) as e:
                log.info("waiting for the API server at %s: %s", self.client.server, e)
            if time.monotonic() > deadline:
                raise SystemExit(f"node {self.name}: no pod CIDR from the API server at {self.client.server} "
                                 "after 60 s; is `nsplane-server` running? (see its log)")
            time.sleep(0.2)

    def heartbeat(self) -> None:
        since = None
        while not self.stop.wait(HEARTBEAT):
            try:
                cur = self.client.get("nodes", self.name)
                ready = next((c for c in cur.get("status", {}).get("conditions", []) if c["type"] == "Ready"), {})
                since = ready.get("lastTransitionTime") if ready.get("status") == "True" else None
                cur["status"] = node_status(self.name, self.ip, self.cfg.kubelet_port, since)
                cur["metadata"].pop("resourceVersion", None)
                self.client.update("nodes", cur, subresource="status")
            except (OSError, APIStatusError) as e:
                log.warning("heartbeat failed: %s", e)

    def routes(self, nodes: Informer) -> None:
        """Routes to every other node's pod CIDR via its underlay address."""
        nodes.add_handler(lambda *_: nodenet.sync_pod_routes(None, pod_cidr_routes(nodes.items(), skip=self.name)))

    def load_balancing(self, services: Informer, slices: Informer, nodes: Informer) -> None:
        """The layer-2 speaker for LoadBalancer addresses."""
        from agent.node.speaker import Speaker
        from dataplane.arp import Responder
        responder = Responder(self.iface)
        responder.start(self.stop)
        speaker = Speaker(self.client, self.name, services, nodes, slices, responder)
        threading.Thread(target=speaker.run, args=(self.stop,), name="speaker", daemon=True).start()

    def proxier(self, services: Informer, slices: Informer, nodes: Informer):
        """kube-proxy: the proxier and the health servers its syncs feed."""
        from agent.node.proxy import metrics as proxymetrics
        from agent.node.proxy.healthcheck import ProxierHealthServer, ServiceHealthServer
        from agent.node.proxy.backends import cleanup_other
        from agent.node.proxy.proxier import Proxier
        healthz = ProxierHealthServer(health_timeout=2 * PROXIER_SYNC_PERIOD)
        service_health = ServiceHealthServer(self.name, healthz)
        metrics = proxymetrics.ProxyMetrics()
        # The mode comes with the configuration (set_mode before the first sync);
        # after that first sync the other mode's leftovers go, as kube-proxy does at start.
        proxier = Proxier(NodeInfo(self.name, self.cfg.cluster_cidr, (self.ip,)),
                          verify="log" if self.verify_iptables else "off", sync_period=PROXIER_SYNC_PERIOD,
                          wait_for_initial_sync=True, healthz=healthz, service_health=service_health,
                          metrics=metrics, cleanup=cleanup_other)
        self.proxy_config = Informer(self.client, "configmaps", namespace=kubeproxyconfig.NAMESPACE,
                                     field_selector=f"metadata.name={kubeproxyconfig.NAME}")
        self.proxy_config.add_handler(lambda old, new: self.apply_proxy_config(proxier, healthz, new))
        services.add_handler(proxier.on_service)
        slices.add_handler(proxier.on_endpointslice)
        nodes.add_handler(lambda old, new: healthz.sync_node(new) if (new or old)["metadata"]["name"] == self.name
                          else None)
        # Like kube-proxy: no rules are written until both lists are in, so a
        # restarted agent never syncs an empty table over live Services; nor
        # before the configuration is read (given 10 s), so a restart does not
        # write the defaults over a configured cluster's rules for a moment.
        def when_synced(inf: Informer, done) -> None:
            inf.synced.wait()
            if not self.proxy_config.synced.wait(10):
                log.warning("ConfigMap %s/%s not listed within 10 s; syncing with the defaults until it is",
                            kubeproxyconfig.NAMESPACE, kubeproxyconfig.NAME)
            done()
        for inf, done in ((services, proxier.services_synced), (slices, proxier.endpointslices_synced)):
            threading.Thread(target=when_synced, args=(inf, done), daemon=True).start()
        threading.Thread(target=service_health.run, args=(self.stop,), name="health-check-node-ports",
                         daemon=True).start()
        defaults = kubeproxyconfig.ProxyConfig()
        self._proxy_servers = {"healthz": (healthz.run, None, None),
                               "metrics": (self.serve_proxy_metrics, None, None)}
        self._metrics = metrics
        self.bind_proxy_servers(defaults.healthz_bind_address, defaults.metrics_bind_address)
        return proxier

    def serve_proxy_metrics(self, stop: threading.Event, address: str) -> None:
        """kube-proxy's /metrics on its metricsBindAddress (127.0.0.1:10249, the node's namespace)."""
        from agent.node.proxy.metrics import serve
        try:
            serve(self._metrics, address, stop)
        except OSError as err:
            log.error("kube-proxy metrics server on %s: %s", address, err)

    def bind_proxy_servers(self, healthz_address: str, metrics_address: str) -> None:
        """(Re)start kube-proxy's /healthz and /metrics servers on these
        addresses: a server whose address changed is stopped (and its port
        closed) before the new one opens. They also stop with the agent."""
        for name, address in (("healthz", healthz_address), ("metrics", metrics_address)):
            run, current, thread = self._proxy_servers[name]
            if current is not None and current[0] == address:
                continue
            if current is not None:
                current[1].set()
                thread.join(5)
            stop = threading.Event()
            thread = threading.Thread(target=run, args=(stop, address), name=f"kube-proxy-{name}", daemon=True)
            thread.start()
            threading.Thread(target=lambda stop=stop: (self.stop.wait(), stop.set()), daemon=True).start()
            self._proxy_servers[name] = (run, (address, stop), thread)

    def apply_proxy_config(self, proxier, healthz, cm: dict | None) -> None:
        """ConfigMap kube-system/kube-proxy changed: apply a valid config.conf
        with a full sync (kube-proxy would restart); keep the running one
        when it is invalid or gone (the API server refuses invalid ones, so
        this is a second line). nodePortAddresses CIDRs are resolved against
        this namespace's addresses now (kube-proxy does it every sync; a
        node's addresses do not change here)."""
        if cm is None:
            log.warning("ConfigMap %s/%s deleted; keeping the running kube-proxy configuration",
                        kubeproxyconfig.NAMESPACE, kubeproxyconfig.NAME)
            return
        config, errors = kubeproxyconfig.parse((cm.get("data") or {}).get(kubeproxyconfig.KEY) or "")
        if config is None:
            log.error("invalid kube-proxy configuration, keeping the running one: %s", "; ".join(errors))
            return
        try:
            node_port_ips = kubeproxyconfig.node_port_ips(config, self.ip, nodenet.local_ipv4_addresses(None))
        except OSError as err:
            log.error("cannot list this node's addresses for nodePortAddresses, keeping the running "
                      "kube-proxy configuration: %s", err)
            return
        if self.cfg.host_mode:  # this namespace may be the machine's own: leave its sysctls alone
            log.info("host mode: conntrack settings are not applied")
        else:
            try:
                written = conntrack.set_sysctls(kubeproxyconfig.conntrack_sysctls(config))
            except OSError as err:  # PermissionError in the machine's own namespace included
                log.error("conntrack settings not applied: %s", err)
            else:
                if written:
                    log.info("conntrack: %s", ", ".join(written))
        proxier.set_mode(config.mode)
        proxier.set_periods(config.min_sync_period, config.sync_period)
        self.bind_proxy_servers(config.healthz_bind_address, config.metrics_bind_address)
        healthz.health_timeout = 2 * config.sync_period
        proxier.set_node(NodeInfo(
            self.name, config.cluster_cidr, (self.ip,), masquerade_bit=config.masquerade_bit,
            masquerade_all=config.masquerade_all, localhost_node_ports=config.localhost_node_ports,
            node_port_ips=node_port_ips, detect_local=kubeproxyconfig.local_detector(config, self.pod_cidr)))
        log.info("kube-proxy configuration applied: %s", config)

    def serve_kubelet_api(self, kubelet: Kubelet) -> None:
        """The kubelet's port, on HTTPS with a serving certificate the
        cluster CA issued for this node (requested through a
        CertificateSigningRequest: agent/node/certificates.py)."""
        pki_dir = os.path.join(self.cfg.dir, "nodes", self.name, "pki")
        try:
            cert = ensure_serving_certificate(self.client, self.name, [self.ip], pki_dir, self.cfg.ca_file)
        except (CertificateBootstrapError, CertificateError, APIStatusError, OSError) as e:
            raise SystemExit(f"node {self.name}: no serving certificate for the kubelet API: {e}") from None
        kubeletserver.serve(kubelet, self.ip, self.cfg.kubelet_port,
                            kubeletserver.serving_context(cert, self.cfg.ca_file), self.stop)

    def run(self) -> None:
        node = self.register()
        pod_cidr = self.pod_cidr = node["spec"]["podCIDR"]
        log.info("node %s registered: InternalIP %s, podCIDR %s", self.name, self.ip, pod_cidr)
        services = Informer(self.client, "services", transform=compact)
        slices = Informer(self.client, "endpointslices", transform=lambda o: compact(o, drop_target_refs=True))
        nodes = Informer(self.client, "nodes", transform=compact)
        proxier = self.proxier(services, slices, nodes)
        self.routes(nodes)
        self.load_balancing(services, slices, nodes)
        kubelet = Kubelet(self.client, self.cfg, self.name, pod_cidr, self.ip, services)
        for inf in (services, slices, nodes, self.proxy_config):
            inf.start(self.stop)
        self.serve_kubelet_api(kubelet)
        threading.Thread(target=self.heartbeat, name="heartbeat", daemon=True).start()
        threading.Thread(target=proxier.run, args=(self.stop,), name="proxier", daemon=True).start()
        kubelet.run(self.stop)


def preload() -> None:
    """Import now, on the main thread, what other threads would import lazily.

    An os.fork() of this multi-threaded process (pyroute2 forks for some
    operations) while one thread holds the import lock and waits for
    logging's lock, which os.fork takes first, deadlocks the agent;
    python-iptables' import does exactly that (it logs through setuptools'
    vendored packages). dataplane.netns does not fork for sockets or new
    namespaces (setns on the calling thread, `ip netns add`), and this keeps
    the import off the other threads as well."""
    import iptc  # noqa: F401

    import agent.node.proxy.proxier  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="nsplane-node")
    ap.add_argument("--config", required=True)
    ap.add_argument("--node", help="this node's name (host mode: default from the config)")
    ap.add_argument("--ip", help="this node's InternalIP (host mode: default the host interface's address)")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--verify-iptables", action="store_true", default=os.environ.get("NSPLANE_VERIFY_IPTABLES") == "1",
                    help="after every sync, read the rules back and log an error if the kernel holds something else "
                         "(a debugging aid; costs a second full restore per sync; env NSPLANE_VERIFY_IPTABLES=1)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format=f"%(asctime)s {args.node or 'host'} %(name)s %(levelname)s %(message)s")
    cfg = ClusterConfig.load(args.config)
    preload()
    if cfg.host_mode:   # this namespace is the node (agent/node/hostnode.py)
        name, ip = hostnode.node_identity(cfg)
        hostnode.prepare_node(cfg)
        agent = NodeAgent(cfg, args.node or name, args.ip or ip, iface=cfg.host_iface,
                          verify_iptables=args.verify_iptables)
    elif not (args.node and args.ip):
        ap.error("--node and --ip are required unless the cluster is in host mode")
    else:
        agent = NodeAgent(cfg, args.node, args.ip, verify_iptables=args.verify_iptables)
    signal.signal(signal.SIGTERM, lambda *_: agent.stop.set())
    signal.signal(signal.SIGINT, lambda *_: agent.stop.set())
    agent.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
