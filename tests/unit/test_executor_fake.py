"""The executor against the fake swarm and a fake clock (no real sleeping).

The paths the lab cannot trigger on demand: "update out of sequence" retries, later phases
skipped after a failure, tasks that never get placed, fail or never start, and the apply
timeout; and for every recorded plan fixture, "apply the plan, plan again: no actions".
"""

from __future__ import annotations

import copy
import json
import re
import time
from dataclasses import replace
from typing import Any, cast

import pytest
from fake_engine import FakeClock, FakeSwarm
from rich.text import Text
from test_planner import ENVIRON, PLANS, RECORDED, load_recording, patched_recording

from converge.actions import Plan
from converge.api import PlanResult, execute_plan
from converge.diff import diff
from converge.engine import Engine
from converge.engine_spec import service_engine_spec
from converge.errors import EngineError, PlanError
from converge.executor import ApplyEvents, ApplyOptions, ApplyResult, apply_plan
from converge.loader import LoadedSpec, load_spec, load_spec_text
from converge.naming import STACK_LABEL
from converge.observe import observe
from converge.planner import PlanOptions, plan
from converge.render import plan_text
from converge.spec import Spec

UPDATE = "POST /services/{id}/update"


def case_loaded(case: str) -> LoadedSpec:
    directory = PLANS / case
    whole = directory / "spec.yml"
    files = [whole] if whole.exists() else [RECORDED / "fxrec.yml", directory / "override.yml"]
    return load_spec(files, environ=ENVIRON)


def case_spec(case: str) -> Spec:
    return case_loaded(case).spec


def case_swarm(case: str) -> FakeSwarm:
    """The fake swarm in the state a case observes (a recording, with its node patches)."""
    observed: dict[str, Any] = json.loads((PLANS / case / "observed.json").read_text())
    return FakeSwarm(patched_recording(observed))


def case_options(case: str) -> PlanOptions:
    options = PLANS / case / "options.json"
    return PlanOptions(**json.loads(options.read_text())) if options.exists() else PlanOptions()


def plan_on(spec: Spec, swarm: FakeSwarm, options: PlanOptions = PlanOptions()) -> Plan:
    observed = observe(cast(Engine, swarm), spec)
    return plan(spec, diff(spec, observed), observed, options)


def apply_case(
    case: str, swarm: FakeSwarm, clock: FakeClock, **options: Any
) -> tuple[Spec, ApplyResult]:
    """Plan ``case`` on ``swarm`` and apply it with the fake clock."""
    spec = case_spec(case)
    engine = cast(Engine, swarm)
    observed = observe(engine, spec)
    planned = plan(spec, diff(spec, observed), observed, case_options(case))
    assert planned.actions, f"{case} plans nothing to apply"
    apply_options = ApplyOptions(clock=clock, **options)
    return spec, apply_plan(planned, spec, engine, observed, options=apply_options)


def outcomes(result: ApplyResult) -> dict[str, str]:
    return {outcome.address: outcome.outcome for outcome in result.outcomes}


# ---------------------------------------------------------------------------------------------
# Every recorded plan fixture: apply, then plan again


CASES = sorted(entry.name for entry in PLANS.iterdir() if entry.is_dir())


@pytest.mark.parametrize("case", CASES)
def test_a_second_plan_after_applying_a_fixture_is_empty(case: str) -> None:
    swarm, clock = case_swarm(case), FakeClock()
    loaded = case_loaded(case)
    spec = loaded.spec
    first = plan_on(spec, swarm, case_options(case))
    observed = observe(cast(Engine, swarm), spec)
    if first.errors:
        # A plan with errors is refused whole: not one write reaches the engine.
        writes = swarm.write_count
        with pytest.raises(PlanError, match="the plan has errors, nothing was changed"):
            execute_plan(PlanResult(loaded, observed, first), cast(Engine, swarm))
        assert swarm.write_count == writes
        return
    result = apply_plan(
        first, spec, cast(Engine, swarm), observed, options=ApplyOptions(clock=clock)
    )
    assert result.ok, result.error
    again = plan_on(spec, swarm, case_options(case))
    assert [action.description for action in again.actions] == []
    assert not again.errors


# ---------------------------------------------------------------------------------------------
# "update out of sequence": observe again and retry, a bounded number of times


def test_an_update_out_of_sequence_is_retried_once_observed_again() -> None:
    swarm, clock = case_swarm("scale_only"), FakeClock()
    swarm.bump_before_update("fxrec_web")  # a concurrent writer, once
    spec, result = apply_case("scale_only", swarm, clock)
    assert result.ok, result.error
    assert outcomes(result) == {"service.web": "scaled"}
    assert swarm.calls[UPDATE] == 2  # the refused update and its retry
    assert not plan_on(spec, swarm).actions


