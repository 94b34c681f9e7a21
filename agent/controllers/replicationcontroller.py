"""The ReplicationController controller (kube-controller-manager's
replication manager): the ReplicaSet controller's logic
(agent/controllers/replicaset.py) for core/v1 ReplicationControllers,
whose selector is a plain label map. Its Events come from
`replication-controller`, as kube's do."""
from __future__ import annotations

from agent.api import selectors
from agent.controllers.replicaset import ReplicaManager


class ReplicationManager(ReplicaManager):
    name = "replication-controller"
    resource = "replicationcontrollers"
    component = "replication-controller"

    def selector(self, owner: dict) -> selectors.Selector:
        return selectors.from_map(owner["spec"].get("selector"))
