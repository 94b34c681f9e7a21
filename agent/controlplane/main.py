"""The server role's process: store + API server + controllers.

Run by `nsplane up` as `python -m agent.controlplane --config <cluster.json>`, in
the host namespace. It listens on a Unix socket (for the CLI), on loopback and
on the host's underlay address (for node agents and pods, through the
`kubernetes` Service).
"""
from __future__ import annotations

import argparse
import logging
import signal
import threading

from agent.api import pki
from agent.api.config import ClusterConfig, parse_duration
from agent.apiserver import authn
from agent.apiserver.rbac import reconcile
from agent.apiserver.registry import Registry
from agent.apiserver.serving import APIServer
from agent.apiserver.tokenrequest import ServiceAccountTokens
from agent.apiserver.store import Store
from agent.controllers import bootstrap
from agent.controllers.clusterroleaggregation import ClusterRoleAggregationController
from agent.controllers.certificates import CSRApprovingController, CSRSigningController
from agent.controllers.cronjob import CronJobController
from agent.controllers.daemonset import DaemonSetController
from agent.controllers.deployment import DeploymentController
from agent.controllers.endpointslice import EndpointSliceController
from agent.controllers.endpointslicemirroring import EndpointSliceMirroringController
from agent.controllers.eventttl import EventTTLController
from agent.controllers.gateway import crds as gateway_crds
from agent.controllers.gateway.controller import GatewayController
from agent.controllers.gc import GarbageCollector
from agent.controllers.ingress.controller import IngressController, ensure_default_class
from agent.controllers.job import JobController
from agent.controllers.loadbalancer import LoadBalancerController
from agent.controllers.nodes import NodeController
from agent.controllers.replicaset import ReplicaSetController
from agent.controllers.replicationcontroller import ReplicationManager
from agent.controllers.scheduler import Scheduler
from agent.controllers.serviceaccounts import RootCACertPublisher, ServiceAccountsController
from agent.controllers.statefulset import StatefulSetController

log = logging.getLogger("nsplane.server")


def build(cfg: ClusterConfig, listen: list[tuple[str, int]] | None = None):
    store = Store(cfg.db_path)
    registry = Registry(store, cfg.service_cidr, cfg.node_port_range, cfg.load_balancer_pool)
    bootstrap.bootstrap(registry, cfg.host_ip, cfg.api_port)
    reconcile.ensure_bootstrap_policy(registry)      # kube-apiserver's rbac/bootstrap-roles
    bootstrap.kube_proxy_config(registry, cfg.cluster_cidr, cfg.proxy_mode)
    if cfg.dns:
        bootstrap.cluster_dns(registry, cfg)
    ensure_default_class(registry)                  # IngressClass nsplane, the default
    gateway_crds.install(registry)                   # the Gateway API's standard channel
    gateway_crds.default_class(registry, store)
    listen = listen or [("127.0.0.1", cfg.api_port), (cfg.host_ip, cfg.api_port)]
    nodes = [cfg.host_node] if cfg.host_mode and cfg.host_node else [cfg.node_name(i) for i in cfg.node_list]
    pki.ensure(cfg.pki_dir, cfg.name, [cfg.host_ip], registry.allocation.cluster_ips.nth(1), cfg.cluster_domain,
               nodes)
    paths = pki.Paths(cfg.pki_dir)
    tokens, sa_tokens = ServiceAccountTokens.build(store, paths.sa_key, paths.sa_pub, cfg.cluster_domain,
                                                   f"https://{cfg.host_ip}:{cfg.api_port}/openid/v1/jwks")
    api = APIServer(registry, listen, cfg.api_socket, cfg.kubelet_port, tls=pki.server_context(cfg.pki_dir),
                    authenticator=authn.Authenticator(pki.Authenticator(paths.tokens), sa_tokens),
                    kubelet_tls=pki.kubelet_client_context(cfg.pki_dir), tokens=tokens)
    controllers = [bootstrap.BootstrapController(store, registry, cfg.host_ip, cfg.api_port),
                   CSRApprovingController(store, registry),
                   CSRSigningController(store, registry, paths.ca_crt, paths.ca_key),
                   Scheduler(store, registry), ReplicaSetController(store, registry),
                   ReplicationManager(store, registry),
                   DeploymentController(store, registry), EndpointSliceController(store, registry),
                   EndpointSliceMirroringController(store, registry),
                   GarbageCollector(store, registry), NodeController(store, registry, cfg.cluster_cidr),
                   LoadBalancerController(store, registry), ServiceAccountsController(store, registry),
                   RootCACertPublisher(store, registry, _read(cfg.ca_file)),
                   EventTTLController(store, registry, cfg.event_ttl),
                   ClusterRoleAggregationController(store, registry)]
    controllers += [StatefulSetController(store, registry), DaemonSetController(store, registry),
                    JobController(store, registry), CronJobController(store, registry),
                    IngressController(store, registry)]
    controllers.append(GatewayController(store, registry))          # Gateway API: one nginx proxy per Gateway
    return store, api, controllers


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="nsplane-server")
    ap.add_argument("--config", required=True)
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--event-ttl", type=_duration, help="how long Events are kept after they last happened "
                                                        "(a duration: 1h, 30m, 90s; default: the config's, 1h)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = ClusterConfig.load(args.config)
    if args.event_ttl is not None:
        cfg.event_ttl = args.event_ttl
    store, api, controllers = build(cfg)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    api.start()
    for c in controllers:
        c.start(stop)
    log.info("API server of cluster %s listening on %s (HTTPS) and %s (rv %d)", cfg.name,
             ", ".join(f"{h}:{p}" for h, p in [("127.0.0.1", cfg.api_port), (cfg.host_ip, cfg.api_port)]),
             cfg.api_socket, store.resource_version)
    stop.wait()
    log.info("stopping")
    api.stop()
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
