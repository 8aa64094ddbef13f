"""Summaries and the Markdown table: medians with min and max, ratios per run, targets.

Every ratio is computed within one run (converge and its baseline measured minutes apart on the
same machine), then summarised over the runs like any other figure.
"""

from __future__ import annotations

import itertools
import math
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
        {200: 1.2, 1000: 1.2},
    ),
    Comparison(
        "cold_vs_floor_hold",
        "cold deploy to converged",
        "cold_converge",
        "cold_floor_hold",
        "engine floor until every task runs + the hold converge applies (5 s)",
        {},
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
        "noop_plan_vs_python",
        "no-op `converge plan` (whole process)",
        "noop_plan",
        "python_start",
        "`python -c pass` (the interpreter's start)",
        {},
    ),
    Comparison(
        "inprocess_vs_api_floor",
        "no-op plan in process (observe + diff + plan)",
        "inprocess_plan",
        "api_floor",
        "API floor: the same 5 list calls through the SDK",
        {200: 2.0, 1000: 2.0},
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
    Comparison(
        "change_vs_completed",
        "one field changed, to converged",
        "change_converge",
        "change_floor_completed",
        "engine floor: detached `docker stack deploy` + polling until the engine marks the "
        "update `completed` (after its monitor window)",
        {10: 1.1, 50: 1.1, 200: 1.1, 1000: 1.1},
    ),
)

PEAKS = ("cold_converge_peak_mb", "change_converge_peak_mb", "noop_plan_peak_mb")
"""Peak resident memory of converge's processes, MB."""

GROWTH = (
    "cold_converge",
    "cold_floor",
    "noop_plan",
    "inprocess_plan",
    "api_floor",
    "change_converge",
)
"""Figures whose growth with N the report shows."""

