"""Pods as real OCI containers on a single-node cluster: an image built
offline (umoci + busybox-static, tests/oci_image.py) is `nsplane image
load`ed and served by a Deployment behind a Service; the same image is
pulled from a local registry (Debian's docker-registry in the cluster's host
namespace, listed as insecure) with imagePullPolicy Always; missing, Never
and malformed images give the kubelet's reasons; inside the containers a pod
sees only itself (containerd's capabilities, its own PIDs, no network admin,
none of the cluster's files); securityContext and memory limits hold
(OOMKilled 137); crash loops, start errors and `logs --previous` read as on
a node; the stand-ins say in their Events that they are stand-ins. One
cluster (no DNS) serves the module."""
import base64
import json
import re
import time

import pytest
import yaml

from agent.cli import clusterops
from tests.integration.cluster import ThrowawayCluster
from tests.integration.manifests import CURL, documents, service
from tests.oci_image import build_layout, local_registry, push, save_docker_archive

pytestmark = pytest.mark.integration

IMAGE = "nsplane-test/web:1"
STORED = "docker.io/nsplane-test/web:1"


def _yaml(obj: dict) -> str:
    return yaml.safe_dump(obj, sort_keys=False)


def web(replicas: int = 2) -> str:
    return _yaml({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                     "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "httpd", "image": IMAGE,
                                     "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
                                     "ports": [{"containerPort": 8080}],
                                     "readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                                                        "periodSeconds": 1}}]}}}})


def bare_pod(name: str, image: str = IMAGE, command=None, restart: str = "Never", **extra) -> str:
    container = {"name": name, "image": image, **extra.pop("container", {})}
    if command:
        container["command"] = command
    return _yaml({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 1,
                                "containers": [container], **extra}})


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """(OCI layout, docker-archive) of the test image, built once."""
    work = tmp_path_factory.mktemp("image")
    layout = build_layout(str(work), "web")
    return layout, save_docker_archive(layout, "web", str(work / "web.tar"), IMAGE)


@pytest.fixture(scope="module")
def c(tmp_path_factory, image):
    tc = ThrowawayCluster(str(tmp_path_factory.mktemp("cluster")), dns=False)
    tc.cfg.insecure_registries = [tc.cfg.underlay_cidr]        # the test registry speaks plain HTTP
    with tc:
        with local_registry(tmp_path_factory.mktemp("registry"), host=tc.cfg.host_ip,
                            netns=tc.cfg.host_netns) as registry:
            push(image[0], "web", f"{registry}/nsplane/web:2", netns=tc.cfg.host_netns)
            tc.registry = registry
            tc.nsplane("run", "tmp", f"--image={CURL}", "--", "sleep", "3600")
            yield tc


def status(c, pod: str) -> dict:
    return c.get("pod", pod)["status"]


def state(c, pod: str) -> dict:
    statuses = status(c, pod).get("containerStatuses") or [{}]
    return statuses[0]


def waiting(c, pod: str, reason: str, timeout: float = 30) -> dict:
    return c.wait(lambda: (w := state(c, pod).get("state", {}).get("waiting", {})).get("reason") == reason and w,
                  timeout, f"{pod} waiting {reason}")


def finished(c, pod: str, timeout: float = 30) -> dict:
    return c.wait(lambda: state(c, pod).get("state", {}).get("terminated"), timeout, f"{pod} terminated")


def events(c, pod: str) -> list[tuple[str, str, str]]:
    evs = c.get("events", "--field-selector", f"involvedObject.name={pod}")["items"]
    return [(e["type"], e["reason"], e["message"]) for e in evs]


# ---- images: load, list, run behind a Service ---------------------------------------

def test_image_load_and_ls(c, image):
    out = c.nsplane("image", "load", image[1], "--node", "node-1").stdout
    assert re.fullmatch(rf'Image: "{STORED}" with ID "sha256:[0-9a-f]{{64}}" loaded for node-1\n', out), out
    rows = c.nsplane("image", "ls").stdout.splitlines()
    assert rows[0].split() == ["NAME", "DIGEST", "SIZE"]
    row = next(r.split() for r in rows[1:] if r.startswith(STORED))
    assert re.fullmatch(r"[0-9a-f]{12}", row[1]) and re.fullmatch(r"\d[\d.]*[kM]B", row[2]), row
    bad = c.nsplane("image", "load", "--node", "node-9", image[1], check=False)
    assert bad.returncode == 1 and 'node "node-9" is not on this machine' in bad.stderr


def test_deployment_from_the_loaded_image_behind_a_service(c):
    c.apply(documents(web(), service("web", selector={"app": "web"}, ports=[{"port": 80, "targetPort": 8080}])))
    pods = c.wait_ready("app=web", 2, timeout=60)
    ip = c.get("svc", "web")["spec"]["clusterIP"]
    r = c.wait(lambda: (r := c.exec("tmp", "curl", "-sS", "--max-time", "3", f"http://{ip}/")).returncode == 0 and r,
               15, "the Service answering")
    assert r.stdout == "hello from nsplane\n"
    cs = pods[0]["status"]["containerStatuses"][0]
    digest = c.nsplane("image", "ls").stdout.split(STORED, 1)[1].split()[0]
    assert cs["image"] == STORED and re.fullmatch(rf"docker\.io/nsplane-test/web@sha256:{digest}[0-9a-f]{{52}}",
                                                  cs["imageID"]), cs
    assert re.fullmatch(r"nsplane://nsplane-[0-9a-f]{64}", cs["containerID"]) and cs["started"]
    assert pods[0]["status"]["qosClass"] == "BestEffort"
    assert ("Normal", "Pulled", f'Container image "{IMAGE}" already present on machine') in \
        events(c, pods[0]["metadata"]["name"])


def test_a_pod_sees_only_itself(c):
    """Inside a container of the image: root with containerd's 14 capabilities,
    its own PIDs, no network administration, no host files, no signal to
    another pod's process."""
    pod = c.ready_pods("app=web")[0]["metadata"]["name"]
    host_pid = _host_pid(c, c.get("pod", "tmp"))     # tmp's process, as the machine numbers it
    r = c.exec(pod, "sh", "-c", "id; grep CapEff /proc/self/status; ps -o pid,comm; "
               f"ip link add x type dummy; echo ip=$?; ls /var/lib/nsplane; ls {c.cfg.dir}; "
               f"kill -0 {host_pid}; echo kill=$?")
    out = r.stdout.splitlines()
    assert out[0] == "uid=0(root) gid=0(root) groups=0(root),10(wheel)"
    assert out[1] == "CapEff:\t00000000a80425fb"
    assert [line.split() for line in out[2:6]] == [["PID", "COMMAND"], ["1", "httpd"], [out[4].split()[0], "sh"],
                                                   [out[5].split()[0], "ps"]]
    assert out[6:] == ["ip=2", "kill=1"]
    assert "RTNETLINK answers: Operation not permitted" in r.stderr
    assert "ls: /var/lib/nsplane: No such file or directory" in r.stderr
    assert f"ls: {c.cfg.dir}: No such file or directory" in r.stderr
    assert "No such process" in r.stderr
    kubectl = c.kubectl("exec", pod, "--", "id").stdout           # real kubectl: API server -> kubelet port
    assert kubectl == "uid=0(root) gid=0(root) groups=0(root),10(wheel)\n"


def _host_pid(c, pod: dict) -> int:
    cid = pod["status"]["containerStatuses"][0]["containerID"].partition("://")[2]
    with open(f"{c.cfg.dir}/nodes/node-1/runtime/containers/{cid}/monitor.json") as f:
        pid = json.load(f)["containerPid"]
    assert pid in [p for p, _ in clusterops.container_pids(c.cfg)]
    return pid


def test_a_standin_sees_neither_the_cluster_nor_the_machines_secrets(c):
    r = c.exec("tmp", "sh", "-c", "ps -eo pid,comm; iptables-legacy -L; echo iptables=$?; "
               f"ls {c.cfg.dir} /root/.kube /var/lib/nsplane /run/netns 2>&1; ls -A /etc/ssh 2>/dev/null | wc -l; "
               "wc -c < /etc/shadow; hostname")
    lines = r.stdout.splitlines()
    assert [x.split()[1] for x in lines[1:3]] == ["sleep", "sh"] and lines[0].split() == ["PID", "COMMAND"]
    assert "iptables=" in r.stdout and "iptables=0" not in r.stdout, r.stdout + r.stderr
    assert r.stdout.count("No such file or directory") == 4, r.stdout
    assert lines[-3:] == ["0", "0", "tmp"]
    tmp = state(c, "tmp")
    assert tmp["imageID"] == "" and tmp["image"] == "docker.io/curlimages/curl:latest"
    assert ("Normal", "Pulled", f'Container image "{CURL}" is not on this machine and cannot be pulled; '
            "running nsplane's built-in stand-in for it") in events(c, "tmp")


# ---- securityContext and resources --------------------------------------------------

def test_run_as_user_and_read_only_root(c):
    c.apply(documents(
        bare_pod("as-app", command=["sh", "-c", "id"], securityContext={"runAsUser": 1000}),
        bare_pod("ro-root", command=["sh", "-c", "touch /x /tmp/y; echo rc=$?"],
                 container={"securityContext": {"readOnlyRootFilesystem": True}})))
    assert finished(c, "as-app")["exitCode"] == 0
    assert c.nsplane("logs", "as-app").stdout == "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)\n"
    assert finished(c, "ro-root")["exitCode"] == 0
    assert c.nsplane("logs", "ro-root").stdout == ("touch: /x: Read-only file system\n"
                                                   "touch: /tmp/y: Read-only file system\nrc=1\n")
    assert status(c, "as-app")["phase"] == "Succeeded"


def test_run_as_non_root_is_a_config_error(c):
    c.apply(bare_pod("nonroot", command=["true"], container={"securityContext": {"runAsNonRoot": True}}))
    uid = c.get("pod", "nonroot")["metadata"]["uid"]
    w = waiting(c, "nonroot", "CreateContainerConfigError")
    message = f'container has runAsNonRoot and image will run as root (pod: "nonroot_default({uid})", ' \
              "container: nonroot)"
    assert w["message"] == message
    assert c.wait(lambda: ("Warning", "Failed", f"Error: {message}") in events(c, "nonroot"), 10, "event")


def test_image_entrypoint_and_a_create_container_error(c):
    c.apply(documents(bare_pod("entry"),             # no command: the image's ENTRYPOINT + CMD
                      bare_pod("badcap", command=["true"],
                               container={"securityContext": {"capabilities": {"add": ["NOT_A_CAP"]}}})))
    assert finished(c, "entry")["exitCode"] == 0
    assert c.nsplane("logs", "entry").stdout == "hello from the image\n"
    w = waiting(c, "badcap", "CreateContainerError")
    assert w["message"].startswith('unknown capability "CAP_NOT_A_CAP"'), w


@pytest.mark.slow
def test_memory_limit_is_oom_killed(c):
    c.apply(bare_pod("hog", command=["sh", "-c", "x=aaaaaaaa; while :; do x=$x$x; done"],
                     container={"resources": {"limits": {"memory": "32Mi"}}}))
    term = finished(c, "hog", timeout=60)
    assert (term["exitCode"], term["reason"]) == (137, "OOMKilled")
    st = status(c, "hog")
    assert st["phase"] == "Failed" and st["qosClass"] == "Burstable"


def test_crash_loop_start_error_and_previous_logs(c):
    c.apply(documents(bare_pod("crash", command=["sh", "-c", "echo run; exit 3"], restart="Always"),
                      bare_pod("missing-binary", command=["/no/such/program"])))
    waiting(c, "crash", "CrashLoopBackOff")
    cs = state(c, "crash")
    uid = c.get("pod", "crash")["metadata"]["uid"]
    restarts = cs["restartCount"]      # 1, unless this machine is slow enough to see a later round
    assert restarts >= 1 and cs["lastState"]["terminated"]["exitCode"] == 3
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    assert cs["state"]["waiting"]["message"] == (f"back-off {10 * 2 ** (restarts - 1)}s restarting failed "
                                                 f"container=crash pod=crash_default({uid})")
    assert c.kubectl("logs", "crash", "--previous").stdout == "run\n"
    term = finished(c, "missing-binary")
    assert (term["exitCode"], term["reason"]) == (128, "StartError") and "/no/such/program" in term["message"]


def test_exec_probes_run_inside_the_container(c):
    """/tmp/ready and /tmp/dead exist only inside the container: the probes see
    them, so they run there; a failed liveness probe restarts the container."""
    c.apply(bare_pod("probed", command=["sh", "-c", "touch /tmp/ready; exec sleep 3600"], restart="Always",
                     container={"readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1},
                                "livenessProbe": {"exec": {"command": ["sh", "-c", "test ! -e /tmp/dead"]},
                                                  "periodSeconds": 1, "failureThreshold": 1}}))
    c.wait(lambda: state(c, "probed").get("ready"), 30, "probed Ready")
    assert c.exec("probed", "touch", "/tmp/dead").returncode == 0
    c.wait(lambda: state(c, "probed").get("restartCount") == 1 and state(c, "probed").get("ready"), 30,
           "restarted and Ready again")
    assert ("Normal", "Killing", "Container probed failed liveness probe, will be restarted") in events(c, "probed")
    assert state(c, "probed")["lastState"]["terminated"]["exitCode"] == 137   # sleep ignores SIGTERM as PID 1


def test_shared_process_namespace(c):
    c.apply(_yaml({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "shared"}, "spec": {
        "shareProcessNamespace": True, "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "a", "image": IMAGE, "command": ["sleep", "3600"]},
                       {"name": "b", "image": IMAGE, "command": ["sleep", "3601"]}]}}))
    c.wait(lambda: status(c, "shared").get("phase") == "Running" and all(
        s["ready"] for s in status(c, "shared")["containerStatuses"]), 30, "shared running")
    r = c.exec("shared", "ps", "-o", "pid,args")
    rows = [line.split(None, 1) for line in r.stdout.splitlines()[1:]]
    assert rows[0][0] == "1" and rows[0][1].endswith("-m agent.node.workloads pause"), r.stdout
    assert {"sleep 3600", "sleep 3601"} <= {args for _, args in rows}


