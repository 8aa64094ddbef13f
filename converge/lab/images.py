"""The lab's test images, built locally without any registry.

Every image starts ``FROM scratch`` with Debian's static busybox and one symlink per applet,
so no ``RUN`` step (and no network) is needed:

    converge-lab/busybox:<busybox version>  busybox and its applets, CMD sh
    converge-lab/app:v1, converge-lab/app:v2
        busybox httpd on port 80 answering ``app=<version> hostname=<container> node=<$NODE>``
        (``/version`` answers the bare version; ``APP_STATUS=500`` makes ``/`` answer 500);
        a tiny init forwards SIGTERM, so stops are instant. Set ``NODE={{.Node.Hostname}}``
        in a service's env to learn the node.
    converge-lab/haproxy:<major.minor>
        Debian's haproxy binary plus every library ``ldd`` lists, config at
        /usr/local/etc/haproxy/haproxy.cfg, ``haproxy -W -db``, STOPSIGNAL SIGUSR1.

The images are built once on one node and saved as tarballs in the cache directory, keyed
by a digest of every input; each node then loads what it lacks. An image already present
with the same digest label is never rebuilt or reloaded.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import docker
import docker.errors
from docker.models.images import Image

from converge.errors import LabError
from converge.files import atomic_file
from converge.lab import system

__all__ = [
    "APP_IMAGES",
    "APP_V1",
    "APP_V2",
    "DIGEST_LABEL",
    "ImageContext",
    "ImageSet",
    "build_image_set",
    "ensure_loaded",
    "ensure_saved",
    "haproxy_image",
    "haproxy_tag",
    "parse_ldd",
    "push",
]

APP_V1 = "converge-lab/app:v1"
APP_V2 = "converge-lab/app:v2"
APP_IMAGES = (APP_V1, APP_V2)
DIGEST_LABEL = "converge.lab.inputs"
# Bump when the way images are made changes, so cached tarballs are rebuilt.
_RECIPE_VERSION = "1"
_APPLET_TARGET = "/bin/busybox"


@dataclass(frozen=True)
class ImageContext:
    """One image to build: its tag and its build context as a tarball."""

    tag: str
    context: bytes

    @property
    def file_name(self) -> str:
        return re.sub(r"[^A-Za-z0-9.]+", "-", self.tag) + ".tar"


@dataclass(frozen=True)
class ImageSet:
    """The lab's images in build order (the base first) and the digest of all their inputs."""

    images: tuple[ImageContext, ...]
    digest: str

    @property
    def tags(self) -> list[str]:
        return [image.tag for image in self.images]

    def haproxy_tag(self) -> str:
        return next(i.tag for i in self.images if i.tag.startswith("converge-lab/haproxy:"))


