"""The example spec of the lab, applied through the CLI: converges, then a second apply is a
no-op that makes zero write calls (its JSON result says so)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ConvergeCli

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).parents[2] / "specs" / "exampleapp-lab.yml"


def test_example_spec_converges_and_reapplies_as_a_no_op(
    stack: str, converge_cli: ConvergeCli, tmp_path: Path
) -> None:
    # The command line names the stack, so the test owns what it creates (as docker stack
    # deploy -c FILE STACK would; the file's own x-converge.stack gives way, with a warning).
    converge = converge_cli
    first = converge("apply", "-c", str(EXAMPLE), stack, "--yes", "-o", "json")
    assert first.returncode == 0, first.stdout + first.stderr
    created = json.loads(first.stdout)
    assert created["ok"]
    assert {action["outcome"] for action in created["actions"]} <= {"created", "updated"}

    second = converge("apply", "-c", str(EXAMPLE), stack, "--yes", "-o", "json")
    assert second.returncode == 0, second.stdout + second.stderr
    again = json.loads(second.stdout)
    assert again["actions"] == []
    assert again["write_calls"] == 0

    planned = converge("plan", "-c", str(EXAMPLE), stack, "--detailed-exitcode")
    assert planned.returncode == 0, planned.stdout + planned.stderr
