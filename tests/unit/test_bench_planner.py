"""The planner part of the benchmark runs without a lab, so that it never rots: each size in a
process of its own, the report with its growth per added service. No timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

from bench import report
from bench.run import main


def test_the_benchmark_without_sizes_needs_no_lab(tmp_path: Path) -> None:
    assert (
        main(["--sizes", "", "--planner-sizes", "10,20", "--runs", "1", "--out", str(tmp_path)])
        == 0
    )
    document = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert document["sizes"] == {}
    assert "swarm_nodes" not in document["machine"]
    (small,) = document["planner"]["10"]
    assert small["actions"] == 1  # the one service whose env changed
    assert (
        set(small["seconds"])
        == set(small["cpu_seconds"])
        == {
            "observe_json",
            "diff",
            "plan",
            "total",
        }
    )
    if Path("/proc/self/status").exists():  # measured in a process of its own
        assert small["peak_rss_mb"] >= small["rss_mb"] > 0
        # and a plan-shaped process's, from a fixture another process wrote
        assert small["load_peak_rss_mb"] > 0
        assert small["plan_peak_rss_mb"] > 0
        # what planning allocates beyond the spec: at least the decoded answers and the plan
        assert small["answers_peak_mb"] > small["peak_mb"]
    summary = report.summarise(document)
    assert [step["from"] for step in summary["planner_growth"]] == [10]
    assert [step["to"] for step in summary["planner_growth_cpu"]] == [20]
    text = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "Growth of the planner's wall time: 10 \N{EN DASH} 20: slope" in text
    assert "per added service" in text
    assert "no lab (the planner alone)" in text
    assert "Growth of the planner's traced memory" in text
    assert "plan-shaped process" in text
