"""The stack lock, against the fake swarm's configs and a fake clock (no real sleeping)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from fake_engine import FakeClock, FakeSwarm

from converge.engine import Engine
from converge.errors import LockError
from converge.lock import (
    acquire,
    read_lock,
    stack_lock,
    unlock,
)
from converge.naming import lock_name


def fake_engine() -> tuple[Engine, FakeSwarm, FakeClock]:
    swarm = FakeSwarm.recorded("empty")
    return cast(Engine, swarm), swarm, FakeClock()


def test_lock_is_exclusive_and_names_its_holder() -> None:
    engine, _, _ = fake_engine()
    held = acquire(engine, "prod", wait=0, hold_for=60)
    with pytest.raises(LockError, match=r"stack prod is locked by .+ converge unlock prod"):
        acquire(engine, "prod", wait=0, hold_for=60)
    assert read_lock(engine, "prod") == held
    # Another stack is independent.
    acquire(engine, "staging", wait=0, hold_for=60)


def test_context_manager_releases_even_on_error() -> None:
    engine, swarm, _ = fake_engine()
    held_during: list[int] = []

    def failing_apply() -> None:
        with stack_lock(engine, "prod", wait=0, hold_for=60):
            held_during.append(len(swarm.configs()))
            raise RuntimeError("apply failed")

    with pytest.raises(RuntimeError):
        failing_apply()
    assert held_during == [1]
    assert swarm.configs() == []


def test_stale_lock_is_taken_over() -> None:
    engine, swarm, _ = fake_engine()
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    acquire(engine, "prod", wait=0, hold_for=60, now=lambda: long_ago)
    held = acquire(engine, "prod", wait=0, hold_for=60)
    assert held.since > long_ago + timedelta(days=1)
    assert len(swarm.configs()) == 1


def test_a_lock_that_expires_while_waiting_is_taken_over() -> None:
    engine, swarm, clock = fake_engine()
    first = acquire(engine, "prod", wait=0, hold_for=60, now=clock.wall)
    seen: list[str] = []
    held = acquire(
        engine,
        "prod",
        wait=300,
        hold_for=60,
        now=clock.wall,
        clock=clock,
        on_wait=lambda holder: seen.append(holder.config_id),
    )
    assert seen == [first.config_id]
    assert 60 < clock.now < 62  # taken over once expired, not when the wait ran out
    assert held.config_id != first.config_id
    assert [config["ID"] for config in swarm.configs()] == [held.config_id]


def test_waiting_for_a_lock_announces_the_holder_then_gives_up() -> None:
    engine, swarm, clock = fake_engine()
    acquire(engine, "prod", wait=0, hold_for=600, now=clock.wall)
    seen: list[str] = []
    with pytest.raises(LockError, match=r"stack prod is locked by .+; waited 30s"):
        acquire(
            engine,
            "prod",
            wait=30,
            hold_for=600,
            now=clock.wall,
            poll=2.0,
            clock=clock,
            on_wait=lambda holder: seen.append(holder.owner),
        )
    assert len(seen) == 1
    assert clock.now == pytest.approx(30)
    attempts = swarm.calls["POST /configs/{id}"]
    assert 15 < attempts < 30  # polled about every 2s, checked once more at the deadline


def test_unlock_removes_whoever_holds_it() -> None:
    engine, swarm, _ = fake_engine()
    assert unlock(engine, "prod") is None
    acquire(engine, "prod", wait=0, hold_for=60)
    removed = unlock(engine, "prod")
    assert removed is not None
    assert removed.stack == "prod"
    assert swarm.configs() == []
    assert lock_name("prod") == "converge-lock-prod"
