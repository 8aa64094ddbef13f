"""``save_plan`` writes the plan whole, where ``read_saved_plan`` finds it again."""

from __future__ import annotations

import stat
from pathlib import Path

from converge.actions import Plan
from converge.api import PlanResult, read_saved_plan, save_plan
from converge.loader import load_spec
from converge.state import ObservedState

ROOT = Path(__file__).resolve().parents[2]


def test_save_plan_replaces_the_file_whole_and_reads_back(tmp_path: Path) -> None:
    loaded = load_spec([ROOT / "specs" / "exampleapp-lab.yml"], environ={})
    plan = Plan(stack=loaded.spec.stack, spec_digest="abc", versions={"service.mvc": 7})
    target = tmp_path / "plan.json"
    target.write_text("an older plan", encoding="utf-8")

    save_plan(PlanResult(loaded, ObservedState(loaded.spec.stack, "manager"), plan), target)

    document = read_saved_plan(target)
    assert document["stack"] == loaded.spec.stack
    assert document["spec"]["digest"] == "abc"
    assert document["versions"] == {"service.mvc": 7}
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [path.name for path in tmp_path.iterdir()] == ["plan.json"]
