"""The apply use case (converge.api.apply) on the fake swarm; the CLI only renders its result."""

from __future__ import annotations

import json
import signal
from dataclasses import replace
from pathlib import Path
from typing import cast

import pytest
from fake_engine import FakeClock, FakeSwarm
from rich.markup import escape
from test_planner import BASE_SPEC, ENVIRON, PLANS, patched_recording

from converge.api import (
    ApplyHooks,
    ApplyRequest,
    PlanResult,
    apply,
    destroy,
    load_apply_input,
    make_plan,
    save_plan,
    stack_settled,
    stack_status,
    unlock_stack,
)
from converge.engine import Engine
from converge.errors import Interrupted, LockError, PlanError
from converge.executor import ApplyOptions
from converge.loader import LoadedSpec
from converge.lock import LockInfo, ProcessIdentity, acquire, read_lock
from converge.planner import PlanOptions
from converge.render import status_document, status_text
from tests.document_schemas import assert_valid

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
    assert again.status == "no_changes"
    assert again.result is not None
    assert (again.result.error, again.result.write_calls) == (None, 0)
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


def test_destroy_returns_once_its_networks_are_gone_so_apply_works_at_once() -> None:
    loaded, _ = load_apply_input([BASE_SPEC], environ=ENVIRON)
    swarm, engine = _empty_swarm()
    assert apply(loaded, engine, ApplyRequest(apply_options=_fast())).ok
    swarm.linger_removed_networks(listings=3)
    assert destroy(loaded, engine, ApplyRequest(apply_options=_fast())).ok
    assert not [n for n in engine.networks() if n["Name"].startswith("fxrec_")]
    again = apply(loaded, engine, ApplyRequest(apply_options=_fast()))
    assert again.result is not None
    assert again.result.error is None
    assert again.status == "applied"


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


# ---------------------------------------------------------------------------------------------
# Nothing to change: success only when verified, the lock respected, nothing written


def _applied_swarm() -> tuple[LoadedSpec, FakeSwarm, Engine]:
    loaded, _ = load_apply_input([BASE_SPEC], environ=ENVIRON)
    swarm, engine = _empty_swarm()
    assert apply(loaded, engine, ApplyRequest(apply_options=_fast())).ok
    return loaded, swarm, engine


def _fast() -> ApplyOptions:
    return ApplyOptions(clock=FakeClock(), poll_interval=0.01)


@pytest.mark.parametrize(
    ("ends", "status", "error"),
    [
        ("completed", "no_changes", None),
        ("paused", "failed", "service fxrec_web: update paused: update paused due to failure"),
        ("rollback_completed", "failed", "service fxrec_web: update rollback completed"),
    ],
)
def test_a_no_op_apply_waits_for_an_update_in_flight_and_reports_how_it_ended(
    ends: str, status: str, error: str | None
) -> None:
    loaded, swarm, engine = _applied_swarm()
    swarm.update_in_flight("fxrec_web", ends=ends, listings=5)
    writes, listings = swarm.write_count, swarm.calls["GET /tasks"]
    shown: list[PlanResult] = []
    run = apply(
        loaded, engine, ApplyRequest(apply_options=_fast()), ApplyHooks(plan_ready=shown.append)
    )
    assert run.status == status
    assert run.ok is (status == "no_changes")
    assert run.result is not None
    if error is None:
        assert run.result.error is None
    else:
        assert run.result.error is not None
        assert run.result.error.startswith(error)
    assert not shown[0].plan.has_changes  # the plan was empty: it still was not trusted
    assert swarm.calls["GET /tasks"] >= listings + 5  # it watched the update settle
    assert swarm.write_count == writes  # and wrote nothing, not even the lock


def test_a_failed_apply_run_again_fails_again_while_its_tasks_keep_failing() -> None:
    loaded, _ = load_apply_input([BASE_SPEC], environ=ENVIRON)
    swarm, engine = _empty_swarm()
    swarm.fail_tasks("fxrec_db", "task: non-zero exit (3)")
    first = apply(loaded, engine, ApplyRequest(apply_options=_fast()))
    assert first.status == "failed"
    writes = swarm.write_count
    again = apply(loaded, engine, ApplyRequest(apply_options=_fast()))
    assert again.plan.plan.actions == ()  # the spec matches: nothing to change...
    assert again.status == "failed"  # ...but the swarm is not healthy
    assert again.result is not None
    assert again.result.error is not None
    assert again.result.error.startswith("service fxrec_db: 3 tasks failed")
    assert swarm.write_count == writes


