"""What the kubelet keeps of one pod on its node (`PodRuntime`): its sandbox,
IP, containers (agent/node/kubelet/containers.py), probes and deletion, saved
to <node>/pods/<ns>_<name>_<uid>/state.json so a restarted agent adopts the
pod; and `AsyncRecorder`, which writes the kubelet's Events off its loops.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time

from agent.api.config import ClusterConfig
from agent.api.events import Recorder
from agent.node.kubelet.containers import Container
from agent.node.kubelet.probes import ProbeState
from agent.node.kubelet.sandbox import PodSandbox

log = logging.getLogger("nsplane.kubelet")


class PodRuntime:
    """What the kubelet knows of one pod on this node."""

    def __init__(self, pod: dict, cfg: ClusterConfig, state_dir: str):
        md = pod["metadata"]
        self.pod = pod
        self.uid = md["uid"]
        self.key = (md["namespace"], md["name"])
        self.sandbox = PodSandbox(pod, cfg.name, cfg.rundir)
        self.dir = os.path.join(state_dir, f"{md['namespace']}_{md['name']}_{self.uid}")
        self.ip: str | None = None
        self.containers: dict[str, Container] = {}
        self.pause_cid = ""
        self.probes: dict[tuple[str, str], ProbeState] = {}
        self.started_at = time.time()
        self.error = ""            # sandbox failure message
        self.volume_error = ""     # the last FailedMount message
        self.volumes_early = None   # a Future: the volumes being made while the sandbox is
        self.deleting_since = 0.0
        self.last_status: dict | None = None

    @property
    def state_file(self) -> str:
        return os.path.join(self.dir, "state.json")

    @property
    def label(self) -> str:
        return f"{self.key[1]}_{self.key[0]}({self.uid})"

    def save(self) -> None:
        os.makedirs(self.dir, exist_ok=True)
        tmp = f"{self.state_file}.{threading.get_ident()}.tmp"     # probe threads save too
        with open(tmp, "w") as f:
            json.dump({"uid": self.uid, "ip": self.ip, "netns": self.sandbox.netns,
                       "started_at": self.started_at, "pause": self.pause_cid,
                       "containers": [c.to_state() for c in self.containers.values()]}, f)
        os.replace(tmp, self.state_file)

    def load(self) -> bool:
        st = read_state(self.state_file)
        if st is None:
            return False
        self.ip, self.started_at = st.get("ip"), st.get("started_at", self.started_at)
        self.pause_cid = st.get("pause", "")
        self.containers = {c["name"]: Container.from_state(c) for c in st.get("containers", [])}
        return True

    def container(self, spec: dict) -> Container:
        c = self.containers.get(spec["name"])
        if c is None:
            c = self.containers[spec["name"]] = Container(spec["name"], os.path.join(self.dir, spec["name"]))
        return c


def read_state(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class AsyncRecorder:
    """Events written by a thread of their own, in order, as client-go's
    broadcaster does: a pod's start never waits for its Events to be stored."""

    def __init__(self, recorder: Recorder):
        self.recorder = recorder
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._drain, name="events", daemon=True).start()

    def event(self, obj: dict, reason: str, message: str, etype: str = "Normal") -> None:
        self._queue.put((obj, reason, message, etype))

    def _drain(self) -> None:
        while True:
            obj, reason, message, etype = self._queue.get()
            try:
                self.recorder.event(obj, reason, message, etype)
            except Exception as e:    # an event is never worth the kubelet
                log.debug("event %s not recorded: %s", reason, e)