def test_a_restarted_agent_adopts_containers_and_learns_how_others_ended(c):
    c.apply(bare_pod("later", command=["sh", "-c", "until [ -e /tmp/go ]; do sleep 0.1; done; exit 4"]))
    c.wait(lambda: "running" in state(c, "later").get("state", {}), 30, "later running")
    before = {p["metadata"]["name"]: p["status"]["containerStatuses"][0]["containerID"] for p in c.ready_pods("app=web")}
    assert clusterops.stop_role(c.cfg, "node-1")
    assert c.exec("later", "touch", "/tmp/go").returncode == 0   # `later` ends while no agent is there
    time.sleep(0.5)
    c.up()
    term = finished(c, "later")
    assert (term["exitCode"], term["reason"]) == (4, "Error")
    after = {p["metadata"]["name"]: p["status"]["containerStatuses"][0] for p in c.ready_pods("app=web")}
    assert {n: s["containerID"] for n, s in after.items()} == before
    assert all(s["restartCount"] == 0 for s in after.values())


# ---- pulling --------------------------------------------------------------------------

def test_pull_always_from_a_local_registry(c):
    ref = f"{c.registry}/nsplane/web:2"
    c.apply(bare_pod("pulled", image=ref, command=["sleep", "3600"], container={"imagePullPolicy": "Always"}))
    c.wait(lambda: "running" in state(c, "pulled").get("state", {}), 30, "pulled running")
    evs = events(c, "pulled")
    assert ("Normal", "Pulling", f'Pulling image "{ref}"') in evs
    pulled = [m for t, r, m in evs if r == "Pulled"]
    assert re.fullmatch(rf'Successfully pulled image "{re.escape(ref)}" in ([\d.]+m?s) \(\1 including waiting\)\. '
                        r"Image size: \d+ bytes\.", pulled[0]), pulled
    assert state(c, "pulled")["imageID"].startswith(f"{c.registry}/nsplane/web@sha256:")
    assert ref in c.nsplane("image", "ls").stdout


