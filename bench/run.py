"""The benchmark: converge against ``docker stack deploy`` and the engine/API floors, on the lab.

    python -m bench [--sizes 10,50,200] [--runs 3] [--slow-runs N] [--wait-max 50]
                    [--planner-sizes 1000,10000,100000] [--out bench/results]
    python -m bench --sizes '' --planner-sizes 1000,10000,100000   # the planner alone, no lab

Per size N and per run, in this order: converge (cold apply, no-op plan/apply as processes,
in-process plan, API floor, one-field change), then docker stack deploy (``--detach=false``
cold, no-op redeploy, ``--detach=false`` one-field change; then the engine floors: detached
deploy polled until every task runs, detached one-field change polled until the new task
runs). Every stack is removed, and its containers gone from every node, before the next cold
deploy. Then the loader and the planner alone on synthetic state (``bench.synthetic``), each
size in a process of its own (its peak memory is that size's). Writes ``results.json`` and
``results.md`` under ``--out``; with ``--sizes ''`` no lab is needed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import report, workload
from bench.swarm import Swarm
from bench.synthetic import measure_planner_process
from converge.api import make_plan
from converge.engine import connect
from converge.loader import load_spec
from converge.planner import PlanOptions

__all__ = ["main", "run_size"]

CONVERGE_SUBNET = "10.150.0.0/16"
STACK_SUBNET = "10.151.0.0/16"
CHANGED_ENV = "LOG_LEVEL=debug"
DEFAULT_HOLD = 5.0
"""converge's hold for a created service with --wait stable: the default update monitor."""


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _median_of(repeats: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(repeats))


