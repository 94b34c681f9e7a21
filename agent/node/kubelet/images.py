"""The kubelet's image manager: which image a container runs, pulled when
its imagePullPolicy says so, with the kubelet's Events, waiting reasons and
pull back-off (pkg/kubelet/images), over the machine's ImageStore.

`ensure(pod, container)` answers at once, from the sync loop: an `Image` to
run, None while a pull (or a registry probe) is under way on the serial
puller thread (the kubelet serialises pulls by default; the container shows
ContainerCreating and the pod is synced again when it is done), or a
RuntimeLayerError carrying the kubelet's reason: InvalidImageName,
ErrImageNeverPull, ErrImagePull, ImagePullBackOff.

The order, for an image that is...
- in the store: it runs; with imagePullPolicy Always it is pulled first when
  its registry answers (and a failed pull is ErrImagePull, as on a node);
  when the registry does not answer it runs as stored, and the Event says
  why it was not pulled. An image in the store always wins over a stand-in.
- not in the store, with a built-in stand-in (agent/node/workloads): pulled
  when its registry answers; otherwise, or when that pull fails, the
  stand-in runs and a `Pulled` Event says so. Whether a registry answers is
  one TCP connection (DNS included) bounded to PROBE_TIMEOUT, remembered per
  registry for a while, so stand-in pods on a machine without registry
  access do not each wait for a pull that cannot succeed.
- neither: pulled (Never: ErrImageNeverPull), and a failed pull is
  ErrImagePull, then ImagePullBackOff until the back-off (10 s doubling to
  300 s, per pod and image) has passed.
- coredns/coredns: always its stand-in, nsplane's own cluster DNS (the real
  image would need a Corefile from a ConfigMap volume).

Credentials come from the pod's imagePullSecrets (kubernetes.io/
dockerconfigjson and kubernetes.io/dockercfg Secrets of its namespace), matched
to the image's registry as the kubelet's keyring matches them (the most
specific entry wins; index.docker.io is docker.io); a Secret that cannot be
read is the kubelet's `FailedToRetrieveImagePullSecret` Warning, and the pull
goes ahead without it. Registries listed in the cluster's
`insecure_registries` are spoken to over plain HTTP (local test registries).
"""
from __future__ import annotations

import base64
import fnmatch
import json
import logging
import queue
import socket
import threading
import time
from dataclasses import dataclass, field

from agent.node import workloads
from agent.node.runtime import reference
from agent.node.runtime.errors import (ImageNeverPull, ImagePullError, InvalidImageName,
                                       RuntimeLayerError)
from agent.node.runtime.images import ImageStore, is_insecure

log = logging.getLogger("nsplane.kubelet.images")

BACKOFF_INITIAL = 10.0
BACKOFF_MAX = 300.0
PROBE_TIMEOUT = 1.5
REACHABLE_TTL = 300.0          # how long a probe's answer is believed
UNREACHABLE_TTL = 30.0
PULL_TIMEOUT = 600.0
# Images whose real program cannot work here, so their stand-in always runs:
# repository -> why. The cluster DNS is nsplane's own (dns/); a real CoreDNS
# would need its Corefile from a ConfigMap volume.
ALWAYS_STANDIN = {"coredns/coredns": "is nsplane's cluster DNS"}
DOCKER_HUB = "registry-1.docker.io"     # what docker.io names as a registry host


@dataclass
class Image:
    """What a container runs: a stored image (root + config) or a stand-in."""
    image: str                       # as the pod spec names it
    name: str                        # normalised: docker.io/library/nginx:1.27
    standin: bool = False
    image_id: str = ""               # status.containerStatuses[].imageID
    lower: str = ""                  # the unpacked root (stored images)
    config: dict = field(default_factory=dict)


def go_duration(seconds: float) -> str:
    """Go's time.Duration String() of a duration truncated to milliseconds."""
    ms = int(seconds * 1000)
    if ms < 1000:
        return f"{ms}ms"
    minutes, rest = divmod(ms, 60_000)
    text = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if minutes >= 60:
        return f"{minutes // 60}h{minutes % 60}m{text}"
    return f"{minutes}m{text}" if minutes else text


def registry_endpoint(domain: str, insecure: bool) -> tuple[str, int]:
    """The host and port a registry reference's domain is spoken to at."""
    host, port = domain, 0
    if domain.startswith("["):
        host, _, rest = domain[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else 0
    elif domain.count(":") == 1:
        host, text = domain.split(":")
        port = int(text)
    if host == reference.DEFAULT_DOMAIN:
        host = DOCKER_HUB
    return host, port or (80 if insecure else 443)


def answers(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """Does anything accept a TCP connection at host:port within `timeout`
    (name resolution included, which the socket timeout does not bound)?"""
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)
    worker = threading.Thread(target=attempt, name="registry-probe", daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])


def _registry_key(key: str) -> tuple[str, str]:
    """(host[:port], path) of a docker config key ("https://index.docker.io/v1/",
    "registry.example.com:5000/team", "*.example.com")."""
    text = key.split("://", 1)[-1]
    host, _, path = text.partition("/")
    if host in ("index.docker.io", DOCKER_HUB):
        host, path = reference.DEFAULT_DOMAIN, ""
    return host, path.strip("/")


