"""Waiting on a condition: one poll loop with jittered backoff, and a clock tests can replace."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

__all__ = ["Backoff", "Clock", "PollTimeoutError", "SystemClock", "backoff_delays", "poll_until"]

_T = TypeVar("_T")


class Clock(Protocol):
    """Monotonic time and sleeping: the system's, or a fake that advances instantly in tests."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class PollTimeoutError(Exception):
    """The condition did not hold before the deadline; callers turn it into their own error."""


@dataclass(frozen=True)
class Backoff:
    """Delays that start short, grow by ``factor`` up to ``maximum``, each jittered by ±``jitter``
    so that several waiters do not poll the engine in lockstep."""

    initial: float = 0.1
    maximum: float = 1.0
    factor: float = 1.5
    jitter: float = 0.2


def backoff_delays(backoff: Backoff = Backoff(), rng: random.Random | None = None) -> _Delays:
    """An endless iterator of jittered, growing delays."""
    return _Delays(backoff, rng or random.Random())


class _Delays:
    def __init__(self, backoff: Backoff, rng: random.Random) -> None:
        self._backoff = backoff
        self._rng = rng
        self._next = backoff.initial

    def __iter__(self) -> _Delays:
        return self

    def __next__(self) -> float:
        base = self._next
        self._next = min(base * self._backoff.factor, self._backoff.maximum)
        spread = base * self._backoff.jitter
        return max(0.0, base + self._rng.uniform(-spread, spread))


def poll_until(
    probe: Callable[[], _T | None],
    *,
    timeout: float,
    clock: Clock | None = None,
    backoff: Backoff = Backoff(),
) -> _T:
    """Call ``probe`` until it returns something other than None or False.

    The probe always runs at least once, and once more at the deadline, so a condition that
    became true during the last sleep is not missed.

    Returns:
        the probe's first truthy-enough value.

    Raises:
        PollTimeoutError: ``timeout`` seconds passed and the probe still returned None/False.
    """
    clock = clock or SystemClock()
    deadline = clock.monotonic() + timeout
    delays = backoff_delays(backoff)
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            raise PollTimeoutError(f"still not true after {timeout:g}s")
        clock.sleep(min(next(delays), remaining))
