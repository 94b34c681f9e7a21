"""The node's load-balancer speaker: MetalLB's layer-2 mode.

Every node agent runs one. For each LoadBalancer address in Service status,
all speakers compute the same answer to "who announces it?" from the same
watched state: the eligible nodes (Ready, not being deleted, not labelled
node.kubernetes.io/exclude-from-external-load-balancers, and with
externalTrafficPolicy Local only those with a ready endpoint of the Service)
ordered by a hash of node name and address; the first one wins. So exactly
one node answers ARP for each address, the addresses spread over the nodes,
and when the winner leaves (Node deleted or NotReady) or loses its last local
endpoint, the next one takes over and sends gratuitous ARP. The winner
records a `nodeAssigned` Event on the Service, as MetalLB's speaker does.

Pure election logic at the top; `Speaker` glues it to the informers and to
`dataplane.arp.Responder`.
"""
from __future__ import annotations

import hashlib
import logging
import threading

from agent.api.client import APIStatusError
from agent.api.events import event_object

log = logging.getLogger("nsplane.speaker")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"

SvcKey = tuple[str, str]


def node_ready(node: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in node.get("status", {}).get("conditions", []) or [])


def is_lb(svc: dict | None) -> bool:
    return bool(svc) and svc.get("spec", {}).get("type") == "LoadBalancer"


def eligible_nodes(nodes: list[dict]) -> list[str]:
    return sorted(n["metadata"]["name"] for n in nodes
                  if node_ready(n) and not n["metadata"].get("deletionTimestamp")
                  and EXCLUDE_LABEL not in (n["metadata"].get("labels") or {}))


def ready_endpoints_by_node(slices: list[dict]) -> dict[SvcKey, dict[str, set[str]]]:
    """{(ns, service): {node: {ready endpoint addresses on that node}}}."""
    out: dict[SvcKey, dict[str, set[str]]] = {}
    for sl in slices:
        md = sl["metadata"]
        svc = (md.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if not svc:
            continue
        per_node = out.setdefault((md.get("namespace", ""), svc), {})
        for ep in sl.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False or not ep.get("nodeName"):
                continue
            per_node.setdefault(ep["nodeName"], set()).update(ep.get("addresses") or [])
    return out


def elect(ip: str, candidates: list[str]) -> str | None:
    """The node that announces `ip`: the same answer on every node."""
    if not candidates:
        return None
    return min(candidates, key=lambda n: (hashlib.sha256(f"{n}#{ip}".encode()).digest(), n))


def assignments(services: list[dict], nodes: list[dict], slices: list[dict]) -> dict[str, tuple[str, dict]]:
    """{load-balancer ip: (announcing node, service)} for every address that has one."""
    ready = eligible_nodes(nodes)
    local = ready_endpoints_by_node(slices)
    out = {}
    for svc in sorted(services, key=lambda s: (s["metadata"].get("namespace", ""), s["metadata"]["name"])):
        spec = svc.get("spec", {})
        if spec.get("type") != "LoadBalancer":
            continue
        candidates = ready
        if spec.get("externalTrafficPolicy") == "Local":
            have = local.get((svc["metadata"].get("namespace", ""), svc["metadata"]["name"]), {})
            candidates = [n for n in ready if have.get(n)]
        for ing in (svc.get("status", {}).get("loadBalancer") or {}).get("ingress", []) or []:
            ip = ing.get("ip")
            winner = elect(ip, candidates) if ip else None
            if winner and ip not in out:
                out[ip] = (winner, svc)
    return out


class Speaker:
    """Keeps the node's ARP responder announcing exactly the addresses it won."""

    def __init__(self, client, node_name: str, services, nodes, slices, responder):
        self.client, self.node = client, node_name
        self.services, self.nodes, self.slices = services, nodes, slices
        self.responder = responder
        self._dirty = threading.Event()
        # Only changes that can move an announcement wake the loop: at 10,000
        # Services most Service and slice events concern no load balancer.
        services.add_handler(lambda old, new: self._dirty.set() if is_lb(old) or is_lb(new) else None)
        slices.add_handler(lambda old, new: self._dirty.set() if self._of_lb(old) or self._of_lb(new) else None)
        nodes.add_handler(lambda *_: self._dirty.set())

    def _of_lb(self, sl: dict | None) -> bool:
        svc = (sl["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) if sl else None
        return bool(svc) and is_lb(self.services.get(sl["metadata"].get("namespace", ""), svc))

    def run(self, stop: threading.Event) -> None:
        """Recompute after changes, coalescing bursts (an initial list is thousands of events)."""
        for inf in (self.services, self.nodes, self.slices):   # never announce from half a picture
            while not inf.synced.wait(0.5):
                if stop.is_set():
                    return
        while not stop.is_set():
            if self._dirty.wait(0.5):
                self._dirty.clear()
                try:
                    self.sync()
                except Exception:
                    log.exception("speaker sync failed")
                    self._dirty.set()
                stop.wait(0.02)

    def sync(self) -> None:
        won = {ip: svc for ip, (node, svc) in assignments(
            self.services.items(), self.nodes.items(), self.slices.items()).items() if node == self.node}
        added = self.responder.set_addresses(won)
        for ip in added:
            svc = won[ip]
            log.info("announcing %s for %s/%s", ip, svc["metadata"].get("namespace"), svc["metadata"]["name"])
            self._event(svc)

    def _event(self, svc: dict) -> None:
        ev = event_object(svc, "nodeAssigned", f'announcing from node "{self.node}" with protocol "layer2"',
                          component="nsplane-lb-speaker")
        try:
            self.client.create("events", ev, namespace=ev["metadata"]["namespace"])
        except (OSError, APIStatusError) as e:
            if getattr(e, "code", None) != 409:
                log.warning("event for %s: %s", svc["metadata"]["name"], e)