def _auths(secret: dict) -> dict:
    """The docker config entries of a Secret, {} if it is of another kind."""
    data = secret.get("data") or {}
    try:
        if secret.get("type") == "kubernetes.io/dockerconfigjson" and ".dockerconfigjson" in data:
            return json.loads(base64.b64decode(data[".dockerconfigjson"])).get("auths") or {}
        if secret.get("type") == "kubernetes.io/dockercfg" and ".dockercfg" in data:
            return json.loads(base64.b64decode(data[".dockercfg"]))
    except (ValueError, TypeError):
        pass
    return {}


def credentials(secrets: list[dict], ref: reference.ImageRef) -> dict | None:
    """The auth entry for `ref` from the pod's pull Secrets: the entry whose
    registry (a glob for the host) and path prefix match, longest first."""
    found = []
    for secret in secrets:
        for key, entry in _auths(secret).items():
            host, path = _registry_key(key)
            if not fnmatch.fnmatchcase(ref.domain, host):
                continue
            if path and not (ref.path == path or ref.path.startswith(path + "/")):
                continue
            if isinstance(entry, dict) and (entry.get("auth") or entry.get("username")):
                found.append((len(host) + len(path), entry))
    if not found:
        return None
    entry = max(found, key=lambda f: f[0])[1]
    if entry.get("auth"):
        return {"auth": entry["auth"]}
    return {"username": entry.get("username", ""), "password": entry.get("password", "")}


class Backoff:
    """client-go's flowcontrol.Backoff, as the kubelet uses it for pulls."""

    def __init__(self, initial: float = BACKOFF_INITIAL, cap: float = BACKOFF_MAX):
        self.initial, self.cap = initial, cap
        self._entries: dict[str, tuple[float, float]] = {}   # key -> (duration, last update)

    def in_backoff(self, key: str, now: float) -> bool:
        entry = self._entries.get(key)
        return entry is not None and now - entry[1] < entry[0]

    def next(self, key: str, now: float) -> None:
        entry = self._entries.get(key)
        if entry is None or now - entry[1] > 2 * self.cap:
            self._entries[key] = (self.initial, now)
        else:
            self._entries[key] = (min(entry[0] * 2, self.cap), now)

    def forget(self, prefix: str) -> None:
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]


