"""Drift reports: sync and health findings from the real planner on the recorded lab state.

Each case edits the recorded engine JSON (``tests/fixtures/recorded/fxrec.json``) the way the
swarm would look after a hand change or a failure, and/or edits the spec that made the
recording, then checks exactly which findings come out.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from converge.api import resolved_spec_hash
from converge.diff import diff
from converge.drift import DriftReport, drift_report
from converge.loader import load_spec_text
from converge.observe import state_from_engine_json
from converge.planner import plan
from converge.render import (
    DRIFT_FORMAT_VERSION,
    report_document,
    report_json,
    report_markdown,
    report_text,
)
from tests.document_schemas import assert_valid

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "tests" / "fixtures" / "recorded"
BASE_SPEC = (RECORDED / "fxrec.yml").read_text(encoding="utf-8")
RECORDING: dict[str, Any] = json.loads((RECORDED / "fxrec.json").read_text(encoding="utf-8"))
SECRET = "s3cret-fixture-password"  # what the recorded engine holds
CHECKED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

Engine = dict[str, Any]


def check(
    edit: Callable[[Engine], None] | None = None,
    spec_text: str = BASE_SPEC,
    secret: str = SECRET,
) -> DriftReport:
    engine = copy.deepcopy(RECORDING)
    if edit is not None:
        edit(engine)
    loaded = load_spec_text(spec_text, "spec.yml", environ={"DB_PASSWORD": secret})
    observed = state_from_engine_json(
        loaded.spec.stack,
        engine["manager"],
        nodes=engine["nodes"],
        networks=engine["networks"],
        services=engine["services"],
        tasks=engine["tasks"],
    )
    planned = plan(
        loaded.spec,
        diff(loaded.spec, observed),
        observed,
        spec_digest=resolved_spec_hash(loaded),
        spec_files=loaded.files,
    )
    report = drift_report(
        loaded, planned, observed, checked_at=CHECKED_AT, duration=0.25, git_commit="abc123"
    )
    assert_valid("drift", report_document(report))  # every case's document fits the schema
    return report


def service(engine: Engine, name: str) -> dict[str, Any]:
    return next(item for item in engine["services"] if item["Spec"]["Name"] == f"fxrec_{name}")


def tasks_of(engine: Engine, name: str) -> list[dict[str, Any]]:
    service_id = service(engine, name)["ID"]
    return [task for task in engine["tasks"] if task["ServiceID"] == service_id]


def node(engine: Engine, hostname: str) -> dict[str, Any]:
    return next(item for item in engine["nodes"] if item["Description"]["Hostname"] == hostname)


def found(report: DriftReport) -> set[tuple[str, str, str | None]]:
    return {(finding.kind, finding.address, finding.field) for finding in report.findings}


def with_nodes(nodes: str) -> str:
    """The base spec declaring ``nodes`` (YAML lines indented for x-converge.nodes, moved
    under x-converge.cluster.nodes here)."""
    head = "x-converge:\n  stack: fxrec\n"
    indented = "".join(f"  {line}\n" for line in nodes.splitlines())
    return BASE_SPEC.replace(head, head + "  cluster:\n    nodes:\n" + indented)


def edited(old: str, new: str) -> str:
    assert old in BASE_SPEC
    return BASE_SPEC.replace(old, new)


# --- sync -----------------------------------------------------------------------------------


def test_the_recording_is_in_sync_and_healthy() -> None:
    report = check()
    assert report.findings == ()
    assert report.in_sync
    assert report.healthy
    assert report.exit_code() == 0
    assert {status.key: (status.running, status.desired) for status in report.services} == {
        "agent": (5, 5),
        "db": (1, 1),
        "labelled": (0, 0),
        "latest": (0, 0),
        "pinned": (0, 0),
        "web": (3, 3),
    }


def _scale_web(engine: Engine) -> None:
    service(engine, "web")["Spec"]["Mode"]["Replicated"]["Replicas"] = 2


def _env_added(engine: Engine) -> None:
    container = service(engine, "web")["Spec"]["TaskTemplate"]["ContainerSpec"]
    container["Env"] = [*container["Env"], "FOO=bar"]


def _label_removed(engine: Engine) -> None:
    node(engine, "worker2")["Spec"]["Labels"] = {}


SYNC_CASES = [
    pytest.param(
        _scale_web, BASE_SPEC, ("service.web", "deploy.replicas", 2, 3, "scale"), id="scale"
    ),
    pytest.param(
        _env_added, BASE_SPEC, ("service.web", "environment.FOO", "bar", None, "update"), id="env"
    ),
    pytest.param(
        _label_removed,
        with_nodes("    dbhost: {}\n    worker2: {labels: {type: mvc}}\n"),
        ("node.worker2", "labels.type", None, "mvc", "update"),
        id="node-label",
    ),
]


@pytest.mark.parametrize(("edit", "spec_text", "expected"), SYNC_CASES)
def test_a_hand_change_is_exactly_one_sync_finding(
    edit: Callable[[Engine], None], spec_text: str, expected: tuple[Any, ...]
) -> None:
    assert check(None, spec_text).findings == ()
    report = check(edit, spec_text)
    [finding] = report.sync_findings
    assert (
        finding.address,
        finding.field,
        finding.before,
        finding.after,
        finding.action,
    ) == expected
    assert report.exit_code("drift") == 2
    assert report.exit_code("any") == 2


def test_a_service_left_out_of_the_spec_is_drift() -> None:
    spec_text = re.sub(r"\n  agent:\n(    .*\n)+", "\n", BASE_SPEC)
    report = check(spec_text=spec_text)
    # The monitoring network only agent used goes too: a stack has the networks it uses.
    network, finding = report.sync_findings
    assert (network.address, network.action) == ("network.monitoring", "remove")
    assert (finding.address, finding.action) == ("service.agent", "remove")
    assert "owned by stack fxrec but not in the spec" in finding.message
    assert [status.in_sync for status in report.services if status.key == "agent"] == [False]


def test_a_missing_service_is_drift_and_does_not_run() -> None:
    def remove_db(engine: Engine) -> None:
        engine["services"].remove(service(engine, "db"))

    report = check(remove_db)
    assert found(report) == {("sync", "service.db", None), ("health", "service.db", "tasks")}
    assert report.sync_findings[0].action == "create"


def test_unowned_objects_in_the_way_are_collisions() -> None:
    spec_text = BASE_SPEC + (
        "  hand:\n    image: converge-lab/app:v1\n"
        "  other:\n    image: converge-lab/app:v1\n    ports: ['39090:80']\n"
    )
    report = check(spec_text=spec_text)
    collisions = {
        (finding.address, finding.field)
        for finding in report.sync_findings
        if finding.action == "collision"
    }
    assert collisions == {("service.hand", None), ("service.other", "ports.39090/tcp")}
    assert any("fxrec_hand exists and is not owned" in f.message for f in report.findings)


def test_secrets_are_masked_in_every_format() -> None:
    new_secret = "n3w-Secret-Value"
    report = check(secret=new_secret)
    [finding] = report.sync_findings
    assert finding.field == "environment.DB_PASSWORD"
    assert (finding.before, finding.after) == ("(sensitive)", "(sensitive)")
    for text in (report_json(report), report_text(report), report_markdown(report)):
        assert SECRET not in text
        assert new_secret not in text


def test_a_secret_in_a_task_error_is_masked() -> None:
    def failing(engine: Engine) -> None:
        for task in tasks_of(engine, "db"):
            task["Status"].update(State="rejected", Err=f"bad password {SECRET}")

    report = check(failing)
    [finding] = report.health_findings
    assert SECRET not in finding.message
    assert "bad password (sensitive)" in finding.message


# --- health ---------------------------------------------------------------------------------


def test_tasks_that_cannot_start_are_a_health_finding_with_the_error() -> None:
    error = 'starting container failed: exec: "/nonexistent": no such file or directory'

    def failing(engine: Engine) -> None:
        for task in tasks_of(engine, "web"):
            task["Status"].update(State="rejected", Err=error)

    report = check(failing)
    assert report.in_sync
    [finding] = report.health_findings
    assert (finding.address, finding.field) == ("service.web", "tasks")
    assert finding.message.startswith("0/3 tasks running; last task error: ")
    assert error in finding.message
    assert report.exit_code("drift") == 0
    assert report.exit_code("health") == 2
    assert report.services_unhealthy == 1


def test_unplaceable_tasks_name_the_scheduler_complaint() -> None:
    complaint = "no suitable node (scheduling constraints not satisfied on 5 nodes)"

    def pending(engine: Engine) -> None:
        for task in tasks_of(engine, "db"):
            task["NodeID"] = ""
            task["Status"].update(State="pending", Err=complaint)

    [finding] = check(pending).health_findings
    assert finding.message == f"0/1 tasks running; tasks cannot be placed: {complaint}"


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("rollback_completed", "the last update was rolled back"),
        ("paused", "the last update paused: update paused due to failure"),
    ],
)
def test_a_rollback_or_a_paused_update_is_unhealthy(state: str, expected: str) -> None:
    message = (
        "rollback completed" if state.startswith("rollback") else ("update paused due to failure")
    )

    def rolled(engine: Engine) -> None:
        service(engine, "web")["UpdateStatus"] = {
            "State": state,
            "StartedAt": "2026-01-02T03:00:00Z",
            "Message": message,
        }

    report = check(rolled)
    assert [(f.address, f.field, f.message) for f in report.health_findings] == [
        ("service.web", "update_state", expected)
    ]


def test_a_node_down_is_a_health_finding_and_tasks_on_it_do_not_count() -> None:
    def down(engine: Engine) -> None:
        node(engine, "worker3")["Status"]["State"] = "down"

    report = check(down)
    assert report.in_sync
    assert report.nodes_not_ready == ("worker3",)
    assert found(report) == {
        ("health", "node.worker3", "state"),
        # one web task and the agent's task ran there
        ("health", "service.web", "tasks"),
        ("health", "service.agent", "tasks"),
    }
    node_finding = next(f for f in report.health_findings if f.address == "node.worker3")
    assert node_finding.message == "node worker3 (worker, 10.213.0.14) is down"


def test_a_stale_down_record_beside_a_ready_node_is_ignored() -> None:
    def rejoined(engine: Engine) -> None:
        stale = copy.deepcopy(node(engine, "worker1"))
        stale["ID"] = "stale0000000000000000000"
        stale["Status"]["State"] = "down"
        engine["nodes"].append(stale)

    report = check(rejoined)
    assert report.findings == ()
    assert report.nodes_not_ready == ()


def test_a_declared_node_missing_from_the_swarm() -> None:
    report = check(spec_text=with_nodes("    dbhost: {}\n    worker9: {labels: {type: mvc}}\n"))
    assert found(report) == {("health", "node.worker9", None)}
    assert report.in_sync
    assert any("worker9" in note for note in report.notes)


# --- exit codes and rendering ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("sync", "health", "codes"),
    [
        (False, False, {"drift": 0, "health": 0, "any": 0}),
        (True, False, {"drift": 2, "health": 0, "any": 2}),
        (False, True, {"drift": 0, "health": 2, "any": 2}),
        (True, True, {"drift": 2, "health": 2, "any": 2}),
    ],
)
def test_exit_codes_follow_fail_on(sync: bool, health: bool, codes: dict[str, int]) -> None:
    def edit(engine: Engine) -> None:
        if sync:
            _env_added(engine)
        if health:
            node(engine, "manager")["Status"]["State"] = "unknown"

    report = check(edit)
    assert {fail_on: report.exit_code(fail_on) for fail_on in codes} == codes  # type: ignore[arg-type]


def test_json_document_identifies_the_check_and_each_finding() -> None:
    document = report_document(check(_scale_web))
    assert next(iter(document)) == "format_version"
    assert document["format_version"] == DRIFT_FORMAT_VERSION
    assert document["checked_at"] == "2026-01-02T03:04:05Z"
    assert document["duration_seconds"] == 0.25
    assert document["spec"] == {
        "files": ["spec.yml"],
        "digest": document["spec"]["digest"],
        "git_commit": "abc123",
        "git_dirty": None,
    }
    # The same digest as the plan's: the resolved spec's sha256, not the files' bytes.
    assert document["spec"]["digest"] == resolved_spec_hash(
        load_spec_text(BASE_SPEC, "spec.yml", environ={"DB_PASSWORD": SECRET})
    )
    assert re.fullmatch(r"[0-9a-f]{64}", document["spec"]["digest"])
    # three tasks still run where two are wanted: not a health problem
    assert (document["in_sync"], document["healthy"]) == (False, True)
    assert document["summary"] == {
        "sync": 1,
        "health": 0,
        "services_unhealthy": 0,
        "nodes_not_ready": 0,
    }
    assert document["findings"][0] == {
        "kind": "sync",
        "address": "service.web",
        "name": "fxrec_web",
        "field": "deploy.replicas",
        "message": "deploy.replicas: 2 in the swarm, 3 in the spec",
        "before": 2,
        "after": 3,
        "action": "scale",
    }
    assert json.loads(report_json(check(_scale_web))) == document


def test_text_and_markdown_lead_with_the_status() -> None:
    clean = check()
    assert report_text(clean).endswith(
        "[bold green]In sync and healthy: the swarm matches the spec.[/bold green]"
    )
    drifted = check(_env_added)
    text = re.sub(r"(?<!\\)\[/?[a-z ]+\]", "", report_text(drifted))
    assert "~ service.web: environment.FOO: bar in the swarm, (none) in the spec" in text
    assert "Drift: 1 difference in 1 object." in text
    markdown = report_markdown(drifted).splitlines()
    assert markdown[0] == "### converge drift for stack `fxrec`"
    assert markdown[2] == ":warning: **Drift: 1 difference in 1 object.**"
    assert (
        "| `service.web` | `environment.FOO` | environment.FOO: bar in the swarm, (none) in the "
        "spec |" in markdown
    )
