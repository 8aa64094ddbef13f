"""converge's own version: the one place that reads it.

The installed distribution's metadata is the truth (a wheel built from a tagged release); the
package's ``__version__`` is the fallback for a source tree run without installing it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from importlib import metadata

import converge

__all__ = ["converge_version"]

# Distribution names converge has been published under, newest first. A name is taken only if
# its console script is converge's own: PyPI's "converge" is an unrelated project.
_DISTRIBUTIONS = ("converge",)
_ENTRY_POINT = "converge.cli:main"


def _is_ours(distribution: metadata.Distribution) -> bool:
    return any(
        point.group == "console_scripts" and point.value == _ENTRY_POINT
        for point in distribution.entry_points
    )


def _candidates() -> Iterator[str]:
    yield from _DISTRIBUTIONS
    # A renamed distribution still provides the import package: found by that (slower).
    yield from metadata.packages_distributions().get("converge", [])


@functools.cache
def converge_version() -> str:
    """The version of the converge that runs, e.g. ``0.1.0``."""
    for name in _candidates():
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if _is_ours(distribution) and distribution.version:
            return distribution.version
    return converge.__version__
