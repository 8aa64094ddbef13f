"""``converge unlock STACK [LOCK_ID] [--force]`` on the fake swarm."""

from __future__ import annotations

from dataclasses import replace
from typing import cast

import pytest
from fake_engine import FakeSwarm
from typer.testing import CliRunner

from converge import cli
from converge.engine import Engine
from converge.errors import ConvergeError
from converge.lock import ProcessIdentity, acquire, read_lock


@pytest.fixture
def swarm(monkeypatch: pytest.MonkeyPatch) -> FakeSwarm:
    fake = FakeSwarm.recorded("empty")
    monkeypatch.setattr("converge.engine.connect", lambda host=None, context=None: fake)
    return fake


def test_without_the_id_it_shows_the_lock_and_removes_nothing(swarm: FakeSwarm) -> None:
    runner = CliRunner()
    assert runner.invoke(cli.app, ["unlock", "prod"]).output == "stack prod is not locked\n"
    held = acquire(cast(Engine, swarm), "prod", wait=0, hold_for=60)
    result = runner.invoke(cli.app, ["unlock", "prod"])
    assert isinstance(result.exception, ConvergeError)
    assert str(result.exception).endswith(
        f"which may still be running; to remove the lock, give its id: "
        f"converge unlock prod {held.lock_id}"
    )
    assert read_lock(cast(Engine, swarm), "prod") == held


def test_a_live_holders_lock_needs_force_a_dead_ones_does_not(swarm: FakeSwarm) -> None:
    engine = cast(Engine, swarm)
    runner = CliRunner()
    held = acquire(engine, "prod", wait=0, hold_for=60)
    refused = runner.invoke(cli.app, ["unlock", "prod", held.lock_id])
    assert isinstance(refused.exception, ConvergeError)
    assert "--force" in str(refused.exception)
    forced = runner.invoke(cli.app, ["unlock", "prod", held.lock_id, "--force"])
    assert forced.exit_code == 0
    assert forced.output.startswith("removed the lock of stack prod, held by ")
    here = ProcessIdentity.current()
    dead = acquire(
        engine, "prod", wait=0, hold_for=60, holder=replace(here, process=here.process + "0")
    )
    shown = runner.invoke(cli.app, ["unlock", "prod"])
    assert "which is no longer running" in str(shown.exception)
    assert runner.invoke(cli.app, ["unlock", "prod", dead.lock_id]).exit_code == 0
    assert read_lock(engine, "prod") is None
