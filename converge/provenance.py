"""Where a spec comes from: the git commit of the work tree its files live in.

Read with ``git`` itself (``rev-parse HEAD``, ``status --porcelain``) in the directory of the
first spec file. Anything that goes wrong (no git, not a work tree, a repository owned by
another user) means "unknown", never an error: a drift check must not fail over provenance.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

__all__ = ["git_revision"]

_TIMEOUT = 10.0


def _git_environment() -> dict[str, str]:
    # A caller inside a git hook or `git rebase -x` has GIT_DIR and friends set: they would
    # point git at that repository instead of the one the spec lives in.
    environment = {name: value for name, value in os.environ.items() if not name.startswith("GIT_")}
    environment["GIT_OPTIONAL_LOCKS"] = "0"  # status must not take the index lock
    return environment


def _git(directory: Path, *arguments: str) -> str | None:
    try:
        completed = subprocess.run(
            ["git", "-C", str(directory), *arguments],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
            env=_git_environment(),
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout if completed.returncode == 0 else None


def git_revision(files: Sequence[str | os.PathLike[str]]) -> tuple[str | None, bool | None]:
    """The commit checked out where the first spec file lives, and whether any spec file
    differs from it; ``(None, None)`` outside a git work tree."""
    if not files:
        return None, None
    paths = [Path(file).resolve() for file in files]
    directory = paths[0].parent
    head = _git(directory, "rev-parse", "--verify", "HEAD")
    if head is None or not head.strip():
        return None, None
    status = _git(directory, "status", "--porcelain", "--", *(str(path) for path in paths))
    return head.strip(), None if status is None else bool(status.strip())