def test_a_service_that_keeps_changing_fails_after_the_retries() -> None:
    swarm, clock = case_swarm("scale_only"), FakeClock()
    swarm.bump_before_update("fxrec_web", times=None)
    _, result = apply_case("scale_only", swarm, clock, retries=3)
    assert outcomes(result) == {"service.web": "failed"}
    assert result.error is not None
    assert result.error.startswith(
        "service fxrec_web: still out of sequence after 3 retries (someone else keeps changing "
        "it): failed to update service fxrec_web: "
    )
    assert swarm.calls[UPDATE] == 4


def test_an_out_of_sequence_detach_during_a_network_replace_is_retried() -> None:
    swarm, clock = case_swarm("network_changed"), FakeClock()
    swarm.bump_before_update("fxrec_agent")  # fxrec_agent is attached to fxrec_monitoring
    spec, result = apply_case("network_changed", swarm, clock)
    assert result.ok, result.error
    assert not plan_on(spec, swarm).actions


# ---------------------------------------------------------------------------------------------
# A failed phase stops the apply: later phases are skipped, not attempted


def test_a_failed_network_create_skips_the_services_phase() -> None:
    swarm, clock = case_swarm("empty_swarm"), FakeClock()
    swarm.fail_next("create_network", EngineError, "network plugin not found")
    _, result = apply_case("empty_swarm", swarm, clock)
    assert result.error is not None
    assert result.error.startswith("failed to create network fxrec_")
    assert result.error.endswith(": network plugin not found")
    done = outcomes(result)
    assert sorted(done[address] for address in done if address.startswith("network.")) == [
        "created",
        "created",
        "failed",
    ]
    services = {address: done[address] for address in done if address.startswith("service.")}
    assert len(services) == 6
    assert set(services.values()) == {"skipped"}
    assert all(
        outcome.message == "an earlier phase failed"
        for outcome in result.outcomes
        if outcome.outcome == "skipped"
    )
    assert swarm.services() == []
    assert result.write_calls == 3


# ---------------------------------------------------------------------------------------------
# Waiting for convergence, on the fake clock


def test_the_monitor_window_is_waited_after_a_create_not_after_a_completed_update() -> None:
    created_clock, updated_clock = FakeClock(), FakeClock()
    assert apply_case("empty_swarm", case_swarm("empty_swarm"), created_clock)[1].ok
    assert apply_case("env_added", case_swarm("env_added"), updated_clock)[1].ok
    # New tasks are watched for the default 5s monitor window; an update the engine completed
    # was watched by the engine already.
    assert 5.0 <= created_clock.now < 5.6
    assert updated_clock.now == 0.0


def _forbid_real_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every wait must go through the injected clock: a real sleep fails the test."""

    def real_sleep(seconds: float) -> None:
        raise AssertionError(f"the executor slept {seconds}s on the real clock")

    monkeypatch.setattr(time, "sleep", real_sleep)


def test_tasks_that_are_never_placed_fail_after_the_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    swarm, clock = case_swarm("env_added"), FakeClock()
    swarm.never_place("fxrec_web")
    _forbid_real_sleep(monkeypatch)
    _, result = apply_case("env_added", swarm, clock)
    assert result.error == (
        "service fxrec_web: tasks cannot be placed: "
        "no suitable node (insufficient resources on 5 nodes)"
    )
    assert 5.0 <= clock.now < 5.6  # the executor's grace for the scheduler


def _recorded_events(swarm: FakeSwarm, case: str) -> tuple[list[str], ApplyResult]:
    spec = case_spec(case)
    engine = cast(Engine, swarm)
    observed = observe(engine, spec)
    planned = plan(spec, diff(spec, observed), observed, case_options(case))
    seen: list[str] = []
    events = ApplyEvents(
        waiting=lambda progress: seen.append("waiting"),
        service_converged=lambda health: seen.append(f"converged {health.key}"),
    )
    options = ApplyOptions(clock=FakeClock())
    return seen, apply_plan(planned, spec, engine, observed, events, options)


def test_services_are_reported_converged_once_the_wait_judged_them_so() -> None:
    seen, result = _recorded_events(case_swarm("env_added"), "env_added")
    assert result.ok
    assert seen[-1] == "converged web"
    assert "waiting" in seen[: seen.index("converged web")]


def test_a_service_that_fails_is_never_reported_converged() -> None:
    swarm = case_swarm("env_added")
    swarm.fail_tasks("fxrec_web")
    seen, result = _recorded_events(swarm, "env_added")
    assert not result.ok
    assert "waiting" in seen
    assert not [event for event in seen if event.startswith("converged")]


def test_tasks_of_which_only_some_are_placed_fail_after_the_grace() -> None:
    """7 replicas of which 5 fit fail as fast as 0 of 7, with the scheduler's reason."""
    swarm, clock = case_swarm("scale_only"), FakeClock()
    swarm.place_only("fxrec_web", 4)
    _, result = apply_case("scale_only", swarm, clock)
    assert result.error == (
        "service fxrec_web: 1 of 5 tasks cannot be placed: "
        "no suitable node (host-mode port already in use on 4 nodes)"
    )
    assert 5.0 <= clock.now < 5.6  # the executor's grace for the scheduler, not the timeout


