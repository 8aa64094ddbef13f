"""depends_on and swarm jobs: the spec's forms and checks, the plan's waves, and apply on the
fake swarm (order, a job's completion and failure, dependents skipped, --rerun)."""

from __future__ import annotations

from typing import Any, cast

import pytest
import yaml
from fake_engine import FakeClock, FakeSwarm

from converge.diff import diff
from converge.engine import Engine
from converge.errors import EngineError, PlanError, SpecError
from converge.executor import ApplyEvents, ApplyOptions, ApplyResult, apply_plan
from converge.loader import load_spec_text
from converge.observe import observe
from converge.ordering import depths
from converge.planner import PlanOptions, plan
from converge.render import plan_text
from converge.render.plan import plan_document, plan_from_document, plan_markdown
from converge.spec import Spec

STACK = "fxrec"


def three_tiers(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "x-converge": {"stack": STACK},
        "services": {
            "db": {"image": "converge-lab/app:v1"},
            "seed": {
                "image": "converge-lab/busybox:1.35.0",
                "command": ["sh", "-c", "echo seeding"],
                "depends_on": {"db": {"condition": "service_healthy"}},
                "deploy": {"mode": "replicated-job", "restart_policy": {"condition": "none"}},
            },
            "web": {
                "image": "converge-lab/app:v1",
                "depends_on": {"seed": {"condition": "service_completed_successfully"}},
                "deploy": {"replicas": 2},
            },
            "cache": {"image": "converge-lab/app:v1"},
        },
    }
    for key, value in changes.items():
        document["services"][key] = value
    return document


def load(document: dict[str, Any]) -> Spec:
    text = yaml.safe_dump(document, sort_keys=False)
    return load_spec_text(text, "stack.yml", require_stack=False).spec


def error_of(text: str) -> str:
    with pytest.raises(SpecError) as caught:
        load_spec_text(text, "stack.yml", require_stack=False)
    return str(caught.value)


# ---------------------------------------------------------------------------------------------
# The spec


def test_both_compose_forms_mean_the_same() -> None:
    listed = load({"services": {"a": {"image": "x", "depends_on": ["b"]}, "b": {"image": "x"}}})
    mapped = load(
        {
            "services": {
                "a": {"image": "x", "depends_on": {"b": {"condition": "service_started"}}},
                "b": {"image": "x"},
            }
        }
    )
    assert listed.services["a"].depends_on == mapped.services["a"].depends_on
    entry = listed.services["a"].depends_on["b"]
    assert (entry.condition, entry.required) == ("service_started", True)


def test_a_cycle_is_an_error_naming_it_with_file_and_line() -> None:
    text = (
        "services:\n"
        "  a:\n    image: x\n    depends_on: [b]\n"
        "  b:\n    image: x\n    depends_on:\n      c: {condition: service_healthy}\n"
        "  c:\n    image: x\n    depends_on: [a]\n"
    )
    assert error_of(text) == (
        "stack.yml:4:18: services.a.depends_on.b: depends_on makes a cycle: a -> b -> c -> a"
    )


def test_a_dependency_on_a_service_not_in_the_stack_is_an_error() -> None:
    text = "services:\n  web:\n    image: x\n    depends_on: [dbb]\n  db:\n    image: x\n"
    assert error_of(text) == (
        "stack.yml:4:18: services.web.depends_on.dbb: service 'dbb' is not a service of this "
        "stack; did you mean 'db'?"
    )


def test_completed_successfully_needs_a_job() -> None:
    text = (
        "services:\n  web:\n    image: x\n    depends_on:\n"
        "      db: {condition: service_completed_successfully}\n  db:\n    image: x\n"
    )
    assert "services.web.depends_on.db.condition: service 'db' is not a job" in error_of(text)


def test_depths_follow_the_longest_chain() -> None:
    assert depths(load(three_tiers())) == {"db": 0, "seed": 1, "web": 2, "cache": 0}


# ---------------------------------------------------------------------------------------------
# Plans


def swarm() -> FakeSwarm:
    return FakeSwarm.recorded("empty")


def plan_for(spec: Spec, fake: FakeSwarm, options: PlanOptions = PlanOptions()) -> Any:
    observed = observe(cast(Engine, fake), spec)
    return plan(spec, diff(spec, observed), observed, options), observed


