"""The contents of a spec's secrets and configs, read from their sources (I/O).

Compose's sources (``file``, ``environment``, ``content``) and converge's own under
``x-converge``: ``age`` (an age-encrypted file and an identity file, decrypted in process by
pyrage) and ``command`` (a program's standard output: ``sops -d``, ``vault kv get -field``,
``pass show``, 1Password's ``op read``). Everything is read when a plan is made, before any
write: a missing file, a failing command or a wrong key stops there with an error naming the
secret, and nothing is written. External objects have no content here.
"""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

from converge.errors import SourceError
from converge.fileobjects import FileKind
from converge.loader import LoadedSpec
from converge.spec import FileObjectSpec

__all__ = ["COMMAND_TIMEOUT", "read_sources", "with_sources"]

COMMAND_TIMEOUT = 60.0
"""Seconds a source command may run before it counts as failed."""

# The engine's limits (swarmkit's controlapi: data must be larger than 0 and less than these),
# enforced only when the object is created, after nodes and networks were written.
_ENGINE_LIMITS: dict[str, int] = {"secret": 500 * 1024, "config": 1000 * 1024}

# Only the last lines of a failing command's error output are shown: enough for the reason.
_STDERR_LINES = 3


def read_sources(loaded: LoadedSpec) -> dict[tuple[str, str], bytes]:
    """Read every secret's and config's content from its source, by (kind, key).

    Raises:
        SourceError: a source cannot be read, naming the secret or config and why.
    """
    contents: dict[tuple[str, str], bytes] = {}
    for key, declared in loaded.spec.secrets.items():
        if not declared.external:
            contents["secret", key] = _within_limits(
                "secret", key, _read(loaded, "secret", key, declared)
            )
    for key, declared in loaded.spec.configs.items():
        if not declared.external:
            contents["config", key] = _within_limits(
                "config", key, _read(loaded, "config", key, declared)
            )
    return contents


def _within_limits(kind: FileKind, key: str, data: bytes) -> bytes:
    """``data``, when the engine would take it (it refuses an empty one, or one too large)."""
    limit = _ENGINE_LIMITS[kind]
    if not data:
        raise SourceError(f"{kind} {key}: empty; the engine refuses an empty {kind}")
    if len(data) >= limit:
        raise SourceError(
            f"{kind} {key}: {_kibibytes(len(data))}; the engine refuses a {kind} of "
            f"{_kibibytes(limit)} or more"
        )
    return data


def _kibibytes(size: int) -> str:
    return f"{size / 1024:.1f} KiB" if size % 1024 else f"{size >> 10} KiB"


def with_sources(loaded: LoadedSpec) -> LoadedSpec:
    """``loaded`` with its secrets' and configs' contents read (once: kept when there).

    Raises:
        SourceError: a source cannot be read.
    """
    if loaded.contents is not None:
        return loaded
    return replace(loaded, contents=read_sources(loaded))


def _read(loaded: LoadedSpec, kind: FileKind, key: str, declared: FileObjectSpec) -> bytes:
    what = f"{kind} {key}"
    extension = declared.x_converge
    if declared.content is not None:
        return declared.content.encode()
    if declared.environment is not None:
        value = loaded.source_variables.get(declared.environment)
        if value is None:
            raise SourceError(f"{what}: the variable {declared.environment} is not set")
        return value.encode()
    if declared.file is not None:
        return _read_file(what, declared.file)
    if extension.age is not None:
        return _decrypt(what, extension.age.file, extension.age.identity)
    if extension.command is not None:
        return _run(what, extension.command, loaded.working_dir)
    raise SourceError(f"{what}: no source to read")  # the spec's validation prevents it


def _read_file(what: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise SourceError(f"{what}: cannot read {path}: {error.strerror or error}") from None


def _decrypt(what: str, path: str, identity_path: str) -> bytes:
    import pyrage  # type: ignore[import-untyped,unused-ignore]

    encrypted = _read_file(what, path)
    try:
        text = Path(identity_path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise SourceError(
            f"{what}: cannot read the identity file {identity_path}: {reason}"
        ) from None
    identities = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("AGE-SECRET-KEY-"):
            continue  # comments (# public key: ...) and blank lines
        try:
            identities.append(pyrage.x25519.Identity.from_str(line))
        except Exception:
            raise SourceError(
                f"{what}: the identity file {identity_path} holds a malformed age key"
            ) from None
    if not identities:
        raise SourceError(f"{what}: the identity file {identity_path} holds no age key")
    try:
        return bytes(pyrage.decrypt(encrypted, identities))
    except Exception as error:
        raise SourceError(
            f"{what}: cannot decrypt {path} with the identity in {identity_path} "
            f"(wrong key, or not an age file): {error}"
        ) from None


def _run(what: str, command: str | tuple[str, ...], working_dir: str) -> bytes:
    argv = ["sh", "-c", command] if isinstance(command, str) else list(command)
    shown = command if isinstance(command, str) else " ".join(command)
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            cwd=working_dir or None,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except OSError as error:
        raise SourceError(f"{what}: cannot run {shown!r}: {error.strerror or error}") from None
    except subprocess.TimeoutExpired:
        raise SourceError(
            f"{what}: the command {shown!r} did not finish within {COMMAND_TIMEOUT:.0f}s"
        ) from None
    if done.returncode != 0:
        errors = done.stderr.decode(errors="replace").strip().splitlines()[-_STDERR_LINES:]
        reason = ": " + " / ".join(errors) if errors else ""
        raise SourceError(
            f"{what}: the command {shown!r} failed with exit code {done.returncode}{reason}"
        )
    return bytes(done.stdout)