def test_a_no_op_apply_waits_for_a_live_lock_holder_without_taking_the_lock() -> None:
    loaded, swarm, engine = _applied_swarm()
    holder = acquire(engine, loaded.spec.stack, wait=0, hold_for=600)
    writes = swarm.write_count
    with pytest.raises(LockError, match=f"stack fxrec is locked by .+lock id {holder.lock_id}"):
        apply(loaded, engine, ApplyRequest(apply_options=_fast()))

    class ReleasingClock(FakeClock):
        """The holder finishes 20 seconds into the wait."""

        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            if self.now >= 20 and read_lock(engine, "fxrec") is not None:
                swarm.remove_config("converge-lock-fxrec", holder.config_id)

    clock = ReleasingClock()
    waited: list[LockInfo] = []
    run = apply(
        loaded,
        engine,
        ApplyRequest(apply_options=ApplyOptions(clock=clock, poll_interval=0.01), lock_timeout=60),
        ApplyHooks(lock_waiting=waited.append),
    )
    assert run.status == "no_changes"
    assert [item.lock_id for item in waited] == [holder.lock_id]
    assert 20 <= clock.now < 25
    assert swarm.write_count == writes + 1  # only the holder's own release


def _gone_holder() -> ProcessIdentity:
    """This very pid, started at another time: how a reused pid of a dead holder looks."""
    here = ProcessIdentity.current()
    assert here.process, "these tests need /proc"
    return replace(here, process=here.process.rsplit(":", 1)[0] + ":1")


def test_a_dead_holders_lock_is_removed_by_a_no_op_apply_and_taken_over_by_a_real_one() -> None:
    loaded, swarm, engine = _applied_swarm()
    dead = acquire(engine, "fxrec", wait=0, hold_for=600, holder=_gone_holder())
    writes = swarm.write_count
    noop = apply(loaded, engine, ApplyRequest(apply_options=_fast()))
    assert noop.status == "no_changes"
    warnings = [finding.message for finding in noop.plan.plan.findings]
    assert warnings == [
        f"removed the lock of stack fxrec left by {dead.owner} (lock id {dead.lock_id}), "
        "which was no longer running"
    ]
    assert swarm.write_count == writes + 1  # the lock's removal, nothing else
    assert read_lock(engine, "fxrec") is None

    dead = acquire(engine, "fxrec", wait=0, hold_for=600, holder=_gone_holder())
    changed, _ = load_apply_input(
        [BASE_SPEC, PLANS / "scale_only" / "override.yml"], environ=ENVIRON
    )
    run = apply(changed, engine, ApplyRequest(apply_options=_fast()))
    assert run.status == "applied"
    assert [finding.message for finding in run.plan.plan.findings] == [
        f"took over the lock of stack fxrec from {dead.owner} (lock id {dead.lock_id}), "
        "which was no longer running"
    ]
    assert read_lock(engine, "fxrec") is None


def test_a_saved_plan_must_be_the_only_argument(tmp_path: Path) -> None:
    saved = tmp_path / "plan.json"
    saved.write_text('{"format_version": "1.0"}')
    with pytest.raises(PlanError, match=r"plan.json is a saved plan: it must be the only argument"):
        load_apply_input([saved, BASE_SPEC], environ=ENVIRON)
    with pytest.raises(PlanError, match=r"plan.json is a saved plan: it must be the only argument"):
        load_apply_input([BASE_SPEC, saved], environ=ENVIRON)


def test_status_and_plan_say_when_the_lock_holder_is_gone() -> None:
    loaded, _, engine = _applied_swarm()
    assert stack_status(loaded.spec, engine)["lock"] is None
    dead = acquire(engine, "fxrec", wait=0, hold_for=600, holder=_gone_holder())
    report = stack_status(loaded.spec, engine)
    assert report["lock"]["id"] == dead.lock_id
    assert report["lock"]["state"] == "gone"
    assert status_text(report).splitlines()[-1] == f"[red]{escape(dead.gone_message())}[/red]"
    assert_valid("status", status_document(report))
    (finding,) = make_plan(loaded, engine).plan.findings
    assert (finding.severity, finding.address, finding.message) == (
        "warning",
        "lock",
        dead.gone_message(),
    )