def test_tasks_that_keep_failing_fail_the_apply() -> None:
    swarm, clock = case_swarm("empty_swarm"), FakeClock()
    swarm.fail_tasks("fxrec_db", "task: non-zero exit (3)")
    _, result = apply_case("empty_swarm", swarm, clock)
    assert result.error is not None
    assert re.match(r"service fxrec_db: \d+ tasks failed; last task errors: ", result.error)
    assert "dbhost: failed: task: non-zero exit (3)" in result.error
    assert outcomes(result)["service.db"] == "created"  # created, then it failed to run


def test_an_update_whose_tasks_fail_is_reported_as_paused() -> None:
    swarm, clock = case_swarm("env_added"), FakeClock()
    swarm.fail_tasks("fxrec_web")
    _, result = apply_case("env_added", swarm, clock)
    assert result.error is not None
    assert result.error.startswith("service fxrec_web: update paused")
    assert "failed: task: non-zero exit (1)" in result.error


def test_a_service_that_never_converges_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    swarm, clock = case_swarm("env_added"), FakeClock()
    swarm.stall_tasks("fxrec_web")
    _forbid_real_sleep(monkeypatch)
    _, result = apply_case("env_added", swarm, clock, timeout=60)
    assert result.error is not None
    assert result.error.startswith(
        "timed out waiting for services to converge: fxrec_web (0/3 running, update updating),"
        " waiting on task 3 on worker2: preparing since "
    )
    assert 60.0 <= clock.now < 61.0


def test_a_network_held_by_a_service_of_no_stack_times_out() -> None:
    recording = load_recording("fxrec")
    networks = {network["Name"]: network["Id"] for network in recording["networks"]}
    hand = next(s for s in recording["services"] if s["Spec"]["Name"] == "fxrec_hand")
    hand["Spec"]["TaskTemplate"]["Networks"] = [{"Target": networks["fxrec_monitoring"]}]
    swarm, clock = FakeSwarm(recording), FakeClock()
    spec, result = apply_case("network_changed", swarm, clock, timeout=30)
    assert outcomes(result) == {"network.monitoring": "failed"}
    assert result.error == "timed out waiting for network fxrec_monitoring to be free of tasks"
    assert 30.0 <= clock.now < 30.6
    # The stack's own service was detached, and the network it wants is still there to retry.
    assert plan_on(spec, swarm).actions


# ---------------------------------------------------------------------------------------------
# --adopt: a service made outside any stack is taken over by a metadata-only update

_HANDMADE = """
x-converge:
  stack: fxrec
services:
  solo:
    image: converge-lab/app:v1
    deploy:
      replicas: 2
"""


def _handmade_swarm() -> tuple[Spec, FakeSwarm]:
    """fxrec's recording plus ``fxrec_solo``, made as stack deploy would make it but without
    any ownership label (as ``docker service create`` makes it)."""
    spec = load_spec_text(_HANDMADE, environ=ENVIRON).spec
    swarm = FakeSwarm.recorded("fxrec")
    body = service_engine_spec(spec, "solo")
    body["Labels"] = {k: v for k, v in body["Labels"].items() if k != STACK_LABEL}
    container = body["TaskTemplate"]["ContainerSpec"]
    container["Labels"] = {k: v for k, v in container["Labels"].items() if k != STACK_LABEL}
    swarm.create_service("fxrec_solo", body)
    return spec, swarm


def _stored(swarm: FakeSwarm, name: str) -> dict[str, Any]:
    return next(item for item in swarm.services() if item["Spec"]["Name"] == name)


