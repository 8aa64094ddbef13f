"""The stack lock, against a fake of the engine's config calls (the seam the lock uses)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from converge.engine import Engine
from converge.errors import AlreadyExistsError, LockError, NotFoundError
from converge.lock import (
    acquire,
    read_lock,
    stack_lock,
    unlock,
)
from converge.naming import lock_name


class FakeConfigs:
    """Swarm configs as the engine keeps them: creating an existing name fails."""

    def __init__(self) -> None:
        self.configs: dict[str, dict[str, Any]] = {}
        self.counter = 0

    def configs_list(self, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        name = (filters or {}).get("name")
        return [c for c in self.configs.values() if name is None or c["Spec"]["Name"] == name]

    def create_config(self, name: str, data: bytes, labels: dict[str, str]) -> str:
        if any(c["Spec"]["Name"] == name for c in self.configs.values()):
            raise AlreadyExistsError(f"failed to create config {name}: exists")
        self.counter += 1
        config_id = f"id{self.counter}"
        self.configs[config_id] = {"ID": config_id, "Spec": {"Name": name, "Labels": labels}}
        return config_id

    def remove_config(self, name: str, config_id: str) -> None:
        if self.configs.pop(config_id, None) is None:
            raise NotFoundError(f"failed to remove config {name}: gone")


def fake_engine() -> tuple[Engine, FakeConfigs]:
    store = FakeConfigs()
    engine = type(
        "FakeEngine",
        (),
        {
            "configs": lambda self, filters=None: store.configs_list(filters),
            "create_config": lambda self, *args: store.create_config(*args),
            "remove_config": lambda self, *args: store.remove_config(*args),
        },
    )()
    return cast(Engine, engine), store


def test_lock_is_exclusive_and_names_its_holder() -> None:
    engine, _ = fake_engine()
    held = acquire(engine, "prod", wait=0, hold_for=60)
    with pytest.raises(LockError, match=r"stack prod is locked by .+ converge unlock prod"):
        acquire(engine, "prod", wait=0, hold_for=60)
    assert read_lock(engine, "prod") == held
    # Another stack is independent.
    acquire(engine, "staging", wait=0, hold_for=60)


def test_context_manager_releases_even_on_error() -> None:
    engine, store = fake_engine()
    held_during: list[int] = []

    def failing_apply() -> None:
        with stack_lock(engine, "prod", wait=0, hold_for=60):
            held_during.append(len(store.configs))
            raise RuntimeError("apply failed")

    with pytest.raises(RuntimeError):
        failing_apply()
    assert held_during == [1]
    assert store.configs == {}


def test_stale_lock_is_taken_over() -> None:
    engine, store = fake_engine()
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    acquire(engine, "prod", wait=0, hold_for=60, now=lambda: long_ago)
    held = acquire(engine, "prod", wait=0, hold_for=60)
    assert held.since > long_ago + timedelta(days=1)
    assert len(store.configs) == 1


def test_waiting_for_a_lock_announces_the_holder_then_gives_up() -> None:
    engine, _ = fake_engine()
    acquire(engine, "prod", wait=0, hold_for=60)
    seen: list[str] = []
    with pytest.raises(LockError):
        acquire(
            engine,
            "prod",
            wait=0.05,
            hold_for=60,
            poll=0.01,
            on_wait=lambda h: seen.append(h.owner),
        )
    assert len(seen) == 1


def test_unlock_removes_whoever_holds_it() -> None:
    engine, store = fake_engine()
    assert unlock(engine, "prod") is None
    acquire(engine, "prod", wait=0, hold_for=60)
    removed = unlock(engine, "prod")
    assert removed is not None
    assert removed.stack == "prod"
    assert store.configs == {}
    assert lock_name("prod") == "converge-lock-prod"