class _Context:
    """A deterministic tar build context (fixed owners and times, so digests are stable)."""

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        self._tar = tarfile.open(  # noqa: SIM115 - closed by finish()
            fileobj=self._buffer, mode="w", format=tarfile.GNU_FORMAT
        )
        self._dirs: set[str] = set()

    def _info(self, name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.mtime = 0
        return info

    def directory(self, name: str, mode: int = 0o755) -> None:
        parts = name.strip("/").split("/")
        for depth in range(1, len(parts) + 1):
            path = "/".join(parts[:depth])
            if path not in self._dirs:
                self._dirs.add(path)
                self._tar.addfile(
                    self._info(path, tarfile.DIRTYPE, 0o1777 if path == "rootfs/tmp" else mode)
                )

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self.directory(name.rsplit("/", 1)[0])
        info = self._info(name, tarfile.REGTYPE, mode)
        info.size = len(data)
        self._tar.addfile(info, io.BytesIO(data))

    def symlink(self, name: str, target: str) -> None:
        self.directory(name.rsplit("/", 1)[0])
        info = self._info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self._tar.addfile(info)

    def finish(self) -> bytes:
        self._tar.close()
        return self._buffer.getvalue()


def parse_ldd(output: str) -> list[str]:
    """The absolute library paths in ``ldd`` output (the vdso has none and is skipped)."""
    paths: list[str] = []
    for line in output.splitlines():
        line = line.strip()
        if "=>" in line:
            target = line.split("=>", 1)[1].strip().split(" (", 1)[0].strip()
        else:
            target = line.split(" (", 1)[0].strip()
        if target.startswith("/") and target not in paths:
            paths.append(target)
    return paths


def haproxy_tag(version_output: str) -> str:
    """``converge-lab/haproxy:<major.minor>`` from the first line of ``haproxy -v``."""
    match = re.search(r"version (\d+)\.(\d+)", version_output)
    if match is None:
        raise LabError(f"cannot read the haproxy version from {version_output[:60]!r}")
    return f"converge-lab/haproxy:{match.group(1)}.{match.group(2)}"


def haproxy_image() -> str:
    """The tag of the lab's HAProxy image on this machine (``converge-lab/haproxy:2.6``)."""
    system.check_tools({"haproxy": system.IMAGE_TOOLS["haproxy"]})
    return haproxy_tag(system.run([system.which("haproxy") or "haproxy", "-v"]))


def _asset(name: str) -> bytes:
    return (resources.files("converge.lab") / "assets" / name).read_bytes()


def _dockerfile(lines: Iterable[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def build_image_set() -> ImageSet:
    """Read the host's busybox and haproxy and make the build contexts of every lab image."""
    system.check_tools(system.IMAGE_TOOLS)
    busybox = Path(system.which("busybox") or "/bin/busybox")
    haproxy = Path(system.which("haproxy") or "/usr/sbin/haproxy")
    busybox_bytes = busybox.read_bytes()
    busybox_version = re.search(rb"BusyBox v(\d+\.\d+(?:\.\d+)?)", busybox_bytes)
    base_tag = (
        f"converge-lab/busybox:{busybox_version.group(1).decode() if busybox_version else 'latest'}"
    )
    if parse_ldd(system.run(["ldd", str(busybox)], check=False)):
        raise LabError(f"{busybox} is not static: install with `apt-get install busybox-static`")
    applets = system.run([str(busybox), "--list-full"]).split()
    libraries = parse_ldd(system.run(["ldd", str(haproxy)]))
    if not libraries:
        raise LabError(f"{haproxy} lists no libraries in ldd; is it the Debian package?")
    hap_tag = haproxy_tag(system.run([str(haproxy), "-v"]))
    haproxy_files = {str(haproxy): haproxy.read_bytes()}
    haproxy_files.update({lib: Path(lib).read_bytes() for lib in libraries})
    app_init = _asset("app-init.sh")
    haproxy_cfg = _asset("haproxy.cfg")

    digest = hashlib.sha256()
    digest.update(_RECIPE_VERSION.encode())
    for blob in (busybox_bytes, app_init, haproxy_cfg, *haproxy_files.values()):
        digest.update(hashlib.sha256(blob).digest())
    for name in (*applets, *haproxy_files, base_tag, hap_tag):
        digest.update(name.encode() + b"\0")
    inputs = digest.hexdigest()[:16]
    label = f"LABEL {DIGEST_LABEL}={inputs}"

    base = _Context()
    base.file("Dockerfile", _dockerfile(["FROM scratch", "COPY rootfs/ /", label, 'CMD ["sh"]']))
    base.file("rootfs/bin/busybox", busybox_bytes, 0o755)
    for applet in applets:
        if applet.lstrip("/") != "bin/busybox":
            base.symlink("rootfs/" + applet.lstrip("/"), _APPLET_TARGET)
    base.file(
        "rootfs/etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    base.file("rootfs/etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    base.directory("rootfs/tmp")
    base.directory("rootfs/root", 0o700)
    images = [ImageContext(base_tag, base.finish())]

    for tag in APP_IMAGES:
        version = tag.rsplit(":", 1)[1]
        app = _Context()
        app.file(
            "Dockerfile",
            _dockerfile(
                [
                    f"FROM {base_tag}",
                    "COPY init /init",
                    f"ENV APP_VERSION={version}",
                    label,
                    "EXPOSE 80",
                    'ENTRYPOINT ["/init"]',
                ]
            ),
        )
        app.file("init", app_init, 0o755)
        images.append(ImageContext(tag, app.finish()))

    proxy = _Context()
    proxy.file(
        "Dockerfile",
        _dockerfile(
            [
                f"FROM {base_tag}",
                "COPY rootfs/ /",
                label,
                "EXPOSE 80",
                # haproxy ignores SIGTERM as PID 1 in master-worker mode: USR1 is its soft stop.
                "STOPSIGNAL SIGUSR1",
                'CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]',
            ]
        ),
    )
    for path, data in haproxy_files.items():
        proxy.file("rootfs" + path, data, 0o755)
    proxy.file("rootfs/usr/local/etc/haproxy/haproxy.cfg", haproxy_cfg)
    proxy.directory("rootfs/var/lib/haproxy")
    images.append(ImageContext(hap_tag, proxy.finish()))
    return ImageSet(tuple(images), inputs)


def _present(client: docker.DockerClient, tag: str, digest: str) -> bool:
    try:
        image: Image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    labels = image.labels or {}
    return labels.get(DIGEST_LABEL) == digest


def _cache_dir(cache_dir: Path, image_set: ImageSet) -> Path:
    return cache_dir / "images" / image_set.digest


def cached_tarballs(image_set: ImageSet, cache_dir: Path) -> dict[str, Path] | None:
    """The cached tarball of every image, or None if any is missing."""
    folder = _cache_dir(cache_dir, image_set)
    tarballs = {image.tag: folder / image.file_name for image in image_set.images}
    return tarballs if all(path.is_file() for path in tarballs.values()) else None


def ensure_saved(
    client: docker.DockerClient, image_set: ImageSet, cache_dir: Path
) -> dict[str, Path]:
    """Build the images on ``client``'s engine (unless cached) and save them as tarballs.

    Returns the tarball of each image tag. Older cached builds are removed.
    """
    cached = cached_tarballs(image_set, cache_dir)
    if cached is not None:
        return cached
    folder = _cache_dir(cache_dir, image_set)
    folder.mkdir(parents=True, exist_ok=True)
    tarballs: dict[str, Path] = {}
    for image in image_set.images:
        if not _present(client, image.tag, image_set.digest):
            try:
                client.images.build(
                    fileobj=io.BytesIO(image.context),
                    custom_context=True,
                    tag=image.tag,
                    rm=True,
                    forcerm=True,
                    pull=False,
                )
            except (docker.errors.BuildError, docker.errors.APIError) as error:
                raise LabError(f"failed to build {image.tag}: {error}") from error
        target = folder / image.file_name
        # The cache is shared by every lab on the machine: a partial file of its own per writer.
        with atomic_file(target) as out:
            for chunk in client.images.get(image.tag).save(named=image.tag):
                out.write(chunk)
        tarballs[image.tag] = target
    for other in folder.parent.iterdir():
        if other != folder and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)  # another lab may be clearing it too
    return tarballs


def ensure_loaded(
    client: docker.DockerClient, image_set: ImageSet, tarballs: dict[str, Path]
) -> list[str]:
    """Load every image ``client``'s engine lacks; returns the tags that were loaded."""
    loaded = []
    for image in image_set.images:
        if _present(client, image.tag, image_set.digest):
            continue
        try:
            client.images.load(tarballs[image.tag].read_bytes())
        except docker.errors.APIError as error:
            raise LabError(f"failed to load {image.tag}: {error}") from error
        loaded.append(image.tag)
    return loaded


def push(
    client: docker.DockerClient,
    source: str,
    target: str,
    credentials: dict[str, str],
) -> str:
    """Push the local image ``source`` as ``target`` (``registry/repository:tag``) and drop the
    ``target`` tag again, so that no node has it before pulling it; returns its digest.

    Raises:
        LabError: the registry refused or did not answer.
    """
    repository, _, tag = target.rpartition(":")
    try:
        client.api.tag(source, repository, tag)
        digest = ""
        try:
            for line in client.api.push(
                repository, tag, auth_config=credentials, stream=True, decode=True
            ):
                if "error" in line:
                    raise LabError(f"failed to push {target}: {line['error']}")
                digest = (line.get("aux") or {}).get("Digest", digest)
        finally:
            client.api.remove_image(target, noprune=True)
    except docker.errors.APIError as error:
        raise LabError(f"failed to push {target}: {error}") from error
    return str(digest)