def test_missing_image_backs_off(c):
    ref = f"{c.registry}/nsplane/missing:1"
    c.apply(bare_pod("missing", image=ref, container={"imagePullPolicy": "Always"}))
    w = waiting(c, "missing", "ImagePullBackOff")       # after a few seconds of ErrImagePull
    assert w["message"] == f'Back-off pulling image "{ref}"'
    evs = events(c, "missing")
    assert ("Warning", "Failed", "Error: ErrImagePull") in evs and ("Warning", "Failed", "Error: ImagePullBackOff") in evs
    assert ("Normal", "BackOff", f'Back-off pulling image "{ref}"') in evs
    failed = [m for _, r, m in evs if r == "Failed" and m.startswith(f'Failed to pull image "{ref}": ')]
    assert failed and ("manifest unknown" in failed[0] or "not found" in failed[0]), failed


def test_pull_secrets_for_a_private_registry(c, image, tmp_path_factory):
    work = tmp_path_factory.mktemp("private-registry")
    with local_registry(work, users={"alice": "s3cret"}, host=c.cfg.host_ip, netns=c.cfg.host_netns) as registry:
        ref = f"{registry}/private/web:1"
        push(image[0], "web", ref, creds="alice:s3cret", netns=c.cfg.host_netns)
        config = {"auths": {registry: {"auth": base64.b64encode(b"alice:s3cret").decode()}}}
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "regcred"},
                  "type": "kubernetes.io/dockerconfigjson",
                  "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()}}
        always = {"imagePullPolicy": "Always"}
        c.apply(documents(_yaml(secret),
                          bare_pod("private", image=ref, command=["sleep", "3600"], container=always,
                                   imagePullSecrets=[{"name": "regcred"}, {"name": "absent"}]),
                          bare_pod("anonymous", image=ref, command=["sleep", "3600"], container=always)))
        c.wait(lambda: "running" in state(c, "private").get("state", {}), 30, "private running")
        assert ("Warning", "FailedToRetrieveImagePullSecret", "Unable to retrieve some image pull secrets "
                "(absent); attempting to pull the image may not succeed.") in events(c, "private")
        waiting(c, "anonymous", "ImagePullBackOff")
        failed = [m for _, r, m in events(c, "anonymous") if r == "Failed" and m.startswith("Failed to pull")]
        assert "unauthorized" in failed[0] and "check the registry credentials" in failed[0], failed
        c.nsplane("delete", "pod", "private", "anonymous", "--now")


