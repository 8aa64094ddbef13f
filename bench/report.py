"""Summaries and the Markdown table: medians with min and max, ratios per run, targets.

Every ratio is computed within one run (converge and its baseline measured minutes apart on the
same machine), then summarised over the runs like any other figure.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

__all__ = ["COMPARISONS", "markdown", "summarise"]

DASH = "\N{EN DASH}"
TIMES = "\N{MULTIPLICATION SIGN}"


@dataclass(frozen=True)
class Comparison:
    key: str
    what: str
    converge: str
    baseline: str
    baseline_label: str
    targets: dict[int, float]
    """Size -> the highest ratio that meets the issue's target."""


COMPARISONS = (
    Comparison(
        "cold_vs_floor",
        "cold deploy to converged",
        "cold_converge",
        "cold_floor",
        "engine floor: detached `docker stack deploy` + polling until every task runs",
        {200: 1.2},
    ),
    Comparison(
        "cold_vs_stack_wait",
        "cold deploy to converged",
        "cold_converge",
        "cold_stack_wait",
        "`docker stack deploy --detach=false`",
        {50: 0.1},
    ),
    Comparison(
        "noop_apply_vs_stack",
        "no-op `converge apply` (whole process)",
        "noop_apply",
        "noop_stack",
        "no-change `docker stack deploy` (detached)",
        {200: 3.0},
    ),
    Comparison(
        "noop_plan_vs_stack",
        "no-op `converge plan` (whole process)",
        "noop_plan",
        "noop_stack",
        "no-change `docker stack deploy` (detached)",
        {},
    ),
    Comparison(
        "inprocess_vs_api_floor",
        "no-op plan in process (observe + diff + plan)",
        "inprocess_plan",
        "api_floor",
        "API floor: the same 5 list calls through the SDK",
        {200: 2.0},
    ),
    Comparison(
        "change_vs_stack_wait",
        "one field changed, to converged",
        "change_converge",
        "change_stack_wait",
        "`docker stack deploy --detach=false`",
        {10: 0.2, 50: 0.05},
    ),
    Comparison(
        "change_vs_floor",
        "one field changed, to converged",
        "change_converge",
        "change_floor",
        "engine floor: detached `docker stack deploy` + polling until the new task runs",
        {},
    ),
)

SECONDS = (
    "cold_converge",
    "cold_floor",
    "cold_floor_cli",
    "cold_stack_wait",
    "noop_plan",
    "noop_apply",
    "noop_stack",
    "inprocess_plan",
    "api_floor",
    "load_spec",
    "change_converge",
    "change_stack_wait",
    "change_floor",
    "cleanup_converge",
    "cleanup_stack",
    "wall",
)


def _stats(values: list[float]) -> dict[str, Any] | None:
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def _total(calls: Any) -> int:
    return int(sum(calls.values())) if isinstance(calls, dict) else 0


def _writes(calls: Any, lock: bool = False) -> int:
    """Write calls; ``lock``: only those on configs (the benchmark's stacks have no configs,
    so those are converge's stack lock), else only the others (the stack's objects)."""
    if not isinstance(calls, dict):
        return 0
    return int(
        sum(
            n
            for call, n in calls.items()
            if not call.startswith(("GET", "HEAD")) and ("/configs" in call) == lock
        )
    )


def _call_counts(calls: Any) -> dict[str, int]:
    return {"total": _total(calls), "writes": _writes(calls), "lock_writes": _writes(calls, True)}