SECONDS = (
    "cold_converge",
    "cold_floor",
    "cold_floor_hold",
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
    "change_floor_completed",
    "python_start",
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
        peaks = {
            key: _stats([run[key] for run in runs if run.get(key) is not None]) for key in PEAKS
        }
        sizes[size_text]["peak_mb"] = peaks
        if size == 10:
            plan_process = figures["noop_plan"]
            targets.append(
                {
                    "target": "no-op `converge plan` (whole process) < 0.3 s",
                    "size": size,
                    "value": None if plan_process is None else plan_process["median"],
                    "unit": "s",
                    "met": None if plan_process is None else plan_process["median"] < 0.3,
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
        cpu = [item["cpu_seconds"] for item in results if item.get("cpu_seconds")]
        peak_rss = [item["peak_rss_mb"] for item in results if item.get("peak_rss_mb")]
        planner[count_text] = {
            "seconds": stages,
            "cpu_seconds": {stage: _stats([item[stage] for item in cpu]) for stage in cpu[0]}
            if cpu
            else {},
            "load_seconds": _stats(load),
            "peak_mb": results[0]["peak_mb"],
            "rss_mb": results[0].get("rss_mb"),
            "peak_rss_mb": max(peak_rss) if peak_rss else None,
            "load_peak_rss_mb": results[0].get("load_peak_rss_mb"),
            "plan_peak_rss_mb": results[0].get("plan_peak_rss_mb"),
            "answers_peak_mb": results[0].get("answers_peak_mb"),
            "load_average": results[0].get("load_average"),
            "actions": results[0]["actions"],
        }
        load_stats, parse = (
            planner[count_text]["load_seconds"],
            _stats(
                [item["parse_seconds"] for item in results if item.get("parse_seconds") is not None]
            ),
        )
        planner[count_text]["parse_seconds"] = parse
        count = int(count_text)
        total = stages["total"]
        limits = {10_000: 0.5, 100_000: 5.0}
        if count in limits:
            targets.append(
                {
                    "target": f"planner alone (observe + diff + plan), {count:,} services: "
                    f"< {limits[count]:g} s",
                    "size": count,
                    "value": total["median"] if total else None,
                    "unit": "s",
                    "met": bool(total and total["median"] < limits[count]),
                }
            )
            # A plan-shaped process's peak from the end of loading when measured (spec and
            # engine JSON included), else the benchmark process's, else what the stages
            # allocate (tracemalloc).
            plan_peak = planner[count_text]["plan_peak_rss_mb"]
            memory = plan_peak or planner[count_text]["peak_rss_mb"] or results[0]["peak_mb"]
            what = (
                "resident peak of a plan-shaped process, after loading"
                if plan_peak
                else "resident peak"
                if planner[count_text]["peak_rss_mb"]
                else "traced"
            )
            targets.append(
                {
                    "target": f"planner alone, {count:,} services: < 1 GB ({what})",
                    "size": count,
                    "value": memory,
                    "unit": "MB",
                    "met": memory < 1024,
                }
            )
            load_peak = planner[count_text]["load_peak_rss_mb"]
            if load_peak and plan_peak:
                targets.append(
                    {
                        "target": f"planner alone, {count:,} services: < 1 GB (resident peak "
                        "of a plan-shaped process, loading included)",
                        "size": count,
                        "value": max(load_peak, plan_peak),
                        "unit": "MB",
                        "met": max(load_peak, plan_peak) < 1024,
                    }
                )
            answers = planner[count_text]["answers_peak_mb"]
            if answers:
                targets.append(
                    {
                        "target": f"planner alone, {count:,} services: < 1 GB (what the "
                        "engine's answers decoded, observe, diff and plan allocate beyond the "
                        "loaded spec, traced)",
                        "size": count,
                        "value": answers,
                        "unit": "MB",
                        "met": answers < 1024,
                    }
                )
            if planner[count_text]["peak_rss_mb"]:
                targets.append(
                    {
                        "target": f"planner alone, {count:,} services: what the stages "
                        "allocate < 1 GB (traced)",
                        "size": count,
                        "value": results[0]["peak_mb"],
                        "unit": "MB",
                        "met": results[0]["peak_mb"] < 1024,
                    }
                )
        load_limits = {1_000: 0.15, 10_000: 1.0}
        if count in load_limits:
            targets.append(
                {
                    "target": f"load_spec_text, {count:,} services: < {load_limits[count]:g} s",
                    "size": count,
                    "value": load_stats["median"] if load_stats else None,
                    "unit": "s",
                    "met": bool(load_stats and load_stats["median"] < load_limits[count]),
                }
            )
        if count == 10_000 and load_stats and parse:
            ratio = load_stats["median"] / parse["median"]
            targets.append(
                {
                    "target": "load_spec_text, 10,000 services: <= 4x libyaml's parse alone",
                    "size": count,
                    "value": ratio,
                    "unit": "x",
                    "met": ratio <= 4.0,
                }
            )
    planner_growth = _growth(
        {int(count): data["seconds"]["total"] for count, data in planner.items()}
    )
    planner_growth_cpu = _growth(
        {int(count): data["cpu_seconds"].get("total") for count, data in planner.items()}
    )
    planner_growth_memory = _growth(
        {
            int(count): {"median": data["peak_mb"]}
            for count, data in planner.items()
            if data["peak_mb"]
        }
    )
    growth = {
        key: _growth({int(size): data["seconds"].get(key) for size, data in sizes.items()})
        for key in GROWTH
    }
    return {
        "sizes": sizes,
        "planner": planner,
        "targets": targets,
        "growth": growth,
        "planner_growth": planner_growth,
        "planner_growth_cpu": planner_growth_cpu,
        "planner_growth_memory": planner_growth_memory,
    }


def _growth(figures: dict[int, dict[str, Any] | None]) -> list[dict[str, Any]]:
    """Between consecutive sizes: the log-log slope (1.0 is linear, 2.0 quadratic, 0 flat)
    and the cost of each added service, from the medians."""
    known = sorted((size, stats["median"]) for size, stats in figures.items() if stats)
    steps = []
    for (small, before), (large, after) in itertools.pairwise(known):
        slope = math.log(after / before) / math.log(large / small) if before > 0 else None
        steps.append(
            {
                "from": small,
                "to": large,
                "slope": slope,
                "per_service": (after - before) / (large - small),
            }
        )
    return steps


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
    docker = (
        f"Docker engine {machine.get('docker_engine')} (CLI {machine.get('docker_client')}), "
        f"{machine.get('swarm_nodes')} swarm nodes, "
        if "swarm_nodes" in machine
        else "no lab (the planner alone), "
    )
    lines = [
        "# converge benchmark",
        "",
        f"Machine: {machine.get('nproc')} CPUs, {machine.get('memory_gib')} GiB, kernel "
        f"{machine.get('kernel')}, Python {machine.get('python')}, {docker}"
        f"load average at start {' '.join(machine.get('load_average_at_start', []))}. "
        f"Started {document.get('started')}.",
    ]
    if summary["sizes"]:
        lines += [
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
    if summary["sizes"]:
        lines += [
            "",
            "## API calls per command (counted at the SDK's transport by `Engine.calls`)",
            "",
            "Writes in brackets: to the stack's objects + to the stack lock (a config created "
            "and removed).",
            "",
            "| N | no-op `plan` | no-op `apply` (writes) | in-process plan | cold `apply` "
            "(writes) | one-field `apply` (writes) |",
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
            "observe_json = Engine JSON -> ObservedState (normalisation); one service changed. "
            "Wall time, then the process's CPU time (less disturbed by a shared machine); "
            "traced = what the stages allocate (tracemalloc, separate run); resident = the "
            "process's peak while the runs ran, spec and engine JSON included (before the "
            "stages in brackets); plan-shaped process = the resident peak of a process that "
            "loads the spec's file once, decodes the list calls' bodies and plans once: up to "
            "the end of loading / from there to the end of planning; then what decoding the "
            "bodies, observe, diff and plan allocate beyond the loaded spec (traced).",
            "",
            "| services | load avg | observe_json | diff | plan | total | total CPU | "
            "CPU per service | traced peak | resident peak (before) | plan-shaped process: "
            "loading / planning (resident) / answers and stages (traced) | load_spec_text | "
            "libyaml parse alone | load / parse |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for count, data in summary["planner"].items():
            stages = data["seconds"]
            cpu_total = (data.get("cpu_seconds") or {}).get("total")
            per_service = f"{cpu_total['median'] / int(count) * 1e6:.0f} µs" if cpu_total else DASH
            resident = (
                f"{data['peak_rss_mb']:.0f} MB ({data['rss_mb']:.0f} MB)"
                if data.get("peak_rss_mb") and data.get("rss_mb")
                else DASH
            )
            shaped = (
                f"{data['load_peak_rss_mb']:.0f} MB / {data['plan_peak_rss_mb']:.0f} MB"
                if data.get("load_peak_rss_mb") and data.get("plan_peak_rss_mb")
                else DASH
            )
            if data.get("answers_peak_mb"):
                shaped += f" / {data['answers_peak_mb']:.0f} MB"
            load, parse = data["load_seconds"], data.get("parse_seconds")
            ratio = f"{load['median'] / parse['median']:.2f}{TIMES}" if load and parse else DASH
            lines.append(
                f"| {count} | {' '.join(data.get('load_average') or []) or DASH} | "
                f"{_fmt(stages['observe_json'])} | {_fmt(stages['diff'])} | "
                f"{_fmt(stages['plan'])} | {_fmt(stages['total'])} | {_fmt(cpu_total)} | "
                f"{per_service} | {data['peak_mb']:.1f} MB | {resident} | {shaped} | "
                f"{_fmt(load) if load else 'larger than the loader reads (8 MiB)'} | "
                f"{_fmt(parse)} | {ratio} |"
            )
        for title, key, unit in (
            ("wall time", "planner_growth", "µs"),
            ("CPU time", "planner_growth_cpu", "µs"),
            ("traced memory", "planner_growth_memory", "KiB"),
        ):
            steps = summary.get(key) or []
            if steps:
                lines += ["", f"Growth of the planner's {title}: " + _steps_text(steps, unit) + "."]
    if summary["sizes"]:
        lines += [
            "",
            "## Growth with N (log-log slope between sizes: 1 linear, 0 flat; and per added "
            "service)",
            "",
            "| figure | "
            + " | ".join(
                f"{step['from']}{DASH}{step['to']}"
                for step in next(iter(summary.get("growth", {}).values()), [])
            )
            + " |",
            "|---|" + "---|" * len(next(iter(summary.get("growth", {}).values()), [])),
        ]
        for key, steps in summary.get("growth", {}).items():
            cells = [
                DASH
                if step["slope"] is None
                else f"{step['slope']:.2f} ({step['per_service'] * 1000:.2f} ms)"
                for step in steps
            ]
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "## Peak memory of converge's processes (resident, MB)",
            "",
            "| N | cold `apply` | one-field `apply` | no-op `plan` |",
            "|---|---|---|---|",
        ]
        for size_text, data in summary["sizes"].items():
            peaks = data.get("peak_mb", {})
            cells = [_fmt(peaks.get(key), " MB") for key in PEAKS]
            lines.append(f"| {size_text} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Targets (issues 8 and 19)",
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


def _steps_text(steps: list[dict[str, Any]], unit: str = "µs") -> str:
    """``1,000 - 10,000: slope 1.02, 41 µs per added service`` (seconds shown in µs, MiB in
    KiB)."""
    scale = {"µs": 1e6, "KiB": 1024}[unit]
    return ", ".join(
        f"{step['from']:,} {DASH} {step['to']:,}: slope "
        + (DASH if step["slope"] is None else f"{step['slope']:.2f}")
        + f", {step['per_service'] * scale:.1f} {unit} per added service"
        for step in steps
    )


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