def _seconds(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _write_files(swarm: Swarm, stack: str, size: int) -> dict[str, Path]:
    directory = swarm.work / stack
    directory.mkdir(exist_ok=True)
    plain, changed = workload.services(size), workload.services(size, changed=0)
    files = {
        "spec": workload.spec_text(stack, CONVERGE_SUBNET, plain),
        "spec_changed": workload.spec_text(stack, CONVERGE_SUBNET, changed),
        "compose": workload.compose_text(STACK_SUBNET, plain),
        "compose_changed": workload.compose_text(STACK_SUBNET, changed),
    }
    paths = {}
    for name, text in files.items():
        path = directory / f"{name}.yml"
        path.write_text(text, encoding="utf-8")
        paths[name] = path
    return paths


def _converge_part(
    swarm: Swarm, stack: str, size: int, files: dict[str, Path], repeats: int
) -> dict[str, Any]:
    spec = str(files["spec"])
    out: dict[str, Any] = {}
    swarm.remove_stack(stack)
    _log(f"N={size}: converge apply, cold")
    cold = swarm.converge("apply", spec, "--yes")
    if not swarm.all_running(stack, size):
        raise RuntimeError(f"converge apply returned before {size} services of {stack} ran")
    out["cold_converge"], out["cold_converge_calls"] = cold.seconds, cold.calls
    out["cold_converge_peak_mb"] = cold.peak_mb

    _log(f"N={size}: no-op plan and apply")
    plans = [swarm.converge("plan", spec) for _ in range(repeats)]
    applies = [swarm.converge("apply", spec, "--yes") for _ in range(repeats)]
    out["noop_plan"] = statistics.median(item.seconds for item in plans)
    out["noop_plan_peak_mb"] = max(item.peak_mb or 0.0 for item in plans)
    out["python_start"] = _median_of(repeats, swarm.python_start)
    out["noop_plan_calls"] = plans[-1].calls
    out["noop_apply"] = statistics.median(item.seconds for item in applies)
    out["noop_apply_calls"] = applies[-1].calls
    out["noop_apply_writes"] = max(item.writes for item in applies)

    loaded = load_spec([spec])
    engine = connect(swarm.host)
    try:
        make_plan(loaded, engine, PlanOptions())  # warm the connection, as the floor's is
        before = engine.call_count
        results = []

        def one_plan() -> float:
            started = time.perf_counter()
            results.append(make_plan(loaded, engine, PlanOptions()))
            return time.perf_counter() - started

        out["inprocess_plan"] = _median_of(repeats * 2, one_plan)
        out["inprocess_plan_calls"] = (engine.call_count - before) / (repeats * 2)
        if any(result.plan.has_changes for result in results):
            raise RuntimeError(f"the plan of a converged {stack} is not empty")
    finally:
        engine.close()
    out["load_spec"] = _median_of(repeats, lambda: _seconds(lambda: load_spec([spec])))
    swarm.list_calls()
    out["api_floor"] = _median_of(repeats * 2, lambda: _seconds(swarm.list_calls))

    _log(f"N={size}: converge apply, one field changed")
    change = swarm.converge("apply", str(files["spec_changed"]), "--yes")
    out["change_converge"], out["change_converge_calls"] = change.seconds, change.calls
    out["change_converge_writes"] = change.writes
    out["change_converge_peak_mb"] = change.peak_mb
    out["cleanup_converge"] = swarm.remove_stack(stack)
    return out


def _stack_part(
    swarm: Swarm, stack: str, size: int, files: dict[str, Path], repeats: int, slow: bool
) -> dict[str, Any]:
    changed_service = f"{stack}_{workload.services(1)[0].key}"
    out: dict[str, Any] = {"cold_stack_wait": None, "change_stack_wait": None}
    swarm.remove_stack(stack)
    if slow:
        _log(f"N={size}: docker stack deploy --detach=false, cold")
        out["cold_stack_wait"] = swarm.stack_deploy(files["compose"], stack, wait=True).seconds
        swarm.wait_all_running(stack, size)
        out["noop_stack"] = _median_of(
            repeats, lambda: swarm.stack_deploy(files["compose"], stack, wait=False).seconds
        )
        _log(f"N={size}: docker stack deploy --detach=false, one field changed")
        out["change_stack_wait"] = swarm.stack_deploy(
            files["compose_changed"], stack, wait=True
        ).seconds
        swarm.wait_updated(changed_service, CHANGED_ENV)
        swarm.remove_stack(stack)

    _log(f"N={size}: engine floor (detached deploy, polled), cold")
    started = time.perf_counter()
    out["cold_floor_cli"] = swarm.stack_deploy(files["compose"], stack, wait=False).seconds
    swarm.wait_all_running(stack, size)
    out["cold_floor"] = time.perf_counter() - started
    # Created services have no update state to complete: the floor for converge's default
    # wait is every task running plus the hold converge applies (the default monitor window).
    out["cold_floor_hold"] = out["cold_floor"] + DEFAULT_HOLD
    if not slow:
        out["noop_stack"] = _median_of(
            repeats, lambda: swarm.stack_deploy(files["compose"], stack, wait=False).seconds
        )
    _log(f"N={size}: engine floor, one field changed")
    started = time.perf_counter()
    swarm.stack_deploy(files["compose_changed"], stack, wait=False)
    swarm.wait_updated(changed_service, CHANGED_ENV)
    out["change_floor"] = time.perf_counter() - started
    # The same update, until the engine itself calls it done: after its monitor window.
    swarm.wait_update_completed(changed_service)
    out["change_floor_completed"] = time.perf_counter() - started
    out["cleanup_stack"] = swarm.remove_stack(stack)
    return out


def run_size(
    swarm: Swarm, size: int, run: int, repeats: int, slow: bool, prefix: str = "b"
) -> dict[str, Any]:
    """One run at one size: every measurement, converge and baselines side by side.

    Args:
        slow: also run ``docker stack deploy --detach=false`` (about 5 s per service).
        prefix: stack names are ``<prefix>cv<size>`` (converge) and ``<prefix>st<size>``.
    """
    converge_stack, docker_stack = f"{prefix}cv{size}", f"{prefix}st{size}"
    files = _write_files(swarm, converge_stack, size)
    started = time.perf_counter()
    result = {"run": run, **_converge_part(swarm, converge_stack, size, files, repeats)}
    result.update(_stack_part(swarm, docker_stack, size, files, repeats, slow))
    result["wall"] = time.perf_counter() - started
    return result


def _machine(swarm: Swarm | None) -> dict[str, Any]:
    def text(argv: list[str]) -> str:
        env = swarm.env if swarm is not None else None
        done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
        return done.stdout.strip()

    memory_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    machine: dict[str, Any] = {
        "nproc": int(text(["nproc"]) or 0),
        "memory_gib": round(memory_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": _load_average(),
    }
    if swarm is not None:
        info = swarm.info()
        machine["docker_client"] = text(["docker", "version", "--format", "{{.Client.Version}}"])
        machine["docker_engine"] = info.get("ServerVersion", "")
        machine["swarm_nodes"] = len(swarm.api.nodes())
    return machine


def _load_average() -> list[str]:
    return list(Path("/proc/loadavg").read_text().split()[:3])


def _sizes(text: str) -> list[int]:
    return [int(item) for item in text.split(",") if item.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", default="10,50,200", help="stack sizes (comma-separated; '': no lab runs)"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per size (median, min, max)")
    parser.add_argument(
        "--runs-large", type=int, default=None, help="runs for sizes above --wait-max"
    )
    parser.add_argument(
        "--slow-runs",
        type=int,
        default=None,
        help="runs that include docker stack deploy --detach=false (about 5 s per service); "
        "default: all of them",
    )
    parser.add_argument(
        "--wait-max",
        type=int,
        default=50,
        help="largest N for docker stack deploy --detach=false (skipped above)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="no-op repeats within a run")
    parser.add_argument(
        "--planner-sizes", default="1000,10000,100000", help="synthetic sizes, or ''"
    )
    parser.add_argument("--out", default="bench/results", help="directory for the results")
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    swarm = Swarm() if _sizes(args.sizes) else None
    document: dict[str, Any] = {
        "format_version": "1.0",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": _machine(swarm),
        "settings": vars(args),
        "sizes": {},
        "planner": {},
    }
    try:
        for size in _sizes(args.sizes):
            assert swarm is not None
            large = size > args.wait_max
            runs = args.runs_large if large and args.runs_large else args.runs
            slow_runs = args.slow_runs if args.slow_runs is not None else runs
            results = []
            for run in range(runs):
                slow = not large and run < slow_runs
                results.append(run_size(swarm, size, run, args.repeats, slow))
                document["sizes"][str(size)] = results
                _save(out, document)
    finally:
        if swarm is not None:
            swarm.close()
    for count in _sizes(args.planner_sizes):
        load_average = _load_average()
        _log(f"planner alone, {count} synthetic services (load {' '.join(load_average)})")
        document["planner"][str(count)] = [
            {
                "seconds": item.seconds,
                "cpu_seconds": item.cpu_seconds,
                "load_seconds": item.load_seconds,
                "parse_seconds": item.parse_seconds,
                "peak_mb": item.peak_mb,
                "rss_mb": item.rss_mb,
                "peak_rss_mb": item.peak_rss_mb,
                "load_peak_rss_mb": item.load_peak_rss_mb,
                "plan_peak_rss_mb": item.plan_peak_rss_mb,
                "answers_peak_mb": item.answers_peak_mb,
                "actions": item.actions,
                "load_average": load_average,
            }
            for item in measure_planner_process(count, args.runs)
        ]
        _save(out, document)
    document["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    _save(out, document)
    print((out / "results.md").read_text(encoding="utf-8"))
    return 0


def _save(out: Path, document: dict[str, Any]) -> None:
    document["summary"] = report.summarise(document)
    (out / "results.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    (out / "results.md").write_text(report.markdown(document), encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
