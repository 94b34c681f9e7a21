"""Errors of the runtime layer, each carrying the kubelet's reason string.

The kubelet reports a container that cannot start with a short machine reason
(`ErrImagePull`, `CreateContainerConfigError`, ...) and a human message. Every
error raised by this package is a `RuntimeLayerError` whose `reason` is that
string and whose message names the object and the fix, so the caller can put
both straight into the container's waiting state and the pod's Events.
"""

from __future__ import annotations


class RuntimeLayerError(Exception):
    """Base of every error raised by agent.node.runtime."""

    reason = "RuntimeError"

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    @property
    def message(self) -> str:
        return str(self)


# ---- container configuration (kubelet: before the runtime is called) -------

class ContainerConfigError(RuntimeLayerError):
    """The pod spec asks for something the kubelet refuses (runAsNonRoot...)."""

    reason = "CreateContainerConfigError"


class ContainerCreateError(RuntimeLayerError):
    """The OCI runtime refused to create the container."""

    reason = "CreateContainerError"


class ContainerStartError(RuntimeLayerError):
    """The container was created but its process could not be started."""

    reason = "RunContainerError"


class ContainerNotFound(RuntimeLayerError):
    """No container of ours with that id (under our runtime root)."""

    reason = "ContainerNotFound"


class OCIRuntimeNotFound(RuntimeLayerError):
    """Neither crun nor runc is installed (or the asked-for one is missing)."""

    reason = "RuntimeNotFound"


# ---- images ----------------------------------------------------------------

class InvalidImageName(RuntimeLayerError):
    """The image reference cannot be parsed (kubelet: InvalidImageName)."""

    reason = "InvalidImageName"


class ImageNeverPull(RuntimeLayerError):
    """imagePullPolicy Never and the image is not in the store."""

    reason = "ErrImageNeverPull"


class ImagePullError(RuntimeLayerError):
    """skopeo could not fetch the image (kubelet: ErrImagePull)."""

    reason = "ErrImagePull"


class ImageNotFound(RuntimeLayerError):
    """The reference is not in the local store."""

    reason = "ImageNotFound"


class ImageInUse(RuntimeLayerError):
    """The image's unpacked root is still mounted by a container."""

    reason = "ImageInUse"


class ImageLoadError(RuntimeLayerError):
    """An archive could not be read or imported."""

    reason = "ImageLoadError"


# ---- root filesystems --------------------------------------------------------

class RootfsError(RuntimeLayerError):
    """A container root filesystem could not be mounted or removed."""

    reason = "CreateContainerError"
