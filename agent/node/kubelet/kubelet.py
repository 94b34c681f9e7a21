"""The pod runtime of a node (the kubelet's job): for every pod bound to this
node, a sandbox (network namespace, veth, /32 from the node's pod CIDR, UTS
namespace with hostname = pod name, resolv.conf and hosts), its containers as
processes, probes, restarts per restartPolicy, status reported to the API,
and graceful deletion (SIGTERM, grace period, SIGKILL, then the sandbox).

Watch callbacks only enqueue pod keys; one loop syncs pods and, every tick,
checks processes and due probes. State per pod is kept in a JSON file so a
restarted agent adopts running pods instead of recreating them.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from agent.api.client import APIStatusError, Client, Informer
from agent.api.config import ClusterConfig
from agent.api.events import Recorder
from agent.api.objects import now_iso
from agent.node import workloads
from agent.node.kubelet import podfiles
from agent.node.kubelet.containers import Container, backoff
from agent.node.kubelet.probes import ProbeState, run_probe
from dataplane import names, netns, podnet, uts

log = logging.getLogger("nsplane.kubelet")
BASE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class PodRuntime:
    """What the kubelet knows of one pod on this node."""

    def __init__(self, pod: dict, cfg: ClusterConfig, state_dir: str):
        md = pod["metadata"]
        self.pod = pod
        self.uid = md["uid"]
        self.key = (md["namespace"], md["name"])
        self.netns = names.pod_netns(cfg.name, md["namespace"], md["name"])
        self.host_if = names.pod_ifname(cfg.name, md["namespace"], md["name"])
        self.uts = uts.uts_path(os.path.join(cfg.rundir, "uts"), self.netns)
        self.dir = os.path.join(state_dir, f"{md['namespace']}_{md['name']}_{self.uid}")
        self.ip: str | None = None
        self.containers: dict[str, Container] = {}
        self.probes: dict[tuple[str, str], ProbeState] = {}
        self.started_at = time.time()
        self.error = ""            # sandbox failure message
        self.deleting_since = 0.0
        self.last_status: dict | None = None

    @property
    def state_file(self) -> str:
        return os.path.join(self.dir, "state.json")

    def save(self) -> None:
        os.makedirs(self.dir, exist_ok=True)
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"uid": self.uid, "ip": self.ip, "netns": self.netns, "started_at": self.started_at,
                       "containers": [c.to_state() for c in self.containers.values()]}, f)
        os.replace(tmp, self.state_file)

    def load(self) -> bool:
        try:
            with open(self.state_file) as f:
                st = json.load(f)
        except (OSError, ValueError):
            return False
        self.ip, self.started_at = st.get("ip"), st.get("started_at", self.started_at)
        self.containers = {c["name"]: Container.from_state(c) for c in st.get("containers", [])}
        return True


class Kubelet:
    def __init__(self, client: Client, cfg: ClusterConfig, node_name: str, pod_cidr: str,
                 host_ip: str, services: Informer | None = None):
        self.client, self.cfg, self.node, self.host_ip = client, cfg, node_name, host_ip
        self.net = ipaddress.ip_network(pod_cidr)
        self.gateway = str(self.net.network_address + 1)
        self.state_dir = os.path.join(cfg.dir, "nodes", node_name, "pods")
        self.services = services
        self.pods: dict[str, PodRuntime] = {}      # uid -> runtime
        self.informer = Informer(client, "pods", field_selector=f"spec.nodeName={node_name}")
        self.informer.add_handler(self._on_pod)
        self._dirty: dict[str, tuple[str, str]] = {}     # uid -> (namespace, name)
        self._wake = threading.Condition()
        self._probe_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="probe")
        self._last_ip = 1
        self.recorder = Recorder(client, "kubelet", node_name)

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
        self._adopt_leftovers()
        while not stop.is_set():
            with self._wake:
                if not self._dirty:
                    self._wake.wait(0.25)
                dirty, self._dirty = self._dirty, {}
            for uid, key in dirty.items():
                self._sync_uid(uid, key)
            for rt in list(self.pods.values()):
                if rt.uid not in dirty:
                    self._tick(rt)
        self._probe_pool.shutdown(wait=False)

    def _sync_uid(self, uid: str, key: tuple[str, str]) -> None:
        pod = self.informer.get(*key)
        if pod is not None and pod["metadata"]["uid"] != uid:
            pod = None   # a new pod of the same name: this uid is gone
        rt = self.pods.get(uid)
        try:
            if pod is None:
                if rt:
                    self._kill_async(rt, 0)
                return
            if rt is None:
                rt = self.pods[uid] = PodRuntime(pod, self.cfg, self.state_dir)
                self._start_pod(rt)
            rt.pod = pod
            self._tick(rt)
        except Exception:
            log.exception("pod %s/%s: sync failed", *(rt.key if rt else ("?", uid)))

    # ---- pod lifecycle ----------------------------------------------
    def _start_pod(self, rt: PodRuntime) -> None:
        adopted = rt.load()
        if rt.pod["metadata"].get("deletionTimestamp"):
            return
        t0 = time.monotonic()
        rt.ip = rt.ip or rt.pod.get("status", {}).get("podIP") or None
        if rt.ip and ipaddress.ip_address(rt.ip) not in self.net:
            rt.ip = None
        if not rt.ip or self._ip_in_use(rt.ip, rt.uid):
            rt.ip = self._allocate_ip(rt.uid)
        try:
            # The UTS file first: it is what marks the netns as this cluster's for `nsplane down`.
            uts.ensure(rt.uts, rt.pod["metadata"]["name"][:63])
            if not (adopted and podnet.healthy(rt.netns, rt.host_if, rt.ip, self.gateway)):
                podnet.setup_pod(rt.netns, rt.host_if, rt.ip, self.gateway,
                                 label=f"{rt.key[0]}/{rt.key[1]}")
            self._write_files(rt)
            rt.error = ""
        except Exception as e:
            rt.error = str(e)
            log.error("pod %s/%s: sandbox failed: %s", *rt.key, e)
            self._event(rt.pod, "FailedCreatePodSandBox", f"Failed to create pod sandbox: {e}", "Warning")
            return
        for spec in rt.pod["spec"].get("containers", []):
            c = rt.containers.get(spec["name"])
            if adopted and c is not None and c.running():
                self._arm(rt, c, spec)
        rt.save()
        log.info("pod %s/%s: sandbox %s ip %s ready in %.0f ms%s", *rt.key, rt.netns, rt.ip,
                 (time.monotonic() - t0) * 1000, " (adopted)" if adopted else "")

    def _write_files(self, rt: PodRuntime) -> None:
        etc = os.path.join(netns.ETC_NETNS_DIR, rt.netns)
        os.makedirs(etc, exist_ok=True)
        try:
            with open("/etc/resolv.conf") as f:
                host_resolv = f.read()
        except OSError:
            host_resolv = ""
        files = {"resolv.conf": podfiles.resolv_conf(rt.pod, self.cfg.dns_ip, self.cfg.cluster_domain, host_resolv),
                 "hosts": podfiles.hosts_file(rt.pod, rt.ip, self.cfg.cluster_domain),
                 "hostname": rt.pod["metadata"]["name"][:63] + "\n"}
        for name, text in files.items():
            with open(os.path.join(etc, name), "w") as f:
                f.write(text)

    def _ip_in_use(self, ip: str, uid: str) -> bool:
        return any(r.ip == ip and r.uid != uid for r in self.pods.values())

    def _allocate_ip(self, uid: str) -> str:
        """Round-robin over the pod CIDR from .2, like host-local IPAM."""
        used = {r.ip for r in self.pods.values() if r.uid != uid}
        size = self.net.num_addresses
        for step in range(1, size - 2):
            n = (self._last_ip - 2 + step) % (size - 3) + 2
            ip = str(self.net.network_address + n)
            if ip not in used:
                self._last_ip = n
                return ip
        raise RuntimeError(f"node {self.node}: no pod IP left in {self.net}")

    def _tick(self, rt: PodRuntime) -> None:
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

    def _containers(self, rt: PodRuntime) -> None:
        policy = rt.pod["spec"].get("restartPolicy", "Always")
        changed = False
        for spec in rt.pod["spec"].get("containers", []):
            c = rt.containers.get(spec["name"])
            if c is None:
                c = rt.containers[spec["name"]] = Container(spec["name"], os.path.join(rt.dir, spec["name"] + ".log"))
                changed |= self._start_container(rt, c, spec)
                continue
            if c.running() or c.reason in ("ImageNotFound", "CreateContainerError"):
                continue
            if c.exit_code is not None and c.finished_at and not c.backoff_until:
                changed = True
                done = policy == "Never" or (policy == "OnFailure" and c.exit_code == 0)
                if done:
                    c.backoff_until = float("inf")
                    continue
                c.backoff_until = c.finished_at + backoff(c.restarts)
                if c.restarts:
                    self._event(rt.pod, "BackOff", f"Back-off restarting failed container {c.name} in pod "
                                f"{rt.key[1]}_{rt.key[0]}({rt.uid})", "Warning")
            if time.time() >= c.backoff_until:
                c.restarts += 1
                changed |= self._start_container(rt, c, spec)
        if changed:
            rt.save()

    def _start_container(self, rt: PodRuntime, c: Container, spec: dict) -> bool:
        try:
            argv = workloads.resolve(spec)
        except workloads.UnknownImage as e:
            if c.reason != "ImageNotFound":
                self._event(rt.pod, "Failed", str(e), "Warning")
            c.reason, c.message = "ImageNotFound", str(e)
            return True
        services = [s for s in (self.services.items() if self.services else [])
                    if s["metadata"]["namespace"] == rt.key[0]]
        kube = self.services.get("default", "kubernetes") if self.services else None
        env = podfiles.container_env(rt.pod, spec, services, kube, rt.ip,
                                     {**BASE_ENV, "HOSTNAME": rt.pod["metadata"]["name"][:63]})
        try:
            c.start(netns.exec_argv(rt.netns, argv, rt.uts), env, stdin=bool(spec.get("stdin")))
        except OSError as e:
            c.reason, c.message = "CreateContainerError", f"failed to start {argv[0]}: {e}"
            self._event(rt.pod, "Failed", c.message, "Warning")
            return True
        c.backoff_until = 0.0
        self._arm(rt, c, spec)
        self._event(rt.pod, "Pulled", f'Container image "{spec.get("image", "")}" already present on machine')
        self._event(rt.pod, "Created", f"Created container {c.name}")
        self._event(rt.pod, "Started", f"Started container {c.name}")
        log.info("pod %s/%s: container %s started (pid %d, restarts %d)", *rt.key, c.name, c.pid, c.restarts)
        return True

    def _arm(self, rt: PodRuntime, c: Container, spec: dict) -> None:
        """Readiness starts false under a readiness probe, true without one;
        probes start after initialDelaySeconds."""
        c.ready = "readinessProbe" not in spec
        for kind in ("readinessProbe", "livenessProbe"):
            if kind in spec:
                st = rt.probes[(c.name, kind)] = ProbeState(spec[kind], initial=kind == "livenessProbe")
                st.next_at = time.time() + float(spec[kind].get("initialDelaySeconds", 0))

    def _run_probes(self, rt: PodRuntime) -> None:
        now = time.time()
        specs = {s["name"]: s for s in rt.pod["spec"].get("containers", [])}
        for (cname, kind), st in rt.probes.items():
            c = rt.containers.get(cname)
            if c is None or not c.pid or st.in_flight or now < st.next_at:
                continue
            st.in_flight = True
            st.next_at = now + float(st.probe.get("periodSeconds", 10))
            exec_argv = lambda argv, rt=rt: netns.exec_argv(rt.netns, argv, rt.uts)  # noqa: E731
            fut = self._probe_pool.submit(run_probe, st.probe, rt.ip, specs.get(cname, {}), exec_argv)
            fut.add_done_callback(lambda f, rt=rt, c=c, kind=kind, st=st: self._probe_done(rt, c, kind, st, f))

    def _probe_done(self, rt, c: Container, kind: str, st: ProbeState, fut) -> None:
        st.in_flight = False
        try:
            ok, msg = fut.result()
        except Exception as e:   # a probe bug is a failed probe, not a dead kubelet
            ok, msg = False, str(e)
        if not ok and st.failures == 0:
            self._event(rt.pod, "Unhealthy", f"{'Readiness' if kind == 'readinessProbe' else 'Liveness'} "
                        f"probe failed: {msg}", "Warning")
        if st.record(ok, msg):
            if kind == "readinessProbe":
                c.ready = st.result
            elif not st.result:
                self._event(rt.pod, "Killing", f"Container {c.name} failed liveness probe, will be restarted")
                c.stop(float(rt.pod["spec"].get("terminationGracePeriodSeconds", 30)))
        self._mark(rt.uid, rt.key)

    def _kill_async(self, rt: PodRuntime, grace: float) -> None:
        """Stop a pod off the sync loop, so one slow grace period blocks no one."""
        if rt.deleting_since:
            return
        rt.deleting_since = time.time()
        for c in rt.containers.values():
            if c.running():
                self._event(rt.pod, "Killing", f"Stopping container {c.name}")
        threading.Thread(target=self._kill_pod, args=(rt, grace), name=f"kill-{rt.key[1]}", daemon=True).start()

    def _kill_pod(self, rt: PodRuntime, grace: float) -> None:
        threads = [threading.Thread(target=c.stop, args=(float(grace),)) for c in rt.containers.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        try:
            podnet.teardown_pod(rt.netns, rt.host_if)
            uts.remove(rt.uts)
        except Exception as e:
            log.error("pod %s/%s: teardown failed: %s", *rt.key, e)
        self.pods.pop(rt.uid, None)
        try:
            os.remove(rt.state_file)
        except OSError:
            pass
        try:
            self.client.delete("pods", rt.key[1], rt.key[0], grace=0, uid=rt.uid)
        except APIStatusError as e:
            if e.code not in (404, 409):
                log.warning("pod %s/%s: final delete failed: %s", *rt.key, e)
        log.info("pod %s/%s: stopped and removed", *rt.key)

    def _adopt_leftovers(self) -> None:
        """Pods in our state dir that the API no longer has: stop them."""
        if not os.path.isdir(self.state_dir):
            return
        known = {p["metadata"]["uid"] for p in self.informer.items()}
        for d in os.listdir(self.state_dir):
            ns, _, rest = d.partition("_")
            name, _, uid = rest.rpartition("_")
            if uid in known:
                continue
            fake = {"metadata": {"uid": uid, "namespace": ns, "name": name}, "spec": {"containers": []}}
            rt = PodRuntime(fake, self.cfg, self.state_dir)
            rt.load()
            log.info("pod %s/%s is gone from the API; cleaning up", ns, name)
            self._kill_pod(rt, 0)
            shutil.rmtree(rt.dir, ignore_errors=True)

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
        prev = rt.pod.get("status", {})
        specs = rt.pod["spec"].get("containers", [])
        statuses, all_ready, running, done_ok, done_bad = [], bool(specs), 0, 0, 0
        policy = rt.pod["spec"].get("restartPolicy", "Always")
        for spec in specs:
            c = rt.containers.get(spec["name"])
            cs = {"name": spec["name"], "image": spec.get("image", ""), "imageID": "",
                  "restartCount": c.restarts if c else 0, "ready": False, "started": False,
                  "containerID": f"nsplane://{rt.uid[:8]}-{spec['name']}"}
            if c and c.running():
                cs["state"] = {"running": {"startedAt": iso(c.started_at)}}
                cs["ready"], cs["started"] = c.ready, True
                running += 1
            elif c and c.reason in ("ImageNotFound", "CreateContainerError"):
                cs["state"] = {"waiting": {"reason": c.reason, "message": c.message}}
            elif c and c.exit_code is not None:
                term = {"exitCode": c.exit_code, "reason": c.reason, "startedAt": iso(c.started_at),
                        "finishedAt": iso(c.finished_at)}
                if c.backoff_until and c.backoff_until != float("inf") and time.time() < c.backoff_until:
                    cs["state"] = {"waiting": {"reason": "CrashLoopBackOff",
                                               "message": f"back-off {int(backoff(c.restarts))}s restarting failed "
                                                          f"container={c.name} pod={rt.key[1]}_{rt.key[0]}({rt.uid})"}}
                    cs["lastState"] = {"terminated": term}
                else:
                    cs["state"] = {"terminated": term}
                    done_ok += c.exit_code == 0
                    done_bad += c.exit_code != 0
            else:
                cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
            all_ready &= cs["ready"]
            statuses.append(cs)
        if rt.error:
            phase = "Pending"
        elif specs and done_ok + done_bad == len(specs) and policy != "Always":
            phase = "Succeeded" if done_bad == 0 else "Failed"
        elif running or any("lastState" in s for s in statuses) or done_ok + done_bad:
            phase = "Running"
        else:
            phase = "Pending"
        conds = {c["type"]: c for c in prev.get("conditions", []) or []}

        def cond(ctype, ok):
            old = conds.get(ctype)
            s = "True" if ok else "False"
            if old and old.get("status") == s:
                return old
            return {"type": ctype, "status": s, "lastProbeTime": None, "lastTransitionTime": now_iso()}
        ready = all_ready and phase == "Running"
        status = {
            "phase": phase,
            "conditions": [cond("PodReadyToStartContainers", not rt.error), cond("Initialized", True),
                           cond("Ready", ready), cond("ContainersReady", ready), cond("PodScheduled", True)],
            "hostIP": self.host_ip, "hostIPs": [{"ip": self.host_ip}],
            "startTime": iso(rt.started_at), "containerStatuses": statuses, "qosClass": "BestEffort",
        }
        if rt.ip and not rt.error:
            status["podIP"], status["podIPs"] = rt.ip, [{"ip": rt.ip}]
        if rt.error:
            status["message"], status["reason"] = rt.error, "FailedCreatePodSandBox"
        return status

    def _event(self, pod: dict, reason: str, message: str, etype: str = "Normal") -> None:
        self.recorder.event(pod, reason, message, etype)   # agent/api/events.py: deduplicated like client-go
