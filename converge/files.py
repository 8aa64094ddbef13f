"""Files converge writes for others to read: always whole, never half-written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(path: str | os.PathLike[str], text: str, mode: int | None = None) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file in the same directory, renamed.

    Readers see the old content or the new one, never a part. ``mode`` sets the file's
    permissions (``mkstemp`` creates 0600; a collector running as another user needs more).

    Raises:
        OSError: the directory is missing or not writable (callers name the file's purpose).
    """
    target = Path(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
