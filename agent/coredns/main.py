"""The cluster DNS as Kubernetes has it: Deployment kube-system/coredns
behind Service kube-system/kube-dns (10.96.0.10: 53/UDP, 53/TCP, 9153/TCP),
created at bootstrap; and the process its pods run (`python -m
agent.coredns.main`), which list+watches Services, EndpointSlices, Pods and
Namespaces through the `kubernetes` Service, like CoreDNS's in-cluster
client, and serves them with the `dns` package.

With `-conf FILE` (the coredns Deployment passes /etc/coredns/Corefile, the
kube-system/coredns ConfigMap mounted there) it serves that Corefile and
reloads it on change (dns/reload.py); a Corefile that does not load at start
is printed as CoreDNS prints it and the process exits 1. Without `-conf` it
behaves as kubeadm's default Corefile (cluster.local, `pods insecure`,
`ttl 30`, `lameduck 5s`, forward to the node's resolv.conf), with settings from the
environment (NSPLANE_DNS_DOMAIN, NSPLANE_DNS_UPSTREAMS); the kubernetes block's
other options are set in the Corefile.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import threading

LAMEDUCK = 5.0   # kubeadm's Corefile: health { lameduck 5s }

WATCHED = (("services", "Service"), ("endpointslices", "EndpointSlice"), ("pods", "Pod"),
           ("namespaces", "Namespace"))


def feed(client, state, stop: threading.Event):
    """Informers for every kind DNS answers from; the state is marked synced
    once all have listed."""
    from agent.api.client import Informer, compact, wait_synced
    informers = []
    for resource, kind in WATCHED:
        inf = Informer(client, resource, transform=compact)
        inf.add_handler(lambda old, new, kind=kind: state.apply(
            kind, "DELETED" if new is None else ("ADDED" if old is None else "MODIFIED"), new or old))
        inf.start(stop)
        informers.append(inf)

    def synced():
        if wait_synced(informers, timeout=600):
            state.mark_synced()
            logging.getLogger("nsplane.coredns").info("cluster state synced; answering")
    threading.Thread(target=synced, name="dns-sync", daemon=True).start()
    return informers


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="coredns")
    ap.add_argument("-conf", default=None, help="the Corefile (CoreDNS's flag)")
    ap.add_argument("--api", default=None, help="API URL (default: the kubernetes Service from the environment)")
    ap.add_argument("--port", type=int, default=53)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from agent.api.client import Client
    from dns import server
    from dns.cluster import ClusterState
    api = args.api or "https://{}:{}".format(os.environ.get("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
                                             os.environ.get("KUBERNETES_SERVICE_PORT", "443"))
    token = None
    if os.environ.get("NSPLANE_API_TOKEN_FILE"):
        with open(os.environ["NSPLANE_API_TOKEN_FILE"]) as f:
            token = f.read().strip()
    stop = threading.Event()
    corefile = None
    if args.conf:
        from dns.corefile import CorefileError
        from dns.reload import CorefileServer
        corefile = CorefileServer(ClusterState(), args.conf, port_override=args.port if args.port != 53 else None)
        try:
            corefile.load_first()
        except (CorefileError, OSError) as exc:
            print(exc, flush=True)          # CoreDNS: log.Fatal(err), exit 1
            return 1
    # kubeadm's Corefile has `health { lameduck 5s }`: keep answering for 5 s
    # after SIGTERM while the endpoint turns terminating and leaves kube-dns.
    lameduck = LAMEDUCK if corefile is None else corefile.lameduck
    signal.signal(signal.SIGTERM, lambda *_: threading.Timer(lameduck, stop.set).start())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    state = ClusterState() if corefile is None else corefile.state
    feed(Client(api, ca_file=os.environ.get("NSPLANE_API_CA_FILE"), token=token, user_agent="coredns/1.11.3"), state, stop)
    if corefile is not None:
        try:
            corefile.start()
        except (CorefileError, OSError, ValueError) as exc:
            print(exc, flush=True)
            stop.set()
            return 1
        try:
            stop.wait()
        finally:
            corefile.stop()
        return 0
    upstreams = [u for u in os.environ.get("NSPLANE_DNS_UPSTREAMS", "").split(",") if u] or None
    server.run(state, port=args.port, upstreams=upstreams,
               domain=os.environ.get("NSPLANE_DNS_DOMAIN", "cluster.local"), stop=stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
