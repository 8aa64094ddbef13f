"""The apply use case (converge.api.apply) on the fake swarm; the CLI only renders its result."""

from __future__ import annotations

from typing import cast

import pytest
from fake_engine import FakeClock, FakeSwarm
from test_planner import BASE_SPEC, ENVIRON

from converge.api import ApplyHooks, ApplyRequest, PlanResult, apply, destroy, load_apply_input
from converge.engine import Engine
from converge.errors import LockError
from converge.executor import ApplyOptions
from converge.lock import acquire

FAST = ApplyOptions(clock=FakeClock(), poll_interval=0.01)


def _empty_swarm() -> tuple[FakeSwarm, Engine]:
    swarm = FakeSwarm.recorded("empty")
    return swarm, cast(Engine, swarm)


def test_apply_confirms_executes_and_then_finds_nothing_to_do() -> None:
    loaded, saved = load_apply_input([BASE_SPEC], environ=ENVIRON)
    assert saved is None
    swarm, engine = _empty_swarm()
    shown: list[PlanResult] = []
    asked: list[PlanResult] = []

    def confirm(planned: PlanResult) -> bool:
        asked.append(planned)
        return True

    hooks = ApplyHooks(plan_ready=shown.append, confirm=confirm)
    run = apply(loaded, engine, ApplyRequest(apply_options=FAST), hooks)
    assert (run.status, run.ok) == ("applied", True)
    assert run.result is not None
    assert run.result.ok
    assert shown == asked == [run.plan]
    writes = swarm.write_count
    again = apply(loaded, engine, ApplyRequest(apply_options=FAST), hooks)
    assert (again.status, again.result) == ("no_changes", None)
    assert swarm.write_count == writes  # a no-op apply writes nothing, not even the lock
    assert len(asked) == 1


def test_a_refused_confirmation_changes_nothing() -> None:
    loaded, _ = load_apply_input([BASE_SPEC], environ=ENVIRON)
    swarm, engine = _empty_swarm()
    run = apply(
        loaded, engine, ApplyRequest(apply_options=FAST), ApplyHooks(confirm=lambda _: False)
    )
    assert run.status == "cancelled"
    assert not run.ok
    assert [call for call in swarm.calls if not call.startswith("GET")] == [
        "POST /configs/{id}",  # the lock (POST /configs/create), taken and released
        "DELETE /configs/{id}",
    ]


def test_a_held_lock_is_a_lock_error_naming_the_holder() -> None:
    loaded, _ = load_apply_input([BASE_SPEC], environ=ENVIRON)
    _, engine = _empty_swarm()
    acquire(engine, loaded.spec.stack, wait=0, hold_for=600)
    with pytest.raises(LockError, match=f"stack {loaded.spec.stack} is locked by"):
        apply(loaded, engine, ApplyRequest(apply_options=FAST))


def test_destroy_removes_what_the_stack_owns() -> None:
    loaded, _ = load_apply_input([BASE_SPEC], environ=ENVIRON)
    _, engine = _empty_swarm()
    apply(loaded, engine, ApplyRequest(apply_options=FAST))
    run = destroy(loaded, engine, ApplyRequest(apply_options=FAST))
    assert run.status == "applied"
    assert run.result is not None
    assert {outcome.outcome for outcome in run.result.outcomes} == {"removed"}
    stack_services = [
        service for service in engine.services() if service["Spec"]["Name"].startswith("fxrec_")
    ]
    assert stack_services == []