def test_never_pull_and_invalid_names(c):
    c.apply(documents(bare_pod("never", image="nsplane-test/absent:1", container={"imagePullPolicy": "Never"}),
                      bare_pod("invalid", image="nsplane-test/Web:1")))
    w = waiting(c, "never", "ErrImageNeverPull")
    assert w["message"] == 'Container image "nsplane-test/absent:1" is not present with pull policy of Never'
    w = waiting(c, "invalid", "InvalidImageName")
    assert w["message"].startswith('Failed to apply default image tag "nsplane-test/Web:1": couldn\'t parse image '
                                   'name "nsplane-test/Web:1": invalid reference format')
    assert ("Warning", "InspectFailed", w["message"]) in events(c, "invalid")


def test_image_in_use_is_not_removed(c):
    r = c.nsplane("image", "rm", IMAGE, check=False)
    assert r.returncode == 1 and "is used by a running container" in r.stderr
    c.nsplane("delete", "deploy", "web")
    c.nsplane("delete", "pod", "as-app", "ro-root", "nonroot", "crash", "missing-binary", "shared", "hog",
              "later", "probed", "entry", "badcap", "--now", check=False)
    c.wait(lambda: not c.get("pods", "-l", "app=web")["items"], 30, "web pods gone")
    r = c.wait(lambda: (r := c.nsplane("image", "rm", IMAGE, check=False)).returncode == 0 and r, 30, "rm")
    assert r.stdout == f"Deleted: {STORED}\n"
    assert STORED not in c.nsplane("image", "ls").stdout