def test_creates_are_planned_in_waves_with_what_they_wait_for() -> None:
    planned, _ = plan_for(load(three_tiers()), swarm())
    waves = {a.key: (a.wave, a.waits_for) for a in planned.actions if a.object_kind == "service"}
    assert waves == {
        "cache": (1, ()),
        "db": (1, ()),
        "seed": (2, ("db (healthy)",)),
        "web": (3, ("seed (completed successfully)",)),
    }
    text = plan_text(planned)
    assert "  wave 3: web (after seed (completed successfully))" in text
    assert "# wave 2, after db (healthy)" in text
    assert "- wave 2: seed (after db (healthy))" in plan_markdown(planned)
    document = plan_document(planned)
    web = next(item for item in document["actions"] if item["address"] == "service.web")
    assert (web["wave"], web["waits_for"]) == (3, ["seed (completed successfully)"])
    assert plan_from_document(document).actions == planned.actions


def test_without_depends_on_every_service_is_in_one_wave_and_no_order_is_shown() -> None:
    document = three_tiers()
    for service in document["services"].values():
        service.pop("depends_on", None)
    planned, _ = plan_for(load(document), swarm())
    assert {a.wave for a in planned.actions if a.object_kind == "service"} == {1}
    assert "wave" not in plan_text(planned)


# ---------------------------------------------------------------------------------------------
# Apply on the fake swarm


def apply(spec: Spec, fake: FakeSwarm, options: PlanOptions = PlanOptions()) -> ApplyResult:
    planned, observed = plan_for(spec, fake, options)
    order: list[str] = []
    events = ApplyEvents(action_started=lambda action: order.append(action.key))
    result = apply_plan(
        planned,
        spec,
        cast(Engine, fake),
        observed,
        events,
        ApplyOptions(clock=FakeClock(), stable_for=0.0),
    )
    apply.order = order  # type: ignore[attr-defined]
    return result


def test_apply_runs_the_waves_in_order_and_a_second_apply_writes_nothing() -> None:
    fake, spec = swarm(), load(three_tiers())
    result = apply(spec, fake)
    assert result.ok, result.error
    order: list[str] = apply.order  # type: ignore[attr-defined]
    assert order.index("seed") > order.index("db")
    assert order.index("web") > order.index("seed")
    planned, _ = plan_for(spec, fake)
    assert planned.actions == ()
    again = apply(spec, fake)
    assert again.ok, again.error
    assert again.write_calls == 0
    runs = [t for t in fake.tasks() if t.get("JobIteration") is not None]
    assert len(runs) == 1


def test_a_failed_job_names_node_exit_code_and_log_lines_and_skips_its_dependents() -> None:
    fake = swarm()
    fake.fail_job(f"{STACK}_seed", 3, "seeding\nmigration failed: table exists\n")
    result = apply(load(three_tiers()), fake)
    assert not result.ok
    assert result.error is not None
    assert f"job {STACK}_seed: task on " in result.error
    assert "exited with code 3; its last log lines:\n    seeding\n" in result.error
    assert "    migration failed: table exists" in result.error
    outcomes = {outcome.address: outcome for outcome in result.outcomes}
    assert outcomes["service.web"].outcome == "skipped"
    assert outcomes["service.web"].message == "not touched: it depends on seed, which failed"
    assert outcomes["service.cache"].outcome == "created"
    assert not any(s["Spec"]["Name"] == f"{STACK}_web" for s in fake.services())


def test_a_dependency_that_is_not_required_does_not_stop_its_dependent() -> None:
    document = three_tiers()
    document["services"]["web"]["depends_on"]["seed"]["required"] = False
    fake = swarm()
    fake.fail_job(f"{STACK}_seed", 1)
    result = apply(load(document), fake)
    assert not result.ok
    assert {o.address: o.outcome for o in result.outcomes}["service.web"] == "created"


def test_a_failed_job_stays_failed_on_a_no_op_apply_until_it_runs_again() -> None:
    fake, spec = swarm(), load(three_tiers())
    fake.fail_job(f"{STACK}_seed", 3, "boom\n")
    assert not apply(spec, fake).ok
    fake.fail_job(f"{STACK}_seed", 0)
    rerun = apply(spec, fake, PlanOptions(rerun=("seed",)))
    assert rerun.ok, rerun.error


