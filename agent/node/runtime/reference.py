"""Image references as Kubernetes reads them, and the pull-policy decision.

`parse` follows the distribution/reference grammar that the kubelet and
containerd use (ParseNormalizedNamed): `[domain/]path[:tag][@digest]`, a first
component with a '.' or ':' (or `localhost`) is a registry, anything else is
on docker.io, and a single-component docker.io name lives under `library/`:
`myapp:dev` -> `docker.io/library/myapp:dev`. No tag and no digest means
`:latest`. Bad names raise InvalidImageName with the kubelet's message.

`pull_needed` is the kubelet's decision: Never -> never pull (and a missing
image is ErrImageNeverPull), Always -> pull, IfNotPresent -> pull if missing;
with no policy set the API's default applies (Always for `:latest` or no
tag, IfNotPresent otherwise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ImageNeverPull, InvalidImageName

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = f"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = f"(?:{_DOMAIN_COMPONENT}(?:\\.{_DOMAIN_COMPONENT})*|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = f"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_REFERENCE_RE = re.compile(f"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$", re.ASCII)
_IDENTIFIER_RE = re.compile(r"^[a-f0-9]{64}$")
_DIGEST_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}

PULL_ALWAYS = "Always"
PULL_IF_NOT_PRESENT = "IfNotPresent"
PULL_NEVER = "Never"


@dataclass(frozen=True)
class ImageRef:
    """A normalised reference: docker.io/library/busybox:1.36 and friends."""
    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def repository(self) -> str:
        """domain/path, e.g. docker.io/library/busybox."""
        return f"{self.domain}/{self.path}"

    @property
    def name(self) -> str:
        """The full reference string (tag and digest as given, :latest if neither)."""
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def __str__(self) -> str:
        return self.name


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"
                   and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_PREFIX + remainder
    return domain, remainder


def _invalid(image: str, why: str) -> InvalidImageName:
    return InvalidImageName(f'Failed to apply default image tag "{image}": couldn\'t parse '
                            f'image name "{image}": {why}')


def parse(image: str) -> ImageRef:
    """Parse and normalise `image` (kubelet: applyDefaultImageTag)."""
    text = (image or "").strip()
    if not text:
        raise _invalid(image, "repository name must have at least one component")
    if _IDENTIFIER_RE.match(text):
        raise _invalid(image, f"invalid repository name ({text}), cannot specify 64-byte "
                       "hexadecimal strings")
    domain, remainder = _split_domain(text)
    remote = remainder.split(":", 1)[0].split("@", 1)[0]
    if remote.lower() != remote:
        raise _invalid(image, f"invalid reference format: repository name ({remote}) must be "
                       "lowercase")
    match = _REFERENCE_RE.match(f"{domain}/{remainder}")
    if not match:
        raise _invalid(image, "invalid reference format")
    name, tag, digest = match.group(1), match.group(2) or "", match.group(3) or ""
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise _invalid(image, f"repository name must not be more than "
                       f"{NAME_TOTAL_LENGTH_MAX} characters")
    if digest:
        algorithm, hex_part = digest.split(":", 1)
        if algorithm not in _DIGEST_HEX_LEN:
            raise _invalid(image, "unsupported digest algorithm")
        if len(hex_part) != _DIGEST_HEX_LEN[algorithm] or hex_part.lower() != hex_part:
            raise _invalid(image, "invalid checksum digest length" if
                           len(hex_part) != _DIGEST_HEX_LEN[algorithm] else
                           "invalid checksum digest format")
    if not tag and not digest:
        tag = "latest"
    return ImageRef(domain=domain, path=name[len(domain) + 1:], tag=tag, digest=digest)


def normalise(image: str) -> str:
    """`myapp:dev` -> `docker.io/library/myapp:dev` (InvalidImageName if bad)."""
    return parse(image).name


def default_pull_policy(image: str) -> str:
    """The API server's default imagePullPolicy for `image`."""
    ref = parse(image)
    return PULL_ALWAYS if ref.tag == "latest" else PULL_IF_NOT_PRESENT


def pull_needed(image: str, policy: str | None, present: bool) -> bool:
    """Should the kubelet pull `image` now? Raises InvalidImageName or
    ImageNeverPull (ErrImageNeverPull) where the kubelet would stop."""
    parse(image)
    policy = policy or default_pull_policy(image)
    if policy == PULL_NEVER:
        if not present:
            raise ImageNeverPull(f'Container image "{image}" is not present with pull policy '
                                 'of Never; load it first (nsplane image load ARCHIVE) or '
                                 'set imagePullPolicy to IfNotPresent')
        return False
    if policy == PULL_ALWAYS:
        return True
    if policy == PULL_IF_NOT_PRESENT:
        return not present
    raise InvalidImageName(f'imagePullPolicy "{policy}" is not one of Always, IfNotPresent, '
                           'Never', reason="InvalidImagePullPolicy")

