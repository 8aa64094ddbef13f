"""The planner alone, on synthetic state: no engine, no network, only converge's pure core.

The observed state is the Engine API JSON a swarm would return for the benchmark stack after
a converge apply (the payloads converge itself would send, with the ids, versions and
network ids the engine adds), with one service's env changed so the plan has one update.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import yaml

from bench import workload
from converge.api import resolved_spec_hash
from converge.collector import collector_paused
from converge.diff import diff
from converge.engine_spec import network_create_body, service_engine_spec
from converge.loader import MAX_SPEC_BYTES, LoadedSpec, load_spec_text
from converge.observe import state_from_engine_json
from converge.planner import PlanOptions, plan
from converge.spec import Spec
from converge.state import ObservedState

__all__ = ["PlannerResult", "measure_planner"]

STACK = "synth"
NODES = ("manager", "dbhost", "worker1", "worker2", "worker3")


@dataclass(frozen=True)
class PlannerResult:
    services: int
    seconds: dict[str, float]
    """Per stage (observe_json, diff, plan) and total (observe_json + diff + plan)."""
    load_seconds: float | None
    """load_spec_text of the spec (parse, interpolate, validate, check); None when the spec
    is larger than the loader reads (``MAX_SPEC_BYTES``)."""
    parse_seconds: float | None
    """libyaml alone (``yaml.load`` with ``CSafeLoader``) on the same text, the same run."""
    peak_mb: float
    """Peak traced memory of observe_json + diff + plan, MiB (tracemalloc)."""
    actions: int


def _engine_json(loaded: LoadedSpec, count: int) -> dict[str, Any]:
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
    # The swarm as it was before one service's env changed in the spec.
    current = _spec(workload.spec_text(STACK, "10.150.0.0/16", workload.services(count)))
    services, tasks = [], []
    for index, key in enumerate(current.services):
        body = service_engine_spec(current, key)
        template = body["TaskTemplate"]
        template["ContainerSpec"]["Isolation"] = "default"
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


def _stages(loaded: LoadedSpec, raw: dict[str, Any]) -> tuple[dict[str, float], int]:
    with collector_paused():  # as converge.api.make_plan runs them
        return _timed_stages(loaded, raw)


def _timed_stages(loaded: LoadedSpec, raw: dict[str, Any]) -> tuple[dict[str, float], int]:
    seconds: dict[str, float] = {}

    def stage(name: str, work: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        value = work()
        seconds[name] = time.perf_counter() - started
        return value

    observed: ObservedState = stage(
        "observe_json", lambda: state_from_engine_json(STACK, "manager", **raw)
    )
    difference = stage("diff", lambda: diff(loaded.spec, observed))
    result = stage(
        "plan",
        lambda: plan(
            loaded.spec,
            difference,
            observed,
            PlanOptions(),
            spec_digest=resolved_spec_hash(loaded),
            spec_files=loaded.files,
        ),
    )
    seconds["total"] = seconds["observe_json"] + seconds["diff"] + seconds["plan"]
    return seconds, len(result.actions)


def _spec(text: str) -> Spec:
    return Spec.model_validate(yaml.load(text, Loader=yaml.CSafeLoader))


def _timed_load(text: str) -> tuple[LoadedSpec, float | None, float | None]:
    """The loaded spec, the loader's time and libyaml's time to parse the same text."""
    started = time.perf_counter()
    yaml.load(text, Loader=yaml.CSafeLoader)
    parse_seconds = time.perf_counter() - started
    if len(text.encode()) > MAX_SPEC_BYTES:
        return LoadedSpec(spec=_spec(text), files=("<synth>",)), None, parse_seconds
    started = time.perf_counter()
    loaded = load_spec_text(text)
    return loaded, time.perf_counter() - started, parse_seconds


def measure_planner(count: int, runs: int) -> list[PlannerResult]:
    """``runs`` timings of the loader and the pure pipeline on ``count`` synthetic services,
    then one traced run for peak memory (tracemalloc slows code down, so it never shares a
    timed run)."""
    text = workload.spec_text(STACK, "10.150.0.0/16", workload.services(count, changed=0))
    loads = [_timed_load(text) for _ in range(runs)]
    loaded = loads[0][0]
    raw = _engine_json(loaded, count)
    results = []
    for _, load_seconds, parse_seconds in loads:
        gc.collect()
        seconds, actions = _stages(loaded, raw)
        results.append(PlannerResult(count, seconds, load_seconds, parse_seconds, 0.0, actions))
    gc.collect()
    tracemalloc.start()
    try:
        _stages(loaded, raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return [replace(item, peak_mb=peak / 2**20) for item in results]