def test_a_no_op_apply_after_a_failed_job_fails_writes_nothing_and_respects_the_lock() -> None:
    """Issue 15, item 1, with a job in the stack: nothing to change is no success while the
    job's run failed, and a live holder's lock is respected."""
    from converge.api import ApplyRequest, apply, make_plan
    from converge.errors import LockError
    from converge.lock import acquire

    document = three_tiers()
    for key in ("seed", "web"):
        document["services"][key].pop("depends_on")
    text = yaml.safe_dump(document, sort_keys=False)
    loaded = load_spec_text(text, "stack.yml", require_stack=False)
    fake = swarm()
    engine = cast(Engine, fake)
    request = ApplyRequest(apply_options=ApplyOptions(clock=FakeClock(), stable_for=0.0))
    fake.fail_job(f"{STACK}_seed", 3, "boom\n")
    assert apply(loaded, engine, request).status == "failed"
    assert make_plan(loaded, engine).plan.actions == ()
    writes = fake.write_count
    again = apply(loaded, engine, request)
    assert again.status == "failed"
    assert again.result is not None
    assert "job fxrec_seed: task on dbhost exited with code 3" in str(again.result.error)
    assert fake.write_count == writes
    acquire(engine, STACK, wait=0, hold_for=600)
    with pytest.raises(LockError, match=f"stack {STACK} is locked by"):
        apply(loaded, engine, request)


def test_rerun_plans_a_new_run_of_an_unchanged_job_only() -> None:
    fake, spec = swarm(), load(three_tiers())
    assert apply(spec, fake).ok
    planned, _ = plan_for(spec, fake, PlanOptions(rerun=("seed",)))
    assert [a.description for a in planned.actions] == [
        f"~ service {STACK}_seed: run the job again (--rerun)"
    ]
    result = apply(spec, fake, PlanOptions(rerun=("seed",)))
    assert result.ok, result.error
    iterations = {t["JobIteration"].get("Index", 0) for t in fake.tasks() if "JobIteration" in t}
    assert iterations == {0, 1}
    with pytest.raises(PlanError, match="--rerun web: not a job of stack fxrec"):
        plan_for(spec, fake, PlanOptions(rerun=("web",)))


def test_drift_calls_a_completed_job_healthy_and_a_failed_one_not() -> None:
    from datetime import UTC, datetime

    from converge.drift import drift_report

    document = three_tiers()
    for key in ("web", "cache"):
        document["services"].pop(key)
    text = yaml.safe_dump(document, sort_keys=False)
    loaded = load_spec_text(text, "stack.yml", require_stack=False)
    fake = swarm()
    assert apply(loaded.spec, fake).ok

    def report() -> Any:
        planned, observed = plan_for(loaded.spec, fake)
        return drift_report(loaded, planned, observed, checked_at=datetime.now(UTC))

    healthy = report()
    assert healthy.findings == ()
    assert {s.key: s.healthy for s in healthy.services} == {"db": True, "seed": True}
    fake.fail_job(f"{STACK}_seed", 2)
    assert not apply(loaded.spec, fake, PlanOptions(rerun=("seed",))).ok
    failed = report()
    (message,) = [f.message for f in failed.findings if f.address == "service.seed"]
    assert message.startswith("job: 0/1 tasks completed; task on ")
    assert message.endswith(" exited with code 2")


def test_graph_changes_name_each_edge_that_came_went_or_changed() -> None:
    from converge.ordering import graph_changes

    before = {"seed": {"db": "service_healthy"}, "web": {"seed": "service_started"}}
    after = {"web": {"seed": "service_completed_successfully", "cache": "service_started"}}
    assert graph_changes(before, after) == (
        "seed: no longer waits for db",
        "web: now waits for cache (started)",
        "web: waits for seed completed successfully (was started)",
    )
    assert graph_changes(after, after) == ()


def test_apply_records_the_graph_and_the_next_plan_says_when_it_changed() -> None:
    from converge.api import ApplyRequest, apply, make_plan
    from converge.naming import graph_record_name

    fake, document = swarm(), three_tiers()
    engine = cast(Engine, fake)
    request = ApplyRequest(apply_options=ApplyOptions(clock=FakeClock(), stable_for=0.0))

    def loaded() -> Any:
        text = yaml.safe_dump(document, sort_keys=False)
        return load_spec_text(text, "stack.yml", require_stack=False)

    first = make_plan(loaded(), engine).plan
    assert not first.graph_recorded
    assert "seed: now waits for db (healthy)" in first.graph_changes
    assert apply(loaded(), engine, request).ok
    assert [c["Spec"]["Name"] for c in fake.configs()] == [graph_record_name(STACK)]
    assert make_plan(loaded(), engine).plan.graph_changes == ()
    document["services"]["seed"]["depends_on"]["db"]["condition"] = "service_started"
    changed = make_plan(loaded(), engine).plan
    assert (changed.actions, changed.graph_changes) == (
        (),
        ("seed: waits for db started (was healthy)",),
    )
    assert "changed since the last apply:\n  seed: waits for db started" in plan_text(changed)
    writes = fake.write_count
    run = apply(loaded(), engine, request)
    assert run.ok
    # The lock taken and released, the record replaced (removed, created): no service write.
    assert fake.write_count - writes == 4
    assert make_plan(loaded(), engine).plan.graph_changes == ()


