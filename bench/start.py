"""A converge command's start, no lab needed: whole processes, wall and CPU time.

``python -m bench.start [RUNS]`` times, alternately and ``RUNS`` times each (default 9):
``python -c pass`` (the interpreter's own start), ``converge --version``, ``converge validate``
of the benchmark's 10-service spec, and a no-op ``converge plan`` of it against the unit tests'
fake swarm (``tests/unit/fake_engine.py``) in the state an apply of that spec left. The plan's
process starts as the console script does (``converge.__main__``) with the fake put in place of
``converge.engine.connect``: the real CLI, loader, Docker SDK import, observer, planner and
renderer; only the socket, HTTP and JSON decoding of the engine's answers are left out (a few
milliseconds on a lab). CPU time is the child's user + system time, less disturbed than wall
time by other work on a shared machine. Prints JSON: per command, the runs' wall and CPU times.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import workload

__all__ = ["measure_start"]

ROOT = Path(__file__).resolve().parents[1]
UNIT_TESTS = ROOT / "tests" / "unit"
STACK = "bstart"


def _applied_state(spec: Path) -> dict[str, Any]:
    """The fake swarm's recorded empty swarm after an apply of ``spec``."""
    sys.path.insert(0, str(UNIT_TESTS))
    from fake_engine import FakeClock, FakeSwarm

    from converge.api import ApplyRequest, apply, load_apply_input
    from converge.executor import ApplyOptions

    swarm = FakeSwarm.recorded("empty")
    loaded, _ = load_apply_input([spec], environ={})
    options = ApplyOptions(clock=FakeClock(), poll_interval=0.01)
    if not apply(loaded, swarm, ApplyRequest(apply_options=options)).ok:  # type: ignore[arg-type]
        raise RuntimeError("the fake swarm did not converge")
    return {
        "manager": swarm.manager,
        **{kind: getattr(swarm, f"_{kind}") for kind in ("nodes", "networks", "services")},
        **{kind: getattr(swarm, f"_{kind}") for kind in ("tasks", "configs", "secrets")},
    }


def _plan_child(state: str, spec: str) -> None:
    """``converge plan SPEC`` as the console script runs it, against the fake swarm."""
    gc.disable()  # as converge.__main__ does, with the fake's imports among the frozen ones
    sys.path.insert(0, str(UNIT_TESTS))
    from fake_engine import FakeSwarm

    import converge.engine
    from converge import collector
    from converge.cli import main

    gc.freeze()
    gc.enable()
    collector.own_process()
    swarm = FakeSwarm(json.loads(Path(state).read_text(encoding="utf-8")))
    converge.engine.connect = lambda *args, **kwargs: swarm  # type: ignore[assignment]
    sys.argv = ["converge", "plan", spec]
    main()


def _timed(argv: list[str]) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if done.returncode != 0:
        raise RuntimeError(f"{argv} exited {done.returncode}: {done.stderr}")
    return wall, cpu, done.stdout


def measure_start(runs: int) -> dict[str, dict[str, list[float]]]:
    """``runs`` whole-process timings of each command, the commands taken in turn."""
    with tempfile.TemporaryDirectory(prefix="converge-start-") as work:
        spec = Path(work) / "spec.yml"
        spec.write_text(
            workload.spec_text(STACK, "10.150.0.0/16", workload.services(10)), encoding="utf-8"
        )
        state = Path(work) / "state.json"
        state.write_text(json.dumps(_applied_state(spec)), encoding="utf-8")
        python = sys.executable
        commands = {
            "python -c pass": [python, "-c", "pass"],
            "converge --version": [python, "-m", "converge", "--version"],
            "converge validate": [python, "-m", "converge", "validate", str(spec)],
            "converge plan (no-op, fake swarm)": [
                *(python, "-m", "bench.start", "--plan-child", str(state), str(spec))
            ],
        }
        results: dict[str, dict[str, list[float]]] = {
            name: {"wall": [], "cpu": []} for name in commands
        }
        for _ in range(runs):
            for name, argv in commands.items():
                wall, cpu, out = _timed(argv)
                if name.startswith("converge plan") and "No changes." not in out:
                    raise RuntimeError(f"the plan was not a no-op: {out}")
                results[name]["wall"].append(wall)
                results[name]["cpu"].append(cpu)
    return results


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--plan-child"]:
        _plan_child(args[1], args[2])
        return 0
    os.environ.setdefault("DOCKER_HOST", "unix:///nonexistent")  # never a real engine
    print(json.dumps(measure_start(int(args[0]) if args else 9)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
