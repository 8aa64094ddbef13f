"""Apply's renderers: the result document, the summary line, and progress on a console."""

from __future__ import annotations

import io
import json

from rich.console import Console

from converge import __version__
from converge.actions import Action, Phase, Plan
from converge.diff import FieldChange
from converge.executor import ActionOutcome, ApplyResult
from converge.health import ServiceHealth
from converge.render import (
    APPLY_FORMAT_VERSION,
    ProgressReporter,
    apply_document,
    apply_json,
    apply_summary_line,
)

NETWORK = Action(Phase.NETWORKS, "create", "network", "backend", "shop_backend", "not in swarm")
WEB = Action(
    Phase.SERVICES,
    "scale",
    "service",
    "web",
    "shop_web",
    "only the replica count differs",
    (FieldChange(("deploy", "replicas"), 3, 5),),
)
OLD = Action(Phase.PRUNE_SERVICES, "remove", "service", "old", "shop_old", "not in the spec")
PLAN = Plan("shop", (NETWORK, WEB, OLD))


def test_the_document_has_every_planned_action_and_skips_the_unreported() -> None:
    result = ApplyResult(
        "shop",
        (
            ActionOutcome("network.backend", "create", "created"),
            ActionOutcome("service.web", "scale", "failed", "no suitable node"),
        ),
        error="service.web: no suitable node",
        write_calls=2,
    )
    document = apply_document(result, PLAN, None)
    assert document == {
        "format_version": APPLY_FORMAT_VERSION,
        "converge_version": __version__,
        "stack": "shop",
        "ok": False,
        "error": "service.web: no suitable node",
        "write_calls": 2,
        "actions": [
            {
                "address": "network.backend",
                "kind": "create",
                "description": "+ network shop_backend: create",
                "outcome": "created",
                "message": "",
            },
            {
                "address": "service.web",
                "kind": "scale",
                "description": "~ service shop_web: deploy.replicas 3 -> 5",
                "outcome": "failed",
                "message": "no suitable node",
            },
            {
                "address": "service.old",
                "kind": "remove",
                "description": "- service shop_old: remove",
                "outcome": "skipped",
                "message": "",
            },
        ],
    }
    assert next(iter(document)) == "format_version"
    assert apply_json(result, PLAN, None) == json.dumps(document, indent=2)


def test_a_plan_without_actions_is_an_empty_ok_result() -> None:
    assert apply_json(ApplyResult("shop", ()), Plan("shop"), None) == (
        '{\n  "format_version": "1.0",\n  "converge_version": "' + __version__ + '",\n'
        '  "stack": "shop",\n  "ok": true,\n  "error": null,\n  "write_calls": 0,\n'
        '  "actions": []\n}'
    )


def test_summary_line_counts_the_plan() -> None:
    assert apply_summary_line(PLAN) == (
        "[bold green]Apply complete![/bold green] 1 added, 1 changed, 1 destroyed; "
        "the swarm converged."
    )
    assert apply_summary_line(Plan("shop", (OLD,)), "Destroy").startswith(
        "[bold green]Destroy complete![/bold green] 0 added, 0 changed, 1 destroyed;"
    )


def _console(buffer: io.StringIO) -> Console:
    return Console(file=buffer, highlight=False, soft_wrap=True, force_terminal=False)


def test_quiet_progress_prints_nothing() -> None:
    buffer = io.StringIO()
    reporter = ProgressReporter(_console(buffer), quiet=True)
    reporter.started(WEB)
    reporter.finished(ActionOutcome("service.web", "scale", "scaled"))
    reporter.waiting([ServiceHealth("web", "shop_web", True, 1, 5, "updating", False)])
    reporter.stop()
    assert buffer.getvalue() == ""


def test_the_document_shows_no_secret_old_or_new() -> None:
    from test_drift_report import BASE_SPEC, RECORDING

    from converge.diff import diff
    from converge.loader import load_spec_text
    from converge.observe import state_from_engine_json
    from converge.planner import plan

    new = "NEW-secret-value"
    loaded = load_spec_text(BASE_SPEC, "spec.yml", environ={"DB_PASSWORD": new})
    observed = state_from_engine_json(
        loaded.spec.stack,
        RECORDING["manager"],
        nodes=RECORDING["nodes"],
        networks=RECORDING["networks"],
        services=RECORDING["services"],
        tasks=RECORDING["tasks"],
    )
    planned = plan(loaded.spec, diff(loaded.spec, observed), observed)
    [action] = planned.actions
    assert new in action.description  # what would leak
    failed = ActionOutcome(action.address, action.kind, "failed", f"engine refused {new}")
    result = ApplyResult(planned.stack, (failed,), error=f"service.db: {new}")

    text = apply_json(result, planned, loaded)
    assert new not in text
    assert "s3cret-fixture-password" not in text  # the swarm's, before
    assert "environment.DB_PASSWORD (sensitive) -> (sensitive)" in text


def test_progress_names_what_changes_never_its_values() -> None:
    buffer = io.StringIO()
    config = FieldChange(("config",), "global\n    old\n", "global\n    new\n")
    reload = Action(Phase.LOADBALANCER, "update", "loadbalancer", "lb", "shop_lb", "", (config,))
    ProgressReporter(_console(buffer)).started(reload)
    assert buffer.getvalue().splitlines() == ["loadbalancer.lb: updating..."]