def test_a_destroy_killed_before_removing_the_graph_record_is_finished_by_the_next_one() -> None:
    """The record is converge's own object: a destroy killed after its last removal left it,
    and the next destroy (nothing else left) must still find and remove it (issue 15, item 5)."""
    from converge.api import ApplyRequest, apply, destroy, make_plan
    from converge.naming import graph_record_name
    from converge.planner import PlanOptions

    fake = swarm()
    engine = cast(Engine, fake)
    request = ApplyRequest(apply_options=ApplyOptions(clock=FakeClock(), stable_for=0.0))
    text = yaml.safe_dump(three_tiers(), sort_keys=False)
    loaded = load_spec_text(text, "stack.yml", require_stack=False)
    assert apply(loaded, engine, request).ok
    for service in engine.services():  # what the killed destroy did remove
        engine.remove_service(service["Spec"]["Name"], service["ID"])
    for network in engine.networks():
        if network["Name"].startswith(f"{STACK}_"):
            engine.remove_network(network["Name"], network["Id"])
    assert [c["Spec"]["Name"] for c in fake.configs()] == [graph_record_name(STACK)]
    planned = make_plan(loaded, engine, PlanOptions(destroy=True)).plan
    assert planned.graph_changes == (
        f"removed with the stack (its record, config {graph_record_name(STACK)})",
    )
    run = destroy(loaded, engine, request)
    assert run.ok
    assert fake.configs() == []
    assert destroy(loaded, engine, request).status == "no_changes"


def test_a_secret_a_failed_job_logged_is_masked_in_the_error() -> None:
    from converge.masking import Masker

    document = three_tiers()
    document["services"]["seed"]["environment"] = {"DB_PASSWORD": "${DB_PASSWORD}"}
    text = yaml.safe_dump(document, sort_keys=False)
    loaded = load_spec_text(
        text, "stack.yml", environ={"DB_PASSWORD": "hunter2-lab"}, require_stack=False
    )
    fake = swarm()
    fake.fail_job(f"{STACK}_seed", 1, "connecting as root with hunter2-lab\n")
    result = apply(loaded.spec, fake)
    assert result.error is not None
    assert "hunter2-lab" in result.error
    shown = Masker(loaded).text(result.error)
    assert "hunter2-lab" not in shown
    assert "connecting as root with (sensitive)" in shown


def test_logs_the_log_driver_does_not_allow_reading_are_said_so() -> None:
    fake = swarm()
    fake.fail_job(f"{STACK}_seed", 3, "never shown\n")
    explanation = "configured logging driver does not support reading"
    fake.fail_next("task_logs", explanation=explanation)
    result = apply(load(three_tiers()), fake)
    assert result.error is not None
    assert "exited with code 3; its logs cannot be read through the engine (failed to read " in (
        result.error
    )
    assert explanation in result.error
    assert "never shown" not in result.error


def test_the_engine_log_stream_is_demultiplexed() -> None:
    from converge.engine import _demultiplex

    framed = b"\x01\0\0\0\0\0\0\x08seeding\n\x02\0\0\0\0\0\0\x07failed\n"
    assert _demultiplex(framed) == (b"seeding\nfailed\n", "")
    assert _demultiplex(b"tty output\n") == (b"tty output\n", "")
    assert _demultiplex(b"") == (b"", "")


def test_an_error_the_engine_puts_in_the_log_stream_is_an_error_not_log_lines() -> None:
    """Seen on the lab: a task's node had just restarted, and the stream began with a frame
    of kind 3 (the engine's error), which was shown as log lines, header bytes and all."""
    from converge.engine import _demultiplex

    why = b"some logs could not be retrieved: node q58rf is not available"
    framed = b"\x03\0\0\0" + len(why).to_bytes(4, "big") + why
    assert _demultiplex(framed) == (b"", why.decode())

    class _LogClient:
        """An APIClient that answers the task-logs request with ``framed``."""

        def __init__(self) -> None:
            self.hooks: dict[str, list[Any]] = {"response": []}

        def _url(self, path: str, *args: str) -> str:
            return path.format(*args)

        def get(self, url: str, params: dict[str, Any]) -> bytes:
            return framed

        def _result(self, response: bytes, binary: bool) -> bytes:
            return response

    engine = Engine(_LogClient(), "fake")  # type: ignore[arg-type]
    with pytest.raises(EngineError, match="failed to read the logs of task t1: some logs could"):
        engine.task_logs("t1", 10)
