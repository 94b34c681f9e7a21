"""A pod's status as the kubelet reports it, from what it knows of the pod's
containers (agent/node/kubelet/containers.py): phase, conditions, podIP,
qosClass, and per container its state (waiting / running / terminated),
lastState, restartCount, readiness, image, imageID and containerID.

Pure functions: the kubelet calls `pod_status` each tick and writes the
result only when it changed.
"""
from __future__ import annotations

import time

from agent.api.objects import now_iso
from agent.node.kubelet.containers import Container, backoff, iso
from agent.node.runtime import reference
from agent.node.runtime.resources import qos_class


def image_name(image: str) -> str:
    """The normalised name the runtime reports (docker.io/library/nginx:latest)."""
    try:
        return reference.parse(image).name
    except Exception:          # noqa: BLE001 - an unparsable name is reported as given
        return image


def container_status(spec: dict, c: Container | None, pod_label: str, now: float) -> dict:
    """One entry of status.containerStatuses."""
    cs = {"name": spec["name"], "image": (c.image if c and c.image else image_name(spec.get("image", ""))),
          "imageID": c.image_id if c else "", "restartCount": c.restarts if c else 0,
          "ready": False, "started": False}
    if c and c.container_id:
        cs["containerID"] = c.container_id
    if c is None or (c.running and c.post_start):   # a postStart hook runs: not running yet for the API
        cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
    elif c.running:
        cs["state"] = {"running": {"startedAt": iso(c.started_at)}}
        cs["ready"], cs["started"] = c.ready and c.startup_ok, c.startup_ok
    elif c.exit_code is not None:
        term = c.termination()
        if c.backoff_until and c.backoff_until != float("inf") and now < c.backoff_until:
            cs["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message":
                                       f"back-off {int(backoff(c.restarts))}s restarting failed "
                                       f"container={c.name} pod={pod_label}"}}
            cs["lastState"] = {"terminated": term}
        else:
            cs["state"] = {"terminated": term}
    elif c.waiting_reason:
        cs["state"] = {"waiting": {"reason": c.waiting_reason, **(
            {"message": c.waiting_message} if c.waiting_message else {})}}
    else:
        cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
    if c and c.last and "lastState" not in cs:
        cs["lastState"] = {"terminated": c.last}
    return cs


def phase_of(specs: list[dict], statuses: list[dict], policy: str, sandbox_error: str) -> str:
    if sandbox_error or not specs:
        return "Pending"
    terminated = [s["state"]["terminated"] for s in statuses if "terminated" in s["state"]]
    if len(terminated) == len(specs) and policy != "Always":
        return "Succeeded" if all(t["exitCode"] == 0 for t in terminated) else "Failed"
    if any("running" in s["state"] or "lastState" in s or "terminated" in s["state"] for s in statuses):
        return "Running"
    return "Pending"


def pod_status(pod: dict, containers: dict[str, Container], *, host_ip: str, pod_ip: str | None,
               started_at: float, sandbox_error: str = "", now: float | None = None) -> dict:
    """status for `pod` (its previous status's conditions keep their transition times)."""
    now = time.time() if now is None else now
    md = pod["metadata"]
    label = f"{md['name']}_{md['namespace']}({md['uid']})"
    specs = pod["spec"].get("containers", [])
    statuses = [container_status(s, containers.get(s["name"]), label, now) for s in specs]
    phase = phase_of(specs, statuses, pod["spec"].get("restartPolicy", "Always"), sandbox_error)
    prev = {c["type"]: c for c in (pod.get("status") or {}).get("conditions", []) or []}

    def cond(ctype: str, ok: bool) -> dict:
        old = prev.get(ctype)
        s = "True" if ok else "False"
        if old and old.get("status") == s:
            return old
        return {"type": ctype, "status": s, "lastProbeTime": None, "lastTransitionTime": now_iso()}
    ready = bool(specs) and all(s["ready"] for s in statuses) and phase == "Running"
    status = {
        "phase": phase,
        "conditions": [cond("PodReadyToStartContainers", not sandbox_error), cond("Initialized", True),
                       cond("Ready", ready), cond("ContainersReady", ready), cond("PodScheduled", True)],
        "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
        "startTime": iso(started_at), "containerStatuses": statuses, "qosClass": qos_class(pod),
    }
    if pod_ip and not sandbox_error:
        status["podIP"], status["podIPs"] = pod_ip, [{"ip": pod_ip}]
    if sandbox_error:
        status["message"], status["reason"] = sandbox_error, "FailedCreatePodSandBox"
    return status
