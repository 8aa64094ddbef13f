"""Secrets and configs: versions, the fingerprint, and which version the services use (pure).

Swarm secrets and configs are immutable. A spec's secret ``db_password`` is first created as
docker stack deploy names it (``<stack>_db_password``, or its ``name``); when its content
changes, converge creates a new version under a content-derived name
(``<stack>_db_password_<10 hex>``), points every service that uses it at the new version (same
target path, so the services roll), and once they converged removes the old versions no
service uses, keeping ``x-converge.keep`` of them (default 1) for rollback.

Each version carries two labels of converge's besides the stack's: ``io.converge.version-of``
(the spec key it is a version of) and, on secrets, ``io.converge.fingerprint``. Secret data
cannot be read back from the engine, so the fingerprint is how converge knows what a secret
holds: a salted scrypt hash (a fresh random salt per version, stored in the label beside the
hash), slow on purpose, so that whoever can read labels cannot confirm a guessed value
cheaply. The name's suffix of a secret is a truncated scrypt hash too. Configs, whose data the
Engine API returns, are compared by content. A secret without a fingerprint (made by stack
deploy or by hand) cannot be verified: it is reported and left alone unless the operator asks
to rotate it (``--rotate KEY``).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal

from converge.naming import (
    FINGERPRINT_LABEL,
    VERSION_OF_LABEL,
    is_internal_label,
    object_name,
    owned_by,
    ownership_labels,
)
from converge.spec import FileObjectSpec, Spec
from converge.state import ObservedFileObject, ObservedState

__all__ = [
    "Contents",
    "FileKind",
    "FileRefs",
    "FileVersion",
    "VersionStatus",
    "create_labels",
    "file_refs",
    "fingerprint",
    "fingerprint_matches",
    "resolve_versions",
    "services_using",
    "slow_digest",
    "stack_name",
    "version_base",
    "version_name",
    "versions_of",
]

FileKind = Literal["secret", "config"]
Contents = Mapping[tuple[str, str], bytes]
"""Each secret's and config's content by (kind, key), as ``converge.sources`` reads them."""
FileRefs = Mapping[tuple[FileKind, str], tuple[str, str]]
"""The version (swarm name, id) a service references for each secret and config."""
VersionStatus = Literal["unchanged", "create", "rotate", "unverifiable", "external", "missing"]
"""``create``: the first version (stack deploy's name); ``rotate``: a new version beside the old
ones; ``unverifiable``: a secret without converge's fingerprint, left alone; ``missing``: an
external one that does not exist."""

# scrypt's cost: 16 MiB and some 50 ms per hash; a guess costs an attacker the same.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_SALT_BYTES = 16
_SUFFIX_CHARS = 10
_VERSION_SUFFIX = re.compile(f"_[0-9a-f]{{{_SUFFIX_CHARS}}}$")


def _scrypt(data: bytes, salt: bytes, n: int = _SCRYPT_N, r: int = _SCRYPT_R, p: int = 1) -> bytes:
    return hashlib.scrypt(data, salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * n * r + 2**20, dklen=32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@functools.lru_cache(maxsize=64)
def slow_digest(data: bytes, salt: bytes) -> str:
    """scrypt of ``data`` with ``salt``, as 64 hex digits: a digest that confirms no guess of a
    secret it covers cheaply (computed once per process for the same input: an apply plans
    more than once)."""
    return _scrypt(data, salt).hex()


def fingerprint(data: bytes, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$<salt>$<hash>`` of ``data``, with a fresh random salt unless given."""
    salt = os.urandom(_SALT_BYTES) if salt is None else salt
    digest = _scrypt(data, salt)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def fingerprint_matches(label: str, data: bytes) -> bool:
    """Whether a fingerprint label was made from ``data`` (False for one of another form)."""
    return _fingerprint_matches(label, data)


# A plan, and each service write of an apply, resolve the versions again: each (label, value)
# pair is hashed once per process, not once per call.
@functools.lru_cache(maxsize=256)
def _fingerprint_matches(label: str, data: bytes) -> bool:
    parts = label.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, expected = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        return False
    # Bounded: a label someone else wrote must not make converge hash for minutes.
    if not (2 <= n <= 2**20 and 1 <= r <= 32 and p == 1):
        return False
    return hmac.compare_digest(_scrypt(data, salt, n, r, p), expected)


def stack_name(spec: Spec, kind: FileKind, key: str) -> str:
    """The name docker stack deploy gives a secret or config: its ``name``, ``<stack>_<key>``,
    or for an external one without ``name`` the key itself."""
    declared = _declared(spec, kind)[key]
    if declared.name:
        return declared.name
    return key if declared.external else object_name(spec.stack, key)


def version_name(spec: Spec, kind: FileKind, key: str, data: bytes) -> str:
    """The name of a new version holding ``data``: stack deploy's name plus a suffix derived
    from the content (for a secret through scrypt, salted with the name, so it confirms no
    guess cheaply; for a config its sha256, as its data is readable anyway)."""
    base = stack_name(spec, kind, key)
    declared = _declared(spec, kind)[key]
    labels = "\0".join(f"{name}={value}" for name, value in sorted(declared.labels.items()))
    material = b"\0".join([data, (declared.template_driver or "").encode(), labels.encode()])
    if kind == "secret":
        suffix = _scrypt(material, b"converge-version:" + base.encode()).hex()
    else:
        suffix = hashlib.sha256(material).hexdigest()
    return f"{base}_{suffix[:_SUFFIX_CHARS]}"


def version_base(item: ObservedFileObject) -> str:
    """The name ``item``'s first version has (``stack_name``): its own, less the suffix
    ``version_name`` gave it when converge made it as a new version."""
    if VERSION_OF_LABEL in item.labels:
        return _VERSION_SUFFIX.sub("", item.name)
    return item.name


def create_labels(
    spec: Spec, kind: FileKind, key: str, data: bytes, salt: bytes | None = None
) -> dict[str, str]:
    """The labels of a new version: the spec's, the stack's, converge's key (and fingerprint)."""
    declared = _declared(spec, kind)[key]
    labels = {
        **dict(declared.labels),
        **ownership_labels(spec.stack),
        VERSION_OF_LABEL: key,
    }
    if kind == "secret":
        labels[FINGERPRINT_LABEL] = fingerprint(data, salt)
    return labels


@dataclass(frozen=True)
class FileVersion:
    """Which version of a declared secret or config the services are to use."""

    kind: FileKind
    key: str
    name: str
    """The swarm name of that version (new or existing)."""
    status: VersionStatus
    observed_id: str | None = None
    collision: bool = False
    """An object of ``name`` exists that the stack does not own."""


def _declared(spec: Spec, kind: FileKind) -> Mapping[str, FileObjectSpec]:
    return spec.secrets if kind == "secret" else spec.configs


def _observed(observed: ObservedState, kind: FileKind) -> tuple[ObservedFileObject, ...]:
    return observed.secrets if kind == "secret" else observed.configs


def versions_of(
    spec: Spec, observed: ObservedState, kind: FileKind, key: str
) -> list[ObservedFileObject]:
    """The stack's versions of ``key``: marked by converge, or named as stack deploy names it."""
    base = stack_name(spec, kind, key) if key in _declared(spec, kind) else None
    return [
        item
        for item in _observed(observed, kind)
        if owned_by(item.labels, spec.stack)
        and (item.labels.get(VERSION_OF_LABEL) == key or (base is not None and item.name == base))
    ]


def _same(kind: FileKind, item: ObservedFileObject, data: bytes, declared: FileObjectSpec) -> bool:
    if (item.templating or None) != declared.template_driver:
        return False
    user_labels = {k: v for k, v in item.labels.items() if not is_internal_label(k)}
    if user_labels != dict(declared.labels):
        return False
    if kind == "config":
        return item.data == data
    label = item.labels.get(FINGERPRINT_LABEL)
    return label is not None and fingerprint_matches(label, data)


def services_using(observed: ObservedState, kind: FileKind) -> dict[str, set[str]]:
    """Object id -> names of the services (of any owner) whose spec references it."""
    field, id_field = ("Secrets", "SecretID") if kind == "secret" else ("Configs", "ConfigID")
    users: dict[str, set[str]] = {}
    for service in observed.services:
        container = (service.raw_spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
        for reference in container.get(field) or []:
            users.setdefault(reference.get(id_field, ""), set()).add(service.name)
    return users


def resolve_versions(
    spec: Spec,
    observed: ObservedState,
    contents: Contents | None,
    rotate: Collection[str] = (),
) -> dict[tuple[FileKind, str], FileVersion]:
    """For every declared secret and config, the version its services are to use.

    Args:
        contents: each object's content by (kind, key); None when not read (``status``,
            size checks): then the version in use (or stack deploy's name) is kept.
        rotate: secret keys to give a new version even when their current one cannot be
            verified (made without converge's fingerprint).
    """
    result: dict[tuple[FileKind, str], FileVersion] = {}
    kinds: tuple[FileKind, ...] = ("secret", "config")
    for kind in kinds:
        if not _declared(spec, kind):
            continue  # nothing to resolve: spare the walk over every service
        users = services_using(observed, kind)
        by_name = {item.name: item for item in _observed(observed, kind)}
        for key, declared in _declared(spec, kind).items():
            base = stack_name(spec, kind, key)
            if declared.external:
                found = by_name.get(base)
                status: VersionStatus = "external" if found is not None else "missing"
                result[kind, key] = FileVersion(
                    kind, key, base, status, found.id if found else None
                )
                continue
            versions = versions_of(spec, observed, kind, key)
            # Prefer what the services use now, then stack deploy's name, then the newest.
            versions.sort(
                key=lambda item: (item.id in users, item.name == base, item.version),
                reverse=True,
            )
            data = None if contents is None else contents.get((kind, key))
            if data is None:
                chosen = versions[0] if versions else None
                result[kind, key] = FileVersion(
                    kind,
                    key,
                    chosen.name if chosen else base,
                    "unchanged" if chosen else "create",
                    chosen.id if chosen else None,
                    collision=chosen is None and base in by_name,
                )
                continue
            matching = [item for item in versions if _same(kind, item, data, declared)]
            if matching:
                result[kind, key] = FileVersion(
                    kind, key, matching[0].name, "unchanged", matching[0].id
                )
                continue
            # Only the version in use decides: an unverifiable old one kept for rollback does not.
            current = versions[0] if versions else None
            if (
                current is not None
                and kind == "secret"
                and FINGERPRINT_LABEL not in current.labels
                and key not in rotate
            ):
                result[kind, key] = FileVersion(kind, key, current.name, "unverifiable", current.id)
                continue
            if not versions:
                result[kind, key] = FileVersion(
                    kind, key, base, "create", collision=base in by_name
                )
                continue
            name = version_name(spec, kind, key, data)
            result[kind, key] = FileVersion(kind, key, name, "rotate", collision=name in by_name)
    return result


def file_refs(
    versions: Mapping[tuple[FileKind, str], FileVersion],
) -> dict[tuple[FileKind, str], tuple[str, str]]:
    """What services reference: each version's name and id ("" until it is created)."""
    return {where: (version.name, version.observed_id or "") for where, version in versions.items()}
