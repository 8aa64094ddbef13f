"""Files converge writes for others to read: always whole, never half-written."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_file", "atomic_write"]


@contextmanager
def atomic_file(path: str | os.PathLike[str], mode: int | None = None) -> Iterator[BinaryIO]:
    """A binary file that appears at ``path`` whole when the block ends, or not at all.

    It is written as a temporary file in the same directory (so that several writers of the
    same path never share one), flushed to disk, then renamed over ``path``; an error or an
    interruption in the block removes it. ``mode`` sets the file's permissions (``mkstemp``
    creates 0600; a collector running as another user needs more).

    Raises:
        OSError: the directory is missing or not writable (callers name the file's purpose).
    """
    target = Path(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike[str], text: str, mode: int | None = None) -> None:
    """Write ``text`` to ``path`` atomically (``atomic_file``): readers see the old content or
    the new one, never a part.

    Raises:
        OSError: the directory is missing or not writable (callers name the file's purpose).
    """
    with atomic_file(path, mode) as handle:
        handle.write(text.encode("utf-8"))
