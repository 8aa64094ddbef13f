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
from dataclasses import dataclass
from typing import Any

import yaml

from bench import workload
from converge.api import resolved_spec_hash
from converge.diff import diff
from converge.engine_spec import network_create_body, service_engine_spec
from converge.errors import SpecError
from converge.loader import LoadedSpec, load_spec_text
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
    """load_spec_text of the spec; None when the loader refused it (see measure_planner)."""
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
    current = Spec.model_validate(
        yaml.safe_load(workload.spec_text(STACK, "10.150.0.0/16", workload.services(count)))
    )
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


def measure_planner(count: int, runs: int) -> list[PlannerResult]:
    """``runs`` timings of the pure pipeline on ``count`` synthetic services, then one traced
    run for peak memory (tracemalloc slows code down, so it never shares a timed run)."""
    text = workload.spec_text(STACK, "10.150.0.0/16", workload.services(count, changed=0))
    started = time.perf_counter()
    try:
        loaded = load_spec_text(text)
        load_seconds: float | None = time.perf_counter() - started
    except SpecError:
        # The loader's alias-bomb guard caps a document at 100,000 YAML values, aliases or
        # not: about 8,000 services of this shape. The planner does not need the loader.
        loaded = LoadedSpec(spec=Spec.model_validate(yaml.safe_load(text)), files=("<synth>",))
        load_seconds = None
    raw = _engine_json(loaded, count)
    results = []
    for _ in range(runs):
        gc.collect()
        seconds, actions = _stages(loaded, raw)
        results.append(PlannerResult(count, seconds, load_seconds, 0.0, actions))
    gc.collect()
    tracemalloc.start()
    try:
        _stages(loaded, raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return [
        PlannerResult(item.services, item.seconds, item.load_seconds, peak / 2**20, item.actions)
        for item in results
    ]
