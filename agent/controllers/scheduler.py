"""The scheduler: binds each pending pod to a Ready node that satisfies its
nodeSelector and required node affinity and whose taints (and cordon) it
tolerates (agent/api/nodeaffinity.py) and that its claims are bound to, or
can be (agent/controllers/volumebinding.py), preferring the node with the
fewest pods (spread), through the pods/binding subresource as kube-scheduler
does; the claims a pod is the first to use are bound to its node first."""
from __future__ import annotations

from agent.api.nodeaffinity import affinity_matches, untolerated_taint
from agent.api.kinds import BY_RESOURCE
from agent.apiserver.registry import APIError
from agent.controllers import volumebinding
from agent.controllers.base import Controller, ns_name, record_event

PVCS = BY_RESOURCE["persistentvolumeclaims"]


def node_ready(node: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in node.get("status", {}).get("conditions", []) or [])


def pick_node(pod: dict, nodes: list[dict], load: dict[str, int],
              claims: dict[str, dict] | None = None) -> tuple[str | None, str]:
    """Pure: the node for `pod`, or None and kube-scheduler-style reason.
    `claims`: the PersistentVolumeClaims of the pod's namespace by name."""
    spec = pod.get("spec", {})
    pod_claims, missing = volumebinding.prefilter(pod, claims or {})
    if missing:
        return None, f"0/{len(nodes)} nodes are available: {missing}."
    fits, reasons = [], {}
    for n in nodes:
        if not node_ready(n):
            reasons["node(s) were not ready"] = reasons.get("node(s) were not ready", 0) + 1
        elif taint := untolerated_taint(spec, n):
            r = "node(s) were unschedulable" if taint["key"] == "node.kubernetes.io/unschedulable" else \
                f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"
            reasons[r] = reasons.get(r, 0) + 1
        elif not affinity_matches(spec, n):
            r = "node(s) didn't match Pod's node affinity/selector"
            reasons[r] = reasons.get(r, 0) + 1
        elif not volumebinding.fits(pod_claims, n["metadata"]["name"]):
            r = volumebinding.NODE_CONFLICT
            reasons[r] = reasons.get(r, 0) + 1
        else:
            fits.append(n["metadata"]["name"])
    if fits:
        return min(fits, key=lambda name: (load.get(name, 0), name)), ""
    # FitError: "<count> <reason>" strings, sorted as strings
    why = ", ".join(sorted(f"{c} {r}" for r, c in reasons.items())) or "no nodes available to schedule pods"
    return None, f"0/{len(nodes)} nodes are available: {why}."


class Scheduler(Controller):
    name = "scheduler"
    watches = {
        "pods": lambda self, o: [ns_name(o)] if not o.get("spec", {}).get("nodeName") else [],
        "nodes": lambda self, o: [ns_name(p) for p in self.store.list("pods")[0]
                                  if not p.get("spec", {}).get("nodeName")],
        "persistentvolumeclaims": lambda self, o: [
            ns_name(p) for p in self.store.list("pods", o["metadata"].get("namespace", ""))[0]
            if not p.get("spec", {}).get("nodeName") and o["metadata"]["name"] in volumebinding.claim_names(p)],
    }

    def sync(self, key):
        ns, name = key
        pod = self.live("pods", ns, name)
        if pod is None or pod["spec"].get("nodeName"):
            return None
        nodes = self.store.list("nodes")[0]
        load: dict[str, int] = {}
        for p in self.store.list("pods")[0]:
            n = p.get("spec", {}).get("nodeName")
            if n:
                load[n] = load.get(n, 0) + 1
        claims = {c["metadata"]["name"]: c for c in self.store.list("persistentvolumeclaims", ns)[0]}
        node, why = pick_node(pod, nodes, load, claims)
        if node is None:
            record_event(self.registry, pod, "FailedScheduling", why, "Warning", "default-scheduler")
            return 1.0
        if not self._bind_claims(pod, claims, node):
            return 0.2
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": ns},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        try:
            self.registry.bind(ns, name, binding)
        except APIError as e:
            if e.code in (404, 409):   # gone, being deleted, or bound meanwhile: nothing left to do
                return None
            raise
        record_event(self.registry, pod, "Scheduled", f"Successfully assigned {ns}/{name} to {node}",
                      component="default-scheduler")
        return None

    def _bind_claims(self, pod: dict, claims: dict[str, dict], node: str) -> bool:
        """PreBind: record `node` on each claim the pod is the first to use
        (volume.kubernetes.io/selected-node); False to schedule the pod again
        when a claim went away or was bound elsewhere meanwhile."""
        ns = pod["metadata"]["namespace"]
        for name in volumebinding.claim_names(pod):
            if claims.get(name) is None or volumebinding.selected_node(claims[name]):
                continue
            try:
                self.registry.guaranteed_update(PVCS, ns, name, lambda c: volumebinding.with_selected_node(c, node))
            except (APIError, ValueError):
                return False
        return True
