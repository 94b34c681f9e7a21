"""The kubelet's volume manager for one node (pkg/kubelet/volumemanager and
the volume plugins): every volume of a pod made on the node before its
containers start, kept current while it runs, and removed with the pod.

Where volumes live: <pod dir>/volumes/kubernetes.io~<plugin>/<name>, as
/var/lib/kubelet/pods/<uid>/volumes/... does.

- emptyDir: a directory on the node's disk, or with `medium: Memory` a
  tmpfs sized by sizeLimit; shared by every container of the pod, kept
  across container restarts, gone with the pod. (A disk emptyDir over its
  sizeLimit is not evicted here.)
- configMap, secret, downwardAPI, projected: files written by the atomic
  writer (atomicwriter.py) from payload.py; secret and projected volumes on
  a tmpfs, as the kubelet keeps secrets off the disk. A background resync
  (every RESYNC seconds, and at once when a ConfigMap or Secret changes:
  one watch per object the pods use, objectwatch.py)
  rewrites them when their objects or the pod's labels/annotations change,
  and re-requests service account tokens at 80% of their lifetime or after
  24 h, as the kubelet's token manager does.
- hostPath: the node's path after its `type` checks (hostpath.py).
- persistentVolumeClaim: there is no storage provisioner; a claim is a
  directory of the node's own, <node dir>/claims/<namespace>/<claim>, made
  on first use (mode 0777, as k3s' local-path provisioner makes them) and
  kept when the pod goes, so a StatefulSet's pod finds its data again when
  it comes back on the same node. It is removed with the cluster.

`mounts(pod, container, env)` turns a container's volumeMounts into the
bind mounts of its OCI spec: subPath and subPathExpr resolved inside the
volume (symlinks followed, never out of it; a subPath mount is a fixed
file or directory and so does not follow updates), readOnly honoured, and
API-data volumes always read-only as the kubelet mounts them.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import threading
import time
from typing import Callable

from agent.api.client import APIStatusError, Client
from agent.api.kinds import BY_RESOURCE
from agent.node.kubelet.volumes import hostpath, payload
from agent.node.kubelet.volumes.ownership import fs_group, set_ownership
from agent.node.kubelet.volumes.atomicwriter import AtomicWriter, FileProjection, PayloadError
from agent.node.kubelet.volumes.objectwatch import ObjectWatches
from agent.node.kubelet.volumes.payload import VolumeSetupError
from agent.node.runtime import kernel
from agent.node.runtime.errors import ContainerConfigError
from agent.node.runtime.resources import value
from agent.node.runtime.spec import Mount

log = logging.getLogger("nsplane.kubelet.volumes")
RESYNC = 1.0                       # seconds between rewrites of API-data volumes
SETUP_RETRY = 2.0                  # a failed set-up is tried again after (or when its objects change)
TOKEN_REFRESH_FRACTION = 0.8       # the kubelet's token manager: refresh at 80% of the TTL
TOKEN_MAX_AGE = 24 * 3600          # ...or once a token is a day old
PLUGINS = {"emptyDir": "empty-dir", "configMap": "configmap", "secret": "secret",
           "downwardAPI": "downward-api", "projected": "projected", "hostPath": "host-path"}
API_DATA = ("configMap", "secret", "downwardAPI", "projected")
ON_TMPFS = ("secret", "projected")


def volume_kind(volume: dict) -> str:
    for kind in PLUGINS:
        if volume.get(kind) is not None:
            return kind
    return ""


def volume_dir(pod_dir: str, volume: dict) -> str:
    kind = volume_kind(volume)
    return os.path.join(pod_dir, "volumes", f"kubernetes.io~{PLUGINS.get(kind, 'unknown')}", volume["name"])


def _size(limit) -> str:
    try:
        return f"size={value(limit)}"
    except (ValueError, ArithmeticError):
        return ""


class _Pod:
    """A pod whose volumes are set up: how to read its latest object, where it lives."""

    def __init__(self, get_pod: Callable[[], dict], pod_dir: str):
        self.get_pod, self.dir = get_pod, pod_dir
        self.ready: set[str] = set()           # volume names set up
        self.failed: tuple[float, str] | None = None   # (when, message) of the last failed set-up


class VolumeManager:
    def __init__(self, client: Client, mark: Callable[[dict], None], allocatable: dict[str, str],
                 claims_dir: str):
        self.client, self.mark = client, mark
        self.claims_dir = claims_dir
        self.allocatable = allocatable      # the Node's, for resourceFieldRef without a limit
        self.objects = ObjectWatches(client, self._on_object)     # one watch per ConfigMap/Secret used
        self._pods: dict[str, _Pod] = {}        # uid -> pod
        self._tokens: dict[tuple, tuple[str, float, float]] = {}   # key -> (token, issued, expires)
        self._lock = threading.RLock()
        self._wake = threading.Event()

    def start(self, stop: threading.Event) -> None:
        self.objects.start(stop)
        threading.Thread(target=self._resync_loop, args=(stop,), name="volume-resync", daemon=True).start()

    # ---- objects ------------------------------------------------------------------
    def _lookup(self, namespace: str, direct: bool) -> payload.Lookup:
        """Objects from their watches; `direct`: ask the API when the watch
        has not got it (yet): a pod's first set-up right after its ConfigMap."""
        def lookup(kind: str, name: str) -> dict | None:
            obj, synced = self.objects.get(kind, namespace, name)
            if obj is None and (direct or not synced):
                try:      # the informer may not have seen a just-created object yet
                    obj = self.client.get(f"{kind}s", name, namespace)
                except APIStatusError as e:
                    if e.code != 404:
                        raise VolumeSetupError(f'{kind} "{name}": {e}') from None
                    obj = None
                except OSError as e:
                    raise VolumeSetupError(f'{kind} "{name}": {e}') from None
            return obj
        return lookup

    def _on_object(self, kind: str, old, new) -> None:
        md = (new or old)["metadata"]
        ref = (kind, md.get("name", ""))
        with self._lock:
            pods = [(p, p.get_pod()) for p in self._pods.values()]
        for entry, pod in pods:
            if pod["metadata"].get("namespace") != md.get("namespace"):
                continue
            if any(ref in payload.referenced_objects(v) for v in (pod.get("spec") or {}).get("volumes") or []):
                entry.failed = None
                self.mark(pod)
                self._wake.set()

    def _token(self, pod: dict, audience: str, seconds: int) -> str:
        md, spec = pod["metadata"], pod.get("spec") or {}
        key = (md["uid"], audience, seconds)
        now = time.time()
        cached = self._tokens.get(key)
        if cached:
            token, issued, expires = cached
            if now < issued + (expires - issued) * TOKEN_REFRESH_FRACTION and now < issued + TOKEN_MAX_AGE:
                return token
        sa = spec.get("serviceAccountName") or "default"
        body = {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "spec": {"audiences": [audience] if audience else [], "expirationSeconds": seconds,
                         "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": md["name"],
                                            "uid": md["uid"]}}}
        try:
            tr = self.client.request("POST", BY_RESOURCE["serviceaccounts"].path(md["namespace"], sa, "token"),
                                     body)
        except (APIStatusError, OSError) as e:
            if cached and now < cached[2]:
                log.warning("pod %s/%s: token refresh failed (%s); keeping the current one", md["namespace"],
                            md["name"], e)
                return cached[0]
            raise VolumeSetupError(f"failed to fetch token: {e}") from None
        token = tr["status"]["token"]
        self._tokens[key] = (token, now, now + int(tr["spec"].get("expirationSeconds") or seconds))
        return token

    # ---- set up ------------------------------------------------------------------------
    def setup(self, pod: dict, pod_dir: str, get_pod: Callable[[], dict] | None = None) -> None:
        """Make every volume of `pod`; raise VolumeSetupError with the kubelet's
        FailedMount message for the first that cannot be made (the others are kept)."""
        uid = pod["metadata"]["uid"]
        with self._lock:
            entry = self._pods.get(uid)
            if entry is None:
                entry = self._pods[uid] = _Pod(get_pod or (lambda: pod), pod_dir)
        if entry.failed and time.monotonic() < entry.failed[0] + SETUP_RETRY:
            raise VolumeSetupError(entry.failed[1])
        t0, made = time.monotonic(), []
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            if vol["name"] in entry.ready:
                continue
            made.append(vol["name"])
            try:
                self._setup_volume(pod, pod_dir, vol)
            except (VolumeSetupError, PayloadError, OSError) as e:
                msg = f'MountVolume.SetUp failed for volume "{vol["name"]}" : {e}'
                entry.failed = (time.monotonic(), msg)
                raise VolumeSetupError(msg) from None
            entry.ready.add(vol["name"])
        entry.failed = None
        if made:
            log.info("pod %s/%s: volumes %s set up in %.0f ms", pod["metadata"]["namespace"],
                     pod["metadata"]["name"], ", ".join(made), (time.monotonic() - t0) * 1000)

    def _claim_dir(self, pod: dict, vol: dict) -> str:
        claim = vol["persistentVolumeClaim"].get("claimName", "")
        if not claim or "/" in claim or claim in (".", ".."):
            raise VolumeSetupError(f"invalid claimName {claim!r}")
        return os.path.join(self.claims_dir, pod["metadata"]["namespace"], claim)

    def _setup_volume(self, pod: dict, pod_dir: str, vol: dict) -> None:
        if vol.get("persistentVolumeClaim") is not None:
            os.makedirs(self._claim_dir(pod, vol), exist_ok=True)
            os.chmod(self._claim_dir(pod, vol), 0o777)
            return
        kind = volume_kind(vol)
        if kind == "hostPath":
            hostpath.check(vol["hostPath"].get("path", ""), vol["hostPath"].get("type"))
            return
        if not kind:
            raise VolumeSetupError("this kubelet supports emptyDir, configMap, secret, downwardAPI, "
                                   "projected, hostPath and persistentVolumeClaim (node-local) volumes only")
        medium = (vol.get("emptyDir") or {}).get("medium") if kind == "emptyDir" else ""
        if medium not in (None, "", "Memory"):
            raise VolumeSetupError(f"emptyDir medium {medium!r} is not supported by this kubelet "
                                   "(\"\" or Memory)")
        path = volume_dir(pod_dir, vol)
        os.makedirs(path, mode=0o755 if kind != "emptyDir" else 0o777, exist_ok=True)
        if (kind in ON_TMPFS or medium == "Memory") and not kernel.mounts_under(path):
            options = ["mode=0777" if kind == "emptyDir" else "mode=0755"]
            limit = (vol.get("emptyDir") or {}).get("sizeLimit") if kind == "emptyDir" else None
            if limit:
                options.append(_size(limit))
            kernel.mount("tmpfs", path, "tmpfs", kernel.MS_NOSUID | kernel.MS_NODEV,
                         ",".join(o for o in options if o))
            kernel.make_private(path)
        elif kind == "emptyDir":
            os.chmod(path, 0o777)
        if kind in API_DATA:
            AtomicWriter(path).write(self._payload(pod, vol))
        self._own(pod, path, kind)

    @staticmethod
    def _own(pod: dict, path: str, kind: str) -> None:
        gid = fs_group(pod)
        if gid is not None:
            set_ownership(path, gid, readonly=kind in API_DATA)

    def _payload(self, pod: dict, vol: dict, direct: bool = True) -> dict:
        """The volume's files; with fsGroup group-readable, as SetVolumeOwnership leaves them."""
        files = self._files(pod, vol, direct)
        if fs_group(pod) is not None:
            files = {k: FileProjection(fp.data, fp.mode | stat.S_IRGRP) for k, fp in files.items()}
        return files

    def _files(self, pod: dict, vol: dict, direct: bool) -> dict:
        lookup = self._lookup(pod["metadata"]["namespace"], direct)
        if vol.get("configMap") is not None:
            return payload.configmap_payload(vol["configMap"], lookup)
        if vol.get("secret") is not None:
            return payload.secret_payload(vol["secret"], lookup)
        if vol.get("downwardAPI") is not None:
            return payload.downward_payload(vol["downwardAPI"], pod, self.allocatable)
        return payload.projected_payload(vol["projected"], pod, lookup,
                                         lambda aud, sec: self._token(pod, aud, sec), self.allocatable)

    # ---- updates ----------------------------------------------------------------------
    def _resync_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._wake.wait(RESYNC)
            self._wake.clear()
            with self._lock:
                pods = list(self._pods.values())
            for entry in pods:
                try:
                    self._resync(entry)
                except Exception:            # one pod's trouble never stops the others' updates
                    log.exception("volume resync failed")

    def _resync(self, entry: _Pod) -> None:
        pod = entry.get_pod()
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            kind = volume_kind(vol)
            if kind not in API_DATA or vol["name"] not in entry.ready:
                continue
            try:
                path = volume_dir(entry.dir, vol)
                if AtomicWriter(path).write(self._payload(pod, vol, direct=False)):
                    self._own(pod, path, kind)
                    log.info("pod %s/%s: volume %s updated", pod["metadata"]["namespace"],
                             pod["metadata"]["name"], vol["name"])
            except (VolumeSetupError, PayloadError, OSError) as e:
                log.info("pod %s/%s: volume %s not updated: %s", pod["metadata"]["namespace"],
                         pod["metadata"]["name"], vol["name"], e)

    # ---- container mounts ---------------------------------------------------------
    def mounts(self, pod: dict, pod_dir: str, container: dict, env: dict[str, str]) -> list[Mount]:
        """The bind mounts of `container`'s volumeMounts (ContainerConfigError if one cannot be made)."""
        volumes = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or []}
        out = []
        for vm in container.get("volumeMounts") or []:
            vol = volumes.get(vm.get("name", ""))
            if vol is None:
                raise ContainerConfigError(f'cannot find volume "{vm.get("name")}" to mount into container '
                                           f'"{container.get("name")}"')
            kind = volume_kind(vol)
            if vol.get("persistentVolumeClaim") is not None:
                base = self._claim_dir(pod, vol)
            else:
                base = vol["hostPath"]["path"] if kind == "hostPath" else volume_dir(pod_dir, vol)
            sub = vm.get("subPath") or ""
            if vm.get("subPathExpr"):
                sub = _expand(vm["subPathExpr"], env)
                if sub.startswith("/") or ".." in sub.split("/"):
                    raise ContainerConfigError(f'failed to prepare subPath for volumeMount "{vm["name"]}" of '
                                               f'container "{container.get("name")}": subPathExpr {sub!r} must '
                                               "be a relative path without '..'")
            source = _subpath(base, sub, vm["name"], container.get("name", "")) if sub else base
            readonly = bool(vm.get("readOnly")) or kind in API_DATA or \
                bool((vol.get("persistentVolumeClaim") or {}).get("readOnly"))
            out.append(Mount(vm.get("mountPath", ""), source, readonly=readonly))
        return out

    # ---- removal -------------------------------------------------------------------
    def teardown(self, uid: str, pod_dir: str) -> None:
        """Forget the pod and unmount its tmpfs volumes; the caller deletes the directory."""
        with self._lock:
            self._pods.pop(uid, None)
            for key in [k for k in self._tokens if k[0] == uid]:
                del self._tokens[key]
            pods = [p.get_pod() for p in self._pods.values()]
        self.objects.retain({(kind, p["metadata"].get("namespace", ""), name) for p in pods
                             for v in (p.get("spec") or {}).get("volumes") or []
                             for kind, name in payload.referenced_objects(v)})
        vdir = os.path.join(pod_dir, "volumes")
        if not os.path.isdir(vdir):
            return
        for mountpoint in kernel.mounts_under(os.path.realpath(vdir)):
            try:
                kernel.umount(mountpoint)
            except OSError:
                kernel.umount(mountpoint, detach=True)
        shutil.rmtree(vdir, ignore_errors=True)


def _expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def _subpath(base: str, sub: str, volume: str, container: str) -> str:
    """The subPath inside the volume, made as a directory when missing; its
    symlinks resolved, never leading out of the volume."""
    root = os.path.realpath(base)
    path = os.path.join(base, sub)
    if not os.path.lexists(path):
        os.makedirs(path, mode=0o755, exist_ok=True)
    real = os.path.realpath(path)
    if real != root and not real.startswith(root + "/"):
        raise ContainerConfigError(f'failed to prepare subPath for volumeMount "{volume}" of container '
                                   f'"{container}": subpath {real!r} is outside the volume {root!r}')
    return real
