"""Images: which tags to resolve to digests, and the image each service is sent (pure).

``--resolve-image`` has ``docker stack deploy``'s meanings:

- ``always``: every tag is resolved through the registry and the service pinned to
  ``image@digest``, so every node runs the same content and a re-pushed tag is a change;
- ``changed``: only a service that is new or whose image (as written) changed is resolved;
- ``never``: nothing is resolved; the tag is sent as written.

A service whose image as written is the one it runs already (the ``com.docker.stack.image``
label) keeps the image it runs, digest included, whenever no digest is resolved for it (mode
``changed`` or ``never``, or a registry that does not answer): sending the bare tag would
replace every task for nothing. A tag no registry knows (an image built on the nodes
themselves) is sent as written, as stack deploy does after its warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

from converge.naming import STACK_IMAGE_LABEL
from converge.normalize import canonical_image
from converge.spec import Spec
from converge.state import ObservedState

__all__ = [
    "DEFAULT_REGISTRY",
    "RESOLVE_MODES",
    "ResolveMode",
    "digest_of",
    "images_to_resolve",
    "pinned",
    "pull_failure_hint",
    "registry_of",
    "service_images",
    "short_digest",
    "without_digest",
]

ResolveMode = Literal["always", "changed", "never"]
RESOLVE_MODES: tuple[str, ...] = get_args(ResolveMode)
DEFAULT_REGISTRY = "docker.io"


def registry_of(image: str) -> str:
    """The registry an image is pulled from, as the docker CLI reads a reference: the first
    path component when it looks like a host (a dot, a port, or ``localhost``), else Docker
    Hub (``docker.io``)."""
    first, slash, _ = without_digest(image).partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return DEFAULT_REGISTRY


def without_digest(image: str) -> str:
    """``app:1.2@sha256:...`` -> ``app:1.2``."""
    return image.partition("@")[0]


def digest_of(image: str) -> str | None:
    """The ``sha256:...`` an image is pinned to, or None."""
    return image.partition("@")[2] or None


def pinned(image: str, digest: str) -> str:
    """The image as the docker CLI pins it: the tag (``:latest`` when none) plus the digest."""
    return f"{canonical_image(without_digest(image), keep_digest=False)}@{digest}"


def short_digest(digest: str) -> str:
    """``sha256:`` and the first 12 hex digits, for humans: ``sha256:3f1c0a9b7e2d…``."""
    algorithm, _, value = digest.partition(":")
    return f"{algorithm}:{value[:12]}…" if len(value) > 12 else digest


def _runs_as_written(observed: ObservedState, key: str, image: str) -> str | None:
    """The image the service runs when it is ``image`` as written, pinned or not (else None).

    Both the label and the image itself must say so: ``docker service update --image`` by
    hand changes the image and leaves the label, and that is a change to undo.
    """
    current = observed.owned_services().get(key)
    if current is None or (current.raw_spec.get("Labels") or {}).get(STACK_IMAGE_LABEL) != image:
        return None
    container = (current.raw_spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    running = str(container.get("Image") or "")
    if canonical_image(without_digest(running), keep_digest=False) != canonical_image(
        without_digest(image), keep_digest=False
    ):
        return None
    return running


def images_to_resolve(spec: Spec, observed: ObservedState, mode: ResolveMode) -> list[str]:
    """The tags to look up in their registries, each once, in the spec's order."""
    if mode == "never":
        return []
    wanted: dict[str, None] = {}
    for key, service in spec.services.items():
        image = service.image
        if not image or digest_of(image) or "image" in service.x_converge.ignore:
            continue
        if mode == "changed" and _runs_as_written(observed, key, image) is not None:
            continue
        wanted[image] = None
    return list(wanted)


def service_images(
    spec: Spec, observed: ObservedState, digests: Mapping[str, str]
) -> dict[str, str]:
    """The ``ContainerSpec.Image`` to send for each service of the spec.

    Args:
        digests: tag as written -> the digest its registry answered (tags that were not
            resolved, or could not be, are absent).
    """
    images: dict[str, str] = {}
    for key, service in spec.services.items():
        image = service.image
        digest = digests.get(image)
        if digest is not None:
            images[key] = pinned(image, digest)
        else:
            images[key] = _runs_as_written(observed, key, image) or image
    return images


def pull_failure_hint(image: str, sent_credentials: bool | None) -> str:
    """What to do when nodes could not get ``image`` (the engine reports "No such image").

    Args:
        sent_credentials: True when credentials for its registry were sent, False when
            ``--with-registry-auth`` found none for it, None when it was not asked for.
    """
    registry = registry_of(image)
    shown = without_digest(image)
    if sent_credentials is None:
        return (
            f"image {shown} could not be pulled from registry {registry} without credentials: "
            f"if it is private, run `docker login {registry}` and apply with "
            "--with-registry-auth"
        )
    if not sent_credentials:
        return (
            f"image {shown}: --with-registry-auth found no credentials for registry "
            f"{registry} in the docker client config: run `docker login {registry}`"
        )
    return (
        f"image {shown} could not be pulled from registry {registry} with the credentials "
        f"sent: check the image's name and tag, and `docker login {registry}`"
    )
