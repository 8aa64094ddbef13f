"""The cyclic garbage collector paused while converge builds large acyclic structures.

Loading a spec and planning build hundreds of thousands of small dicts, lists and models; none
of them form a cycle that must be freed before the step ends, yet the collector walks every
one of them again each time enough have been allocated: half to two thirds of the time at
10,000 services. Reference counting still frees everything as usual; the collector runs
again once the step is over.

In the ``converge`` command's own process (``own_process``, called by ``converge.__main__``),
what a step marked ``keep`` built is frozen instead (``gc.freeze``): a loaded spec lives until
the command ends, and the first collection after the load would otherwise walk all of it once
more (60-90 ms at 10,000 services) to find nothing to free.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused", "own_process"]

_owned = False


def own_process() -> None:
    """Say that converge owns this process (the command, not a library caller): what a
    ``keep`` step builds may be frozen out of the collector's reach for good."""
    global _owned
    _owned = True


@contextmanager
def collector_paused(keep: bool = False) -> Iterator[None]:
    """Pause the cyclic collector for the block; restore it as it was (nesting is fine).

    Args:
        keep: what the block builds lives as long as the process; in the command's own process
            (``own_process``), everything alive when the block ends is frozen (``gc.freeze``)
            rather than left for the collector's next pass to walk. Objects frozen are still
            freed when no longer referenced; only cycles among them would stay.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if keep and _owned:
                gc.freeze()
            gc.enable()