def summarise(document: dict[str, Any]) -> dict[str, Any]:
    """Median/min/max of every figure and every ratio, per size, and the targets' verdicts."""
    sizes: dict[str, Any] = {}
    targets: list[dict[str, Any]] = []
    for size_text, runs in document.get("sizes", {}).items():
        size = int(size_text)
        figures = {
            key: _stats([run[key] for run in runs if run.get(key) is not None]) for key in SECONDS
        }
        ratios = {}
        for comparison in COMPARISONS:
            values = [
                run[comparison.converge] / run[comparison.baseline]
                for run in runs
                if run.get(comparison.converge) is not None and run.get(comparison.baseline)
            ]
            ratios[comparison.key] = _stats(values)
            limit = comparison.targets.get(size)
            if limit is not None:
                stats = ratios[comparison.key]
                targets.append(
                    {
                        "target": f"{comparison.what}: <= {limit:g}x {comparison.baseline_label}",
                        "size": size,
                        "value": None if stats is None else stats["median"],
                        "unit": "x",
                        "met": None if stats is None else stats["median"] <= limit,
                    }
                )
        last = runs[-1]
        calls = {
            "cold_apply": _call_counts(last["cold_converge_calls"]),
            "noop_plan": {
                **_call_counts(last["noop_plan_calls"]),
                "by_endpoint": last["noop_plan_calls"],
            },
            "noop_apply": _call_counts(last["noop_apply_calls"]),
            "inprocess_plan": {"total": last["inprocess_plan_calls"], "writes": 0},
            "change_apply": _call_counts(last["change_converge_calls"]),
        }
        change_writes = [_writes(run["change_converge_calls"]) for run in runs]
        sizes[size_text] = {"runs": len(runs), "seconds": figures, "ratios": ratios, "calls": calls}
        targets.append(
            {
                "target": "one field changed: exactly one write call (to the stack's objects)",
                "size": size,
                "value": max(change_writes),
                "unit": "writes",
                "met": all(count == 1 for count in change_writes),
            }
        )
        targets.append(
            {
                "target": "one field changed: no other write call (the stack lock's included)",
                "size": size,
                "value": max(run["change_converge_writes"] for run in runs),
                "unit": "writes",
                "met": all(run["change_converge_writes"] == 1 for run in runs),
            }
        )
        if size == 200:
            noop = figures["noop_apply"]
            for lock in (False, True):
                writes = max(_writes(run["noop_apply_calls"], lock) for run in runs)
                targets.append(
                    {
                        "target": "no-op `converge apply`: zero writes "
                        + ("to the stack lock" if lock else "to the stack's objects"),
                        "size": size,
                        "value": writes,
                        "unit": "writes",
                        "met": writes == 0,
                    }
                )
            targets.append(
                {
                    "target": "no-op `converge apply`: whole process <= 1 s",
                    "size": size,
                    "value": None if noop is None else noop["median"],
                    "unit": "s",
                    "met": None if noop is None else noop["median"] <= 1.0,
                }
            )
    planner: dict[str, Any] = {}
    for count_text, results in document.get("planner", {}).items():
        stages = {
            stage: _stats([item["seconds"][stage] for item in results])
            for stage in results[0]["seconds"]
        }
        load = [item["load_seconds"] for item in results if item["load_seconds"] is not None]
        planner[count_text] = {
            "seconds": stages,
            "load_seconds": _stats(load),
            "peak_mb": results[0]["peak_mb"],
            "actions": results[0]["actions"],
        }
        if int(count_text) == 10_000:
            total = stages["total"]
            targets.append(
                {
                    "target": "planner alone, 10,000 services: < 1 s",
                    "size": 10_000,
                    "value": total["median"] if total else None,
                    "unit": "s",
                    "met": bool(total and total["median"] < 1.0),
                }
            )
            targets.append(
                {
                    "target": "planner alone, 10,000 services: < 200 MB",
                    "size": 10_000,
                    "value": results[0]["peak_mb"],
                    "unit": "MB",
                    "met": results[0]["peak_mb"] < 200,
                }
            )
    return {"sizes": sizes, "planner": planner, "targets": targets}


def _fmt(stats: dict[str, Any] | None, unit: str = "s") -> str:
    if stats is None:
        return DASH
    digits = 3 if stats["median"] < 1 else (2 if stats["median"] < 10 else 1)
    text = f"{stats['median']:.{digits}f}{unit}"
    if stats["n"] > 1:
        text += f" ({stats['min']:.{digits}f}{DASH}{stats['max']:.{digits}f})"
    return text


def _calls(counts: dict[str, Any]) -> str:
    return f"{counts['total']} ({counts['writes']} + {counts['lock_writes']})"


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[met]