def test_an_apply_interrupted_while_waiting_releases_the_lock() -> None:
    loaded, _ = load_apply_input([BASE_SPEC], environ=ENVIRON)
    swarm, engine = _empty_swarm()
    swarm.stall_tasks("fxrec_web")

    class TerminatedClock(FakeClock):
        """SIGTERM arrives ten seconds into the wait (the handler raises in the main thread)."""

        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            if self.now >= 10:
                raise Interrupted(signal.SIGTERM)

    options = ApplyOptions(clock=TerminatedClock(), poll_interval=0.5)
    with pytest.raises(Interrupted) as raised:
        apply(loaded, engine, ApplyRequest(apply_options=options))
    assert raised.value.locks_released == ["fxrec"]
    assert read_lock(engine, "fxrec") is None


def test_an_apply_fails_when_a_service_it_did_not_touch_is_stuck(tmp_path: Path) -> None:
    """exit 0 means the stack converged, not only the actions the plan held."""
    loaded, _ = load_apply_input([BASE_SPEC], environ=ENVIRON)
    swarm, engine = _empty_swarm()
    assert apply(loaded, engine, ApplyRequest(apply_options=FAST)).ok
    swarm.update_in_flight("fxrec_db", ends="paused")  # a killed apply's update, left rolling
    override = tmp_path / "override.yml"
    override.write_text("services:\n  web:\n    environment:\n      CACHE_SIZE: 64\n")
    changed, _ = load_apply_input([BASE_SPEC, override], environ=ENVIRON)
    run = apply(changed, engine, ApplyRequest(apply_options=FAST))
    assert [action.address for action in run.plan.plan.actions] == ["service.web"]
    assert run.status == "failed"
    assert run.result is not None
    assert run.result.error is not None
    assert "fxrec_db" in run.result.error
    assert "paused" in run.result.error


# -- every command from Python: a saved plan, and unlock -----------------------------------------


def test_a_saved_plan_applied_from_python_plans_again_with_the_options_it_was_saved_with(
    tmp_path: Path,
) -> None:
    # The case's swarm runs a service the spec left out: only --prune plans its removal.
    case = PLANS / "service_left_out_prune"
    swarm = FakeSwarm(patched_recording(json.loads((case / "observed.json").read_text())))
    engine = cast(Engine, swarm)
    target = tmp_path / "plan.json"
    loaded, _ = load_apply_input([case / "spec.yml"], environ=ENVIRON)
    save_plan(make_plan(loaded, engine, PlanOptions(prune=True)), target)
    loaded, saved = load_apply_input([target], environ=ENVIRON)
    run = apply(loaded, engine, ApplyRequest(apply_options=FAST, saved_plan=saved))
    assert (run.status, run.plan.options) == ("applied", PlanOptions(prune=True))
    assert "service.agent" in [action.address for action in run.plan.plan.actions]
    with pytest.raises(PlanError, match="were fixed when the plan was saved"):
        apply(loaded, engine, ApplyRequest(PlanOptions(prune=True), FAST, saved_plan=saved))
    with pytest.raises(PlanError, match="destroy takes the spec files, not a saved plan"):
        destroy(loaded, engine, ApplyRequest(apply_options=FAST, saved_plan=saved))


def test_unlock_shows_a_held_lock_without_its_id_and_removes_it_with_it() -> None:
    _, engine = _empty_swarm()
    assert unlock_stack(engine, "fxrec") is None  # not locked
    here = ProcessIdentity.current()
    dead = acquire(
        engine, "fxrec", wait=0, hold_for=60, holder=replace(here, process=here.process + "0")
    )
    with pytest.raises(LockError, match=f"give its id: converge unlock fxrec {dead.lock_id}$"):
        unlock_stack(engine, "fxrec")
    assert read_lock(engine, "fxrec") == dead
    assert unlock_stack(engine, "fxrec", dead.lock_id) == dead
    assert read_lock(engine, "fxrec") is None


def test_status_from_python_says_whether_the_stack_is_settled() -> None:
    loaded, _ = load_apply_input([BASE_SPEC], environ=ENVIRON)
    _, engine = _empty_swarm()
    assert not stack_settled(stack_status(loaded.spec, engine))  # every service missing
    assert apply(loaded, engine, ApplyRequest(apply_options=_fast())).ok
    assert stack_settled(stack_status(loaded.spec, engine))
