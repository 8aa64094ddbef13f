"""``converge show`` of saved plans, and ``--target`` through plan, saved plans and apply."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
from fake_engine import FakeClock, FakeSwarm
from test_cli_conventions import on_swarm, run
from test_planner import BASE_SPEC, ENVIRON

from converge.executor import ApplyOptions
from converge.render import plan_from_document, plan_json
from converge.render.plan import plan_document

SPEC = str(BASE_SPEC)


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.fixture(autouse=True)
def _fake_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # The executor waits on a fake clock: stability windows pass without sleeping.
    fast = functools.partial(ApplyOptions, clock=FakeClock(), poll_interval=0.01)
    monkeypatch.setattr("converge.executor.ApplyOptions", fast)


def services(swarm: FakeSwarm) -> list[str]:
    return sorted(service["Spec"]["Name"] for service in swarm.services())


def saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[Path, Any]:
    on_swarm(monkeypatch, FakeSwarm.recorded("empty"))
    target = tmp_path / "plan.json"
    result = run("plan", SPEC, "--out", str(target), *args)
    assert result.exit_code == 0, result.output
    return target, result


# -- show ----------------------------------------------------------------------------------------


def test_show_renders_a_saved_plan_as_plan_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target, planned = saved(tmp_path, monkeypatch)
    shown = run("show", str(target))
    assert shown.exit_code == 0, shown.output
    assert shown.stdout == planned.stdout
    assert shown.stdout.rstrip().endswith("Plan: 9 to add, 0 to change, 0 to destroy.")


def test_show_json_is_the_saved_document_and_markdown_its_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target, _ = saved(tmp_path, monkeypatch)
    shown = run("show", str(target), "-o", "json")
    assert shown.exit_code == 0
    assert json.loads(shown.stdout) == json.loads(target.read_text())
    markdown = run("show", str(target), "-o", "markdown")
    assert "**Plan: 9 to add, 0 to change, 0 to destroy.**" in markdown.stdout


def test_a_plan_document_reads_back_into_the_same_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target, _ = saved(tmp_path, monkeypatch)
    document = json.loads(target.read_text())
    again = plan_document(plan_from_document(document))
    assert all(again[key] == document[key] for key in again)
    assert json.loads(plan_json(plan_from_document(document))) == again


def test_show_of_another_versions_plan_warns_and_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target, _ = saved(tmp_path, monkeypatch)
    document = json.loads(target.read_text())
    document["converge_version"] = "0.0.1"
    target.write_text(json.dumps(document))
    shown = run("show", str(target))
    assert shown.exit_code == 0
    assert shown.stderr.startswith("Warning: ")
    assert "saved by converge 0.0.1" in shown.stderr
    assert "Plan: 9 to add" in shown.stdout


def test_show_refuses_what_is_not_a_plan(tmp_path: Path) -> None:
    bogus = tmp_path / "plan.json"
    bogus.write_text('{"format_version": "1.0", "stack": "s"}')
    result = run("show", str(bogus))
    assert result.exit_code == 1
    assert "not a plan document" in str(result.exception)


# -- --target ------------------------------------------------------------------------------------


def test_plan_with_a_target_warns_and_plans_only_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_swarm(monkeypatch, FakeSwarm.recorded("empty"))
    result = run("plan", SPEC, "--target", "service.db")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("Warning: resource targeting is in effect (service.db)")
    assert "for exceptional situations" in result.stderr
    assert "Plan: 2 to add, 0 to change, 0 to destroy." in result.stdout


def test_a_target_naming_nothing_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    on_swarm(monkeypatch, FakeSwarm.recorded("empty"))
    result = run("plan", SPEC, "--target", "service.nope")
    assert result.exit_code == 1
    assert "--target service.nope: no such object" in str(result.exception)
    as_json = run("plan", SPEC, "--target", "service.nope", "-o", "json")
    assert json.loads(as_json.stdout)["error"]["kind"] == "plan"


def test_apply_with_a_target_changes_only_it(monkeypatch: pytest.MonkeyPatch) -> None:
    swarm = FakeSwarm.recorded("empty")
    on_swarm(monkeypatch, swarm)
    result = run("apply", SPEC, "--target", "service.pinned", "--yes", "--timeout", "1m")
    assert result.exit_code == 0, result.output
    assert "resource targeting is in effect" in result.stderr
    assert services(swarm) == ["fxrec_pinned"]


def test_a_saved_targeted_plan_is_applied_as_targeted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target, _ = saved(tmp_path, monkeypatch, "--target", "service.pinned")
    swarm = FakeSwarm.recorded("empty")
    on_swarm(monkeypatch, swarm)
    refused = run("apply", str(target), "--prune")
    assert refused.exit_code == 1
    assert "fixed when the plan was saved" in str(refused.exception)
    result = run("apply", str(target))
    assert result.exit_code == 0, result.output
    assert "resource targeting is in effect (service.pinned)" in result.stderr
    assert services(swarm) == ["fxrec_pinned"]


# -- apply's progress, as a CI log receives it -----------------------------------------------------


def test_apply_logs_each_action_and_each_service_converged(monkeypatch: pytest.MonkeyPatch) -> None:
    on_swarm(monkeypatch, FakeSwarm.recorded("empty"))
    result = run("apply", SPEC, "--yes")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for address in ("network.backend", "service.db", "service.web"):
        assert f"{address}: creating..." in lines
        assert any(line.startswith(f"{address}: created in ") for line in lines)
    assert any(line.startswith("service.web: converged in ") for line in lines)
    assert not any(line.startswith("network.backend: converged") for line in lines)
    assert " ok" not in result.stdout
    assert lines[-1].startswith("Apply complete! 9 added, 0 changed, 0 destroyed")
    as_json = run("apply", SPEC, "--yes", "-o", "json")
    assert json.loads(as_json.stdout)["ok"] is True


def test_destroy_refuses_a_saved_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target, _ = saved(tmp_path, monkeypatch)
    swarm = FakeSwarm.recorded("empty")
    on_swarm(monkeypatch, swarm)
    refused = run("destroy", str(target), "--yes")
    assert refused.exit_code == 1
    assert str(refused.exception) == "destroy takes the spec files, not a saved plan"
    assert swarm.write_count == 0
