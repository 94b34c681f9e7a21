"""The machine's image store: an OCI image layout driven by skopeo and umoci.

Owns `<state_dir>/oci` (index.json + content-addressed blobs, what `skopeo
copy ... oci:DIR:NAME` writes), `<state_dir>/unpacked/<digest>/rootfs` (each
image's root unpacked once by `umoci raw unpack`, shared read-only by every
container of that image as its overlay lowerdir) and a lock file that
serialises every write to index.json (skopeo itself does not lock; the
kubelet pulls serially by default anyway).

Names are stored as Kubernetes and containerd show them, fully qualified:
`load` of a docker-archive tagged `myapp:dev` stores
`docker.io/library/myapp:dev`, so a pod's `image: myapp:dev` finds it.
Archives are recognised by content (docker-archive: manifest.json; OCI
archive: oci-layout + index.json). `pull` fetches with skopeo from a
registry; registries listed as insecure are spoken to over plain HTTP
(`--src-tls-verify=false`), credentials go through a 0600 auth file that
lives only for the pull. Failures raise the kubelet's reasons
(ErrImagePull, ...) with a hint at the fix.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import gzip
import ipaddress
import json
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field

from . import kernel, reference
from .errors import ImageInUse, ImageLoadError, ImageNotFound, ImagePullError

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
CONFIG_KEYS = ("Entrypoint", "Cmd", "Env", "WorkingDir", "User", "ExposedPorts")
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}
_TIMEOUT = 300.0


@dataclass
class Image:
    """One image in the store: every name it goes by, its manifest digest, its size."""
    names: list[str]
    digest: str
    size: int
    config_digest: str = ""
    repo_digests: list[str] = field(default_factory=list)


def _name(entry: dict) -> str:
    """The reference name an index.json entry carries ("" if none)."""
    return (entry.get("annotations") or {}).get(REF_NAME, "")


def _atomic_json(path: str, data) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, separators=(",", ":"))
    os.replace(tmp, path)


def is_insecure(domain: str, insecure_registries) -> bool:
    """Is `domain` (host[:port]) listed, by name, host, or CIDR of its IP?"""
    host = domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain
    host = host.strip("[]")
    for entry in insecure_registries or ():
        entry = str(entry).strip()
        if entry in (domain, host):
            return True
        if "/" in entry:
            try:
                if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def skopeo_message(stderr: str) -> str:
    """The message in skopeo's last log line (`time=... level=fatal msg="..."`)."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if not lines:
        return "failed"
    line = lines[-1]
    start = line.find('msg="')
    if start < 0:
        return line.strip()
    body = line[start + 5:]
    end = body.rfind('"')
    return (body[:end] if end >= 0 else body).replace('\\"', '"')


def _pull_hint(message: str, domain: str) -> str:
    text = message.lower()
    if "http response to https client" in text:
        return f"the registry {domain} speaks plain HTTP: list it in insecure registries"
    if "unauthorized" in text or "authentication required" in text or "denied" in text:
        return "check the registry credentials (imagePullSecrets)"
    if "manifest unknown" in text or "not found" in text:
        return "check the image name and tag"
    if any(s in text for s in ("no such host", "connection refused", "network is unreachable",
                               "i/o timeout", "dial tcp", "timed out")):
        return ("the registry is unreachable from this node: load the image instead "
                "(nsplane image load ARCHIVE) and use imagePullPolicy IfNotPresent")
    return "see the message above"


