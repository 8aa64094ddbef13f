"""The docker CLI's contexts, read where and how the docker CLI reads them (no docker import).

The CLI keeps its configuration in ``$DOCKER_CONFIG``, or else ``~/.docker``: ``config.json``
names the current context (``docker context use``); ``contexts/meta/<sha256 of the name>/
meta.json`` holds each context's endpoints, and ``contexts/tls/<the same>/docker/`` its TLS
files. docker-py's own reader looks next to the first ``config.json`` it finds (in
``~/.docker`` when ``$DOCKER_CONFIG`` has none), and in the working directory when there is
none at all: a context made by ``docker context create``, which writes no ``config.json``, was
"not found" there.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from converge.errors import EngineError

__all__ = ["DEFAULT_CONTEXT", "DockerContext", "config_dir", "current_context_name", "load_context"]

DEFAULT_CONTEXT = "default"
"""The context that is no stored context: the local socket (or ``DOCKER_HOST``)."""


@dataclass(frozen=True)
class DockerContext:
    """One stored context's docker endpoint: its host as written, and its TLS settings."""

    name: str
    host: str
    skip_tls_verify: bool = False
    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

    @property
    def uses_tls(self) -> bool:
        """As the docker CLI decides: TLS files stored, or verification explicitly skipped."""
        return self.skip_tls_verify or any(
            path is not None for path in (self.ca_cert, self.client_cert, self.client_key)
        )


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$DOCKER_CONFIG``, or ``~/.docker`` (``~`` is ``$HOME``, as for the docker CLI)."""
    environ = os.environ if environ is None else environ
    if environ.get("DOCKER_CONFIG"):
        return Path(environ["DOCKER_CONFIG"])
    home = environ.get("HOME")
    return (Path(home) if home else Path.home()) / ".docker"


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise EngineError(f"cannot read {what} {path}: {error}") from None


def current_context_name(environ: Mapping[str, str] | None = None) -> str:
    """The context ``docker context use`` chose, or ``default``.

    Raises:
        EngineError: the docker CLI's config.json is unreadable.
    """
    path = config_dir(environ) / "config.json"
    document = _read_json(path, "the docker CLI's config")
    if document is None:
        return DEFAULT_CONTEXT
    if not isinstance(document, dict):
        raise EngineError(f"cannot read the docker CLI's config {path}: not a JSON object")
    return str(document.get("currentContext") or DEFAULT_CONTEXT)


def load_context(name: str, environ: Mapping[str, str] | None = None) -> DockerContext | None:
    """The stored context ``name``, or None when there is no such context.

    Raises:
        EngineError: its meta.json is unreadable or has no docker endpoint.
    """
    identity = hashlib.sha256(name.encode()).hexdigest()
    contexts = config_dir(environ) / "contexts"
    path = contexts / "meta" / identity / "meta.json"
    document = _read_json(path, f"docker context {name!r}:")
    if document is None:
        return None
    endpoint = document.get("Endpoints", {}).get("docker") if isinstance(document, dict) else None
    if not isinstance(endpoint, dict) or not endpoint.get("Host"):
        raise EngineError(f"docker context {name!r} ({path}) has no docker endpoint")
    tls = contexts / "tls" / identity / "docker"

    def stored(filename: str) -> Path | None:
        return tls / filename if (tls / filename).is_file() else None

    return DockerContext(
        name=name,
        host=str(endpoint["Host"]),
        skip_tls_verify=bool(endpoint.get("SkipTLSVerify", False)),
        ca_cert=stored("ca.pem"),
        client_cert=stored("cert.pem"),
        client_key=stored("key.pem"),
    )
