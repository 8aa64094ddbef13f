"""The stack lock, against the fake swarm's configs and a fake clock (no real sleeping)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from fake_engine import FakeClock, FakeSwarm

from converge.engine import Engine
from converge.errors import Interrupted, LockError
from converge.lock import (
    LockInfo,
    ProcessIdentity,
    acquire,
    holder_state,
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


def _gone(here: ProcessIdentity) -> ProcessIdentity:
    """This pid started at another time: a dead holder whose pid was reused."""
    return replace(here, process=here.process.rsplit(":", 1)[0] + ":1")


def test_unlock_needs_the_lock_id_and_refuses_a_live_holder_without_force() -> None:
    engine, swarm, _ = fake_engine()
    assert unlock(engine, "prod", "whatever") is None
    held = acquire(engine, "prod", wait=0, hold_for=60)  # this process: alive
    with pytest.raises(LockError, match=rf"the lock of stack prod has id {held.lock_id}, not x"):
        unlock(engine, "prod", "x")
    with pytest.raises(LockError, match=r"which may still be running; .+ --force"):
        unlock(engine, "prod", held.lock_id)
    assert read_lock(engine, "prod") == held
    removed = unlock(engine, "prod", held.lock_id, force=True)
    assert removed == held
    assert swarm.configs() == []
    assert lock_name("prod") == "converge-lock-prod"


def test_a_dead_holders_lock_is_unlocked_without_force_and_taken_over() -> None:
    engine, swarm, _ = fake_engine()
    here = ProcessIdentity.current()
    dead = acquire(engine, "prod", wait=0, hold_for=600, holder=_gone(here))
    assert holder_state(dead) == "gone"
    assert unlock(engine, "prod", dead.lock_id) == dead
    dead = acquire(engine, "prod", wait=0, hold_for=600, holder=_gone(here))
    taken: list[LockInfo] = []
    held = acquire(engine, "prod", wait=0, hold_for=60, on_takeover=taken.append)
    assert taken == [dead]
    assert [config["ID"] for config in swarm.configs()] == [held.config_id]


def test_the_lock_records_host_pid_and_process_and_reads_them_back() -> None:
    engine, swarm, _ = fake_engine()
    held = acquire(engine, "prod", wait=0, hold_for=60)
    here = ProcessIdentity.current()
    labels = swarm.configs()[0]["Spec"]["Labels"]
    assert labels["io.converge.lock.host"] == here.host
    assert labels["io.converge.lock.pid"] == str(os.getpid())
    assert labels["io.converge.lock.process"] == here.process
    assert (held.host, held.pid, held.process) == (here.host, here.pid, here.process)
    assert read_lock(engine, "prod") == held
    assert holder_state(held) == "live"


def test_a_holder_elsewhere_is_trusted_until_its_lease_expires() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    here = ProcessIdentity("me", "ci-runner-1", 100, "boot:pid:[1]:5")
    elsewhere = LockInfo(
        "prod", "you@laptop pid 7", now, now + timedelta(seconds=60), "id1", "laptop", 7, ""
    )
    never_alive = lambda pid, process: False  # noqa: E731 - a pid check must not be made
    assert holder_state(elsewhere, now, here, alive=never_alive) == "live"
    later = now + timedelta(seconds=61)
    assert holder_state(elsewhere, later, here, alive=never_alive) == "expired"
    # Same host name, another boot or pid namespace (a container with the host's name): the
    # lease decides too.
    container = replace(elsewhere, host="ci-runner-1", pid=100, process="boot:pid:[2]:5")
    assert holder_state(container, now, here, alive=never_alive) == "live"
    # The same machine: the pid decides.
    local = replace(container, process="boot:pid:[1]:5")
    assert holder_state(local, now, here, alive=never_alive) == "gone"
    assert holder_state(local, now, here, alive=lambda pid, process: True) == "live"


def test_a_reaped_pid_on_this_host_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    here = ProcessIdentity.current()
    now = datetime.now(UTC)
    lock = LockInfo("prod", "x", now, now + timedelta(seconds=60), "id", here.host, child.pid)
    assert holder_state(lock, now, here) == "gone"


def test_an_interruption_releases_the_lock_and_says_so() -> None:
    engine, swarm, _ = fake_engine()

    def interrupted_apply(stack: str, number: int, release_fails: bool = False) -> Interrupted:
        try:
            with stack_lock(engine, stack, wait=0, hold_for=60):
                if release_fails:
                    swarm.fail_next("remove_config", explanation="connection reset")
                raise Interrupted(number)
        except Interrupted as interruption:
            return interruption
        raise AssertionError("not interrupted")

    assert interrupted_apply("prod", signal.SIGTERM).locks_released == ["prod"]
    assert swarm.configs() == []

    held_by_others = acquire(engine, "prod", wait=0, hold_for=60)
    interruption = interrupted_apply("staging", signal.SIGINT, release_fails=True)
    assert interruption.locks_released == []
    (kept,) = interruption.locks_kept
    assert kept.startswith("stack staging could not be released (failed to remove config ")
    assert "connection reset); remove it with: converge unlock staging " in kept
    assert read_lock(engine, "prod") == held_by_others


def test_an_interruption_while_the_lock_is_made_releases_it_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The signal lands while the lock's create is answered: made, but never handed over."""
    engine, swarm, _ = fake_engine()
    create = swarm.create_config

    def created_then_interrupted(*args: object, **kwargs: object) -> str:
        create(*args, **kwargs)  # type: ignore[arg-type]
        raise Interrupted(signal.SIGTERM)

    monkeypatch.setattr(swarm, "create_config", created_then_interrupted)
    with pytest.raises(Interrupted) as interrupted:
        acquire(engine, "prod", wait=0, hold_for=60)
    assert interrupted.value.locks_released == ["prod"]
    assert read_lock(engine, "prod") is None


def test_the_message_of_a_stale_lock_says_why() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    lock = LockInfo("prod", "you@laptop pid 7", now, now + timedelta(seconds=60), "id1", "laptop")
    assert "(lock id id1), which is no longer running; " in lock.gone_message()
    assert "(lock id id1), whose lease expired at 2026-01-01 00:01:00Z; " in lock.gone_message(
        "expired"
    )
    assert lock.gone_message().endswith("remove it with: converge unlock prod id1")
