"""The pod status the kubelet reports (agent/node/kubelet/status.py) from its
container records: states, lastState, CrashLoopBackOff, phase, qosClass."""
from agent.node.kubelet.containers import Container
from agent.node.kubelet.status import pod_status

CID = "nsplane-" + "0" * 64


def pod(*names, restart="Always", resources=None):
    return {"metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": {"restartPolicy": restart,
                     "containers": [{"name": n, "image": "nginx", **({"resources": resources} if resources else {})}
                                    for n in names]}}


def status(p, containers, now=1000.0):
    return pod_status(p, containers, host_ip="172.28.0.11", pod_ip="10.244.0.5", started_at=900.0, now=now)


def test_new_pod_is_pending_and_creating_with_the_normalised_image():
    st = status(pod("web"), {})
    cs = st["containerStatuses"][0]
    assert st["phase"] == "Pending" and st["qosClass"] == "BestEffort" and st["podIP"] == "10.244.0.5"
    assert cs["state"] == {"waiting": {"reason": "ContainerCreating"}} and cs["image"] == "docker.io/library/nginx:latest"
    assert "containerID" not in cs and cs["restartCount"] == 0


def test_running_and_ready():
    c = Container("web", "/tmp/x")
    c.started(CID, "docker.io/library/nginx:latest", "", True)
    c.ready = True
    st = status(pod("web"), {"web": c})
    cs = st["containerStatuses"][0]
    assert st["phase"] == "Running" and cs["ready"] and cs["started"]
    assert cs["containerID"] == f"nsplane://{CID}" and "running" in cs["state"]
    assert {x["type"]: x["status"] for x in st["conditions"]}["Ready"] == "True"


def test_crash_loop_back_off_shows_the_last_termination():
    c = Container("web", "/tmp/x", restarts=1)
    c.started(CID, "x", "", False)
    c.finished(3, "Error", finished_at=990.0)
    c.backoff_until = 1000.0 + 10
    cs = status(pod("web"), {"web": c}, now=1001.0)["containerStatuses"][0]
    assert cs["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message":
                                       "back-off 10s restarting failed container=web pod=p_default(u)"}}
    assert cs["lastState"]["terminated"]["exitCode"] == 3 and cs["restartCount"] == 1


def test_waiting_reason_keeps_the_previous_termination():
    c = Container("web", "/tmp/x")
    c.started(CID, "x", "", False)
    c.finished(137, "OOMKilled")
    c.restarting()
    c.waiting("ErrImagePull", "manifest unknown")
    cs = status(pod("web"), {"web": c})["containerStatuses"][0]
    assert cs["state"] == {"waiting": {"reason": "ErrImagePull", "message": "manifest unknown"}}
    assert cs["lastState"]["terminated"]["reason"] == "OOMKilled" and cs["restartCount"] == 1


def test_phase_of_finished_pods_and_guaranteed_qos():
    ok, bad = Container("a", "/tmp/a"), Container("b", "/tmp/b")
    for c, code in ((ok, 0), (bad, 1)):
        c.started(CID, "x", "", False)
        c.finished(code, "Completed" if code == 0 else "Error")
    limits = {"limits": {"cpu": "100m", "memory": "64Mi"}}
    assert status(pod("a", restart="Never", resources=limits), {"a": ok})["phase"] == "Succeeded"
    st = status(pod("a", "b", restart="Never", resources=limits), {"a": ok, "b": bad})
    assert st["phase"] == "Failed" and st["qosClass"] == "Guaranteed"
    assert st["containerStatuses"][1]["state"]["terminated"]["exitCode"] == 1


def test_state_survives_a_save_and_load():
    c = Container("web", "/tmp/x", restarts=2)
    c.started(CID, "x", "id", True)
    c.finished(0, "Completed")
    c.backoff_until = float("inf")
    again = Container.from_state(c.to_state())
    assert again.to_state() == c.to_state() and again.backoff_until == float("inf")
    assert again.log_path == "/tmp/x/2.log" and again.previous_log_path() == "/tmp/x/1.log"
