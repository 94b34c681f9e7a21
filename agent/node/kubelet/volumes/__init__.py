"""Pod volumes on a node (the kubelet's volumemanager and volume plugins):
manager.py makes, updates and removes them and turns volumeMounts into a
container's bind mounts; payload.py computes what API-data volumes hold;
atomicwriter.py writes it as the kubelet does; hostpath.py checks hostPath
types; ownership.py applies fsGroup."""
from agent.node.kubelet.volumes.manager import VolumeManager
from agent.node.kubelet.volumes.payload import VolumeSetupError

__all__ = ["VolumeManager", "VolumeSetupError"]
