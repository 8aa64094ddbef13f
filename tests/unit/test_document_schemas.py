"""The JSON Schemas under docs/schemas/ describe what the renderers produce.

Every plan fixture (tests/unit/test_planner.py) and every drift case
(tests/unit/test_drift_report.py) is checked against its schema where it is built; here: the
schemas themselves, status and apply documents from the fake swarm, and that a wrong document
is caught.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
from fake_engine import FakeClock, FakeSwarm
from jsonschema import Draft202012Validator
from test_planner import BASE_SPEC, ENVIRON
from test_render_status import REPORT

from converge import __version__
from converge.actions import PlanFinding
from converge.api import (
    ApplyRequest,
    apply,
    load_apply_input,
    make_plan,
    save_plan,
    stack_status,
)
from converge.engine import Engine
from converge.errors import EngineError, LockError, SpecError
from converge.executor import ApplyOptions
from converge.render import apply_document, plan_document, status_document
from converge.render.errors import error_json, plan_errors_json
from tests.document_schemas import KINDS, SCHEMAS, assert_valid, validator

FAST = ApplyOptions(clock=FakeClock(), poll_interval=0.01, timeout=5)


@pytest.mark.parametrize("kind", KINDS)
def test_each_schema_is_a_valid_draft_2020_12_schema(kind: str) -> None:
    schema = validator(kind).schema
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {"format_version", "converge_version"} <= set(schema["required"])


def test_every_schema_file_is_one_of_the_documents() -> None:
    assert sorted(path.name for path in SCHEMAS.iterdir()) == sorted(
        f"{kind}.schema.json" for kind in KINDS
    )


def test_status_documents_fit_the_schema() -> None:
    assert_valid("status", status_document(REPORT))
    loaded, _ = load_apply_input([BASE_SPEC], environ=ENVIRON)
    swarm = FakeSwarm.recorded("fxrec")
    document = status_document(stack_status(loaded.spec, cast(Engine, swarm)))
    assert document["services"], "the recorded stack has services"
    assert_valid("status", document)
    # A stack not deployed yet: every service missing.
    empty = status_document(stack_status(loaded.spec, cast(Engine, FakeSwarm.recorded("empty"))))
    assert empty["missing"]
    assert_valid("status", empty)


def test_apply_documents_fit_the_schema_applied_and_failed() -> None:
    loaded, _ = load_apply_input([BASE_SPEC], environ=ENVIRON)
    run = apply(loaded, cast(Engine, FakeSwarm.recorded("empty")), ApplyRequest(apply_options=FAST))
    assert run.result is not None
    assert run.result.ok
    applied = apply_document(run.result, run.plan.plan, loaded)
    assert applied["actions"]
    assert_valid("apply", applied)

    swarm = FakeSwarm.recorded("empty")
    swarm.fail_next("create_network", explanation="network plugin not found")
    failed = apply(loaded, cast(Engine, swarm), ApplyRequest(apply_options=FAST))
    assert failed.result is not None
    assert not failed.result.ok
    document = apply_document(failed.result, failed.plan.plan, loaded)
    assert {"failed", "skipped"} <= {action["outcome"] for action in document["actions"]}
    assert_valid("apply", document)


def test_rollout_status_documents_fit_the_schema() -> None:
    from converge.lb.rollout import Figures
    from converge.render.rollout import rollout_status_json
    from converge.rollout import RolloutStatus

    running = RolloutStatus(
        stack="shop",
        key="web",
        service="shop_web",
        strategy="canary",
        steps=(10, 50, 100),
        candidate="shop_web-next",
        share=50,
        candidate_up=2,
        candidate_running=2,
        candidate_desired=2,
        figures=Figures(200, 1, 0),
    )
    idle = RolloutStatus("shop", "web", "shop_web", "blue-green", (100,), None, None, pending=True)
    for status in (running, idle):
        document = json.loads(rollout_status_json(status))
        assert document["converge_version"] == __version__
        assert document["in_progress"] is (status.candidate is not None)
        assert_valid("rollout", document)


def test_a_document_that_strays_from_its_schema_is_caught() -> None:
    loaded, _ = load_apply_input([BASE_SPEC], environ=ENVIRON)
    result = make_plan(loaded, cast(Engine, FakeSwarm.recorded("fxrec")))
    good = plan_document(result.plan, loaded)
    assert good["converge_version"] == __version__
    assert_valid("plan", good)

    def broken(change: Any) -> dict[str, Any]:
        document = copy.deepcopy(good)
        change(document)
        return document

    wrong = [
        broken(lambda d: d.pop("converge_version")),
        broken(lambda d: d.update(undocumented=1)),
        broken(lambda d: d["spec"].update(digest="not-a-sha256")),
        broken(lambda d: d.update(format_version="2.0")),
        broken(lambda d: d["summary"].update(add=-1)),
    ]
    for document in wrong:
        with pytest.raises(AssertionError, match="does not fit"):
            assert_valid("plan", document)


def test_saved_plans_fit_the_plan_schema(tmp_path: Path) -> None:
    loaded, _ = load_apply_input([BASE_SPEC], environ=ENVIRON)
    result = make_plan(loaded, cast(Engine, FakeSwarm.recorded("empty")))
    saved = tmp_path / "plan.json"
    save_plan(result, saved)
    document = json.loads(saved.read_text(encoding="utf-8"))
    assert {"options", "spec_files"} <= set(document)
    assert_valid("plan", document)


def test_error_documents_fit_the_error_schema(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("name: shop\nservices:\n  web:\n    image: app:1\n    deploy: {replicas: -1}\n")
    with pytest.raises(SpecError) as raised:
        load_apply_input([bad])
    spec_error = json.loads(error_json(raised.value))
    assert spec_error["error"]["problems"][0]["line"] == 5
    assert_valid("error", spec_error)
    assert_valid("error", json.loads(error_json(LockError("stack shop is locked by x"))))
    loaded, _ = load_apply_input([BASE_SPEC], environ=ENVIRON)
    blocked = make_plan(loaded, cast(Engine, FakeSwarm.recorded("fxrec")))
    collision = PlanFinding("error", "service.web", "port 80 is taken by other_web")
    plan = replace(blocked.plan, findings=(*blocked.plan.findings, collision))
    assert_valid("error", json.loads(plan_errors_json(plan, loaded)))


def test_an_error_document_masks_a_password_the_engine_error_carries() -> None:
    error = EngineError("failed to create service s_web: pull postgres://app:pw-0451@db/x denied")
    document = json.loads(error_json(error))
    assert "pw-0451" not in json.dumps(document)
    assert_valid("error", document)
