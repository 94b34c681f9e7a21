"""The pod runtime of a node (the kubelet's job): for every pod bound to this
node, a sandbox (network namespace, veth, /32 from the node's pod CIDR,
pinned UTS and IPC namespaces, resolv.conf, hosts and hostname; see
sandbox.py), its containers as OCI containers (kuberuntime.py) from images
the image manager provides (images.py), probes, restarts per restartPolicy
with crash-loop back-off, status reported to the API (status.py), and
graceful deletion (SIGTERM, grace period, SIGKILL, then the sandbox).

Watch callbacks only enqueue pod keys; one loop hands changed pods to a few
pod workers (one sync at a time per pod, as the kubelet's pod workers) and,
every tick, checks the containers and due probes of the others. Pulls run on
the image manager's thread, stops on their own threads, probes on a pool,
Events on a thread of their own. State per pod is kept in a
JSON file, and each container's exit status by its runtime monitor, so a
restarted agent adopts running pods and learns how the ones that ended
while it was away ended.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from agent.api.client import APIStatusError, Client, Informer
from agent.api.config import ClusterConfig
from agent.api.events import Recorder
from agent.node.kubelet import envvars, hooks
from agent.node.kubelet import images as imagemanager
from agent.node.kubelet.containers import Container, backoff
from agent.node.kubelet.hooks import ContainerLifecycle
from agent.node.kubelet.ipam import PodIPs
from agent.node.kubelet.kuberuntime import KubeRuntime
from agent.node.kubelet.pods import AsyncRecorder, PodRuntime, read_state
from agent.node.kubelet.prober import Prober
from agent.node.kubelet.status import image_name, pod_status
from agent.node.kubelet.volumes import VolumeManager, VolumeSetupError
from agent.node.runtime.errors import ContainerStartError, RuntimeLayerError
from agent.node.runtime.images import ImageStore
from agent.node.runtime.resources import node_resources

log = logging.getLogger("nsplane.kubelet")
CONFIG_RETRY = 10.0          # CreateContainerConfigError / CreateContainerError: try again after
PULL_ERROR_RETRY = 2.0       # ErrImagePull: the next sync shows ImagePullBackOff
PULL_BACKOFF_RETRY = 5.0     # ImagePullBackOff: look again (the image manager's back-off decides)
TICK = 0.25                 # how often every pod's containers and probes are looked at
POD_WORKERS = 3             # pods synced at once (their sandboxes and container starts)
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"   # the sandbox image, as the kubelet's default


def image_store(cfg: ClusterConfig) -> ImageStore:
    """The machine's image store: every node of the cluster on this machine shares it."""
    return ImageStore(os.path.join(cfg.dir, "images"))


