"""The scheduler's VolumeBinding predicates (kube-scheduler's volumebinding
plugin) for claims that are node-local directories, as a local-path
provisioner makes them with volumeBindingMode WaitForFirstConsumer.

A claim is bound to a node by the first pod scheduled with it: the scheduler
writes the node's name into the claim's `volume.kubernetes.io/selected-node`
annotation (as kube-scheduler does before the provisioner makes a volume with
that node affinity; no PersistentVolume objects exist here). From then on
pods using the claim fit only that node; the others report kube's "node(s)
had volume node affinity conflict". A missing claim, or one being deleted,
leaves the pod unschedulable on every node (the PreFilter messages).

Pure: claims and nodes in, verdicts out.
"""
from __future__ import annotations

SELECTED_NODE = "volume.kubernetes.io/selected-node"
NODE_CONFLICT = "node(s) had volume node affinity conflict"


def claim_names(pod: dict) -> list[str]:
    """The claims the pod's persistentVolumeClaim volumes name, in order, once each."""
    names = [((v or {}).get("persistentVolumeClaim") or {}).get("claimName")
             for v in (pod.get("spec") or {}).get("volumes") or []]
    return list(dict.fromkeys(n for n in names if n))


def prefilter(pod: dict, claims: dict[str, dict]) -> tuple[list[dict], str]:
    """(the pod's claims, "") or ([], why no node can take it): podHasPVCs.
    `claims` maps a name to the claim in the pod's namespace."""
    found = []
    for name in claim_names(pod):
        pvc = claims.get(name)
        if pvc is None:
            return [], f'persistentvolumeclaim "{name}" not found'
        if (pvc.get("metadata") or {}).get("deletionTimestamp"):
            return [], f'persistentvolumeclaim "{name}" is being deleted'
        found.append(pvc)
    return found, ""


def selected_node(pvc: dict) -> str:
    """The node the claim is bound to, "" while no pod has used it."""
    return ((pvc.get("metadata") or {}).get("annotations") or {}).get(SELECTED_NODE, "")


def fits(claims: list[dict], node_name: str) -> bool:
    """Filter: every claim is unbound or bound to `node_name`."""
    return all(selected_node(c) in ("", node_name) for c in claims)


def to_bind(claims: list[dict]) -> list[dict]:
    """The claims the pod's scheduling binds (those not yet bound to a node)."""
    return [c for c in claims if not selected_node(c)]


def with_selected_node(pvc: dict, node_name: str) -> dict | None:
    """The claim annotated with `node_name`, or None when it is already so
    annotated; raises ValueError when another pod bound it elsewhere meanwhile."""
    current = selected_node(pvc)
    if current == node_name:
        return None
    if current:
        raise ValueError(f'persistentvolumeclaim "{pvc["metadata"]["name"]}" is bound to node "{current}"')
    md = pvc.setdefault("metadata", {})
    md["annotations"] = {**(md.get("annotations") or {}), SELECTED_NODE: node_name}
    return pvc
