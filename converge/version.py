"""The version of converge, for ``--version`` and the documents converge writes.

``converge.__version__`` is the one place the version is written: the package metadata
(``pyproject.toml``, distribution ``converge-swarm``) reads it from there when a wheel is built, so
the two cannot disagree, not even in an editable install whose metadata was made earlier.
"""

from __future__ import annotations

from converge import __version__

__all__ = ["DISTRIBUTION", "converge_version"]

DISTRIBUTION = "converge-swarm"
"""The name to ``pip install``: ``converge`` on PyPI is an unrelated project."""


def converge_version() -> str:
    """This converge's version, e.g. ``0.1.0``."""
    return __version__