def test_without_adopt_a_handmade_service_is_a_collision_naming_the_option() -> None:
    spec, swarm = _handmade_swarm()
    planned = plan_on(spec, swarm)
    assert [action.description for action in planned.actions if action.key == "solo"] == []
    assert [(f.code, f.message) for f in planned.errors if f.address == "service.solo"] == [
        (
            "collision",
            "service fxrec_solo exists and is not owned by stack fxrec; --adopt takes it over",
        )
    ]


def test_adopt_writes_only_the_service_labels_and_restarts_no_task() -> None:
    spec, swarm = _handmade_swarm()
    before = copy.deepcopy(_stored(swarm, "fxrec_solo"))
    tasks_before = sorted(t["ID"] for t in swarm.tasks() if t["ServiceID"] == before["ID"])
    assert len(tasks_before) == 2
    planned = plan_on(spec, swarm, PlanOptions(adopt=True))
    solo = [action for action in planned.actions if action.key == "solo"]
    assert [action.description for action in solo] == [
        "~ service fxrec_solo: adopt (add the stack's ownership label)"
    ]
    assert planned.versions["service.solo"] == before["Version"]["Index"]
    shown = Text.from_markup(plan_text(planned)).plain
    assert "~ service fxrec_solo: adopt (add the stack's ownership label)" in shown
    writes = swarm.write_count
    observed = observe(cast(Engine, swarm), spec)
    only_solo = replace(planned, actions=tuple(solo))
    result = apply_plan(
        only_solo, spec, cast(Engine, swarm), observed, options=ApplyOptions(clock=FakeClock())
    )
    assert result.ok, result.error
    assert outcomes(result) == {"service.solo": "adopted"}
    assert swarm.write_count - writes == 1
    after = _stored(swarm, "fxrec_solo")
    assert after["Spec"]["Labels"] == {**before["Spec"]["Labels"], STACK_LABEL: "fxrec"}
    assert {k: v for k, v in after["Spec"].items() if k != "Labels"} == {
        k: v for k, v in before["Spec"].items() if k != "Labels"
    }
    assert after["Spec"]["TaskTemplate"] == before["Spec"]["TaskTemplate"]
    assert sorted(t["ID"] for t in swarm.tasks() if t["ServiceID"] == after["ID"]) == tasks_before
    again = plan_on(spec, swarm, PlanOptions(adopt=True))
    assert [action.description for action in again.actions if action.key == "solo"] == []
    assert not [finding for finding in again.errors if finding.address == "service.solo"]


def test_adopt_then_converges_what_differs_in_the_same_apply() -> None:
    swarm, clock = case_swarm("adopt_unowned"), FakeClock()
    hand = _stored(swarm, "fxrec_hand")
    writes: list[dict[str, Any]] = []
    update = swarm.update_service

    def recording(name: str, service_id: str, version: int, spec: Any) -> list[str]:
        writes.append(copy.deepcopy(spec))
        return update(name, service_id, version, spec)

    swarm.update_service = recording  # type: ignore[method-assign]
    spec, result = apply_case("adopt_unowned", swarm, clock)
    assert result.ok, result.error
    assert outcomes(result) == {"service.hand": "adopted"}
    # First the label alone, on the spec as observed; then the update, on the owned service.
    assert len(writes) == 2
    assert writes[0] == {**hand["Spec"], "Labels": {**hand["Spec"]["Labels"], STACK_LABEL: "fxrec"}}
    assert writes[1]["TaskTemplate"]["ContainerSpec"]["Image"] == "converge-lab/app:v2"
    assert not plan_on(spec, swarm).actions


def test_adopt_fails_cleanly_when_another_stack_took_the_service_meanwhile() -> None:
    spec, swarm = _handmade_swarm()
    planned = plan_on(spec, swarm, PlanOptions(adopt=True))
    solo = tuple(action for action in planned.actions if action.key == "solo")
    observed = observe(cast(Engine, swarm), spec)
    stored = _stored(swarm, "fxrec_solo")
    taken = {**stored["Spec"], "Labels": {**stored["Spec"]["Labels"], STACK_LABEL: "other"}}
    swarm.update_service("fxrec_solo", stored["ID"], stored["Version"]["Index"], taken)
    result = apply_plan(
        replace(planned, actions=solo),
        spec,
        cast(Engine, swarm),
        observed,
        options=ApplyOptions(clock=FakeClock()),
    )
    assert outcomes(result) == {"service.solo": "failed"}
    assert result.error == "service fxrec_solo was taken by stack other while applying"
    assert _stored(swarm, "fxrec_solo")["Spec"]["Labels"][STACK_LABEL] == "other"
