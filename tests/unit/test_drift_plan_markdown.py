"""``converge plan -o markdown`` as a pull-request comment: what the GitOps recipe relies on."""

from __future__ import annotations

import re

from converge.actions import Action, Phase, Plan
from converge.diff import FieldChange
from converge.render import plan_markdown


def test_a_value_with_a_pipe_or_newline_stays_in_its_table_cell() -> None:
    action = Action(
        Phase.SERVICES,
        "update",
        "service",
        "web",
        "shop_web",
        "service settings differ",
        (FieldChange(("env", "FILTER"), "a|b\nc", "d"),),
    )
    lines = plan_markdown(Plan("shop", (action,))).splitlines()
    assert lines[2] == "**Plan: 0 to add, 1 to change, 0 to destroy.**"
    [row] = [line for line in lines if line.startswith("| `~`")]
    assert len(re.findall(r"(?<!\\)\|", row)) == 4, row
    assert "a\\|b c" in row
    assert "<details><summary><code>~ service.web</code>" in "\n".join(lines)