def _gzipped(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _archive_kind(path: str) -> tuple[str, dict | list]:
    """("docker", manifest.json) or ("oci", index.json) from the archive's content."""
    try:
        with tarfile.open(path, "r:*") as tar:
            names = {n.lstrip("./") for n in tar.getnames()}
            if "manifest.json" in names:
                member = next(m for m in tar.getmembers() if m.name.lstrip("./") == "manifest.json")
                return "docker", json.load(tar.extractfile(member))
            if "index.json" in names and "oci-layout" in names:
                member = next(m for m in tar.getmembers() if m.name.lstrip("./") == "index.json")
                return "oci", json.load(tar.extractfile(member))
    except (OSError, tarfile.TarError, ValueError, StopIteration) as err:
        raise ImageLoadError(f"image archive {path}: cannot read it ({err}); give a tar from "
                             "`docker save`, `skopeo copy ... docker-archive:` or an OCI "
                             "archive") from err
    raise ImageLoadError(f"image archive {path}: neither a docker-archive (manifest.json) nor "
                         "an OCI archive (oci-layout + index.json)")


class ImageStore:
    """Content-addressed images of this machine under `state_dir`."""

    def __init__(self, state_dir: str, skopeo: str = "skopeo", umoci: str = "umoci"):
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        self.state_dir = os.path.realpath(state_dir)
        self.layout = os.path.join(self.state_dir, "oci")
        self.unpacked = os.path.join(self.state_dir, "unpacked")
        self.tmp = os.path.join(self.state_dir, "tmp")
        self.policy = os.path.join(self.state_dir, "policy.json")
        self.skopeo, self.umoci = skopeo, umoci
        for path in (self.state_dir, self.unpacked, self.tmp):
            os.makedirs(path, mode=0o700, exist_ok=True)
        if ":" in self.layout:
            raise ImageLoadError(f"image store {self.layout}: ':' cannot appear in its path "
                                 "(skopeo and umoci split references on it)")
        if not os.path.exists(self.policy):
            _atomic_json(self.policy, {"default": [{"type": "insecureAcceptAnything"}]})
        self._lock_path = os.path.join(self.state_dir, "lock")

    # ---- plumbing ------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self):
        with open(self._lock_path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _skopeo(self, args: list[str], timeout: float = _TIMEOUT) -> subprocess.CompletedProcess:
        env = dict(os.environ, TMPDIR=self.tmp)
        return subprocess.run([self.skopeo, "--policy", self.policy, *args], capture_output=True,
                              text=True, timeout=timeout, check=False, env=env)

    def _index(self) -> list[dict]:
        try:
            with open(os.path.join(self.layout, "index.json"), encoding="utf-8") as fh:
                return json.load(fh).get("manifests") or []
        except (OSError, ValueError):
            return []

    def _write_index(self, manifests: list[dict]) -> None:
        _atomic_json(os.path.join(self.layout, "index.json"),
                     {"schemaVersion": 2, "manifests": manifests})

    def _blob(self, digest: str) -> bytes:
        algorithm, hex_part = digest.split(":", 1)
        with open(os.path.join(self.layout, "blobs", algorithm, hex_part), "rb") as fh:
            return fh.read()

    def _manifest(self, entry: dict) -> tuple[str, dict]:
        """(digest, image manifest) of an index entry, choosing our platform in an index."""
        digest = entry["digest"]
        doc = json.loads(self._blob(digest))
        if entry.get("mediaType") in INDEX_TYPES or doc.get("mediaType") in INDEX_TYPES \
                or "manifests" in doc:
            arch = _ARCH.get(platform.machine(), platform.machine())
            chosen = next((m for m in doc.get("manifests", [])
                           if (m.get("platform") or {}).get("architecture") == arch),
                          (doc.get("manifests") or [None])[0])
            if chosen is None:
                raise ImageNotFound(f"image index {digest} lists no manifest for {arch}")
            digest = chosen["digest"]
            doc = json.loads(self._blob(digest))
        return digest, doc

    # ---- queries -------------------------------------------------------------
    def list(self) -> list[Image]:
        """Every image, once per manifest digest, with all its names."""
        by_digest: dict[str, Image] = {}
        for entry in self._index():
            name = _name(entry)
            image = by_digest.get(entry["digest"])
            if image is None:
                image = by_digest[entry["digest"]] = self._describe(entry)
            if name and "@" in name:
                image.repo_digests.append(name)
            elif name:
                image.names.append(name)
        return list(by_digest.values())

    def _describe(self, entry: dict) -> Image:
        try:
            _, manifest = self._manifest(entry)
        except (OSError, ValueError, ImageNotFound):
            return Image(names=[], digest=entry["digest"], size=int(entry.get("size", 0)))
        size = int(entry.get("size", 0)) + int(manifest.get("config", {}).get("size", 0))
        size += sum(int(layer.get("size", 0)) for layer in manifest.get("layers", []))
        return Image(names=[], digest=entry["digest"], size=size,
                     config_digest=manifest.get("config", {}).get("digest", ""))

    def _entry(self, image: str) -> dict | None:
        ref = reference.parse(image)
        entries = self._index()
        exact = next((e for e in entries
                      if _name(e) == ref.name), None)
        if exact or not ref.digest:
            return exact
        same = [e for e in entries if e["digest"] == ref.digest]
        return next((e for e in same if _name(e) and
                     reference.parse(_name(e)).repository == ref.repository),
                    same[0] if same else None)

    def resolve(self, image: str) -> Image | None:
        """The stored image `image` names, or None (InvalidImageName if malformed)."""
        entry = self._entry(image)
        if entry is None:
            return None
        return next((i for i in self.list() if i.digest == entry["digest"]), None)

    def config(self, image: str) -> dict:
        """The image config's Entrypoint, Cmd, Env, WorkingDir, User, ExposedPorts."""
        entry = self._entry(image)
        if entry is None:
            raise ImageNotFound(f'image "{image}" is not in the store; pull or load it first')
        _, manifest = self._manifest(entry)
        doc = json.loads(self._blob(manifest["config"]["digest"]))
        conf = doc.get("config") or {}
        return {k: conf[k] for k in CONFIG_KEYS if conf.get(k) not in (None, "", [], {})}

    # ---- load and pull -------------------------------------------------------
    def load(self, archive_path: str, names: list[str] | None = None) -> list[Image]:
        """Import every image of a docker-archive or OCI archive, keeping its names.

        `names` names the archive's (single) image when it carries none.
        """
        path = os.path.abspath(archive_path)
        if not os.path.isfile(path):
            raise ImageLoadError(f"image archive {archive_path}: no such file")
        kind, doc = _archive_kind(path)
        with tempfile.TemporaryDirectory(dir=self.tmp) as work:
            if _gzipped(path):                   # `docker save | gzip`: skopeo wants a plain tar
                plain = os.path.join(work, "archive.tar")
                with gzip.open(path, "rb") as src, open(plain, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                path = plain
            elif ":" in path:                    # skopeo splits its argument on ':'
                link = os.path.join(work, "archive.tar")
                os.symlink(path, link)
                path = link
            plans = self._load_plans(kind, doc, path, names)
            with self._locked():
                digests = [self._copy_in(src, wanted, work) for src, wanted in plans]
                self._collect_garbage(self._index())     # what a re-used name left behind
        images = {i.digest: i for i in self.list()}
        return [images[d] for d in dict.fromkeys(digests) if d in images]

    def _load_plans(self, kind: str, doc, path: str, names) -> list[tuple[str, list[str]]]:
        entries = doc if kind == "docker" else doc.get("manifests") or []
        if not entries:
            raise ImageLoadError(f"image archive {path}: it holds no image")
        if names and len(entries) != 1:
            raise ImageLoadError(f"image archive {path}: names= needs an archive with one image "
                                 f"(this one has {len(entries)})")
        plans = []
        for i, entry in enumerate(entries):
            if kind == "docker":
                found = list(entry.get("RepoTags") or [])
                src = f"docker-archive:{path}:@{i}"
            else:
                ann = entry.get("annotations") or {}
                ref_name = ann.get(REF_NAME, "")
                found = [ann.get(CONTAINERD_NAME) or ref_name] if (ann.get(CONTAINERD_NAME)
                                                                  or ref_name) else []
                src = f"oci-archive:{path}:{ref_name}" if ref_name else f"oci-archive:{path}"
                if not ref_name and len(entries) > 1:
                    raise ImageLoadError(f"image archive {path}: image {i} has no "
                                         f"{REF_NAME} annotation; skopeo cannot select it")
            wanted = [reference.normalise(n) for n in (names or found)]
            if not wanted:
                raise ImageLoadError(f"image archive {path}: image {i} carries no name; "
                                     "tag it before saving or pass names=")
            plans.append((src, wanted))
        return plans

    def _copy_in(self, src: str, wanted: list[str], work: str) -> str:
        digest_file = os.path.join(work, "digest")
        # skopeo gzips a docker-archive's plain layers on the way in: most of a
        # load's time, but umoci 0.4 unpacks nothing else.
        proc = self._skopeo(["copy", "--quiet", "--digestfile", digest_file, src,
                             f"oci:{self.layout}:{wanted[0]}"])
        if proc.returncode != 0:
            raise ImageLoadError(f"importing {src}: {skopeo_message(proc.stderr)}")
        with open(digest_file, encoding="utf-8") as fh:
            digest = fh.read().strip()
        for name in wanted[1:]:
            self._tag_locked(wanted[0], name)
        return digest

    def pull(self, image: str, insecure_registries=(), auth: dict | None = None,
             timeout: float = _TIMEOUT) -> Image:
        """Fetch `image` from its registry into the store (ErrImagePull on failure).

        `auth`: {"username", "password"} or {"auth": base64("user:password")}.
        """
        ref = reference.parse(image)
        args = ["copy", "--quiet"]
        if is_insecure(ref.domain, insecure_registries):
            args.append("--src-tls-verify=false")
        with tempfile.TemporaryDirectory(dir=self.tmp) as work:
            if auth:
                args += ["--src-authfile", self._authfile(work, ref.domain, auth)]
            digest_file = os.path.join(work, "digest")
            args += ["--digestfile", digest_file, f"docker://{ref.name}",
                     f"oci:{self.layout}:{ref.name}"]
            with self._locked():
                try:
                    proc = self._skopeo(args, timeout=timeout)
                    self._collect_garbage(self._index())  # an older image under this name
                except subprocess.TimeoutExpired as err:
                    hint = _pull_hint("timed out", ref.domain)
                    raise ImagePullError(f'Failed to pull image "{image}": no answer within '
                                         f"{timeout:g}s; {hint}") from err
        if proc.returncode != 0:
            message = skopeo_message(proc.stderr)
            raise ImagePullError(f'Failed to pull image "{image}": {message}; '
                                 f"{_pull_hint(message, ref.domain)}")
        found = self.resolve(ref.name)
        if found is None:  # pragma: no cover - skopeo reported success
            raise ImagePullError(f'Failed to pull image "{image}": not in the store afterwards')
        return found

    @staticmethod
    def _authfile(work: str, domain: str, auth: dict) -> str:
        token = auth.get("auth") or base64.b64encode(
            f"{auth.get('username', '')}:{auth.get('password', '')}".encode()).decode()
        path = os.path.join(work, "auth.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"auths": {domain: {"auth": token}}}, fh)
        return path

    # ---- names, removal, garbage -------------------------------------------------
    def tag(self, source: str, target: str) -> None:
        """Give the image `source` names the extra name `target`."""
        with self._locked():
            self._tag_locked(reference.normalise(source), reference.normalise(target))

    def _tag_locked(self, source: str, target: str) -> None:
        entries = self._index()
        entry = next((e for e in entries if _name(e) == source), None)
        if entry is None:
            raise ImageNotFound(f'image "{source}" is not in the store')
        entries = [e for e in entries if _name(e) != target]
        copy = dict(entry, annotations=dict(entry.get("annotations") or {}, **{REF_NAME: target}))
        self._write_index(entries + [copy])

    def remove(self, image: str) -> None:
        """Remove the name `image`; the content goes when no name is left.

        ImageInUse if that would remove an unpacked root a container still mounts.
        """
        with self._locked():
            entry = self._entry(image)
            if entry is None:
                raise ImageNotFound(f'image "{image}" is not in the store')
            name = _name(entry)
            rest = [e for e in self._index() if _name(e) != name]
            if not any(e["digest"] == entry["digest"] for e in rest):
                root = self._unpacked_dir(entry["digest"])
                if self._in_use(root):
                    raise ImageInUse(f'image "{image}" is used by a running container (its root '
                                     f"{root} is mounted); delete the container first")
            self._write_index(rest)
            self._collect_garbage(rest)

    def _collect_garbage(self, entries: list[dict]) -> None:
        keep = set()
        for entry in entries:
            keep.add(entry["digest"])
            try:
                digest, manifest = self._manifest(entry)
            except (OSError, ValueError, ImageNotFound):
                continue
            keep.add(digest)
            keep.add(manifest.get("config", {}).get("digest", ""))
            keep.update(layer.get("digest", "") for layer in manifest.get("layers", []))
        blobs = os.path.join(self.layout, "blobs")
        for algorithm in os.listdir(blobs) if os.path.isdir(blobs) else []:
            for hex_part in os.listdir(os.path.join(blobs, algorithm)):
                if f"{algorithm}:{hex_part}" not in keep:
                    os.unlink(os.path.join(blobs, algorithm, hex_part))
        live = {e["digest"].split(":", 1)[1] for e in entries}
        for hex_part in os.listdir(self.unpacked):
            path = os.path.join(self.unpacked, hex_part)
            if hex_part not in live and not hex_part.startswith(".") \
                    and not self._in_use(os.path.join(path, "rootfs")):
                shutil.rmtree(path, ignore_errors=True)

    # ---- unpacking -------------------------------------------------------------
    def _unpacked_dir(self, digest: str) -> str:
        return os.path.join(self.unpacked, digest.split(":", 1)[1], "rootfs")

    @staticmethod
    def _in_use(root: str) -> bool:
        needle = f"lowerdir={root}"
        return any(r.fstype == "overlay" and needle in r.super_options for r in kernel.mounts())

    def unpack(self, image: str) -> str:
        """The image's root, unpacked once per digest; a read-only lowerdir."""
        entry = self._entry(image)
        if entry is None:
            raise ImageNotFound(f'image "{image}" is not in the store; pull or load it first')
        root = self._unpacked_dir(entry["digest"])
        if os.path.isdir(root):
            return root
        with self._locked():
            if os.path.isdir(root):
                return root
            name = _name(entry)
            work = tempfile.mkdtemp(prefix=".unpack-", dir=self.unpacked)
            try:
                proc = subprocess.run([self.umoci, "raw", "unpack", "--image",
                                       f"{self.layout}:{name}", os.path.join(work, "rootfs")],
                                      capture_output=True, text=True, timeout=_TIMEOUT, check=False)
                if proc.returncode != 0:
                    raise ImageLoadError(f'unpacking image "{image}": {proc.stderr.strip()}')
                os.rename(work, os.path.dirname(root))
            finally:
                shutil.rmtree(work, ignore_errors=True)
        return root
