"""The start benchmark needs no lab, so it runs here: each command once, its plan a no-op
against the fake swarm. No timing is asserted."""

from __future__ import annotations

from bench.start import measure_start


def test_the_start_benchmark_runs_each_command_without_a_lab() -> None:
    results = measure_start(1)
    assert list(results) == [
        "python -c pass",
        "converge --version",
        "converge validate",
        "converge plan (no-op, fake swarm)",
    ]
    for timings in results.values():
        assert len(timings["wall"]) == len(timings["cpu"]) == 1
        assert timings["wall"][0] > 0
