"""No output path shows a secret: every renderer, fed a plan that rotates, drops and meets
hand-set secrets, and errors that quote them, is scanned for the values.

The recorded lab state (``tests/fixtures/recorded/fxrec.json``) is edited as the swarm would
look: ``fxrec_db`` runs the old value of a variable-sourced ``DB_URL`` (a name that does not
look sensitive: only its source makes it secret) and a ``DB_PASSWORD`` the spec no longer
supplies; ``fxrec_web`` has an ``API_TOKEN`` someone added by hand; a task failed with an error
quoting the new value.
"""

from __future__ import annotations

import copy
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from converge.diff import diff
from converge.drift import drift_report
from converge.executor import ActionOutcome, ApplyResult
from converge.loader import load_spec_text
from converge.masking import MASK, Masker
from converge.observe import state_from_engine_json
from converge.planner import plan
from converge.render import (
    ProgressReporter,
    apply_json,
    plan_json,
    plan_markdown,
    plan_text,
    report_json,
    report_markdown,
    report_metrics,
    report_text,
    status_json,
    status_text,
)

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "tests" / "fixtures" / "recorded"
RECORDING: dict[str, Any] = json.loads((RECORDED / "fxrec.json").read_text(encoding="utf-8"))
OLD_URL = "postgres://app:old-url-pw-0001@db/app"
NEW_URL = "postgres://app:new-url-pw-0002@db/app"
DROPPED = "s3cret-fixture-password"  # DB_PASSWORD, in the recording, no longer in the spec
HAND_SET = "hand-set-token-0003"
SECRETS = (OLD_URL, NEW_URL, DROPPED, HAND_SET, "old-url-pw-0001", "new-url-pw-0002")
SPEC = (
    (RECORDED / "fxrec.yml")
    .read_text(encoding="utf-8")
    .replace("DB_PASSWORD: ${DB_PASSWORD}", "DB_URL: ${DB_URL}")
)


def _service(engine: dict[str, Any], name: str) -> dict[str, Any]:
    return next(item for item in engine["services"] if item["Spec"]["Name"] == f"fxrec_{name}")


def _scenario() -> tuple[Any, Any, Any]:
    engine = copy.deepcopy(RECORDING)
    db = _service(engine, "db")["Spec"]["TaskTemplate"]["ContainerSpec"]
    db["Env"] = [f"DB_URL={OLD_URL}", f"DB_PASSWORD={DROPPED}", "ROLE=db"]
    web = _service(engine, "web")["Spec"]["TaskTemplate"]["ContainerSpec"]
    web["Env"] = [*web["Env"], f"API_TOKEN={HAND_SET}"]
    db_id = _service(engine, "db")["ID"]
    task = next(item for item in engine["tasks"] if item["ServiceID"] == db_id)
    task["Status"].update(State="rejected", Err=f"No such image: registry/app:{NEW_URL}")
    task["DesiredState"] = "running"
    loaded = load_spec_text(SPEC, "spec.yml", environ={"DB_URL": NEW_URL})
    observed = state_from_engine_json(
        loaded.spec.stack,
        engine["manager"],
        nodes=engine["nodes"],
        networks=engine["networks"],
        services=engine["services"],
        tasks=engine["tasks"],
    )
    planned = plan(loaded.spec, diff(loaded.spec, observed), observed)
    return loaded, observed, planned


def _assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{where} shows {secret!r}:\n{text}"


def test_the_scenario_really_rotates_drops_and_meets_a_hand_set_token() -> None:
    _, _, planned = _scenario()
    changed = {
        (action.key, change.field) for action in planned.actions for change in action.changes
    }
    assert {
        ("db", "environment.DB_URL"),
        ("db", "environment.DB_PASSWORD"),
        ("web", "environment.API_TOKEN"),
    } <= changed


def test_plans_in_every_format_show_no_secret() -> None:
    loaded, _, planned = _scenario()
    for name, text in (
        ("plan text", plan_text(planned, loaded)),
        ("plan json", plan_json(planned, loaded)),
        ("plan markdown", plan_markdown(planned, loaded)),
    ):
        _assert_clean(text, name)
        assert MASK in text, name


def test_drift_in_every_format_shows_no_secret() -> None:
    loaded, observed, planned = _scenario()
    report = drift_report(
        loaded, planned, observed, checked_at=datetime(2026, 1, 2, tzinfo=UTC), duration=0.1
    )
    assert report.sync_findings
    assert report.health_findings
    for name, text in (
        ("drift text", report_text(report)),
        ("drift json", report_json(report)),
        ("drift markdown", report_markdown(report)),
        ("drift metrics", report_metrics(report)),
    ):
        _assert_clean(text, name)


def test_apply_progress_result_and_error_show_no_secret() -> None:
    loaded, _, planned = _scenario()
    failure = f"service fxrec_db: task rejected: No such image: registry/app:{NEW_URL}"
    result = ApplyResult(
        "fxrec",
        tuple(
            ActionOutcome(action.address, action.kind, "failed", failure)
            for action in planned.actions
        ),
        error=f"{failure}; before: {OLD_URL}; by hand: {HAND_SET}",
    )
    out = io.StringIO()
    console = Console(file=out, width=400, highlight=False, color_system=None)
    with ProgressReporter(console, masker=Masker(loaded)) as reporter:
        for action in planned.actions:
            reporter.started(action)
        for outcome in result.outcomes:
            reporter.finished(outcome)
    assert "service.db: updating..." in out.getvalue()
    assert "service.db: failed after" in out.getvalue()
    _assert_clean(out.getvalue(), "apply progress")
    _assert_clean(apply_json(result, planned, loaded), "apply json")


def test_status_shows_no_secret_in_task_errors() -> None:
    loaded, _, _ = _scenario()
    report = {
        "stack": "fxrec",
        "services": [
            {
                "key": "db",
                "name": "fxrec_db",
                "in_spec": True,
                "running": 0,
                "desired": 1,
                "update_state": None,
                "converged": False,
                "failure": f"No such image: registry/app:{NEW_URL}",
                "placement": {},
                "errors": [f"dbhost: rejected: No such image: registry/app:{NEW_URL}"],
            }
        ],
        "missing": [],
    }
    _assert_clean(status_text(report, loaded), "status text")
    _assert_clean(status_json(report, loaded), "status json")
    assert MASK in status_text(report, loaded)
