"""The planner alone, on synthetic state: no engine, no network, only converge's pure core.

The observed state is the Engine API JSON a swarm would return for the benchmark stack after
a converge apply (the payloads converge itself would send, with the ids, versions and
network ids the engine adds), with one service's env changed so the plan has one update.
It is kept as the bodies of the list calls (JSON text, compressed) and decoded before each
run, outside the timed stages, as the engine's SDK returns it: every object its own, none
shared between a service and its tasks. The stages get the decoded lists and the benchmark
keeps no reference to them, so what stays resident is what a ``converge plan`` process keeps
once it has observed (the lists go when ``converge.observe.observe`` returns).

``python -m bench.synthetic COUNT RUNS`` measures one size in a process of its own and prints
the results as JSON (``measure_planner_process`` runs it), so that the peak resident memory is
that of this size alone: the spec, the engine's JSON and converge's work on them.

``measure_planner_process`` also measures the resident peak of a process shaped like
``converge plan`` (``--resident``): the spec's file read and loaded once, the list calls'
bodies decoded, observe_json + diff + plan once; nothing else allocated before (the fixture
is written by another process, ``--fixture``), so no memory of the benchmark's own is counted.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from bench import workload
from converge.actions import Plan
from converge.api import resolved_spec_hash
from converge.collector import collector_paused
from converge.diff import diff
from converge.engine_spec import network_create_body, service_engine_spec
from converge.loader import (
    MAX_SPEC_BYTES,
    LoadedSpec,
    _parse_fast,  # what load_spec_text parses with
    load_spec_text,
)
from converge.observe import state_from_engine_json
from converge.planner import PlanOptions, plan
from converge.spec import Spec
from converge.state import ObservedState

__all__ = ["PlannerResult", "measure_planner", "measure_planner_process"]

STACK = "synth"
NODES = ("manager", "dbhost", "worker1", "worker2", "worker3")
STAGES = ("observe_json", "diff", "plan")


@dataclass(frozen=True)
class PlannerResult:
    services: int
    seconds: dict[str, float]
    """Wall time per stage (observe_json, diff, plan) and total (their sum)."""
    load_seconds: float | None
    """load_spec_text of the spec (parse, interpolate, validate, check); None when the spec
    is larger than the loader reads (``MAX_SPEC_BYTES``)."""
    parse_seconds: float | None
    """libyaml alone (``yaml.load`` with ``CSafeLoader``) on the same text, the same run."""
    peak_mb: float
    """Peak traced memory of observe_json + diff + plan, MiB (tracemalloc: what the stages
    allocate, the spec and the engine's JSON not counted)."""
    actions: int
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    """The process's CPU time per stage and total: less disturbed than wall time by other
    processes on a shared machine (it still counts cache and memory contention)."""
    rss_mb: float | None = None
    """Resident memory before the stages: the interpreter, converge, the spec and the engine's
    JSON as the SDK returns it (Linux ``VmRSS``; None elsewhere)."""
    peak_rss_mb: float | None = None
    """Peak resident memory of the process while the (untraced) runs ran, each decoding the
    engine's JSON first (Linux ``VmHWM``, reset once the fixtures were built; None when it
    cannot be reset)."""
    load_peak_rss_mb: float | None = None
    """A ``converge plan``-shaped process (``resident``): its resident peak up to the end of
    loading the spec (the interpreter, converge, parsing and validating)."""
    plan_peak_rss_mb: float | None = None
    """The same process's resident peak from the end of loading (``VmHWM`` reset there) to
    the end of planning: the spec, the engine's JSON as decoded, the observed state, the diff
    and the plan."""
    answers_peak_mb: float | None = None
    """The same process again, what planning allocates beyond the loaded spec: the list calls'
    bodies read and decoded as the SDK does, the observed state, the diff and the plan
    (tracemalloc peak of a second, traced run; the spec was allocated before tracing)."""
    digest_cpu_seconds: float | None = None
    """CPU time of the plan's ``spec_digest`` when first read, after the stages (not in
    them: as ``converge.api.make_plan`` makes it, a plan shown as text never reads it; a saved
    plan, a JSON document or a drift report does)."""


def _engine_json(loaded: LoadedSpec, count: int) -> dict[str, Any]:
    """The swarm as a converge apply of the spec left it, before one service's env changed
    (``workload.services(count, changed=0)``: service 0 has ``LOG_LEVEL=debug`` in the spec,
    ``info`` in the swarm)."""
    spec = loaded.spec
    network_ids = {f"{STACK}_{key}": f"net{index:021d}" for index, key in enumerate(spec.networks)}
    networks = [
        {
            "Id": network_ids[f"{STACK}_{key}"],
            "Name": f"{STACK}_{key}",
            "Scope": "swarm",
            **network_create_body(spec, key),
        }
        for key in spec.networks
    ]
    nodes = [
        {
            "ID": f"node{index:021d}",
            "Version": {"Index": 10 + index},
            "Spec": {"Role": "manager" if index == 0 else "worker", "Availability": "active"},
            "Description": {
                "Hostname": name,
                "Platform": {"OS": "linux", "Architecture": "x86_64"},
                "Engine": {"Labels": {}},
            },
            "Status": {"State": "ready", "Addr": f"10.0.0.{10 + index}"},
        }
        for index, name in enumerate(NODES)
    ]
    services, tasks = [], []
    for index, key in enumerate(spec.services):
        body = service_engine_spec(spec, key)
        template = body["TaskTemplate"]
        container = template["ContainerSpec"]
        if index == 0:
            container["Env"] = [
                "LOG_LEVEL=info" if entry == "LOG_LEVEL=debug" else entry
                for entry in container["Env"]
            ]
        container["Isolation"] = "default"
        template["ForceUpdate"] = 0
        template["Runtime"] = "container"
        for attachment in template["Networks"]:
            attachment["Target"] = network_ids[attachment["Target"]]
        service_id = f"svc{index:022d}"
        services.append(
            {
                "ID": service_id,
                "Version": {"Index": 1000 + index},
                "Spec": body,
                "ServiceStatus": {"RunningTasks": 1, "DesiredTasks": 1, "CompletedTasks": 0},
            }
        )
        tasks.append(
            {
                "ID": f"task{index:021d}",
                "ServiceID": service_id,
                "NodeID": nodes[1 + index % (len(NODES) - 1)]["ID"],
                "Slot": 1,
                "DesiredState": "running",
                "Status": {"State": "running", "Timestamp": "2026-01-01T00:00:00Z"},
                "Spec": {k: v for k, v in template.items() if k != "Runtime"},
            }
        )
    return {"nodes": nodes, "networks": networks, "services": services, "tasks": tasks}


def _engine_bodies(raw: dict[str, Any]) -> dict[str, bytes]:
    """Each list call's body as the engine sends it (JSON), compressed while it waits."""
    return {key: zlib.compress(json.dumps(value).encode(), 1) for key, value in raw.items()}


def _decoded(bodies: dict[str, bytes]) -> list[dict[str, Any]]:
    """The list calls' results as the SDK returns them (``json.loads`` of each body), in a
    list that ``_stages`` empties: the caller keeps no reference to them."""
    return [{key: json.loads(zlib.decompress(body)) for key, body in bodies.items()}]


def _stages(
    loaded: LoadedSpec, lists: list[dict[str, Any]]
) -> tuple[dict[str, float], dict[str, float], Plan]:
    with collector_paused():  # as converge.api.make_plan runs them
        return _timed_stages(loaded, lists)


def _timed_stages(
    loaded: LoadedSpec, lists: list[dict[str, Any]]
) -> tuple[dict[str, float], dict[str, float], Plan]:
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def stage(name: str, work: Callable[[], Any]) -> Any:
        started, started_cpu = time.perf_counter(), time.process_time()
        value = work()
        seconds[name] = time.perf_counter() - started
        cpu[name] = time.process_time() - started_cpu
        return value

    def observe_json() -> ObservedState:
        # Taken out of ``lists``: once observed, the decoded lists are freed, as in observe().
        return state_from_engine_json(STACK, "manager", **lists.pop())

    observed: ObservedState = stage("observe_json", observe_json)
    difference = stage("diff", lambda: diff(loaded.spec, observed))
    result = stage(
        "plan",
        lambda: plan(
            loaded.spec,
            difference,
            observed,
            PlanOptions(),
            spec_digest=lambda: resolved_spec_hash(loaded),  # as make_plan: read when needed
            spec_files=loaded.files,
        ),
    )
    seconds["total"] = sum(seconds[name] for name in STAGES)
    cpu["total"] = sum(cpu[name] for name in STAGES)
    return seconds, cpu, result


def _spec(text: str) -> Spec:
    """A spec larger than the loader reads, validated as the loader would: parsed by its fast
    path (libyaml's events, no node tree), without interpolation or checks."""
    document = _parse_fast("<synth>", text)
    data = yaml.load(text, Loader=yaml.CSafeLoader) if document is None else document.data
    return Spec.model_validate(data)


def _timed_load(
    text: str, loaded: LoadedSpec | None = None
) -> tuple[LoadedSpec, float | None, float | None]:
    """The loaded spec, the loader's time and libyaml's time to parse the same text (a spec
    larger than the loader reads is validated once: ``loaded`` is that one)."""
    started = time.perf_counter()
    yaml.load(text, Loader=yaml.CSafeLoader)
    parse_seconds = time.perf_counter() - started
    if len(text.encode()) > MAX_SPEC_BYTES:
        spec = loaded or LoadedSpec(spec=_spec(text), files=("<synth>",))
        return spec, None, parse_seconds
    started = time.perf_counter()
    loaded = load_spec_text(text)
    return loaded, time.perf_counter() - started, parse_seconds


def _status_mb(name: str) -> float | None:
    """A figure of /proc/self/status (``VmRSS``, ``VmHWM``) in MiB; None where there is none."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith(f"{name}:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak resident figure (``VmHWM``) to the current one (Linux 4.0+)."""
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    except OSError:
        return False
    return True


def measure_planner(count: int, runs: int) -> list[PlannerResult]:
    """``runs`` timings of the loader and the pure pipeline on ``count`` synthetic services,
    then one traced run for peak memory (tracemalloc slows code down, so it never shares a
    timed run). Peak resident memory is that of the calling process: see
    ``measure_planner_process`` for a figure of this size alone."""
    text = workload.spec_text(STACK, "10.150.0.0/16", workload.services(count, changed=0))
    loaded, *timing = _timed_load(text)
    timings = [tuple(timing)]
    for _ in range(runs - 1):
        _, *timing = _timed_load(text, loaded)  # each load's spec freed: one is kept
        timings.append(tuple(timing))
    del text
    bodies = _engine_bodies(_engine_json(loaded, count))
    gc.collect()
    reset = _reset_peak_rss()
    rss = None
    results = []
    for load_seconds, parse_seconds in timings:
        lists = _decoded(bodies)
        gc.collect()
        if rss is None:
            rss = _status_mb("VmRSS")
        seconds, cpu, planned = _stages(loaded, lists)
        started_cpu = time.process_time()
        _ = planned.spec_digest  # made on this first read
        digest_cpu = time.process_time() - started_cpu
        actions = len(planned.actions)
        del planned
        results.append(
            PlannerResult(
                count,
                seconds,
                load_seconds,
                parse_seconds,
                0.0,
                actions,
                cpu_seconds=cpu,
                digest_cpu_seconds=digest_cpu,
            )
        )
    peak_rss = _status_mb("VmHWM") if reset else None
    lists = _decoded(bodies)
    gc.collect()
    tracemalloc.start()
    try:
        _stages(loaded, lists)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return [
        replace(item, peak_mb=peak / 2**20, rss_mb=rss, peak_rss_mb=peak_rss) for item in results
    ]


def measure_planner_process(count: int, runs: int) -> list[PlannerResult]:
    """``measure_planner`` in a fresh Python process, so its memory figures are this size's;
    then ``resident`` in another, on a fixture a third one wrote."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.synthetic", str(count), str(runs)],
        capture_output=True,
        text=True,
        check=True,
    )
    results = [PlannerResult(**item) for item in json.loads(done.stdout)]
    with tempfile.TemporaryDirectory(prefix="converge-bench-") as directory:
        command = [sys.executable, "-m", "bench.synthetic"]
        subprocess.run([*command, "--fixture", str(count), directory], check=True)
        done = subprocess.run(
            [*command, "--resident", directory], capture_output=True, text=True, check=True
        )
    peaks = json.loads(done.stdout)
    return [replace(item, **peaks) for item in results]


ENGINE_LISTS = ("nodes", "networks", "services", "tasks")


def write_fixture(count: int, directory: Path) -> None:
    """The spec's file and the list calls' bodies for ``count`` services, in ``directory``."""
    text = workload.spec_text(STACK, "10.150.0.0/16", workload.services(count, changed=0))
    (directory / "spec.yml").write_text(text, encoding="utf-8")
    raw = _engine_json(LoadedSpec(spec=_spec(text), files=("<synth>",)), count)
    for key in ENGINE_LISTS:
        (directory / f"{key}.json").write_bytes(json.dumps(raw[key]).encode())


def resident(directory: Path) -> dict[str, float | None]:
    """Resident peaks of this process as ``converge plan`` would use memory, on the fixture
    in ``directory``: loading the spec (``load_spec_text``, or libyaml and validation for a
    spec larger than the loader reads), then, ``VmHWM`` reset, each list call's body decoded
    as the SDK does and observe_json + diff + plan once (the lists freed once observed)."""
    text = (directory / "spec.yml").read_text(encoding="utf-8")
    if len(text.encode()) > MAX_SPEC_BYTES:
        loaded = LoadedSpec(spec=_spec(text), files=("<synth>",))
    else:
        loaded = load_spec_text(text)
    del text
    gc.collect()
    load_peak = _status_mb("VmHWM")
    reset = _reset_peak_rss()
    lists = _answers(directory)
    planned = _stages(loaded, lists)[2]
    peak = _status_mb("VmHWM") if reset else None  # the plan still held, as converge shows it
    del planned
    gc.collect()
    tracemalloc.start()
    try:
        _stages(loaded, _answers(directory))
        _, answers_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {
        "load_peak_rss_mb": load_peak,
        "plan_peak_rss_mb": peak,
        "answers_peak_mb": answers_peak / 2**20,
    }


def _answers(directory: Path) -> list[dict[str, Any]]:
    """The list calls' bodies in ``directory``, each read and decoded as the SDK does."""
    return [{key: json.loads((directory / f"{key}.json").read_bytes()) for key in ENGINE_LISTS}]


def main(argv: list[str] | None = None) -> int:
    args = argv or sys.argv[1:]
    if args[0] == "--fixture":
        write_fixture(int(args[1]), Path(args[2]))
        return 0
    if args[0] == "--resident":
        print(json.dumps(resident(Path(args[1]))))
        return 0
    count, runs = (int(value) for value in args)
    print(json.dumps([asdict(item) for item in measure_planner(count, runs)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
