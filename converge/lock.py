"""A per-stack lock kept in the swarm itself, so it works across CI runners and machines.

The lock is a swarm config object named ``converge-lock-<stack>``: creating a config whose name
exists fails, so creation is an atomic test-and-set in the swarm's own store. Its labels say who
holds it, since when, and until when; a lock past its expiry is stale and is taken over.
``converge unlock STACK`` removes a lock by hand.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from converge.engine import Engine
from converge.errors import AlreadyExistsError, LockError, NotFoundError
from converge.naming import LOCK_LABEL_PREFIX, STACK_LABEL, lock_name
from converge.polling import Backoff, Clock, PollTimeoutError, SystemClock, poll_until

__all__ = ["LockInfo", "acquire", "read_lock", "stack_lock", "unlock"]


@dataclass(frozen=True)
class LockInfo:
    stack: str
    owner: str
    since: datetime
    expires: datetime
    config_id: str

    def describe(self) -> str:
        return (
            f"{self.owner} since {self.since:%Y-%m-%d %H:%M:%S}Z (expires {self.expires:%H:%M:%S}Z)"
        )


def _owner() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


def read_lock(engine: Engine, stack: str) -> LockInfo | None:
    """The current holder of ``stack``'s lock, if any."""
    for config in engine.configs({"name": lock_name(stack)}):
        spec = config.get("Spec") or {}
        if spec.get("Name") != lock_name(stack):
            continue
        labels = spec.get("Labels") or {}
        return LockInfo(
            stack=stack,
            owner=labels.get(f"{LOCK_LABEL_PREFIX}owner", "unknown"),
            since=_parse_time(labels.get(f"{LOCK_LABEL_PREFIX}since")),
            expires=_parse_time(labels.get(f"{LOCK_LABEL_PREFIX}expires")),
            config_id=config["ID"],
        )
    return None


def _parse_time(text: str | None) -> datetime:
    try:
        return datetime.fromisoformat(text or "")
    except ValueError:
        return datetime.fromtimestamp(0, UTC)


def acquire(
    engine: Engine,
    stack: str,
    *,
    wait: float,
    hold_for: float,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    poll: float = 1.0,
    on_wait: Callable[[LockInfo], None] = lambda holder: None,
    clock: Clock | None = None,
) -> LockInfo:
    """Take ``stack``'s lock, waiting up to ``wait`` seconds for its holder.

    Args:
        hold_for: seconds after which the lock counts as stale (set it above the apply timeout).
        now: wall-clock time, for the lock's timestamps and its expiry.
        poll: the longest pause between two attempts while waiting.
        clock: measures the wait and sleeps (the system's by default).

    Raises:
        LockError: still held by someone else after ``wait`` seconds; names the holder.
    """
    clock = clock or SystemClock()
    deadline = clock.monotonic() + wait
    holders: list[LockInfo] = []  # seen while waiting: the first is announced, the last named

    def attempt() -> LockInfo | None:
        while True:
            started = now()
            expires = started + timedelta(seconds=hold_for)
            labels = {
                f"{LOCK_LABEL_PREFIX}owner": _owner(),
                f"{LOCK_LABEL_PREFIX}since": started.isoformat(),
                f"{LOCK_LABEL_PREFIX}expires": expires.isoformat(),
                STACK_LABEL: stack,
            }
            try:
                config_id = engine.create_config(lock_name(stack), b"converge lock\n", labels)
                owner = labels[f"{LOCK_LABEL_PREFIX}owner"]
                return LockInfo(stack, owner, started, expires, config_id)
            except AlreadyExistsError:
                pass
            holder = read_lock(engine, stack)
            if holder is None:
                continue  # released between our create and our read: try again at once
            if holder.expires < now():
                # Stale: its apply died without releasing. Remove exactly that config and retry.
                _remove_quietly(engine, holder)
                continue
            if not holders and clock.monotonic() < deadline:
                on_wait(holder)
            holders.append(holder)
            return None

    try:
        return poll_until(
            attempt, timeout=wait, clock=clock, backoff=Backoff(initial=poll / 4, maximum=poll)
        )
    except PollTimeoutError:
        raise LockError(
            f"stack {stack} is locked by {holders[-1].describe()}; waited {wait:g}s "
            f"(--lock-timeout). If that apply is gone, run: converge unlock {stack}"
        ) from None


def _remove_quietly(engine: Engine, holder: LockInfo) -> None:
    with suppress(NotFoundError):
        engine.remove_config(lock_name(holder.stack), holder.config_id)


def unlock(engine: Engine, stack: str) -> LockInfo | None:
    """Remove ``stack``'s lock whoever holds it; returns what was removed."""
    holder = read_lock(engine, stack)
    if holder is not None:
        _remove_quietly(engine, holder)
    return holder


@contextmanager
def stack_lock(
    engine: Engine,
    stack: str,
    *,
    wait: float,
    hold_for: float,
    on_wait: Callable[[LockInfo], None] = lambda holder: None,
    clock: Clock | None = None,
) -> Iterator[LockInfo]:
    """Hold ``stack``'s lock for the duration of the block."""
    held = acquire(engine, stack, wait=wait, hold_for=hold_for, on_wait=on_wait, clock=clock)
    try:
        yield held
    finally:
        _remove_quietly(engine, held)