class Kubelet:
    def __init__(self, client: Client, cfg: ClusterConfig, node_name: str, pod_cidr: str,
                 host_ip: str, services: Informer | None = None):
        self.client, self.cfg, self.node, self.host_ip = client, cfg, node_name, host_ip
        self.ips = PodIPs(pod_cidr, node_name)
        node_dir = os.path.join(cfg.dir, "nodes", node_name)
        self.state_dir = os.path.join(node_dir, "pods")
        self.services = services
        self.pods: dict[str, PodRuntime] = {}      # uid -> runtime
        self.informer = Informer(client, "pods", field_selector=f"spec.nodeName={node_name}")
        self.informer.add_handler(self._on_pod)
        self._dirty: dict[str, tuple[str, str]] = {}     # uid -> (namespace, name)
        self._wake = threading.Condition()
        self._probe_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="probe")
        self._workers = ThreadPoolExecutor(max_workers=POD_WORKERS, thread_name_prefix="pod-worker")
        self._early = ThreadPoolExecutor(max_workers=POD_WORKERS, thread_name_prefix="pod-volumes")
        self._busy: set[str] = set()             # uids a pod worker is syncing
        self._again: set[str] = set()            # ...and that changed meanwhile
        self._busy_lock = threading.Lock()
        self.recorder = AsyncRecorder(Recorder(client, "kubelet", node_name))
        self.runtime = KubeRuntime(cfg, node_dir)
        self.allocatable = node_resources(os.cpu_count() or 1, self.runtime.node.memory_capacity)[1]
        self.volumes = VolumeManager(client, lambda pod: self._mark(pod["metadata"]["uid"], (
            pod["metadata"]["namespace"], pod["metadata"]["name"])), self.allocatable,
            os.path.join(node_dir, "claims"))
        mark = lambda rt: self._mark(rt.uid, rt.key)
        self.lifecycle = ContainerLifecycle(self.runtime, self._event, mark)
        self.prober = Prober(lambda cid, argv, timeout: self.runtime.runtime.exec_sync(cid, argv, timeout=timeout),
                             self._probe_pool, self.lifecycle, self._event, mark, lambda rt: rt.save())
        self.images = imagemanager.ImageManager(
            image_store(cfg), self._event, lambda pod: self._mark(pod["metadata"]["uid"], (
                pod["metadata"]["namespace"], pod["metadata"]["name"])),
            insecure_registries=cfg.insecure_registries, secret=self._secret)

    def _secret(self, namespace: str, name: str) -> dict | None:
        """A Secret of the API (for imagePullSecrets), None if it cannot be read."""
        try:
            return self.client.get("secrets", name, namespace)
        except (APIStatusError, OSError) as e:
            log.info("secret %s/%s: %s", namespace, name, e)
            return None

    # ---- events -----------------------------------------------------
    def _on_pod(self, old, new) -> None:
        md = (new or old)["metadata"]
        self._mark(md["uid"], (md["namespace"], md["name"]))

    def _mark(self, uid: str, key: tuple[str, str]) -> None:
        with self._wake:
            self._dirty[uid] = key
            self._wake.notify()

    def run(self, stop: threading.Event) -> None:
        self.informer.start(stop)
        self.informer.synced.wait(30)
        self.volumes.start(stop)
        self._adopt_leftovers()
        self.runtime.runtime.prestart()
        last_tick = 0.0
        while not stop.is_set():
            with self._wake:
                if not self._dirty:
                    self._wake.wait(TICK)
                dirty, self._dirty = self._dirty, {}
            for uid, key in dirty.items():
                self._dispatch(uid, key)
            if time.monotonic() - last_tick < TICK:
                continue        # a burst of changes does not re-check every pod each time
            last_tick = time.monotonic()
            for rt in list(self.pods.values()):
                if rt.uid not in dirty and rt.uid not in self._busy:
                    self._tick(rt)
        self._workers.shutdown(wait=False)
        self._early.shutdown(wait=False)
        self._probe_pool.shutdown(wait=False)
        self.images.close()
        self.runtime.close()

    def _dispatch(self, uid: str, key: tuple[str, str]) -> None:
        """Sync a changed pod on a pod worker: one at a time per pod (a pod that
        changes meanwhile is synced once more), several pods at once."""
        with self._busy_lock:
            if uid in self._busy:
                self._again.add(uid)
                return
            self._busy.add(uid)
        self._workers.submit(self._work, uid, key)

    def _work(self, uid: str, key: tuple[str, str]) -> None:
        while True:
            try:
                self._sync_uid(uid, key)
            except Exception:       # never leave a pod marked busy: it would not be synced again
                log.exception("pod %s/%s: sync failed", *key)
            with self._busy_lock:
                if uid not in self._again:
                    self._busy.discard(uid)
                    return
                self._again.discard(uid)

    def _sync_uid(self, uid: str, key: tuple[str, str]) -> None:
        pod = self.informer.get(*key)
        if pod is not None and pod["metadata"]["uid"] != uid:
            pod = None   # a new pod of the same name: this uid is gone
        rt = self.pods.get(uid)
        try:
            if pod is None:
                if rt:
                    self._kill_async(rt, 0, forced=True)
                return
            if rt is None:
                rt = self.pods[uid] = PodRuntime(pod, self.cfg, self.state_dir)
                self._start_pod(rt)
            rt.pod = rt.sandbox.pod = pod
            self._tick(rt)
        except Exception:
            log.exception("pod %s/%s: sync failed", *(rt.key if rt else ("?", uid)))

    # ---- pod lifecycle ----------------------------------------------
    def _start_pod(self, rt: PodRuntime) -> None:
        adopted = rt.load()
        if rt.pod["metadata"].get("deletionTimestamp"):
            return
        t0 = time.monotonic()
        if rt.volumes_early is None:    # its volumes are made meanwhile (two API calls for a token volume)
            rt.volumes_early = self._early.submit(self._volumes_early, rt)
        rt.ip = self.ips.assign(rt.uid, rt.ip or rt.pod.get("status", {}).get("podIP"),
                                lambda: [(r.uid, r.ip) for r in list(self.pods.values())])
        try:
            remade = rt.sandbox.ensure(rt.ip, self.ips.gateway, adopted, label=f"{rt.key[0]}/{rt.key[1]}")
            rt.sandbox.write_files(rt.ip, self.cfg.dns_ip, self.cfg.cluster_domain)
            rt.error = ""
        except Exception as e:
            rt.error = str(e)
            log.error("pod %s/%s: sandbox failed: %s", *rt.key, e)
            self._event(rt.pod, "FailedCreatePodSandBox", f"Failed to create pod sandbox: {e}", "Warning")
            return
        if adopted and remade:     # containers joined a network that is gone: start them again
            for c in rt.containers.values():
                if c.cid and c.exit_code is None:
                    self.runtime.remove(c.cid)
        specs = {s["name"]: s for s in rt.pod["spec"].get("containers", [])}
        for c in rt.containers.values():
            c.running = False
            if adopted and c.cid and c.exit_code is None and c.name in specs:
                self._refresh(rt, c)
                if c.running:
                    self.prober.arm(rt, c, specs[c.name], adopted=True)
        rt.save()
        log.info("pod %s/%s: sandbox %s ip %s ready in %.0f ms%s", *rt.key, rt.sandbox.netns, rt.ip,
                 (time.monotonic() - t0) * 1000, " (adopted)" if adopted else "")

    def _tick(self, rt: PodRuntime) -> None:
        if rt.deleting_since:
            return
        pod = rt.pod
        if pod["metadata"].get("deletionTimestamp"):
            self._kill_async(rt, pod["metadata"].get("deletionGracePeriodSeconds", 30))
            return
        if rt.error:
            self._start_pod(rt)
        if not rt.error:
            self._containers(rt)
            self._run_probes(rt)
        self._report(rt)

    # ---- containers -------------------------------------------------
    def _refresh(self, rt: PodRuntime, c: Container) -> bool:
        """Learn from the runtime whether the current instance still runs; an
        instance that ended is recorded and its OCI container removed."""
        if not c.cid or c.exit_code is not None:
            return False
        st = self.runtime.status(c.cid)
        if st is not None and st.state in ("running", "created"):
            c.running = True
            return False
        if st is None:
            c.finished(255, "Unknown", "the container is gone (its runtime has no record of it)")
        else:
            c.finished(st.exit_code if st.exit_code is not None else 255, st.reason or "Unknown",
                       st.message, st.finished_at)
        for key in [k for k in rt.probes if k[0] == c.name]:
            del rt.probes[key]
        self.runtime.remove(c.cid)
        log.info("pod %s/%s: container %s exited %s (%s)", *rt.key, c.name, c.exit_code, c.reason)
        return True

    def _containers(self, rt: PodRuntime) -> None:
        policy = rt.pod["spec"].get("restartPolicy", "Always")
        now = time.time()
        changed = False
        if not self._pause(rt) or not self._volumes(rt):
            return
        hooked = False      # a postStart hook runs: the pod's next containers wait for it
        for spec in rt.pod["spec"].get("containers", []):
            c = rt.container(spec)
            changed |= self._refresh(rt, c)
            if c.running and c.image and c.image != image_name(spec.get("image", "")):
                self._definition_changed(rt, c, spec)
            hooked |= c.running and c.post_start
            if c.running or c.backoff_until == float("inf") or (c.retry_at and now < c.retry_at) or hooked:
                continue
            if c.exit_code is not None and not c.backoff_until:
                changed = True
                if policy == "Never" or (policy == "OnFailure" and c.exit_code == 0):
                    c.backoff_until = float("inf")
                    continue
                c.backoff_until = c.finished_at + backoff(c.restarts)
                if c.restarts:
                    self._event(rt.pod, "BackOff", f"Back-off restarting failed container {c.name} in pod "
                                f"{rt.label}", "Warning")
            if c.exit_code is None or now >= c.backoff_until:
                changed |= self._start_container(rt, c, spec)
        if changed:
            rt.save()

    def _volumes_early(self, rt: PodRuntime) -> None:
        """The pod's volumes made while its sandbox is; a failure is left for
        `_volumes` to report (the manager keeps it for its retry period)."""
        try:
            self.volumes.setup(rt.pod, rt.dir, lambda: rt.pod)
        except Exception as e:   # noqa: BLE001 - reported by the sync's own set-up
            log.debug("pod %s/%s: early volume set-up: %s", *rt.key, e)

    def _volumes(self, rt: PodRuntime) -> bool:
        """Every volume of the pod made before any container starts (the
        kubelet's WaitForAttachAndMount); FailedMount while one cannot be."""
        if rt.volumes_early is not None:
            rt.volumes_early.result()
        try:
            self.volumes.setup(rt.pod, rt.dir, lambda: rt.pod)
            rt.volume_error = ""
            return True
        except VolumeSetupError as e:
            if str(e) != rt.volume_error:
                self._event(rt.pod, "FailedMount", str(e), "Warning")
            rt.volume_error = str(e)
            return False

    def _definition_changed(self, rt: PodRuntime, c: Container, spec: dict) -> None:
        """The pod's image of a running container changed (`kubectl set image` on
        a pod): the kubelet stops that instance (preStop first); the next one
        runs the new image."""
        if not self.lifecycle.stopping(c.cid):
            self.lifecycle.kill_async(rt, c, spec, message=f"Container {c.name} definition changed, "
                                      "will be restarted")

    def _pause(self, rt: PodRuntime) -> bool:
        """With shareProcessNamespace, the pod's PID 1; False while it cannot run."""
        if not rt.sandbox.shares_pid:
            return True
        st = self.runtime.status(rt.pause_cid) if rt.pause_cid else None
        if st is not None and st.state == "running":
            rt.sandbox.pause_pid = st.pid
            return True
        if rt.pause_cid:
            self.runtime.remove(rt.pause_cid)
        rt.sandbox.pause_pid = 0
        spec = {"name": "POD", "image": PAUSE_IMAGE,          # the pause stand-in (workloads/pause.py)
                "securityContext": {"runAsUser": 65535, "runAsGroup": 65535}}
        image = imagemanager.Image(image=PAUSE_IMAGE, name=PAUSE_IMAGE, standin=True)
        try:
            started = self.runtime.start(rt.sandbox, spec, image, [], os.path.join(rt.dir, "pause.log"))
        except RuntimeLayerError as e:
            rt.error = f"pause container: {e}"
            return False
        rt.pause_cid, rt.sandbox.pause_pid = started.cid, started.pid
        rt.save()
        return True

    def _start_container(self, rt: PodRuntime, c: Container, spec: dict) -> bool:
        """Try to run the next instance of `c`; True if anything changed."""
        try:
            image = self.images.ensure(rt.pod, spec)
        except RuntimeLayerError as e:
            retry = {"ErrImagePull": PULL_ERROR_RETRY, "ImagePullBackOff": PULL_BACKOFF_RETRY}.get(
                e.reason, CONFIG_RETRY)
            return c.waiting(e.reason, e.message, retry)
        if image is None:
            return c.waiting("ContainerCreating", "")
        t0 = time.monotonic()
        c.restarting()
        os.makedirs(c.log_dir, exist_ok=True)
        stdin = self._stdin(rt, c) if spec.get("stdin") else ""
        cid = self.runtime.new_id()
        try:
            env = self._environment(rt, spec)    # CreateContainerConfigError: a missing ConfigMap...
            mounts = self.volumes.mounts(rt.pod, rt.dir, spec, dict(env))
            started = self.runtime.start(rt.sandbox, spec, image, env, c.log_path, stdin=stdin, cid=cid,
                                         volumes=mounts)
        except ContainerStartError as e:
            c.close_stdin()
            self._event(rt.pod, "Created", f"Created container {c.name}")
            self._event(rt.pod, "Failed", f"Error: {e}", "Warning")
            c.started(cid, image.name, image.image_id, image.standin)
            c.finished(128, "StartError", str(e))
            return True
        except RuntimeLayerError as e:
            c.close_stdin()
            self._event(rt.pod, "Failed", f"Error: {e}", "Warning")
            return c.waiting(e.reason, str(e), CONFIG_RETRY) or True
        c.started(started.cid, image.name, image.image_id, image.standin)
        self._event(rt.pod, "Created", f"Created container {c.name}")
        self._event(rt.pod, "Started", f"Started container {c.name}")
        if not self.lifecycle.post_start(rt, c, spec, then=lambda: self.prober.arm(rt, c, spec)):
            self.prober.arm(rt, c, spec)
        log.info("pod %s/%s: container %s started in %.0f ms (%s, pid %d, restarts %d%s)", *rt.key, c.name,
                 (time.monotonic() - t0) * 1000, c.cid, started.pid, c.restarts,
                 ", stand-in" if image.standin else "")
        return True

    def _environment(self, rt: PodRuntime, spec: dict) -> list[tuple[str, str]]:
        """The container's env (envvars.py), its ConfigMaps and Secrets read from the API."""
        ctx = envvars.PodContext(pod_ips=[rt.ip], host_ips=[self.host_ip], allocatable=self.allocatable,
                                 services=self.services.items() if self.services else [])
        env, warnings = envvars.make_environment(rt.pod, spec, ctx, *envvars.api_getters(self.client, rt.key[0]))
        for message in warnings:
            self._event(rt.pod, "InvalidEnvironmentVariableNames", message, "Warning")
        return [("HOSTNAME", rt.sandbox.hostname)] + env

    def _stdin(self, rt: PodRuntime, c: Container) -> str:
        """A FIFO for a `stdin: true` container: the kubelet holds its write end
        (attach writes there; stdinOnce closes it), the container reads it."""
        path = os.path.join(rt.dir, f"{c.name}.stdin")
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.mkfifo(path, 0o600)
        c.close_stdin()
        c.stdin_fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        return path

    # ---- probes -------------------------------------------------------
    def _run_probes(self, rt: PodRuntime) -> None:
        self.prober.run(rt)

    # ---- deletion -------------------------------------------------------
    def _kill_async(self, rt: PodRuntime, grace: float, forced: bool = False) -> None:
        """Stop a pod off the sync loop, so one slow grace period blocks no one.
        A graceful deletion runs each container's preStop hook inside the
        pod's deletionGracePeriodSeconds; a pod gone from the API (`forced`)
        is stopped with exactly `grace` and no hook."""
        if rt.deleting_since:
            return
        rt.deleting_since = time.time()
        threading.Thread(target=self._kill_pod, args=(rt, grace, forced), name=f"kill-{rt.key[1]}",
                         daemon=True).start()

    def _stop_containers(self, rt: PodRuntime, grace: float, forced: bool = True) -> None:
        def stop(c: Container) -> None:
            if c.cid and c.exit_code is None:
                self.lifecycle.kill(rt, c, hooks.container_spec(rt.pod, c.name),
                                    message="" if c.running and rt.deleting_since else None,
                                    override=int(grace) if forced else None)
            if c.cid:
                self.runtime.remove(c.cid)
            c.close_stdin()
        threads = [threading.Thread(target=stop, args=(c,)) for c in rt.containers.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if rt.pause_cid:
            self.runtime.remove(rt.pause_cid)

    def _kill_pod(self, rt: PodRuntime, grace: float, forced: bool = True) -> None:
        if rt.volumes_early is not None:
            rt.volumes_early.result()       # made before they are torn down
        self._stop_containers(rt, float(grace), forced)
        try:
            rt.sandbox.teardown()
        except Exception as e:
            log.error("pod %s/%s: teardown failed: %s", *rt.key, e)
        self.pods.pop(rt.uid, None)
        self.images.forget(rt.uid)
        self.volumes.teardown(rt.uid, rt.dir)
        shutil.rmtree(rt.dir, ignore_errors=True)
        try:
            self.client.delete("pods", rt.key[1], rt.key[0], grace=0, uid=rt.uid)
        except APIStatusError as e:
            if e.code not in (404, 409):
                log.warning("pod %s/%s: final delete failed: %s", *rt.key, e)
        log.info("pod %s/%s: stopped and removed", *rt.key)

    def _adopt_leftovers(self) -> None:
        """Pods in our state dir that the API no longer has: stop them. Then
        every container of this node that no pod claims: remove it."""
        known = {p["metadata"]["uid"] for p in self.informer.items()}
        keep: set[str] = set()
        for d in os.listdir(self.state_dir) if os.path.isdir(self.state_dir) else []:
            ns, _, rest = d.partition("_")
            name, _, uid = rest.rpartition("_")
            if uid in known:
                st = read_state(os.path.join(self.state_dir, d, "state.json")) or {}
                keep |= {c.get("cid") for c in st.get("containers", []) if c.get("cid")}
                keep.add(st.get("pause") or "")
                continue
            fake = {"metadata": {"uid": uid, "namespace": ns, "name": name}, "spec": {"containers": []}}
            rt = PodRuntime(fake, self.cfg, self.state_dir)
            rt.load()
            log.info("pod %s/%s is gone from the API; cleaning up", ns, name)
            self._kill_pod(rt, 0)
        gone = self.runtime.sweep(keep)
        if gone:
            log.info("removed %d container(s) no pod claims", len(gone))

    # ---- status -----------------------------------------------------
    def _report(self, rt: PodRuntime) -> None:
        status = self.status(rt)
        if status == rt.last_status:
            return
        pod = dict(rt.pod)
        pod["status"] = status
        pod["metadata"] = {k: v for k, v in rt.pod["metadata"].items() if k != "resourceVersion"}
        try:
            self.client.update("pods", pod, subresource="status")
            rt.last_status = status
        except APIStatusError as e:
            if e.code != 404:
                log.warning("pod %s/%s: status update failed: %s", *rt.key, e)

    def status(self, rt: PodRuntime) -> dict:
        return pod_status(rt.pod, rt.containers, host_ip=self.host_ip, pod_ip=rt.ip,
                          started_at=rt.started_at, sandbox_error=rt.error)

    def _event(self, pod: dict, reason: str, message: str, etype: str = "Normal") -> None:
        self.recorder.event(pod, reason, message, etype)   # agent/api/events.py: deduplicated like client-go