class ImageManager:
    """Images for the kubelet's containers; pulls on one background thread."""

    def __init__(self, store: ImageStore, event, wake, insecure_registries=(),
                 probe=answers, secret=None):
        self.store = store
        self.event = event              # (pod, reason, message, type)
        self.wake = wake                # (pod) -> sync that pod again soon
        self.secret = secret            # (namespace, name) -> Secret, None if it cannot be read
        self.insecure = list(insecure_registries or ())
        self.probe = probe
        self.backoff = Backoff()
        self._reach: dict[str, tuple[bool, float]] = {}     # domain -> (answers, until)
        self._jobs: dict[str, str] = {}                     # key -> "probe" | "pull"
        self._results: dict[str, object] = {}               # key -> Image | ImagePullError
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None

    # ---- the sync loop's side --------------------------------------------------------
    def ensure(self, pod: dict, container: dict) -> Image | None:
        """The image to run now, None while pulling, or a RuntimeLayerError."""
        image = container.get("image") or ""
        try:
            ref = reference.parse(image)
        except InvalidImageName as err:
            self._warn(pod, "InspectFailed", str(err), "InvalidImageName")
            raise
        key = f"{pod['metadata']['uid']}_{image}"
        with self._lock:
            if key in self._jobs:
                return None
            done = self._results.pop(key, None)
        if isinstance(done, Image):
            return done
        if isinstance(done, ImagePullError):
            self.event(pod, "Failed", "Error: ErrImagePull", "Warning")
            raise done
        always = ALWAYS_STANDIN.get(workloads.repository(image))
        if always:
            self.event(pod, "Pulled", f'Container image "{image}" {always} here; running nsplane\'s built-in '
                       "stand-in for it")
            return Image(image=image, name=ref.name, standin=True)
        policy = container.get("imagePullPolicy") or reference.default_pull_policy(image)
        stored = self._stored(image, ref)
        standin = workloads.standin(image) is not None
        if policy == reference.PULL_NEVER or (policy == reference.PULL_IF_NOT_PRESENT and stored):
            if stored:
                self.event(pod, "Pulled", f'Container image "{image}" already present on machine')
                return stored
            if standin:
                return self._standin(pod, image, ref, "cannot be pulled (imagePullPolicy Never)")
            message = f'Container image "{image}" is not present with pull policy of Never'
            self._warn(pod, "ErrImageNeverPull", message, "ErrImageNeverPull")
            raise ImageNeverPull(message)
        if self.backoff.in_backoff(key, time.monotonic()):
            message = f'Back-off pulling image "{image}"'
            self.event(pod, "BackOff", message)
            self.event(pod, "Failed", "Error: ImagePullBackOff", "Warning")
            raise RuntimeLayerError(message, reason="ImagePullBackOff")
        if stored or standin:
            reach = self._reachable(ref.domain)
            if reach is None:
                self._submit(key, "probe", pod, image, ref)
                return None
            if not reach:
                if stored:
                    self.event(pod, "Pulled", f'Container image "{image}" already present on machine; '
                               f"not pulled: its registry {ref.domain} does not answer from this node")
                    return stored
                return self._standin(pod, image, ref, "cannot be pulled")
        self._submit(key, "pull", pod, image, ref)
        return None

    def forget(self, uid: str) -> None:
        """Drop what is kept for a pod that is gone."""
        with self._lock:
            for key in [k for k in self._results if k.startswith(uid + "_")]:
                del self._results[key]
        self.backoff.forget(uid + "_")

    def close(self) -> None:
        self._queue.put(None)

    # ---- helpers -----------------------------------------------------------------------
    def _warn(self, pod: dict, reason: str, message: str, error: str) -> None:
        self.event(pod, reason, message, "Warning")
        self.event(pod, "Failed", f"Error: {error}", "Warning")

    def _stored(self, image: str, ref: reference.ImageRef) -> Image | None:
        found = self.store.resolve(ref.name)
        if found is None:
            return None
        return Image(image=image, name=ref.name, image_id=f"{ref.repository}@{found.digest}",
                     lower=self.store.unpack(ref.name), config=self.store.config(ref.name))

    def _standin(self, pod: dict, image: str, ref: reference.ImageRef, why: str) -> Image:
        self.event(pod, "Pulled", f'Container image "{image}" is not on this machine and {why}; '
                   "running nsplane's built-in stand-in for it")
        return Image(image=image, name=ref.name, standin=True)

    def _reachable(self, domain: str) -> bool | None:
        known = self._reach.get(domain)
        if known is None or known[1] < time.monotonic():
            return None
        return known[0]

    def _submit(self, key: str, kind: str, pod: dict, image: str, ref) -> None:
        with self._lock:
            self._jobs[key] = kind
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="image-puller", daemon=True)
                self._thread.start()
        self._queue.put((key, kind, pod, image, ref))

    # ---- the puller thread -------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            key, kind, pod, image, ref = job
            try:
                if kind == "probe":
                    self._probe(ref.domain)
                else:
                    self._pull(key, pod, image, ref)
            except Exception:      # a bug here must not stop every later pull
                log.exception("image %s: %s failed", image, kind)
            finally:
                with self._lock:
                    self._jobs.pop(key, None)
                self.wake(pod)

    def _probe(self, domain: str) -> None:
        if self._reachable(domain) is not None:
            return
        host, port = registry_endpoint(domain, is_insecure(domain, self.insecure))
        t0 = time.monotonic()
        ok = self.probe(host, port)
        self._reach[domain] = (ok, time.monotonic() + (REACHABLE_TTL if ok else UNREACHABLE_TTL))
        log.info("registry %s (%s:%d) %s (%.0f ms)", domain, host, port,
                 "answers" if ok else "does not answer", (time.monotonic() - t0) * 1000)

    def _pull_secrets(self, pod: dict) -> list[dict]:
        """The pod's imagePullSecrets that can be read (kubelet: getPullSecretsForPod)."""
        names = [r.get("name") for r in (pod.get("spec") or {}).get("imagePullSecrets") or [] if r.get("name")]
        found, failed = [], []
        for name in names:
            secret = self.secret(pod["metadata"]["namespace"], name) if self.secret else None
            (found if secret is not None else failed).append(secret if secret is not None else name)
        if failed:
            self.event(pod, "FailedToRetrieveImagePullSecret", f"Unable to retrieve some image pull secrets "
                       f"({', '.join(failed)}); attempting to pull the image may not succeed.", "Warning")
        return found

    def _pull(self, key: str, pod: dict, image: str, ref) -> None:
        auth = credentials(self._pull_secrets(pod), ref)
        self.event(pod, "Pulling", f'Pulling image "{image}"')
        t0 = time.monotonic()
        try:
            pulled = self.store.pull(image, insecure_registries=self.insecure, auth=auth, timeout=PULL_TIMEOUT)
            result: object = Image(image=image, name=ref.name,
                                   image_id=f"{ref.repository}@{pulled.digest}",
                                   lower=self.store.unpack(ref.name), config=self.store.config(ref.name))
        except RuntimeLayerError as err:
            text = str(err)        # 'Failed to pull image "x": <why>; <hint>'
            if "unreachable" in text:
                self._reach[ref.domain] = (False, time.monotonic() + UNREACHABLE_TTL)
            self.event(pod, "Failed", text, "Warning")
            if workloads.standin(image) is not None and self.store.resolve(ref.name) is None:
                result = self._standin(pod, image, ref, "cannot be pulled")
            else:
                self.backoff.next(key, time.monotonic())
                result = ImagePullError(text.split(": ", 1)[-1])
        else:
            took = go_duration(time.monotonic() - t0)
            self.event(pod, "Pulled", f'Successfully pulled image "{image}" in {took} ({took} including '
                       f"waiting). Image size: {pulled.size} bytes.")
        with self._lock:
            self._results[key] = result
