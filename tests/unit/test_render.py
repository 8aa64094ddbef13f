"""The three renderings of a plan: terraform-like text, versioned JSON, Markdown; and masking.

Plans come from the real planner on the recorded lab state (see ``test_planner.py``), with the
spec's secret ``DB_PASSWORD`` interpolated from a fake environment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from converge.actions import PLAN_FORMAT_VERSION, Action, Phase, Plan, PlanFinding
from converge.diff import FieldChange, diff
from converge.loader import LoadedSpec, load_spec_text
from converge.masking import MASK
from converge.observe import state_from_engine_json
from converge.planner import PlanOptions, plan
from converge.render import plan_json, plan_markdown, plan_text, summary_line

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "tests" / "fixtures" / "recorded"
BASE_SPEC = (RECORDED / "fxrec.yml").read_text(encoding="utf-8")
OLD_SECRET = "s3cret-fixture-password"  # what the recorded engine holds
NEW_SECRET = "n3w-Secret-Value"
SECRETS = (OLD_SECRET, NEW_SECRET)

RENDERERS = [
    pytest.param(plan_text, id="text"),
    pytest.param(plan_json, id="json"),
    pytest.param(plan_markdown, id="markdown"),
]


def plain(text: str) -> str:
    """Text output without rich markup (what a pipe receives)."""
    return re.sub(r"(?<!\\)\[/?[a-z ]+\]", "", text).replace("\\[", "[")


def planned(
    spec_text: str, recording: str = "fxrec", secret: str = OLD_SECRET, **options: bool
) -> tuple[Plan, LoadedSpec]:
    loaded = load_spec_text(spec_text, "spec.yml", environ={"DB_PASSWORD": secret})
    engine = json.loads((RECORDED / f"{recording}.json").read_text(encoding="utf-8"))
    observed = state_from_engine_json(
        loaded.spec.stack,
        engine["manager"],
        nodes=engine["nodes"],
        networks=engine["networks"],
        services=engine["services"],
        tasks=engine["tasks"],
    )
    result = plan(loaded.spec, diff(loaded.spec, observed), observed, PlanOptions(**options))
    return result, loaded


def edited(old: str, new: str) -> str:
    assert old in BASE_SPEC
    return BASE_SPEC.replace(old, new)


# --- the summary line ---------------------------------------------------------------------------


def test_summary_counts_adds_changes_and_destroys() -> None:
    create = Action(Phase.NETWORKS, "create", "network", "a", "s_a", "new")
    update = Action(
        Phase.SERVICES,
        "update",
        "service",
        "b",
        "s_b",
        "differs",
        (FieldChange(("env",), {}, {"A": "1"}),),
    )
    replace = Action(Phase.SERVICES, "replace", "service", "c", "s_c", "mode", forced_by=("mode",))
    assert summary_line(Plan("s", (create, update))) == "Plan: 1 to add, 1 to change, 0 to destroy."
    assert summary_line(Plan("s", (create, update, replace))) == (
        "Plan: 2 to add, 1 to change, 1 to destroy."
    )
    assert summary_line(Plan("s")) == "No changes. The swarm matches the spec."


def test_a_plan_with_errors_never_reads_as_no_changes() -> None:
    error = PlanFinding("error", "service.web", "port 80 is taken")
    assert summary_line(Plan("s", findings=(error,))) == (
        "The plan has 1 error: nothing can be applied."
    )
    assert summary_line(Plan("s", findings=(error, error))).startswith("The plan has 2 errors")


def test_text_of_a_plan_with_changes() -> None:
    spec = edited("      replicas: 3\n", "      replicas: 5\n").replace(
        "  labelled:\n",
        "  extra:\n    image: converge-lab/app:v2\n    networks: [more]\n\n  labelled:\n",
    )
    spec = spec.replace(
        "  backend:\n    attachable: true\n", "  backend:\n    attachable: true\n  more: {}\n"
    )
    result, loaded = planned(spec)
    text = plain(plan_text(result, loaded))
    assert text.splitlines()[-1] == "Plan: 2 to add, 1 to change, 0 to destroy."
    assert "~ service fxrec_web" in text
    assert "deploy.replicas: 3 -> 5" in text
    assert "+ service fxrec_extra" in text
    assert "+ network fxrec_more" in text
    # Networks are created before the services that may use them.
    assert text.index("fxrec_more") < text.index("fxrec_extra")


def test_text_without_changes() -> None:
    result, loaded = planned(BASE_SPEC)
    # The placement preview is in every plan: where the tasks are predicted to run.
    assert plain(plan_text(result, loaded)).splitlines() == [
        "Placement (predicted tasks per node):",
        "  agent: dbhost 1, manager 1, worker1 1, worker2 1, worker3 1",
        "  db: dbhost 1",
        "  web: worker1 1, worker2 1, worker3 1",
        "",
        "No changes. The swarm matches the spec.",
    ]


def test_text_shows_findings_before_the_summary() -> None:
    result, loaded = planned(
        edited('      - "39080:80"\n', '      - "39080:80"\n      - "39090:81"\n')
    )
    lines = plain(plan_text(result, loaded)).splitlines()
    error = next(line for line in lines if line.startswith("Error:"))
    assert "39090/tcp is already published by service fxrec_hand" in error
    assert lines.index(error) < len(lines) - 1


# --- JSON -----------------------------------------------------------------------------------------


def test_json_is_versioned_and_complete() -> None:
    result, loaded = planned(edited("      replicas: 3\n", "      replicas: 5\n"))
    document = json.loads(plan_json(result, loaded))
    assert next(iter(document)) == "format_version"
    assert document["format_version"] == PLAN_FORMAT_VERSION
    assert document["changes"] is True
    assert document["summary"] == {"add": 0, "change": 1, "destroy": 0}
    [action] = document["actions"]
    assert action["address"] == "service.web"
    assert action["kind"] == "scale"
    assert action["phase"] == "services"
    assert action["symbol"] == "~"
    assert action["description"] == "~ service fxrec_web: deploy.replicas 3 -> 5"
    assert action["changes"] == [
        {
            "field": "deploy.replicas",
            "path": ["deploy", "replicas"],
            "before": 3,
            "after": 5,
        }
    ]
    assert action["observed"]["version"] == document["versions"]["service.web"]


def test_json_of_an_empty_plan() -> None:
    result, loaded = planned(BASE_SPEC)
    document = json.loads(plan_json(result, loaded))
    assert document["changes"] is False
    assert document["actions"] == []
    assert document["findings"] == []


# --- Markdown -------------------------------------------------------------------------------------


def test_markdown_puts_the_summary_first_and_details_per_object() -> None:
    spec = edited("      replicas: 3\n", "      replicas: 5\n").replace(
        "      MODE: web\n", "      MODE: web2\n"
    )
    result, loaded = planned(spec, "empty")
    markdown = plan_markdown(result, loaded)
    lines = markdown.splitlines()
    assert lines[0].startswith("### converge plan for stack `fxrec`")
    assert lines[2] == "**Plan: 9 to add, 0 to change, 0 to destroy.**"
    assert markdown.count("<details>") == len(result.actions)
    assert markdown.count("</details>") == len(result.actions)
    assert "<details><summary><code>+ service.web</code>" in markdown
    assert "| `+` | `network.backend` |" in markdown


def test_markdown_shows_before_and_after_in_a_diff_block() -> None:
    result, loaded = planned(edited("      MODE: web\n", "      MODE: web2\n"))
    markdown = plan_markdown(result, loaded)
    assert "```diff\n- environment.MODE: web\n+ environment.MODE: web2\n```" in markdown


def test_markdown_without_changes() -> None:
    result, loaded = planned(BASE_SPEC)
    markdown = plan_markdown(result, loaded)
    assert "**No changes. The swarm matches the spec.**" in markdown
    assert "<details>" not in markdown
    assert "| `web` | 3/3 | worker1 1, worker2 1, worker3 1 |" in markdown


# --- secrets --------------------------------------------------------------------------------------


@pytest.mark.parametrize("render", RENDERERS)
def test_a_changed_secret_is_masked_on_both_sides(
    render: Callable[[Plan, LoadedSpec], str],
) -> None:
    result, loaded = planned(BASE_SPEC, secret=NEW_SECRET)  # the engine holds OLD_SECRET
    [action] = result.actions
    assert [change.field for change in action.changes] == ["environment.DB_PASSWORD"]
    output = render(result, loaded)
    for secret in SECRETS:
        assert secret not in output
    assert MASK in output
    if render is plan_json:
        [change] = json.loads(output)["actions"][0]["changes"]
        assert change["before"] == change["after"] == MASK


@pytest.mark.parametrize("render", RENDERERS)
def test_a_created_secret_is_masked(render: Callable[[Plan, LoadedSpec], str]) -> None:
    result, loaded = planned(BASE_SPEC, "empty", secret=NEW_SECRET)
    output = render(result, loaded)
    assert NEW_SECRET not in output
    assert MASK in output
    assert "ROLE" in output  # the rest of the env map is still shown


@pytest.mark.parametrize("render", RENDERERS)
def test_secrets_outside_env_never_show(render: Callable[[Plan, LoadedSpec], str]) -> None:
    # A secret-named variable in a command list, a healthcheck test, a label and a constraint.
    spec = (
        edited(
            "    stop_grace_period: 5s\n",
            "    stop_grace_period: 5s\n"
            "    command: [serve, --password, '${DB_PASSWORD}']\n"
            "    healthcheck: {test: [CMD, check, '${DB_PASSWORD}']}\n"
            "    labels: {pw: '${DB_PASSWORD}'}\n",
        )
        .replace(
            "        constraints: [node.labels.type == mvc]\n",
            "        constraints: ['node.labels.token == ${DB_PASSWORD}']\n",
        )
        .replace(
            "  labelled:\n    image: converge-lab/app:v1\n    deploy:\n      replicas: 0\n",
            "  labelled:\n    image: converge-lab/app:v1\n    deploy:\n      replicas: 1\n",
        )
    )
    result, loaded = planned(spec, secret=NEW_SECRET)
    assert any("token" in finding.message for finding in result.findings)
    output = render(result, loaded)
    for secret in SECRETS:
        assert secret not in output
