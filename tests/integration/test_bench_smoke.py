"""The benchmark at N=10, one run, so that it never rots: every figure is produced and the
report renders. Timings are never asserted (shared machines are noisy); call counts are."""

from __future__ import annotations

import json
import uuid

import pytest

from bench import report
from bench.run import run_size
from bench.swarm import Swarm
from bench.synthetic import measure_planner
from converge.lab import Lab

pytestmark = pytest.mark.integration


def test_bench_runs_at_n10(lab: Lab) -> None:
    swarm = Swarm(lab)
    prefix = f"t{uuid.uuid4().hex[:6]}"
    try:
        # slow=False: docker stack deploy --detach=false costs about 5 s per service.
        result = run_size(swarm, 10, 0, repeats=1, slow=False, prefix=prefix)
    finally:
        for stack in (f"{prefix}cv10", f"{prefix}st10"):  # left behind only by a failure
            swarm.remove_stack(stack)
        swarm.close()
    document = {
        "machine": {},
        "sizes": {"10": [result]},
        "planner": {
            "50": [
                {
                    "seconds": item.seconds,
                    "load_seconds": item.load_seconds,
                    "parse_seconds": item.parse_seconds,
                    "peak_mb": item.peak_mb,
                    "actions": item.actions,
                }
                for item in measure_planner(50, 1)
            ]
        },
    }
    summary = report.summarise(document)
    calls = summary["sizes"]["10"]["calls"]
    # The observer's fixed set of list calls; a no-op apply and the change touch one service.
    assert calls["noop_plan"]["writes"] == 0
    assert calls["noop_apply"]["writes"] == 0
    assert calls["change_apply"]["writes"] == 1
    assert calls["cold_apply"]["writes"] == 11  # the network and 10 services
    assert summary["planner"]["50"]["actions"] == 1
    ratios = summary["sizes"]["10"]["ratios"]
    for key in (
        "cold_vs_floor",
        "cold_vs_floor_hold",
        "noop_apply_vs_stack",
        "noop_plan_vs_python",
        "inprocess_vs_api_floor",
        "change_vs_completed",
    ):
        assert ratios[key] is not None
        assert ratios[key]["median"] > 0
    assert ratios["cold_vs_stack_wait"] is None  # skipped
    # The update's end came through the engine's event stream, opened once for the wait.
    assert result["change_converge_calls"].get("GET /events") == 1
    assert result["change_floor_completed"] >= result["change_floor"]
    assert result["cold_converge_peak_mb"] > 0
    text = report.markdown({**document, "summary": summary})
    assert "| 10 (runs: 1) | cold deploy to converged |" in text
    assert "## Peak memory of converge's processes" in text
    json.dumps(document)