def markdown(document: dict[str, Any]) -> str:
    """The report: comparisons with ratios and targets, API calls, the planner alone."""
    summary = document.get("summary") or summarise(document)
    machine = document.get("machine", {})
    lines = [
        "# converge benchmark",
        "",
        f"Machine: {machine.get('nproc')} CPUs, {machine.get('memory_gib')} GiB, kernel "
        f"{machine.get('kernel')}, Docker engine {machine.get('docker_engine')} (CLI "
        f"{machine.get('docker_client')}), {machine.get('swarm_nodes')} swarm nodes, "
        f"load average at start {' '.join(machine.get('load_average_at_start', []))}. "
        f"Started {document.get('started')}.",
        "",
        "Median of the runs (min-max); ratios are converge / baseline within each run.",
        "",
        "| N | measurement | converge | baseline | baseline time | ratio | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for size_text, data in summary["sizes"].items():
        size = int(size_text)
        seconds = data["seconds"]
        for comparison in COMPARISONS:
            ratio = data["ratios"][comparison.key]
            limit = comparison.targets.get(size)
            target = DASH
            if limit is not None:
                met = None if ratio is None else ratio["median"] <= limit
                target = f"≤ {limit:g}{TIMES}: {_verdict(met)}"
            baseline = seconds.get(comparison.baseline)
            if baseline is None and ratio is None:
                base_text = "skipped (≈5 s per service)"
            else:
                base_text = _fmt(baseline)
            lines.append(
                f"| {size} (runs: {data['runs']}) | {comparison.what} | "
                f"{_fmt(seconds.get(comparison.converge))} | {comparison.baseline_label} | "
                f"{base_text} | {_fmt(ratio, TIMES)} | {target} |"
            )
    lines += [
        "",
        "## API calls per command (counted at the SDK's transport by `Engine.calls`)",
        "",
        "Writes in brackets: to the stack's objects + to the stack lock (a config created "
        "and removed).",
        "",
        "| N | no-op `plan` | no-op `apply` (writes) | in-process plan | cold `apply` (writes) "
        "| one-field `apply` (writes) |",
        "|---|---|---|---|---|---|",
    ]
    for size_text, data in summary["sizes"].items():
        calls = data["calls"]
        lines.append(
            f"| {size_text} | {calls['noop_plan']['total']} | {_calls(calls['noop_apply'])} | "
            f"{calls['inprocess_plan']['total']:g} | {_calls(calls['cold_apply'])} | "
            f"{_calls(calls['change_apply'])} |"
        )
    if summary["sizes"]:
        first = next(iter(summary["sizes"].values()))
        endpoints = ", ".join(
            f"`{call}` {count}"
            for call, count in first["calls"]["noop_plan"]["by_endpoint"].items()
        )
        lines += ["", f"A no-op `converge plan` calls: {endpoints}."]
    if summary["planner"]:
        lines += [
            "",
            "## Planner alone, synthetic state (no engine)",
            "",
            "observe_json = Engine JSON -> ObservedState (normalisation); one service changed.",
            "",
            "| services | observe_json | diff | plan | total | peak memory | load_spec_text |",
            "|---|---|---|---|---|---|---|",
        ]
        for count, data in summary["planner"].items():
            stages = data["seconds"]
            load = data["load_seconds"]
            lines.append(
                f"| {count} | {_fmt(stages['observe_json'])} | {_fmt(stages['diff'])} | "
                f"{_fmt(stages['plan'])} | {_fmt(stages['total'])} | {data['peak_mb']:.1f} MB | "
                f"{_fmt(load) if load else 'refused by the loader'} |"
            )
    lines += [
        "",
        "## Targets (issue 8)",
        "",
        "| target | N | value | verdict |",
        "|---|---|---|---|",
    ]
    for target in summary["targets"]:
        value = target["value"]
        shown = DASH if value is None else f"{value:.3g} {target['unit']}"
        lines.append(
            f"| {target['target']} | {target['size']} | {shown} | {_verdict(target['met'])} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    """``python -m bench.report results.json``: summarise again and rewrite results.md."""
    import json
    import sys
    from pathlib import Path

    path = Path(sys.argv[1])
    document = json.loads(path.read_text(encoding="utf-8"))
    document["summary"] = summarise(document)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    path.with_suffix(".md").write_text(markdown(document), encoding="utf-8")
    print(markdown(document))


if __name__ == "__main__":
    main()
